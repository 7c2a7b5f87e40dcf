"""End-to-end workflows that chain the layers: dataset -> train -> export -> hub."""

from oar.pipelines.text_classification import PipelineResult, TextClassifierRecipe, train_text_classifier

__all__ = ["PipelineResult", "TextClassifierRecipe", "train_text_classifier"]
