"""The three flows a recipe can name, each a chain of oar's existing pipelines ending in a served model.

- ``text-job``: an ``oar train`` job on a text dataset (train, export, parity check, register).
- ``image-int8``: an ``oar train`` job on an image dataset, ``export_module`` to ONNX, ``oar quantize``'s
  INT8 path (accuracy-gated), ``oar pack --target edge`` of the INT8 variant, checked by running the pack.
- ``fewshot``: ``oar.fewshot.train_fewshot`` on K examples per class.

Every flow ends with the same serving step (``serving.serve_and_measure``). Nothing here trains or
exports by itself: it calls the pipelines and collects their figures.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from oar._core.errors import OarError
from oar.hub import Hub, ModelVersion, Run
from oar.solutions.display import StepDisplay, training_progress
from oar.solutions.recipe import Recipe
from oar.solutions.serving import Served, TestItems, serve_and_measure

MB = 1024 * 1024
EDGE_CHECK_IMAGES = 64


@dataclass
class Context:
    recipe: Recipe
    reduced: bool
    hub: Hub
    display: StepDisplay
    folder: Path  # the run's report folder


@dataclass
class Outcome:
    metrics: dict[str, Any] = field(default_factory=dict)
    models: dict[str, str] = field(default_factory=dict)
    artifacts: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Flow:
    steps: list[str]
    run: Callable[[Context], Outcome]


def package_mb(model: ModelVersion) -> float:
    """Bytes of the registered package (every file: model, tokenizer, manifest, source weights), in MiB."""
    return sum(p.stat().st_size for p in model.path.rglob("*") if p.is_file()) / MB


def model_by_id(hub: Hub, model_id: str) -> ModelVersion:
    name, _, version = model_id.partition(":")
    return hub.models.get(name, int(version) if version else None)


def check_sections(recipe: Recipe) -> None:
    """Validate what the recipe file holds for other modules (its ``oar train`` job) before anything runs."""
    if recipe.job is not None:
        from oar.train.job import parse_job, validate_job

        validate_job(parse_job(recipe.job, f"recipe {recipe.name}: job"))


def _train(ctx: Context, job_data: dict[str, Any]) -> Run:
    """``oar train`` on the recipe's job section, in this process, with the display's training bar."""
    from oar.pipelines.train_job import execute, start_run
    from oar.train.job import parse_job

    job = parse_job(job_data, f"recipe {ctx.recipe.name}: job")
    run = start_run(job, ctx.hub)
    ctx.display.note(f"run {run.id} on {job.data.dataset}:{run.dataset_version}")
    run = execute(run.id, ctx.hub, progress=False, callbacks=[training_progress(ctx.display)])
    if run.status != "finished":
        raise OarError(f"training run {run.id} ended {run.status}: {run.metrics.get('error', '')}")
    return run


def _test_items(dataset_name: str, count: int, input_name: str | None = None) -> TestItems:
    from oar.data import load_builtin

    dataset = load_builtin(dataset_name)
    x, y = dataset.test.x[:count], dataset.test.y[:count]
    labels = [dataset.labels[int(i)] for i in y]
    return TestItems(list(x) if input_name is None else np.asarray(x), labels, input_name)


def _serve(ctx: Context, roles: dict[str, str], items: TestItems, outcome: Outcome) -> dict[str, Served]:
    """Serve every model of ``roles`` in one ``oar serve`` process; add their served figures to ``outcome``."""
    requests = ctx.recipe.serve.requests
    measured, code = serve_and_measure(
        list(roles.values()), items, requests, ctx.folder / "server.log", progress=ctx.display.update
    )
    by_role = dict(zip(roles, measured, strict=True))
    for role, served in by_role.items():
        prefix = "" if role == "model" else f"{role}_"
        outcome.metrics[f"{prefix}served_accuracy"] = served.accuracy
        outcome.metrics[f"{prefix}p50_ms"] = served.p50_ms
        outcome.metrics[f"{prefix}p99_ms"] = served.p99_ms
        ctx.display.note(
            f"{served.model_id}: accuracy {served.accuracy:.4f} on {served.samples} test items through the server; "
            f"p50 {served.p50_ms:.2f} ms, p99 {served.p99_ms:.2f} ms over {requests} requests"
        )
    ctx.display.note(f"server stopped (exit code {code})")
    outcome.artifacts.update(server_log=str(ctx.folder / "server.log"), server_exit_code=str(code))
    return by_role


def text_job(ctx: Context) -> Outcome:
    outcome = Outcome()
    job = ctx.recipe.job or {}
    with ctx.display.step("train, export, register"):
        run = _train(ctx, {**job, "register_model": True})
        model = model_by_id(ctx.hub, run.metrics["model"])
        parity = run.metrics.get("parity") or {}
        outcome.metrics.update(
            test_accuracy=run.metrics["test_accuracy"],
            valid_accuracy=run.metrics.get("valid_accuracy"),
            train_seconds=run.metrics.get("train_seconds"),
            parity_max_abs_diff=parity.get("max_abs_diff"),
            package_mb=package_mb(model),
        )
        outcome.models["model"] = model.model_id
        outcome.artifacts["run"] = run.id
        ctx.display.note(f"registered {model.model_id}: test accuracy {run.metrics['test_accuracy']:.4f}")
    with ctx.display.step("serve and query"):
        items = _test_items(job["data"]["dataset"], ctx.recipe.serve.accuracy_samples)
        _serve(ctx, {"model": model.model_id}, items, outcome)
    return outcome


def image_int8(ctx: Context) -> Outcome:
    from oar.export.variants import QuantizeOptions, quantize_registered

    outcome = Outcome()
    job = ctx.recipe.job or {}
    quantize = ctx.recipe.quantize
    assert quantize is not None
    with ctx.display.step("train"):
        run = _train(ctx, {**job, "register_model": False})
        outcome.metrics.update(
            valid_accuracy=run.metrics.get("valid_accuracy"), train_seconds=run.metrics.get("train_seconds")
        )
        outcome.artifacts["run"] = run.id
    with ctx.display.step("export fp32 (parity-checked)"):
        fp32 = _export_image_run(ctx.hub, run)
        outcome.models["fp32"] = fp32.model_id
        ctx.display.note(f"registered {fp32.model_id}")
    with ctx.display.step(f"quantize {quantize.method}"):
        options = QuantizeOptions(
            quantize.method,
            max_accuracy_drop=quantize.max_accuracy_drop,
            calibration_samples=quantize.calibration_samples,
        )
        result = quantize_registered(ctx.hub, fp32.model_id, options)
        if result.refused or result.registered is None:
            raise OarError(result.refused or "the quantized variant was not registered")
        int8 = result.registered
        report = result.report
        outcome.models["int8"] = int8.model_id
        outcome.metrics.update(
            fp32_test_accuracy=report.baseline.accuracy,
            int8_test_accuracy=report.variant.accuracy,
            accuracy_drop_points=report.accuracy_drop_points,
            int8_argmax_agreement=report.argmax_agreement,
            fp32_model_kb=report.baseline.size_bytes / 1024,
            int8_model_kb=report.variant.size_bytes / 1024,
            size_ratio=report.size_ratio,
            fp32_session_p50_ms=report.baseline.p50_ms[1],
            int8_session_p50_ms=report.variant.p50_ms[1],
            int8_latency_ratio=report.latency_ratio(1),
            fp32_package_mb=package_mb(fp32),
            int8_package_mb=package_mb(int8),
        )
        ctx.display.note(
            f"registered {int8.model_id}: accuracy {report.baseline.accuracy:.4f} -> {report.variant.accuracy:.4f}, "
            f"model {report.baseline.size_bytes / 1024:.0f} -> {report.variant.size_bytes / 1024:.0f} KiB"
        )
    dataset = job["data"]["dataset"]
    with ctx.display.step("edge pack (INT8)"):
        pack = _edge_pack(ctx, int8, dataset, outcome)
        outcome.artifacts["edge_pack"] = str(pack)
    with ctx.display.step("serve and query fp32 + INT8"):
        items = _test_items(dataset, ctx.recipe.serve.accuracy_samples, input_name="image")
        _serve(ctx, {"fp32": fp32.model_id, "int8": int8.model_id}, items, outcome)
    outcome.metrics["p50_ms"] = outcome.metrics["int8_p50_ms"]  # the edge model is the recipe's product
    return outcome


def _export_image_run(hub: Hub, run: Run) -> ModelVersion:
    """Rebuild the run's module from its job, load its final weights, export it with the run's lineage."""
    import torch
    from safetensors.torch import load_file

    from oar.export import InputSpec, export_module
    from oar.pipelines.train_job import WEIGHTS_FILE, job_of, run_dir
    from oar.train.job import build_model, prepare_data

    job = job_of(run)
    data = prepare_data(job, run_dir(hub, run.id))
    model = build_model(job, data)
    model.load_state_dict(load_file(str(run_dir(hub, run.id) / WEIGHTS_FILE)))
    valid = np.asarray(data.dataset.valid.x[:64])
    assert run.dataset_name is not None and run.dataset_version is not None
    return export_module(
        model.eval(),
        [InputSpec([None, *valid.shape[1:]], "float32", "image", value_range=(0.0, 1.0))],
        name=job.name,
        labels=data.dataset.labels,
        sample_inputs=[torch.from_numpy(valid)],
        dataset=hub.datasets.get(run.dataset_name, run.dataset_version).ref,
        metrics={
            "test_accuracy": float(run.metrics["test_accuracy"]),
            "valid_accuracy": float(run.metrics["valid_accuracy"]),
        },
        run_id=run.id,
        register=True,
        hub=hub,
    )


def _edge_pack(ctx: Context, model: ModelVersion, dataset_name: str, outcome: Outcome) -> Path:
    """``oar pack --target edge``, then the pack's own runner on test images, in a separate Python process."""
    from oar.edge import RUNNER_FILE, pack_edge
    from oar.package import ModelPackage

    pack = pack_edge(ModelPackage.open(model.path), ctx.folder / "edge")
    items = _test_items(dataset_name, EDGE_CHECK_IMAGES, input_name="image")
    np.save(ctx.folder / "edge-check.npy", items.inputs)
    answer = subprocess.run(
        [sys.executable, str(pack / RUNNER_FILE), str(ctx.folder / "edge-check.npy")],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ctx.folder,
    )
    if answer.returncode != 0:
        raise OarError(f"the edge pack's runner failed: {answer.stderr.strip()[-500:]}")
    labels = [json.loads(line)["label"] for line in answer.stdout.splitlines() if line.strip()]
    outcome.metrics["edge_pack_kb"] = sum(p.stat().st_size for p in pack.rglob("*") if p.is_file()) / 1024
    outcome.metrics["edge_accuracy"] = float(np.mean([a == b for a, b in zip(labels, items.labels, strict=True)]))
    ctx.display.note(
        f"wrote {pack}: {outcome.metrics['edge_pack_kb']:.0f} KiB; its runner classified {len(labels)} test images, "
        f"accuracy {outcome.metrics['edge_accuracy']:.4f}"
    )
    return pack


