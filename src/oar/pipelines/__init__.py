"""End-to-end workflows that chain the layers: dataset -> train -> export -> hub."""

from oar.pipelines.text_classification import (
    PipelineResult,
    Prepared,
    TextClassifierRecipe,
    TrainingInterrupted,
    train_and_register,
    train_text_classifier,
)

__all__ = [
    "PipelineResult",
    "Prepared",
    "TextClassifierRecipe",
    "TrainingInterrupted",
    "train_and_register",
    "train_text_classifier",
]
