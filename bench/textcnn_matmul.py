"""The TextCNN's convolutions in ONNX Runtime: as MatMuls (the model's forward) vs as ``Conv1d`` (the baseline).

Both graphs carry the same weights and are exported by ``oar.export.onnx.export_onnx``; the baseline
is the forward the model had before its convolutions became MatMuls. Outputs are checked equal, then
the two sessions (one thread each) alternate on the same batches and the script prints ms per batch
and the ratio.

    taskset -c 0 python bench/textcnn_matmul.py            # quickstart sizes: batch 64, 19 tokens
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from oar.export.onnx import InputSpec, export_onnx
from oar.models import TextCNNClassifier
from oar.runtime.session import create_session


class Conv1dForward(nn.Module):
    """The same model run through ``nn.Conv1d`` on [batch, embed, seq]: the baseline."""

    def __init__(self, model: TextCNNClassifier) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        m, seq_len = self.model, input_ids.shape[1]
        x = m.embedding(input_ids).transpose(1, 2)
        mask = (input_ids != 0).unsqueeze(1).to(x.dtype)
        count = mask.sum(-1).clamp(min=1)
        pooled = []
        for conv in m.convs:
            h = torch.relu(conv(x))[..., :seq_len] * mask
            pooled += [h.amax(-1), h.sum(-1) / count]
        return m.head(torch.cat(pooled, dim=1))


def _ms_per_batch(session, ids: np.ndarray, runs: int) -> float:  # type: ignore[no-untyped-def]
    name = session.get_inputs()[0].name
    start = time.perf_counter()
    for _ in range(runs):
        session.run(None, {name: ids})
    return (time.perf_counter() - start) / runs * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--tokens", type=int, default=19)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    torch.manual_seed(0)
    model = TextCNNClassifier(8000, 2).eval()
    ids = torch.randint(1, 8000, (args.batch, args.tokens))
    ids[: args.batch // 2, args.tokens * 3 // 4 :] = 0  # half the batch padded, as mixed lengths are
    spec = [InputSpec([None, None], "int64", "input_ids")]
    with tempfile.TemporaryDirectory() as tmp:
        sessions = {}
        for label, module in (("Conv1d (baseline)", Conv1dForward(model)), ("MatMul (TextCNN)", model)):
            path, _ = export_onnx(module, Path(tmp) / f"{len(sessions)}.onnx", spec, ["logits"])
            sessions[label] = create_session(path, intra_op_threads=1)
        batch = ids.numpy()
        outputs = [s.run(None, {s.get_inputs()[0].name: batch})[0] for s in sessions.values()]
        np.testing.assert_allclose(outputs[0], outputs[1], atol=1e-5)
        times: dict[str, list[float]] = {label: [] for label in sessions}
        for _ in range(args.rounds):
            for label, session in sessions.items():
                times[label].append(_ms_per_batch(session, batch, 100))
    print(f"batch {args.batch} x {args.tokens} tokens, 1 ORT thread, median of {args.rounds} alternations")
    print("\n| graph | ms per batch |\n|---|---:|")
    medians = {label: statistics.median(values) for label, values in times.items()}
    for label, value in medians.items():
        print(f"| {label} | {value:.2f} |")
    baseline, ours = medians.values()
    print(f"\nMatMul graph: {baseline / ours:.2f}x faster than Conv1d")


if __name__ == "__main__":
    main()
