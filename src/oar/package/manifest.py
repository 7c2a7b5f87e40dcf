"""The manifest schema: everything a server or a person needs to know about a package.

Field names for tensors follow the Open Inference Protocol's model metadata
(``name``, ``datatype``, ``shape`` with -1 for a variable dimension), so the
server answers metadata requests straight from the manifest.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, model_serializer

FORMAT_VERSION = 1


class TensorSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    datatype: str
    shape: list[int]


class Padding(BaseModel):
    """How the runtime pads token ids for a batch of texts, decided from evidence when the package was written.

    - ``longest``: pad each batch to its longest text and regroup large batches by length. Valid only for
      models whose outputs do not depend on padding (``invariant``: checked, same text alone and padded
      inside a batch of longer texts).
    - ``fixed``: every text padded or truncated to ``length``, the graph's fixed sequence length.
    - ``per-text``: the model is not padding-invariant: each text runs at its own length (texts of equal
      length share a call), exactly as the parity check ran it. Batch neighbours never change an answer.
    """

    model_config = ConfigDict(extra="forbid")

    strategy: Literal["longest", "fixed", "per-text"]
    length: int | None = None  # ``fixed``: the sequence length every input is padded/truncated to
    pad_id: int = 0
    invariant: bool | None = None  # None: not checked (fixed length: padding is part of the input)
    max_abs_diff: float | None = None  # the largest output change extra padding caused in the check
    samples: int = 0  # texts the invariance check ran


class CustomOpLibrary(BaseModel):
    """A native ONNX Runtime custom-op library shipped in the package for the graph's custom-domain nodes.

    It is machine code built for one onnxruntime version (``onnxruntime``) and one platform: the
    runtime refuses to load it under another (``oar.runtime.custom_ops``), never runs the graph without it.
    """

    model_config = ConfigDict(extra="forbid")

    domain: str  # the ONNX domain whose nodes it implements, e.g. "oar.dlrm"
    ops: list[str]  # the op types of that domain in the graph
    file: str  # relative path inside the package, e.g. "ops/oar.dlrm.so"
    onnxruntime: str  # the onnxruntime version it was built for
    platform: str  # e.g. "linux-x86_64"


class RuntimeSpec(BaseModel):
    """How to execute the package: which engine, which files, which graph inputs/outputs."""

    model_config = ConfigDict(extra="forbid")

    # torch-export: a .pt2 for torch users; diffusers: a text-to-image pipeline directory (``model_file``)
    engine: Literal["onnxruntime", "torch-export", "diffusers"] = "onnxruntime"
    model_file: str = "model.onnx"
    tokenizer_file: str | None = "tokenizer.json"
    opset: int | None = None
    exporter: str | None = None  # "dynamo" | "torchscript" | "torch.export" | "paddle2onnx"
    graph_inputs: list[TensorSpec]
    graph_outputs: list[TensorSpec]
    padding: Padding | None = None  # text models; None (older packages): ``longest``
    # Classifiers: "softmax" when the graph returns logits, "none" when it already returns probabilities.
    output_activation: Literal["softmax", "none"] = "softmax"
    # Libraries ONNX Runtime must register before it can load the graph (custom-domain nodes).
    custom_ops: list[CustomOpLibrary] = Field(default_factory=list)


class Parity(BaseModel):
    """How closely the exported graph reproduces the source model on real data."""

    reference: str = "torch"  # or "paddle" for imported models
    samples: int
    max_abs_diff: float
    argmax_agreement: float
    tolerance: float
    passed: bool
    # What the samples were, e.g. "64 test texts, served batching (mixed lengths)" or "26 batches: 20 random,
    # 6 edge (zeros, min/max), 2 user batches"; None in packages written before it was recorded.
    inputs: str | None = None


class Generation(BaseModel):
    """A text-to-image package's defaults and caps, fixed when it was imported.

    The caps bound what one request may cost (pixels x steps); a request over one is refused with a 400
    before it joins the queue. ``concurrency`` generations run at once (more share the same device and
    only slow each other); ``max_queue`` more may wait, and further requests are shed with a 503.
    """

    model_config = ConfigDict(extra="forbid")

    pipeline_class: str  # the diffusers class that loads ``runtime.model_file``, e.g. "StableDiffusionPipeline"
    default_steps: int = Field(20, ge=1)
    max_steps: int = Field(50, ge=1)
    default_guidance: float = 7.5
    max_guidance: float = 30.0
    default_width: int = Field(512, ge=8)
    default_height: int = Field(512, ge=8)
    max_width: int = Field(1024, ge=8)
    max_height: int = Field(1024, ge=8)
    size_multiple: int = Field(8, ge=1)  # width and height must be multiples of this
    max_prompt_tokens: int = Field(77, ge=1)  # the text encoder's context; a longer prompt is refused, not cut
    max_prompt_chars: int = Field(2000, ge=1)
    concurrency: int = Field(1, ge=1)
    max_queue: int = Field(16, ge=0)


class Lineage(BaseModel):
    dataset: dict[str, Any] | None = None  # name, version, digest
    run_id: str | None = None
    parent: str | None = None  # "name:version" of the package this one was derived from
    examples: dict[str, Any] | None = None  # few-shot: the drawn examples (split, shots, seed, ids)
    oar_version: str
    created_at: str = Field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    @model_serializer(mode="wrap")
    def _without_empty_examples(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """Packages that are not few-shot keep the manifest bytes they had before ``examples`` existed."""
        data = handler(self)
        if data.get("examples") is None:
            data.pop("examples", None)
        return data


class Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format_version: int = FORMAT_VERSION
    name: str
    version: int | None = None  # assigned by the hub at registration
    task: Literal["text-classification", "image-classification", "generic", "text-to-image"]
    labels: list[str] = Field(default_factory=list)
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    runtime: RuntimeSpec
    metrics: dict[str, float] = Field(default_factory=dict)
    parity: Parity | None = None
    quantization: dict[str, Any] | None = None  # method, settings, ops touched, gate results vs the parent
    # A variant of lineage.parent (e.g. "int8-static"), registered under its own name so that serving the
    # parent's name never picks it up: serving a variant is an explicit choice.
    variant: str | None = None
    generation: Generation | None = None  # text-to-image packages
    lineage: Lineage
    files: dict[str, str] = Field(default_factory=dict)  # relative path -> sha256 digest


def text_classifier_signature(num_labels: int) -> tuple[list[TensorSpec], list[TensorSpec]]:
    """The served signature of every text classifier: text in; label, score, probabilities out."""
    inputs = [TensorSpec(name="text", datatype="BYTES", shape=[-1])]
    outputs = [
        TensorSpec(name="label", datatype="BYTES", shape=[-1]),
        TensorSpec(name="score", datatype="FP32", shape=[-1]),
        TensorSpec(name="probabilities", datatype="FP32", shape=[-1, num_labels]),
    ]
    return inputs, outputs
