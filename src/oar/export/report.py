"""Measure a quantized variant against its fp32 parent: size, test accuracy, p50 latency, gates.

Latencies of the two models are measured interleaved in one process (fp32 run, variant run,
fp32 run, ...), so a busy shared CPU slows both alike and the *ratio* stays meaningful.
Tokenisation is done once, outside the timed region: it is identical for both. Text and image
classifiers are measured alike; accuracy goes through each runtime's own path (padding included).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from oar.export.lineage_data import token_batches
from oar.runtime import ImageClassifierRuntime, TextClassifierRuntime, load_runtime

Classifier = TextClassifierRuntime | ImageClassifierRuntime

DEFAULT_MAX_ACCURACY_DROP = 1.0  # accuracy points (percentage points) on the test split
LATENCY_BATCHES = (1, 32)
SLOWER_MARGIN = 1.05  # a variant is flagged when its p50 is over 5% above fp32's: below that is noise here


@dataclass(frozen=True)
class Measure:
    name: str
    size_bytes: int
    accuracy: float
    p50_ms: dict[int, float]  # batch size -> median latency of one session.run


@dataclass(frozen=True)
class VariantReport:
    """One variant against its fp32 parent; ratios are variant / fp32."""

    baseline: Measure
    variant: Measure
    argmax_agreement: float
    max_abs_diff: float

    @property
    def size_ratio(self) -> float:
        return self.variant.size_bytes / self.baseline.size_bytes

    @property
    def accuracy_drop_points(self) -> float:
        return (self.baseline.accuracy - self.variant.accuracy) * 100

    def latency_ratio(self, batch: int) -> float:
        return self.variant.p50_ms[batch] / self.baseline.p50_ms[batch]

    @property
    def slower_at(self) -> list[int]:
        """Batch sizes at which the variant ran slower than fp32 (INT8 is not always faster)."""
        return [b for b in LATENCY_BATCHES if self.latency_ratio(b) > SLOWER_MARGIN]

    def refusal(self, max_accuracy_drop: float) -> str | None:
        """Why the variant must not be registered, or ``None`` when it passes the accuracy gate."""
        if self.accuracy_drop_points > max_accuracy_drop:
            return (
                f"{self.variant.name} loses {self.accuracy_drop_points:.2f} accuracy points "
                f"({self.baseline.accuracy:.4f} -> {self.variant.accuracy:.4f}), more than "
                f"--max-accuracy-drop {max_accuracy_drop:g}; not registered"
            )
        return None

    def to_record(self, max_accuracy_drop: float) -> dict[str, Any]:
        """What goes into the variant's manifest (``quantization`` field)."""
        return {
            "parent_accuracy": self.baseline.accuracy,
            "accuracy": self.variant.accuracy,
            "accuracy_drop_points": self.accuracy_drop_points,
            "max_accuracy_drop": max_accuracy_drop,
            "argmax_agreement_with_parent": self.argmax_agreement,
            "max_abs_logit_diff": self.max_abs_diff,
            "size_bytes": self.variant.size_bytes,
            "size_ratio": self.size_ratio,
            **{f"p50_batch{b}_ratio": self.latency_ratio(b) for b in LATENCY_BATCHES},
            "slower_than_fp32_at_batch": self.slower_at,
            "baseline": asdict(self.baseline),
        }


def measure_variant(
    baseline_dir: Path,
    variant_dir: Path,
    name: str,
    inputs: Sequence[Any],
    labels: np.ndarray,
    repeats: int = 30,
) -> VariantReport:
    """Accuracy on ``inputs`` (texts or images) and interleaved latency for the parent package and the variant."""
    base, variant = load_runtime(baseline_dir), load_runtime(variant_dir)
    assert isinstance(base, Classifier) and isinstance(variant, Classifier)
    base_logits, variant_logits = _logits(base, inputs), _logits(variant, inputs)
    latencies = _interleaved_p50(base, variant, inputs, repeats)
    return VariantReport(
        baseline=Measure("fp32", _model_size(base), _accuracy(base_logits, labels), latencies[0]),
        variant=Measure(name, _model_size(variant), _accuracy(variant_logits, labels), latencies[1]),
        argmax_agreement=float((base_logits.argmax(1) == variant_logits.argmax(1)).mean()),
        max_abs_diff=float(np.abs(base_logits - variant_logits).max()),
    )


def table_rows(reports: Sequence[VariantReport]) -> list[list[str]]:
    """Header + one row for fp32 + one per variant, every figure also relative to fp32."""
    header = ["variant", "size", "test acc", *(f"p50 batch {b}" for b in LATENCY_BATCHES), "flag"]
    if not reports:
        return [header]
    base = reports[0].baseline
    rows = [
        header,
        [
            "fp32",
            _mb(base.size_bytes),
            f"{base.accuracy:.4f}",
            *(f"{base.p50_ms[b]:.2f} ms" for b in LATENCY_BATCHES),
            "",
        ],
    ]
    for r in reports:
        v = r.variant
        rows.append(
            [
                v.name,
                f"{_mb(v.size_bytes)} ({r.size_ratio:.0%})",
                f"{v.accuracy:.4f} ({-r.accuracy_drop_points:+.2f} pt)",
                *(f"{v.p50_ms[b]:.2f} ms ({1 / r.latency_ratio(b):.2f}x)" for b in LATENCY_BATCHES),
                ", ".join(f"slower than fp32 at batch {b}" for b in r.slower_at),
            ]
        )
    return rows


def markdown_table(rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    lines += ["| " + " | ".join(row) + " |" for row in rows[1:]]
    return "\n".join(lines)


def _logits(runtime: Classifier, inputs: Sequence[Any]) -> np.ndarray:
    """The runtime's own path (its padding, its checks) in batches of 64: what a server would answer."""
    return np.concatenate([runtime.logits(inputs[i : i + 64]) for i in range(0, len(inputs), 64)])


def _feeds(runtime: Classifier, inputs: Sequence[Any], batch: int) -> dict[str, np.ndarray]:
    """One graph call's inputs for ``batch`` items: token ids for text, the tensors themselves else."""
    name = runtime.session.get_inputs()[0].name
    if isinstance(runtime, TextClassifierRuntime):
        return {name: next(token_batches(runtime.tokenizer, inputs[:batch], batch))}
    return {name: np.asarray(inputs[:batch])}


def _accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    return float((logits.argmax(1) == labels).mean())


def _interleaved_p50(
    base: Classifier, variant: Classifier, inputs: Sequence[Any], repeats: int
) -> tuple[dict[int, float], dict[int, float]]:
    out: tuple[dict[int, float], dict[int, float]] = ({}, {})
    for batch in LATENCY_BATCHES:
        feeds = _feeds(base, inputs, batch)
        timings: list[list[float]] = [[], []]
        for i in range(repeats + 3):
            for k, session in enumerate((base.session, variant.session)):
                started = time.perf_counter()
                session.run(None, feeds)
                if i >= 3:  # the first runs allocate and warm caches
                    timings[k].append(time.perf_counter() - started)
        for k in range(2):
            out[k][batch] = float(np.median(timings[k]) * 1000)
    return out


def _model_size(runtime: Classifier) -> int:
    return runtime.package.file(runtime.package.manifest.runtime.model_file).stat().st_size


def _mb(size: int) -> str:
    return f"{size / 1e6:.2f} MB"
