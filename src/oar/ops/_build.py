"""Compile an op's C++: the PyTorch CPU kernel (``torch.utils.cpp_extension.load_inline``) and the
ONNX Runtime custom-op library (the same kernel source behind oar's ORT adapter, no torch inside).

Builds are cached by the hash of everything that goes into them (sources, flags, torch or
onnxruntime version) under ``OAR_OPS_CACHE`` (default ``$OAR_HOME/ops-build``): a second process,
a test session or a serving machine with the library already built compiles nothing. A missing
compiler is a one-line ``OarError`` before anything is attempted.
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

from oar._core.errors import OarError
from oar._core.settings import oar_home

INCLUDE_DIR = Path(__file__).parent / "include"
_COMPILERS = ("c++", "g++", "clang++")
_FLAGS = ("-std=c++17", "-O3")
_BUILD_TIMEOUT_S = 600


@dataclass(frozen=True)
class CppSource:
    """One kernel's C++: ``files`` are compiled together; ``headers`` and ``include_dirs`` are hashed and found."""

    files: tuple[Path, ...]
    include_dirs: tuple[Path, ...] = ()
    headers: tuple[Path, ...] = field(default=())

    def digest(self, *extra: str) -> str:
        h = hashlib.sha256()
        for path in (*self.files, *self.headers):
            h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
        for part in extra:
            h.update(part.encode() + b"\0")
        return h.hexdigest()[:16]


def cache_dir() -> Path:
    """Where built kernels live (``OAR_OPS_CACHE``, else ``$OAR_HOME/ops-build``)."""
    return Path(os.environ.get("OAR_OPS_CACHE") or oar_home() / "ops-build").expanduser()


def find_compiler() -> str:
    """The C++ compiler to use: ``$CXX`` if set (it must exist), else the first of c++, g++, clang++ on PATH."""
    wanted = os.environ.get("CXX")
    candidates = (wanted,) if wanted else _COMPILERS
    for name in candidates:
        found = shutil.which(name)
        if found:
            return found
    tried = f"CXX={wanted}" if wanted else ", ".join(_COMPILERS)
    raise OarError(
        f"no C++ compiler found (tried {tried}): custom-op kernels are compiled on first use; install one "
        "(e.g. `apt-get install g++`) or set CXX to its path"
    )


def load_torch_kernel(name: str, source: CppSource, functions: list[str]) -> ModuleType:
    """The compiled PyTorch extension for ``source`` (built once, then loaded from the cache)."""
    import torch

    module_name = f"oar_op_{_slug(name)}_{source.digest(torch.__version__, *functions, *_FLAGS)}"
    build_dir = cache_dir() / module_name
    built = build_dir / f"{module_name}.so"
    if built.exists():
        return _import_extension(module_name, built)
    compiler = find_compiler()
    _ensure_ninja()
    from torch.utils import cpp_extension

    build_dir.mkdir(parents=True, exist_ok=True)
    code = "\n".join(f'#include "{path.name}"' for path in source.files)
    previous = os.environ.get("CXX")
    os.environ["CXX"] = compiler
    try:
        return cpp_extension.load_inline(
            name=module_name,
            cpp_sources=[code],
            functions=functions,
            extra_cflags=list(_FLAGS),
            extra_include_paths=[str(p) for p in (*{f.parent for f in source.files}, *source.include_dirs)],
            build_directory=str(build_dir),
            verbose=False,
        )
    except Exception as exc:  # the build raises RuntimeError/CalledProcessError with the compiler's output
        raise OarError(f"building the C++ kernel of {name} failed: {_last_lines(str(exc))}") from None
    finally:
        if previous is None:
            os.environ.pop("CXX", None)
        else:
            os.environ["CXX"] = previous


def build_ort_library(name: str, source: CppSource, onnxruntime_version: str) -> Path:
    """The ONNX Runtime custom-op shared library for ``source``, built for ``onnxruntime_version``."""
    version_define = f'-DOAR_ORT_VERSION="{onnxruntime_version}"'
    flags = (*_FLAGS, "-shared", "-fPIC", "-fvisibility=hidden", version_define)
    digest = source.digest(onnxruntime_version, *flags, *(p.read_text() for p in sorted(INCLUDE_DIR.iterdir())))
    target = cache_dir() / f"ort_{_slug(name)}_{digest}" / f"lib{_slug(name)}_ort.so"
    if target.exists():
        return target
    compiler = find_compiler()
    target.parent.mkdir(parents=True, exist_ok=True)
    includes = [f"-I{p}" for p in (INCLUDE_DIR, *{f.parent for f in source.files}, *source.include_dirs)]
    with tempfile.NamedTemporaryFile(dir=target.parent, suffix=".so", delete=False) as tmp:
        partial = Path(tmp.name)
    command = [compiler, *flags, *includes, *(str(f) for f in source.files), "-o", str(partial)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=_BUILD_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        partial.unlink(missing_ok=True)
        raise OarError(f"building the ONNX Runtime kernel of {name} took over {_BUILD_TIMEOUT_S} s") from None
    if done.returncode != 0:
        partial.unlink(missing_ok=True)
        raise OarError(f"building the ONNX Runtime kernel of {name} failed: {_last_lines(done.stderr)}")
    partial.replace(target)
    return target


def _ensure_ninja() -> None:
    """torch's extension builder runs ``ninja`` from PATH; the ``ninja`` wheel puts it beside the interpreter."""
    if shutil.which("ninja"):
        return
    beside = Path(sys.executable).parent
    if (beside / "ninja").exists():
        os.environ["PATH"] = f"{beside}{os.pathsep}{os.environ.get('PATH', '')}"
        return
    raise OarError("ninja not found: C++ kernels are built with it; pip install 'oar-platform[train]' (or ninja)")


def _import_extension(module_name: str, path: Path) -> ModuleType:
    loader = importlib.machinery.ExtensionFileLoader(module_name, str(path))
    spec = importlib.util.spec_from_file_location(module_name, path, loader=loader)
    if spec is None:
        raise OarError(f"cannot load the built kernel {path}")
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name)


def _last_lines(text: str, count: int = 6) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return " | ".join(lines[-count:])[:1500] or "no output"
