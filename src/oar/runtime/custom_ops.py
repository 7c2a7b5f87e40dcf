"""The custom-op libraries a package lists: checked before ONNX Runtime sees them.

A library is machine code built for one onnxruntime version and platform. Loading one built for
another could crash the server or compute garbage, so a mismatch is refused with a message saying
what to do; the library itself refuses too (it compares the version it was built for with the
running one), which covers a manifest edited by hand.
"""

from __future__ import annotations

import platform
import sys
from pathlib import Path

import onnxruntime

from oar._core.errors import OarError
from oar.package import ModelPackage


def current_platform() -> str:
    """``linux-x86_64`` style: what a native library must have been built for."""
    return f"{sys.platform}-{platform.machine()}"


def op_libraries(package: ModelPackage) -> list[Path]:
    """The package's custom-op libraries, each checked to exist and to match this onnxruntime and platform."""
    paths = []
    for lib in package.manifest.runtime.custom_ops:
        path = package.file(lib.file)
        if not path.is_file():
            raise OarError(
                f"package {package.model_id} needs the custom-op library {lib.file} (ONNX domain '{lib.domain}') "
                "but it is missing; re-export the package with its ops (oar export builds them)"
            )
        if lib.onnxruntime != onnxruntime.__version__ or lib.platform != current_platform():
            raise OarError(
                f"package {package.model_id}: its custom-op library {lib.file} was built for onnxruntime "
                f"{lib.onnxruntime} on {lib.platform}, but this machine runs onnxruntime {onnxruntime.__version__} "
                f"on {current_platform()}; re-export the package here or install onnxruntime=={lib.onnxruntime}"
            )
        paths.append(path)
    return paths
