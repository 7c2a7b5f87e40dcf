"""Custom-domain nodes in an exported graph -> the ONNX Runtime libraries that run them, in the package.

Each custom domain must belong to an op defined with ``oar.ops`` (``register_onnx``), whose
kernel must agree with its reference on the op's samples (the export's parity check compares the
graph with the PyTorch model, which runs the same kernel, so it could not see a kernel that is wrong
in both); its C++ kernel is built for the installed onnxruntime and copied to ``ops/<domain>.so`` inside the
package, and the manifest lists it so ``oar.runtime`` registers it before loading the graph.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import onnx
import onnxruntime

from oar._core.errors import OarError
from oar.package import CustomOpLibrary
from oar.runtime.custom_ops import current_platform

STANDARD_DOMAINS = frozenset({"", "ai.onnx", "ai.onnx.ml", "ai.onnx.preview.training", "com.microsoft"})


def custom_domains(onnx_path: Path) -> dict[str, list[str]]:
    """Non-standard domain -> the op types of it used by the graph."""
    model = onnx.load(str(onnx_path), load_external_data=False)
    found: dict[str, set[str]] = {}
    for node in model.graph.node:
        if node.domain not in STANDARD_DOMAINS:
            found.setdefault(node.domain, set()).add(node.op_type)
    return {domain: sorted(ops) for domain, ops in sorted(found.items())}


def package_op_libraries(onnx_path: Path, staging: Path) -> list[CustomOpLibrary]:
    """Build and copy the library of every custom domain in the graph; the manifest entries for them."""
    from oar.ops import op_for_domain
    from oar.ops._check import check_forward

    libraries = []
    for domain, ops in custom_domains(onnx_path).items():
        op = op_for_domain(domain)
        if op is None:
            raise OarError(
                f"the exported graph has nodes of ONNX domain '{domain}' ({', '.join(ops)}) but no oar.ops op "
                "registers that domain; define the op with oar.ops and register_onnx, and import it before export"
            )
        agreed = check_forward(op)
        if not agreed.passed:
            raise OarError(
                f"{op.name}'s kernel disagrees with its reference, so the model is not exported: {agreed.detail}"
            )
        rel = f"ops/{domain}.so"
        (staging / "ops").mkdir(exist_ok=True)
        shutil.copyfile(op.ort_library(), staging / rel)
        libraries.append(
            CustomOpLibrary(
                domain=domain, ops=ops, file=rel, onnxruntime=onnxruntime.__version__, platform=current_platform()
            )
        )
    return libraries
