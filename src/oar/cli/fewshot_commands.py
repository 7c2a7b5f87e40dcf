"""``oar fewshot train --dataset NAME --shots K [--seed S] [--name MODEL]``.

Bad input (K < 1, K above the smallest class, an unknown dataset, one that is not labelled text)
is one red line and exit 1, checked before any model is loaded. torch is imported only when the
command runs, so ``oar --help`` stays fast on a serving machine.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.progress import Progress, TextColumn

console = Console()
fewshot_app = typer.Typer(help="Few-shot text classification: K labelled examples per class.", no_args_is_help=True)


@fewshot_app.command("train")
def train(
    dataset: Annotated[str, typer.Option(help="built-in text dataset, e.g. rotten-tomatoes")],
    shots: Annotated[int, typer.Option(help="labelled examples drawn per class (K)")],
    seed: Annotated[int, typer.Option(help="seed of the draw and of the tuning")] = 0,
    name: Annotated[str | None, typer.Option(help="model name in the hub (default DATASET-fewshot-K)")] = None,
    iterations: Annotated[int, typer.Option(min=1, help="rounds of contrastive pairs per example")] = 20,
    max_pairs: Annotated[int, typer.Option(min=0, help="cap on contrastive pairs (0: no cap)")] = 1280,
    test_limit: Annotated[int | None, typer.Option(min=1, help="score only the first N test texts")] = None,
) -> None:
    """Tune the bundled MiniLM on K examples per class, export one ONNX package, register it."""
    from oar.fewshot.contrastive import FewShotRecipe
    from oar.fewshot.shots import load_text_dataset

    load_text_dataset(dataset, shots)  # bad input fails here, before torch and the encoder load
    from oar.fewshot.train import train_fewshot

    recipe = FewShotRecipe(iterations=iterations, max_pairs=max_pairs or None)
    console.print(f"drawing {shots} examples per class of {dataset} (seed {seed}); tuning MiniLM")
    with Progress(*Progress.get_default_columns(), TextColumn("loss {task.fields[loss]:.4f}"), console=console) as bar:
        task = bar.add_task("contrastive tuning", total=None, loss=float("nan"))

        def on_step(step: int, steps: int, loss: float) -> None:
            bar.update(task, completed=step, total=steps, loss=loss)

        result = train_fewshot(dataset, shots, seed, name=name, recipe=recipe, test_limit=test_limit, on_step=on_step)
    console.print(
        f"registered [bold]{result.model_id}[/] (run {result.run_id}): test accuracy {result.test_accuracy:.4f}; "
        f"parity max |Δ| {result.parity.max_abs_diff:.2e}; serve it: oar serve {result.model_name}",
        soft_wrap=True,
    )
    console.print(f"package: {result.package_path}", soft_wrap=True)