def fewshot(ctx: Context) -> Outcome:
    from oar.fewshot import train_fewshot  # torch: imported when the flow runs, `oar solutions list` needs none
    from oar.fewshot.contrastive import FewShotRecipe

    section = ctx.recipe.fewshot
    assert section is not None
    options = dict(section.options)
    test_limit = options.pop("test_limit", None)
    try:
        recipe = FewShotRecipe(**options)
    except TypeError as exc:
        raise OarError(f"recipe {ctx.recipe.name}: fewshot.options: {exc}") from None
    outcome = Outcome()
    with ctx.display.step(f"few-shot train ({section.shots} per class)"):
        result = train_fewshot(
            section.dataset, section.shots, seed=section.seed, recipe=recipe, hub=ctx.hub, test_limit=test_limit
        )
        model = model_by_id(ctx.hub, result.model_id)
        outcome.metrics.update(test_accuracy=float(result.test_accuracy), package_mb=package_mb(model))
        outcome.models["model"] = model.model_id
        outcome.artifacts["package"] = str(result.package_path)
        ctx.display.note(f"registered {model.model_id}: test accuracy {result.test_accuracy:.4f}")
    with ctx.display.step("serve and query"):
        items = _test_items(section.dataset, ctx.recipe.serve.accuracy_samples)
        _serve(ctx, {"model": model.model_id}, items, outcome)
    return outcome


FLOWS: dict[str, Flow] = {
    "text-job": Flow(["train, export, register", "serve and query"], text_job),
    "image-int8": Flow(
        ["train", "export fp32 (parity-checked)", "quantize", "edge pack (INT8)", "serve and query fp32 + INT8"],
        image_int8,
    ),
    "fewshot": Flow(["few-shot train", "serve and query"], fewshot),
}
