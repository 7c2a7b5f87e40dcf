"""What a generic export is parity-checked on: a stated sample with edge values, plus the user's own data.

Four random batches (what ``oar.jit.save`` used to check) say little about a model that breaks at the
edges of its input domain. The sample here is fixed and stated in the manifest:

- ``RANDOM_BATCHES`` random batches, batch sizes cycling through ``BATCH_SIZES`` and every dynamic
  dimension drawn between its trace size and 8 more (so no size is the one the graph was traced with);
- ``EDGE_BATCHES``: all minimum values (all-padding rows for ids starting at 0), all maximum values, a
  batch of one, zeros, rows mixing minimum, maximum and random values, and the longest dynamic sizes;
- every batch the user passes (``sample_inputs``), first.

Integer inputs take values in ``InputSpec.value_range``, else ``0..num_embeddings-1`` of the model's
smallest ``nn.Embedding`` (ids), else 0..1; float inputs are standard normal, or uniform in their range.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import torch
from torch import nn

from oar._core.errors import OarError
from oar.export.onnx import InputSpec

RANDOM_BATCHES = 20
BATCH_SIZES = (1, 2, 3, 5, 8, 13, 16, 32)
EDGE_BATCHES = 6
_EXTRA = 8  # dynamic dimensions vary from the trace size up to this much more

Batch = dict[str, torch.Tensor]


def as_batch(specs: Sequence[InputSpec], sample: torch.Tensor | Sequence[torch.Tensor] | Mapping) -> Batch:
    """A user sample (one tensor, a tuple in input order, or a dict by name) as a dict by input name."""
    if isinstance(sample, torch.Tensor):
        sample = (sample,)
    if isinstance(sample, Mapping):
        missing = [s.name for s in specs if s.name not in sample]
        if missing:
            raise OarError(f"sample input lacks {', '.join(missing)}; it needs one tensor per input_spec entry")
        return {s.name: torch.as_tensor(sample[s.name]) for s in specs}
    if len(sample) != len(specs):
        raise OarError(f"a sample input has {len(sample)} tensors but input_spec names {len(specs)}")
    return {s.name: torch.as_tensor(t) for s, t in zip(specs, sample, strict=True)}


def parity_batches(
    specs: Sequence[InputSpec], model: nn.Module, user: Iterable | None = None, seed: int = 0
) -> tuple[list[Batch], str]:
    """The batches to check, and a one-line statement of what they are (for ``manifest.parity.inputs``)."""
    generator = torch.Generator().manual_seed(seed)
    ranges = {s.name: _range(s, model) for s in specs}
    own = [as_batch(specs, sample) for sample in (user or [])]
    random = [_random_batch(specs, ranges, BATCH_SIZES[i % len(BATCH_SIZES)], generator) for i in range(RANDOM_BATCHES)]
    edges = _edge_batches(specs, ranges, generator)
    described = (
        f"{len(own) + len(random) + len(edges)} batches: {len(own)} given, {len(random)} random "
        f"(batch sizes {min(BATCH_SIZES)}-{max(BATCH_SIZES)}, dynamic dims trace size..+{_EXTRA}), "
        f"{len(edges)} edge (min, max, zeros, batch of one, mixed rows, longest)"
    )
    return own + random + edges, described


def _range(spec: InputSpec, model: nn.Module) -> tuple[float, float] | None:
    if spec.value_range is not None:
        return spec.value_range
    if not spec.dtype.startswith("int"):
        return None
    tables = [m.num_embeddings for m in model.modules() if isinstance(m, nn.Embedding | nn.EmbeddingBag)]
    return (0, min(tables) - 1) if tables else (0, 1)


def _sizes(spec: InputSpec, batch: int, generator: torch.Generator, longest: bool = False) -> list[int]:
    trace = spec.example().shape
    sizes = []
    for i, dim in enumerate(spec.shape):
        if dim is not None:
            sizes.append(dim)
        elif i == 0:
            sizes.append(batch)
        else:
            extra = _EXTRA if longest else int(torch.randint(0, _EXTRA + 1, (1,), generator=generator))
            sizes.append(trace[i] + extra)
    return sizes


def _values(spec: InputSpec, sizes: list[int], bounds: tuple[float, float] | None, generator) -> torch.Tensor:  # type: ignore[no-untyped-def]
    dtype = spec.example().dtype
    if spec.dtype.startswith("int"):
        assert bounds is not None
        low, high = int(bounds[0]), int(bounds[1])
        return torch.randint(low, high + 1, sizes, generator=generator, dtype=dtype)
    if bounds is None:
        return torch.randn(sizes, generator=generator).to(dtype)
    return (torch.rand(sizes, generator=generator) * (bounds[1] - bounds[0]) + bounds[0]).to(dtype)


def _random_batch(specs: Sequence[InputSpec], ranges: dict, batch: int, generator: torch.Generator) -> Batch:
    batch_sizes = {s.name: _sizes(s, batch, generator) for s in specs}
    _share_dynamic_sizes(specs, batch_sizes)
    return {s.name: _values(s, batch_sizes[s.name], ranges[s.name], generator) for s in specs}


def _share_dynamic_sizes(specs: Sequence[InputSpec], sizes: dict[str, list[int]]) -> None:
    """Inputs of equal rank with dynamic dims at the same places (ids + mask) get the same sizes."""
    first = {}
    for spec in specs:
        key = (len(spec.shape), tuple(d is None for d in spec.shape))
        if key in first:
            sizes[spec.name] = list(sizes[first[key]])
        else:
            first[key] = spec.name


def _edge_batches(specs: Sequence[InputSpec], ranges: dict, generator: torch.Generator) -> list[Batch]:
    def filled(batch: int, pick: str, longest: bool = False) -> Batch:
        sizes = {s.name: _sizes(s, batch, generator, longest) for s in specs}
        _share_dynamic_sizes(specs, sizes)
        out = {}
        for spec in specs:
            bounds = ranges[spec.name] or (-1.0, 1.0)
            tensor = _values(spec, sizes[spec.name], ranges[spec.name], generator)
            if pick == "min":
                tensor.fill_(bounds[0])
            elif pick == "max":
                tensor.fill_(bounds[1])
            elif pick == "zeros":
                tensor.zero_()
            elif pick == "mixed" and len(tensor) >= 3:
                tensor[0].fill_(bounds[0])
                tensor[1].fill_(bounds[1])
            out[spec.name] = tensor
        return out

    return [
        filled(4, "min"),
        filled(4, "max"),
        filled(1, "random"),
        filled(3, "zeros"),
        filled(5, "mixed"),
        filled(8, "random", longest=True),
    ][:EDGE_BATCHES]
