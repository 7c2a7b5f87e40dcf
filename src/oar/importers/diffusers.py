"""Import a diffusers text-to-image pipeline directory (the user's own weights) as a ``text-to-image`` package.

Nothing is downloaded: the directory is loaded with ``local_files_only`` and ``HF_HUB_OFFLINE``. Weights must
be safetensors (``use_safetensors=True`` refuses a pipeline that has only pickled ``.bin`` files), and the
package gets a fresh ``save_pretrained`` copy, so it holds configs and safetensors only, whatever else lay
in the source directory. The caps (size, steps, queue) are written into the manifest, where the server
reads them.
"""

from __future__ import annotations

import inspect
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from oar import __version__
from oar._core.errors import InvalidInputError, OarError
from oar.hub import Hub
from oar.hub.entities import ModelVersion
from oar.package import Generation, Lineage, Manifest, ModelPackage, RuntimeSpec, TensorSpec

PIPELINE_DIR = "pipeline"
MODEL_INDEX = "model_index.json"


@dataclass(frozen=True)
class PipelineImport:
    source: Path
    name: str
    max_size: int = 1024
    max_steps: int = 50
    default_steps: int = 20
    concurrency: int = 1
    max_queue: int = 16


def import_pipeline(hub: Hub, spec: PipelineImport) -> ModelVersion:
    """Load the pipeline (proving it works), copy it as safetensors, register it; nothing is registered on failure."""
    pipeline = load_local_pipeline(spec.source)
    with tempfile.TemporaryDirectory(prefix=".oar-diffusers-") as staging:
        root = Path(staging)
        pipeline.save_pretrained(root / PIPELINE_DIR, safe_serialization=True)
        ModelPackage.write(root, _manifest(spec, pipeline))
        return hub.register_model(root)


def load_local_pipeline(source: Path):  # type: ignore[no-untyped-def]  # a diffusers pipeline
    """The text-to-image pipeline in ``source``, or ``InvalidInputError`` saying why it is not one."""
    if not source.is_dir():
        raise InvalidInputError(f"{source} is not a directory; give the folder a diffusers pipeline was saved to")
    if not (source / MODEL_INDEX).is_file():
        raise InvalidInputError(f"{source} is not a diffusers pipeline: it has no {MODEL_INDEX}")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        from diffusers import DiffusionPipeline
        from diffusers.utils import logging as diffusers_logging
    except ImportError:
        raise OarError("importing a pipeline needs diffusers: pip install 'oar-platform[diffusion]'") from None
    diffusers_logging.set_verbosity_error()  # its load-time advice is not the user's concern
    diffusers_logging.disable_progress_bar()
    try:
        pipeline = DiffusionPipeline.from_pretrained(source, use_safetensors=True, local_files_only=True)
    except Exception as exc:  # diffusers raises many types (OSError, ValueError, EnvironmentError...)
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        raise InvalidInputError(
            f"{source} does not load as a diffusers pipeline with safetensors weights: {first}"
        ) from None
    accepted = inspect.signature(pipeline.__call__).parameters
    missing = [p for p in ("prompt", "callback_on_step_end", "width", "height") if p not in accepted]
    if missing or getattr(pipeline, "tokenizer", None) is None:
        raise InvalidInputError(
            f"{source} holds a {type(pipeline).__name__}, not a text-to-image pipeline with a tokenizer "
            f"(its call lacks: {', '.join(missing) or 'nothing'})"
        )
    return pipeline


def _manifest(spec: PipelineImport, pipeline) -> Manifest:  # type: ignore[no-untyped-def]
    scale = int(getattr(pipeline, "vae_scale_factor", 8))
    native = int(pipeline.unet.config.sample_size) * scale if hasattr(pipeline, "unet") else 512
    multiple = math.lcm(8, scale)
    if spec.max_size < multiple or spec.max_steps < 1:
        raise InvalidInputError(f"--max-size must be at least {multiple} and --max-steps at least 1")
    trained = int(getattr(pipeline.scheduler.config, "num_train_timesteps", spec.max_steps + 1))
    if spec.max_steps >= trained:  # more inference steps than the scheduler has timesteps fail in its step()
        raise InvalidInputError(f"--max-steps must be under {trained}, the scheduler's training timesteps")
    side = min(native, spec.max_size // multiple * multiple)
    generation = Generation(
        pipeline_class=type(pipeline).__name__,
        default_steps=min(spec.default_steps, spec.max_steps),
        max_steps=spec.max_steps,
        default_width=side,
        default_height=side,
        max_width=spec.max_size,
        max_height=spec.max_size,
        size_multiple=multiple,
        max_prompt_tokens=int(pipeline.tokenizer.model_max_length),
        concurrency=spec.concurrency,
        max_queue=spec.max_queue,
    )
    inputs = [TensorSpec(name="prompt", datatype="BYTES", shape=[1])]
    outputs = [TensorSpec(name="image", datatype="BYTES", shape=[1])]
    return Manifest(
        name=spec.name,
        task="text-to-image",
        inputs=inputs,
        outputs=outputs,
        runtime=RuntimeSpec(
            engine="diffusers",
            model_file=PIPELINE_DIR,
            tokenizer_file=None,
            exporter="diffusers.save_pretrained",
            graph_inputs=inputs,
            graph_outputs=outputs,
        ),
        generation=generation,
        lineage=Lineage(oar_version=__version__),
    )
