"""Solution recipes: end-to-end examples on bundled data, each ending in a registered, served model.

``oar solutions list`` shows them; ``oar solutions run NAME [--reduced]`` runs one. A recipe is a
directory under ``recipes/`` (``recipe.yaml`` + ``README.md``); ``runner.run_recipe`` drives it.
Importing this package needs only the core install; running a recipe needs the ``train`` extra.
"""

from oar.solutions.recipe import Recipe, RecipeEntry, find_recipe, known_recipes, load_recipe

__all__ = ["Recipe", "RecipeEntry", "find_recipe", "known_recipes", "load_recipe"]
