"""Write an edge pack: model, tokenizer (text), manifest, ``classify.py`` and ``requirements.txt``.

The runner is oar's own ``runner.py`` copied verbatim; the requirements pin the versions of
onnxruntime, numpy and (text packs) tokenizers this oar was installed with, which are the ones the
package was tested against. Image classifiers (an INT8 digit model, say) take ``.npy`` arrays.
Source weights (``source/``) stay behind: an edge device runs ONNX only.
"""

from __future__ import annotations

import shutil
import tarfile
from importlib.metadata import version
from pathlib import Path

from oar._core.errors import OarError
from oar.package import MANIFEST_FILE, ModelPackage

RUNNER_FILE = "classify.py"
EDGE_REQUIREMENTS = ("onnxruntime", "tokenizers", "numpy")
_TASKS = ("text-classification", "image-classification")
_RUNNER_SOURCE = Path(__file__).with_name("runner.py")


def pack_edge(package: ModelPackage, out: Path, archive: bool = False) -> Path:
    """Write the pack to the new directory ``out`` (and ``out.tar.gz`` when ``archive``); return it."""
    manifest = package.manifest
    if manifest.task not in _TASKS or manifest.runtime.engine != "onnxruntime":
        raise OarError(f"an edge pack runs ONNX text or image classifiers; {package.model_id} is not one")
    if manifest.runtime.custom_ops:
        domains = ", ".join(lib.domain for lib in manifest.runtime.custom_ops)
        raise OarError(f"{package.model_id} needs custom-op libraries ({domains}), which an edge pack cannot carry")
    if out.exists():
        raise OarError(f"{out} already exists; choose a new directory for the pack")
    text = manifest.task == "text-classification"
    files = [manifest.runtime.model_file, *([manifest.runtime.tokenizer_file or "tokenizer.json"] if text else [])]
    requirements = [name for name in EDGE_REQUIREMENTS if text or name != "tokenizers"]
    staging = out.with_name(f".{out.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        for rel in files:
            shutil.copy2(package.file(rel), staging / rel)
        kept = manifest.model_copy(update={"files": {rel: manifest.files[rel] for rel in files}})
        (staging / MANIFEST_FILE).write_text(kept.model_dump_json(indent=2) + "\n", encoding="utf-8")
        shutil.copyfile(_RUNNER_SOURCE, staging / RUNNER_FILE)
        pins = "".join(f"{name}=={version(name)}\n" for name in requirements)
        (staging / "requirements.txt").write_text(pins, encoding="utf-8")
        staging.rename(out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if archive:
        with tarfile.open(out.with_name(out.name + ".tar.gz"), "w:gz") as tar:
            tar.add(out, arcname=out.name)
    return out
