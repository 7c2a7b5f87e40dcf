"""The quantization report: every method against fp32, for the quickstart CNN and the MiniLM classifier.

Trains both models into a fresh hub (a temporary ``OAR_HOME`` unless ``--home`` is given), then runs
``oar quantize``'s own code (``quantize_registered``) for each method on the fp32 version, so the
figures are exactly what the command reports and gates: model size, accuracy on the full test
split, and p50 latency of ``session.run`` at batch 1 and 32, interleaved with fp32 in one process
(ratios stay meaningful on a busy CPU; absolute times do not). Ends with the goals set for INT8 on
the MiniLM classifier: at most 30% of the fp32 size, at least 1.5x faster at batch 32, at most 1
accuracy point lost.

    python bench/quantize.py [--models quickstart,minilm] [--minilm-train-limit 3000] [--repeats 30]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from oar.export.quantize import METHODS
from oar.export.report import LATENCY_BATCHES, markdown_table, table_rows
from oar.export.variants import QuantizeOptions, QuantizeOutcome, quantize_registered
from oar.hub import Hub, ModelVersion
from oar.pipelines import train_text_classifier
from oar.pipelines.minilm import MiniLMRecipe, train_minilm_classifier
from oar.pipelines.text_classification import PipelineResult

GOAL_SIZE_RATIO, GOAL_SPEEDUP_B32, GOAL_MAX_DROP = 0.30, 1.5, 1.0


def _train_quickstart(hub: Hub, args: argparse.Namespace) -> PipelineResult:
    return train_text_classifier("chnsenti", "bench-quickstart", hub=hub, progress=False)


def _train_minilm(hub: Hub, args: argparse.Namespace) -> PipelineResult:
    recipe = MiniLMRecipe(train_limit=args.minilm_train_limit or None)
    return train_minilm_classifier("rotten-tomatoes", "bench-minilm", recipe, hub=hub, progress=False)


MODELS: dict[str, tuple[str, Callable[[Hub, argparse.Namespace], PipelineResult]]] = {
    "quickstart": ("TextCNN on chnsenti (quickstart recipe, full data)", _train_quickstart),
    "minilm": ("MiniLM-L6 fine-tuned on rotten-tomatoes", _train_minilm),
}


def _describe_training(result: PipelineResult) -> str:
    examples = int(result.run.metrics.get("train_examples", 0)) or "all"
    parity = result.parity
    return (
        f"trained {result.model.model_id} in {result.train_seconds:.0f} s on {examples} "
        f"training texts; test accuracy (PyTorch) {result.test_metrics['accuracy']:.4f}; ONNX parity max |Δ| "
        f"{parity.max_abs_diff:.1e}, argmax agreement {parity.argmax_agreement:.4f} on {parity.samples} test texts"
    )


def _quantize_all(hub: Hub, fp32: ModelVersion, repeats: int) -> list[QuantizeOutcome]:
    outcomes = []
    for method in METHODS:
        started = time.perf_counter()
        outcome = quantize_registered(hub, fp32.model_id, QuantizeOptions(method, latency_repeats=repeats))
        verdict = outcome.refused or f"registered {outcome.registered.model_id}"  # type: ignore[union-attr]
        print(f"  {method}: {verdict} ({time.perf_counter() - started:.0f} s)", flush=True)
        outcomes.append(outcome)
    return outcomes


def _goals(outcomes: list[QuantizeOutcome]) -> list[str]:
    """The MiniLM goals for each INT8 method, met or missed, with the measured figure."""
    lines = []
    for outcome in outcomes:
        report = outcome.report
        if not report.variant.name.startswith("int8"):
            continue
        speedup, drop = 1 / report.latency_ratio(32), report.accuracy_drop_points
        checks = [
            (report.size_ratio <= GOAL_SIZE_RATIO, f"size {report.size_ratio:.0%} of fp32 (goal <= 30%)"),
            (speedup >= GOAL_SPEEDUP_B32, f"{speedup:.2f}x fp32 speed at batch 32 (goal >= 1.5x)"),
            (drop <= GOAL_MAX_DROP, f"{drop:+.2f} accuracy points lost (goal <= 1)"),
        ]
        lines.append(
            f"- {report.variant.name}: " + "; ".join(f"{text} {'met' if ok else 'MISSED'}" for ok, text in checks)
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="quickstart,minilm", help=f"comma-separated: {', '.join(MODELS)}")
    parser.add_argument("--minilm-train-limit", type=int, default=3000, help="training texts (0 = all 10,246)")
    parser.add_argument("--repeats", type=int, default=30, help="timed session.run calls per model and batch size")
    parser.add_argument("--home", help="hub directory to use (default: a temporary one, deleted at the end)")
    args = parser.parse_args()
    chosen = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = sorted(set(chosen) - set(MODELS))
    if unknown:
        parser.error(f"unknown model(s) {', '.join(unknown)}; choose from {', '.join(MODELS)}")
    with tempfile.TemporaryDirectory(prefix="oar-bench-quantize-") as tmp:
        hub = Hub(Path(args.home) if args.home else Path(tmp))
        for key in chosen:
            title, train = MODELS[key]
            print(f"\n## {title}\n", flush=True)
            result = train(hub, args)
            print(_describe_training(result), flush=True)
            outcomes = _quantize_all(hub, result.model, args.repeats)
            batches = " and ".join(str(b) for b in LATENCY_BATCHES)
            tested = len(result.dataset.test)
            print(f"\nsize of model.onnx; accuracy on all {tested} test texts; p50 latency at batch {batches}")
            print("(ratios: variant vs fp32, interleaved in one process; Nx = speed-up)\n")
            print(markdown_table(table_rows([o.report for o in outcomes])))
            if key == "minilm":
                print("\nGoals (MiniLM classifier):")
                print("\n".join(_goals(outcomes)))


if __name__ == "__main__":
    main()
