"""A fresh virtualenv holding only named distributions (and their dependencies), never torch.

``pip install --no-deps`` of each distribution would put exactly these files in the new
venv; linking the files recorded in each installed distribution's RECORD does the same in
well under a second, offline, from the versions this test run already uses.
"""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

from packaging.requirements import Requirement


def dependency_closure(names: list[str]) -> list[str]:
    """The named distributions plus everything they require (no extras), each once."""
    seen: dict[str, None] = {}
    pending = list(names)
    while pending:
        name = pending.pop()
        key = name.lower().replace("_", "-")
        if key in seen:
            continue
        try:
            dist = distribution(name)
        except PackageNotFoundError:
            continue  # an optional platform dependency that is not installed here
        seen[key] = None
        for line in dist.requires or []:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                pending.append(requirement.name)
    return list(seen)


def create_lean_venv(root: Path, distributions: list[str], extra_packages: list[Path] = ()) -> Path:
    """Create the venv at ``root`` and return its python; ``extra_packages`` are linked as they are."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    site = root / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    for name in dependency_closure(distributions):
        dist = distribution(name)
        tops = {Path(str(f)).parts[0] for f in dist.files or [] if not str(f).startswith("..")}
        for top in tops:
            source = Path(str(dist.locate_file(top)))
            if source.exists() and not (site / top).exists() and not top.endswith(".pth"):
                (site / top).symlink_to(source)
    for package in extra_packages:
        (site / package.name).symlink_to(package)
    if (site / "torch").exists():
        raise AssertionError("torch leaked into the lean venv")
    return root / "bin" / "python"
