"""Text-to-image runtime: a diffusers pipeline from a package, one prompt in, one PNG out.

Unlike the ONNX runtimes this one imports torch and diffusers (the ``[diffusion]`` extra), and only
when a text-to-image package is loaded. A request is checked against the package's caps first
(``parse``), so a prompt or size over them is a 400 before anything runs; ``generate`` then runs the
denoising loop and asks ``stop`` between steps, so a request whose client went away, or whose time
ran out, ends at the next step instead of holding the device until the image is done.

Each concurrent generation gets its own view of the pipeline (``from_pipe``: the same weights, its own
scheduler), because a scheduler keeps per-run state that two threads must not share.
"""

from __future__ import annotations

import io
import os
import queue
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from oar._core.errors import InvalidInputError, OarError
from oar.package import Generation, ModelPackage

StopCheck = Callable[[], str | None]  # a reason to stop now, or None to go on


class GenerationStopped(OarError):
    """The denoising loop was stopped between steps (client gone, or past its deadline)."""

    http_status = 503


@dataclass(frozen=True, slots=True)
class GenerationRequest:
    prompt: str
    steps: int
    guidance: float
    seed: int
    width: int
    height: int


class TextToImageRuntime:
    """``runtime.generate(runtime.parse({"prompt": ...}, {"steps": 20}), stop=lambda: None)`` -> PNG bytes."""

    def __init__(self, package: ModelPackage, intra_op_threads: int = 0) -> None:
        manifest = package.manifest
        if manifest.generation is None:
            raise OarError(f"package {package.model_id} is text-to-image but its manifest has no generation caps")
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the weights are in the package: never reach a hub
        try:
            import torch
            from diffusers import DiffusionPipeline
            from diffusers.utils import logging as diffusers_logging
        except ImportError:
            raise OarError(
                "serving a text-to-image package needs torch and diffusers: pip install 'oar-platform[diffusion]'"
            ) from None
        diffusers_logging.set_verbosity_error()  # load-time advice and progress bars do not belong in a server log
        diffusers_logging.disable_progress_bar()
        if intra_op_threads > 0:
            torch.set_num_threads(intra_op_threads)
        self.package = package
        self.caps: Generation = manifest.generation
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        dtype = torch.float16 if self.device == "cuda" else torch.float32
        self._torch = torch
        self._pipeline = DiffusionPipeline.from_pretrained(
            package.file(manifest.runtime.model_file), use_safetensors=True, local_files_only=True, dtype=dtype
        ).to(self.device)
        self._pipeline.set_progress_bar_config(disable=True)
        self._tokenizer = self._pipeline.tokenizer
        self._views: queue.SimpleQueue[Any] = queue.SimpleQueue()

    # --- checks (event loop: cheap) -------------------------------------------------------------------
    def parse(self, inputs: dict[str, np.ndarray], parameters: dict[str, Any]) -> GenerationRequest:
        """One request's prompt and settings, within the caps, or ``InvalidInputError`` saying which cap."""
        caps = self.caps
        prompt = _prompt(inputs)
        if len(prompt) > caps.max_prompt_chars:
            raise InvalidInputError(
                f"prompt is {len(prompt)} characters; this model takes at most {caps.max_prompt_chars}"
            )
        tokens = len(self._tokenizer(prompt).input_ids)
        if tokens > caps.max_prompt_tokens:
            raise InvalidInputError(
                f"prompt is {tokens} tokens; this model reads at most {caps.max_prompt_tokens}: shorten it"
            )
        steps = _int(parameters, "steps", caps.default_steps, 1, caps.max_steps)
        width = _int(parameters, "width", caps.default_width, caps.size_multiple, caps.max_width)
        height = _int(parameters, "height", caps.default_height, caps.size_multiple, caps.max_height)
        for side, value in (("width", width), ("height", height)):
            if value % caps.size_multiple:
                raise InvalidInputError(f"parameter '{side}' must be a multiple of {caps.size_multiple}, got {value}")
        guidance = parameters.get("guidance", caps.default_guidance)
        if (
            isinstance(guidance, bool)
            or not isinstance(guidance, int | float)
            or not 0 <= guidance <= caps.max_guidance
        ):
            raise InvalidInputError(f"parameter 'guidance' must be a number from 0 to {caps.max_guidance:g}")
        seed = _int(parameters, "seed", secrets.randbits(31), 0, 2**63 - 1)
        return GenerationRequest(prompt, steps, float(guidance), seed, width, height)

    # --- generation (a worker thread) -----------------------------------------------------------------
    def generate(self, request: GenerationRequest, stop: StopCheck) -> bytes:
        """The PNG of ``request``'s image; raises ``GenerationStopped`` when ``stop`` says so between steps."""
        reason = stop()
        if reason:
            raise GenerationStopped(reason)

        def check(pipe: Any, step: int, timestep: Any, tensors: dict[str, Any]) -> dict[str, Any]:
            reason = stop()
            if reason:
                raise GenerationStopped(reason)
            return tensors

        view = self._view()
        try:
            with self._torch.inference_mode():
                result = view(
                    request.prompt,
                    num_inference_steps=request.steps,
                    guidance_scale=request.guidance,
                    width=request.width,
                    height=request.height,
                    generator=self._torch.Generator(self.device).manual_seed(request.seed),
                    callback_on_step_end=check,
                )
        finally:
            self._views.put(view)
        return png_bytes(result.images[0])

    def infer(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The package's defaults for everything but the prompt (callers that send no parameters)."""
        png = self.generate(self.parse(inputs, {}), lambda: None)
        return {"image": np.array([png], dtype=object)}

    def _view(self) -> Any:
        """A pipeline of its own for this thread: shared weights, a fresh scheduler."""
        try:
            return self._views.get_nowait()
        except queue.Empty:
            base = self._pipeline
            scheduler = type(base.scheduler).from_config(base.scheduler.config)
            view = type(base).from_pipe(base, scheduler=scheduler)
            view.set_progress_bar_config(disable=True)
            return view


def png_bytes(image: Any) -> bytes:
    """A PIL image as PNG, with no metadata chunks: the same pixels always give the same bytes."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _prompt(inputs: dict[str, np.ndarray]) -> str:
    if inputs.keys() != {"prompt"}:
        raise InvalidInputError(f"expected one input named 'prompt', got: {', '.join(inputs) or 'none'}")
    values = inputs["prompt"].ravel()
    if values.size != 1:
        raise InvalidInputError(f"input 'prompt' must hold one prompt, got {values.size}; send one request each")
    value = values[0]
    try:
        prompt = value.decode("utf-8") if isinstance(value, bytes) else str(value)
    except UnicodeDecodeError:
        raise InvalidInputError("input 'prompt' is not UTF-8 text") from None
    if not prompt.strip():
        raise InvalidInputError("input 'prompt' is empty; describe the image to generate")
    return prompt


def _int(parameters: dict[str, Any], name: str, default: int, low: int, high: int) -> int:
    value = parameters.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidInputError(f"parameter '{name}' must be an integer from {low} to {high}, got {value!r}")
    return value
