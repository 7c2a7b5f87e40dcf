"""The distribution that ships the ``oar`` package: its PyPI name, install hints, its installed metadata.

The import package and the command are ``oar``, but the distribution on PyPI is ``oar-platform``
(``oar`` there is an unrelated project, and ``oar-cli`` / ``oar-lib`` belong to the OAR batch
scheduler): an install hint naming ``oar`` would install somebody else's code. Every hint is
built here so that the name is written once.

The version has one source, ``oar.__version__`` (pyproject.toml reads it at build time), so the
running code never asks the installed metadata for it: a source tree run through ``PYTHONPATH``
beside an older install, or with no install at all, still reports its own version.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
import tempfile
import tomllib
from importlib.metadata import Distribution, PackageNotFoundError, distribution, packages_distributions
from pathlib import Path

from oar._core.errors import OarError

NAME = "oar-platform"
IMPORT_NAME = "oar"


def install_hint(extra: str | None = None) -> str:
    """``pip install 'oar-platform[train]'``: the command that installs ``extra`` (or the core)."""
    return f"pip install '{NAME}[{extra}]'" if extra else f"pip install {NAME}"


def source_root() -> Path | None:
    """The source checkout the running ``oar`` package was imported from, or None for an installed copy.

    A checkout is recognised by its pyproject.toml naming this distribution, two levels above the
    package (``ROOT/src/oar``).
    """
    import oar

    root = Path(oar.__file__).resolve().parents[2]
    pyproject = root / "pyproject.toml"
    if not pyproject.is_file():
        return None
    try:
        name = tomllib.loads(pyproject.read_text(encoding="utf-8")).get("project", {}).get("name")
    except tomllib.TOMLDecodeError:
        return None
    return root if name == NAME else None


def installed() -> Distribution | None:
    """The installed distribution that provides ``oar``: by its name, else by the files it installed.

    The second lookup finds an install made under an earlier name (``oar``) of the same project.
    """
    try:
        return distribution(NAME)
    except PackageNotFoundError:
        pass
    for name in packages_distributions().get(IMPORT_NAME, []):
        try:
            return distribution(name)
        except PackageNotFoundError:
            continue
    return None


def core_requirements() -> list[str]:
    """Names of the core dependencies (no extras): from the source tree when running from one, else the install."""
    root = source_root()
    if root is not None:
        project = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["project"]
        lines = project.get("dependencies", [])
    else:
        dist = installed()
        lines = [r for r in (dist.requires or []) if "extra ==" not in r] if dist else []
    return [line.split("==")[0].split(";")[0].split("[")[0].strip() for line in lines]


def build_wheel(dest: Path) -> Path:
    """Build this source tree's wheel into ``dest`` and return it (no dependencies: the index has those).

    The tree is copied first, so the build's scratch (``build/``, ``*.egg-info``) never lands in the
    checkout. The build uses this interpreter's setuptools when it has one (offline machines, CI),
    else pip's isolated build environment.
    """
    root = source_root()
    if root is None:
        raise OarError(
            "oar is not running from its source tree, so it cannot build its own wheel; build one "
            "(python -m build --wheel) and pass it with --wheel"
        )
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="oar-wheel-") as tmp:
        tree, out = Path(tmp) / "tree", Path(tmp) / "out"
        skip = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build")
        shutil.copytree(root / "src", tree / "src", ignore=skip)
        for name in ("pyproject.toml", "README.md"):
            shutil.copy2(root / name, tree / name)
        isolation = [] if importlib.util.find_spec("setuptools") is None else ["--no-build-isolation"]
        command = [sys.executable, "-m", "pip", "wheel", "--no-deps", *isolation, "--wheel-dir", str(out), str(tree)]
        result = subprocess.run(command, capture_output=True, text=True, timeout=600)
        wheels = sorted(out.glob(f"{NAME.replace('-', '_')}-*.whl"))
        if result.returncode != 0 or len(wheels) != 1:
            tail = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no wheel written"]
            raise OarError(f"building the {NAME} wheel failed: {tail[0]}")
        return Path(shutil.copy2(wheels[0], dest / wheels[0].name))
