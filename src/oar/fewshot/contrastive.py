"""The SetFit algorithm (arXiv 2209.11055) on the bundled MiniLM sentence encoder, in plain PyTorch.

1. **Pairs**: for each of ``iterations`` rounds, every example is paired once with a random example
   of its own class (target cosine 1) and once with one of another class (target 0).
2. **Contrastive tuning**: the encoder (masked mean pooling, L2-normalised) is fine-tuned so the
   cosine similarity of each pair's embeddings matches its target (``CosineSimilarityLoss``:
   mean squared error), with AdamW, linear warm-up and decay, as sentence-transformers does.
3. **Head**: a logistic regression (scikit-learn) is fitted on the tuned embeddings of the K
   examples per class, then copied into the model's linear layer, so the whole classifier is one
   PyTorch module (and one ONNX graph) whose softmax equals the regression's probabilities.

The ``setfit`` library itself is not used: its trainer needs ``datasets`` and ``accelerate``, which
oar does not pin, and every step above is a few lines on the encoder oar already loads.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from tokenizers import Tokenizer
from torch import nn

from oar._core.errors import InvalidInputError
from oar.data.tokenizer import token_ids


@dataclass
class FewShotRecipe:
    """SetFit's defaults (20 pair rounds, batch 16, lr 2e-5, one epoch), with a cap on pairs for CPUs."""

    iterations: int = 20
    max_pairs: int | None = 1280  # None: every generated pair; a cap keeps K=64 runs to minutes on a CPU
    batch_size: int = 16
    lr: float = 2e-5
    warmup_fraction: float = 0.1
    max_tokens: int = 64
    head_c: float = 1.0  # inverse L2 strength of the logistic-regression head

    def __post_init__(self) -> None:
        if self.iterations < 1:
            raise InvalidInputError(f"iterations must be at least 1, got {self.iterations}")
        if self.max_pairs is not None and self.max_pairs < 1:
            raise InvalidInputError(f"max_pairs must be at least 1 (or none), got {self.max_pairs}")
        if not 8 <= self.max_tokens <= 512:
            raise InvalidInputError(f"max_tokens must be between 8 and 512, got {self.max_tokens}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def make_pairs(labels: np.ndarray, iterations: int, rng: np.random.Generator) -> list[tuple[int, int, float]]:
    """(i, j, target) pairs: per round, each example with one same-class partner and one other-class partner."""
    by_class = {int(c): np.flatnonzero(labels == c) for c in np.unique(labels)}
    pairs: list[tuple[int, int, float]] = []
    for _ in range(iterations):
        for i, label in enumerate(labels.tolist()):
            same = by_class[label][by_class[label] != i]
            partner = int(rng.choice(same)) if len(same) else i  # K=1: the example with itself
            other = np.flatnonzero(labels != label)
            pairs.append((i, partner, 1.0))
            pairs.append((i, int(rng.choice(other)), 0.0))
    order = rng.permutation(len(pairs))
    return [pairs[k] for k in order]


StepCallback = Callable[[int, int, float], None]


def _padded(rows: list[list[int]]) -> torch.Tensor:
    width = max(len(r) for r in rows)
    return torch.tensor([r + [0] * (width - len(r)) for r in rows], dtype=torch.long)


def tune_encoder(
    model: nn.Module,
    ids: list[list[int]],
    labels: np.ndarray,
    recipe: FewShotRecipe,
    seed: int,
    on_step: StepCallback | None = None,
) -> dict[str, float]:
    """Contrastive fine-tuning of ``model.embed`` on pairs of the examples; returns loss and timing figures.

    ``on_step(step, steps, loss)`` after each optimizer step: tuning takes minutes on a CPU, so callers show it.
    """
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    pairs = make_pairs(labels, recipe.iterations, rng)[: recipe.max_pairs]
    steps = math.ceil(len(pairs) / recipe.batch_size)
    params = [p for name, p in model.named_parameters() if not name.startswith("head.")]
    optimizer = torch.optim.AdamW(params, lr=recipe.lr, weight_decay=0.01)
    warmup = max(1, int(steps * recipe.warmup_fraction))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: (s + 1) / warmup if s < warmup else max(0.0, (steps - s) / max(1, steps - warmup))
    )
    model.train()
    started, losses = time.perf_counter(), []
    for step in range(steps):
        batch = pairs[step * recipe.batch_size : (step + 1) * recipe.batch_size]
        left = model.embed(_padded([ids[i] for i, _, _ in batch]))
        right = model.embed(_padded([ids[j] for _, j, _ in batch]))
        target = torch.tensor([t for _, _, t in batch])
        loss = nn.functional.mse_loss((left * right).sum(-1), target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
        if on_step is not None:
            on_step(step + 1, steps, losses[-1])
    model.eval()
    tail = losses[-max(1, len(losses) // 10) :]
    return {
        "pairs": float(len(pairs)),
        "steps": float(steps),
        "first_loss": losses[0],
        "final_loss": float(np.mean(tail)),
        "tune_seconds": time.perf_counter() - started,
    }


@torch.no_grad()
def embed_texts(model: nn.Module, tokenizer: Tokenizer, texts: list[str], batch_size: int = 64) -> np.ndarray:
    """Unit sentence embeddings of ``texts`` (batches sorted by length, so little padding is computed)."""
    model.eval()
    ids = token_ids(tokenizer, texts)
    order = np.argsort([len(r) for r in ids])
    out = np.zeros((len(ids), model.head.in_features), dtype=np.float32)
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        out[chunk] = model.embed(_padded([ids[i] for i in chunk])).numpy()
    return out


def fit_head(model: nn.Module, embeddings: np.ndarray, labels: np.ndarray, c: float, num_classes: int) -> None:
    """Logistic regression on the embeddings, copied into ``model.head`` (softmax of logits = its probabilities)."""
    regression = LogisticRegression(C=c, max_iter=1000).fit(embeddings, labels)
    weight = np.zeros((num_classes, embeddings.shape[1]), dtype=np.float32)
    bias = np.zeros(num_classes, dtype=np.float32)
    if len(regression.classes_) == 2 and regression.coef_.shape[0] == 1:
        low, high = (int(c) for c in regression.classes_)
        weight[low], weight[high] = -regression.coef_[0] / 2, regression.coef_[0] / 2
        bias[low], bias[high] = -regression.intercept_[0] / 2, regression.intercept_[0] / 2
    else:
        for row, label in enumerate(regression.classes_):
            weight[int(label)], bias[int(label)] = regression.coef_[row], regression.intercept_[row]
    with torch.no_grad():
        model.head.weight.copy_(torch.from_numpy(weight))
        model.head.bias.copy_(torch.from_numpy(bias))


@torch.no_grad()
def predict(model: nn.Module, tokenizer: Tokenizer, texts: list[str], batch_size: int = 64) -> np.ndarray:
    """Class indices of ``texts`` from the whole module (embedding and head)."""
    embeddings = torch.from_numpy(embed_texts(model, tokenizer, texts, batch_size))
    return model.head(embeddings).argmax(-1).numpy()
