"""A small valid model package built in code (its model file is bytes, never run): enough for the store."""

from __future__ import annotations

import os
from pathlib import Path

from oar.package import ModelPackage
from oar.package.manifest import Lineage, Manifest, RuntimeSpec, TensorSpec


def small_package(where: Path, size: int = 1000, seed: int = 0) -> Path:
    where.mkdir(parents=True)
    (where / "model.onnx").write_bytes(
        os.urandom(size) if seed is None else bytes((i * 7 + seed) % 251 for i in range(size))
    )
    (where / "extra").mkdir()
    (where / "extra" / "labels.txt").write_text("neg\npos\n")
    x, y = TensorSpec(name="x", datatype="FP32", shape=[-1, 4]), TensorSpec(name="y", datatype="FP32", shape=[-1, 3])
    manifest = Manifest(
        name="pkg",
        task="generic",
        inputs=[x],
        outputs=[y],
        runtime=RuntimeSpec(tokenizer_file=None, graph_inputs=[x], graph_outputs=[y]),
        lineage=Lineage(oar_version="test"),
    )
    ModelPackage.write(where, manifest)
    return where
