"""Datasets: built-in offline corpora, their datacards and deterministic splits."""

from oar.data.builtin import BUILTIN_DATASETS, load_builtin
from oar.data.dataset import DataCard, Dataset, Split

__all__ = ["BUILTIN_DATASETS", "DataCard", "Dataset", "Split", "load_builtin"]
