"""The Triton kernel of ``oar_dlrm::bag_interact`` vs the same computation from generic torch ops, on a GPU.

Needs a CUDA GPU and ``pip install triton``. Checks the kernel against the reference first (float32,
rtol/atol 1e-5), then times with ``triton.testing.do_bench`` at several batch sizes, with the
recommender's shapes (26 Criteo-like features, bags of 4, dim 16):

- ``generic``: embedding + masked mean + bmm + lower triangle (``pool_and_interact``), eager;
- ``generic compiled``: the same through ``torch.compile`` (inductor generates its own Triton);
- ``fused``: the op's Triton kernel, dispatched through ``torch.ops.oar_dlrm.bag_interact``.

    python bench/custom_op_gpu.py [--batches 128,2048,16384]
"""

from __future__ import annotations

import argparse

import torch
import triton.testing

from oar.data.synthetic_ctr import criteo_like
from oar.ops.dlrm import bag_interact, pool_and_interact


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", default="128,2048,16384")
    parser.add_argument("--dim", type=int, default=16)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("no CUDA device: this benchmark needs a GPU")
    batches = [int(b) for b in args.batches.split(",")]
    data = criteo_like(max(batches), seed=0)
    cards = torch.tensor(data.cardinalities)
    offsets = torch.cat([torch.zeros(1, dtype=torch.int64), cards.cumsum(0)[:-1]]).cuda()
    weight = torch.randn(int(cards.sum()), args.dim, device="cuda")
    compiled = torch.compile(pool_and_interact)
    print(f"device: {torch.cuda.get_device_name()}; features 26, bag 4, dim {args.dim}")
    print(f"{'batch':>7}{'generic ms':>12}{'compiled ms':>13}{'fused ms':>10}{'vs generic':>12}{'vs compiled':>13}")
    for batch in batches:
        ids = torch.from_numpy(data.ids[:batch]).cuda()
        dense = torch.randn(batch, args.dim, device="cuda")
        want = bag_interact.reference(ids, offsets, weight, dense)
        got = bag_interact(ids, offsets, weight, dense)
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
        generic = triton.testing.do_bench(lambda: pool_and_interact(ids, offsets, weight, dense))  # noqa: B023
        generic_compiled = triton.testing.do_bench(lambda: compiled(ids, offsets, weight, dense))  # noqa: B023
        fused = triton.testing.do_bench(lambda: bag_interact(ids, offsets, weight, dense))  # noqa: B023
        print(
            f"{batch:>7}{generic:>12.4f}{generic_compiled:>13.4f}{fused:>10.4f}"
            f"{generic / fused:>11.2f}x{generic_compiled / fused:>12.2f}x"
        )


if __name__ == "__main__":
    main()
