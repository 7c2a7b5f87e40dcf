"""``oar ops check NAME``: evidence that an op's kernels, fake, autograd and compile path agree.

Checks, on the op's own random samples (``register_samples``) in float32 and float64:

- ``build``: the C++ kernel compiles (or is in the build cache);
- ``opcheck``: ``torch.library.opcheck`` (schema, fake tensor, autograd registration, AOT dispatch);
- ``forward``: the dispatched kernel equals the reference within the stated tolerance, else the
  first mismatching element is named;
- ``gradcheck``: the autograd formula against finite differences, in float64;
- ``graph breaks``: ``torch._dynamo.explain`` over a call of the op finds one graph and no break;
- ``compiled step`` (``timing=True``): a forward+backward step compiled with inductor vs eager.
"""

from __future__ import annotations

import statistics
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from oar._core.errors import OarError
from oar.ops._definition import CustomOp, get_op

# (rtol, atol) of the forward comparison, per dtype.
TOLERANCES: dict[torch.dtype, tuple[float, float]] = {
    torch.float32: (1e-5, 1e-5),
    torch.float64: (1e-10, 1e-10),
}


@dataclass
class CheckResult:
    name: str
    passed: bool
    detail: str


@dataclass
class CheckReport:
    op: str
    results: list[CheckResult] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)

    def failed(self) -> list[CheckResult]:
        return [r for r in self.results if not r.passed]

    def lines(self) -> list[str]:
        width = max((len(r.name) for r in self.results), default=0)
        rows = [f"{'PASS' if r.passed else 'FAIL'}  {r.name:<{width}}  {r.detail}" for r in self.results]
        verdict = "all checks passed" if self.passed else f"{len(self.failed())} check(s) failed"
        return [f"checks of {self.op}", *rows, verdict]


def check(op: CustomOp | str, *, timing: bool = False, seed: int = 0) -> CheckReport:
    """Run every check of ``op`` and return the report (a failure is a row, never an exception)."""
    op = get_op(op) if isinstance(op, str) else op
    if op.samples is None:
        raise OarError(f"{op.name} has no sample inputs to check with; define them with register_samples")
    report = CheckReport(op.name)
    report.results.append(_check_build(op))
    samples = {dtype: op.samples(dtype, torch.Generator().manual_seed(seed)) for dtype in TOLERANCES}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report.results.append(_guarded("opcheck", lambda: _check_opcheck(op, samples)))
        report.results.append(_guarded("forward", lambda: _check_forward(op, samples)))
        report.results.append(_guarded("gradcheck float64", lambda: _check_gradcheck(op, samples[torch.float64])))
        report.results.append(_guarded("graph breaks", lambda: _check_graph_breaks(op, samples[torch.float32][0])))
        if timing:
            report.results.append(_guarded("compiled step", lambda: _check_compiled_step(op, samples[torch.float32])))
    return report


def check_forward(op: CustomOp, seed: int = 0) -> CheckResult:
    """Only the ``forward`` check (kernel == reference on the op's samples): what export gates on."""
    if op.samples is None:
        return CheckResult("forward", True, "no samples registered: not checked")
    samples = {dtype: op.samples(dtype, torch.Generator().manual_seed(seed)) for dtype in TOLERANCES}
    return _guarded("forward", lambda: _check_forward(op, samples))


def _guarded(name: str, run: Callable[[], CheckResult]) -> CheckResult:
    try:
        return run()
    except Exception as exc:  # a check that crashes is a failed check, reported with its first line
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return CheckResult(name, False, f"{type(exc).__name__}: {first[:400]}")


def _check_build(op: CustomOp) -> CheckResult:
    kernels = ", ".join(f"{device}={kind}" for device, kind in op.kernels.items()) or "none (reference only)"
    if op.kernels.get("cpu") != "cpp":
        return CheckResult("build", True, f"kernels: {kernels}; no C++ kernel to build")
    start = time.perf_counter()
    try:
        op.build()
    except OarError as exc:
        return CheckResult("build", False, str(exc))
    return CheckResult("build", True, f"kernels: {kernels}; C++ kernel ready in {time.perf_counter() - start:.1f} s")


def _check_opcheck(op: CustomOp, samples: dict[torch.dtype, list[tuple[Any, ...]]]) -> CheckResult:
    count = 0
    for dtype, cases in samples.items():
        for args in cases:
            try:
                torch.library.opcheck(op.overload, args)
            except Exception as exc:
                shapes = _describe(args)
                first = str(exc).strip().splitlines()[0]
                return CheckResult("opcheck", False, f"{dtype} {shapes}: {first[:400]}")
            count += 1
    return CheckResult("opcheck", True, f"{count} samples ({', '.join(str(d) for d in samples)}): schema, fake, "
                       "autograd registration, AOT dispatch")  # fmt: skip


def _check_forward(op: CustomOp, samples: dict[torch.dtype, list[tuple[Any, ...]]]) -> CheckResult:
    worst = 0.0
    for dtype, cases in samples.items():
        rtol, atol = TOLERANCES[dtype]
        for args in cases:
            with torch.no_grad():
                got = op(*args)
                want = op.reference(*args)
            if got.shape != want.shape or got.dtype != want.dtype:
                return CheckResult(
                    "forward", False, f"{dtype} {_describe(args)}: kernel returns {got.dtype}{list(got.shape)}, "
                    f"reference {want.dtype}{list(want.shape)}"
                )  # fmt: skip
            close = torch.isclose(got, want, rtol=rtol, atol=atol, equal_nan=True)
            if not bool(close.all()):
                index = [int(i) for i in (~close).nonzero()[0]]
                return CheckResult(
                    "forward", False, f"{dtype} {_describe(args)}: first mismatch at {index}: kernel "
                    f"{float(got[tuple(index)]):.8g} vs reference {float(want[tuple(index)]):.8g} "
                    f"(rtol {rtol:g}, atol {atol:g}); {int((~close).sum())} of {close.numel()} elements differ"
                )  # fmt: skip
            worst = max(worst, float((got.double() - want.double()).abs().max()) if got.numel() else 0.0)
    tolerances = "; ".join(f"{d}: rtol {r:g} atol {a:g}" for d, (r, a) in TOLERANCES.items())
    return CheckResult("forward", True, f"kernel == reference on every sample, max |diff| {worst:.1e} ({tolerances})")


def _check_gradcheck(op: CustomOp, cases: list[tuple[Any, ...]]) -> CheckResult:
    for args in cases[:2]:
        inputs = tuple(
            a.detach().clone().requires_grad_() if isinstance(a, torch.Tensor) and a.is_floating_point() else a
            for a in args
        )
        torch.autograd.gradcheck(op, inputs, eps=1e-6, atol=1e-6, rtol=1e-4)
    return CheckResult("gradcheck float64", True, f"{min(2, len(cases))} samples, eps 1e-6, atol 1e-6, rtol 1e-4")


def _check_graph_breaks(op: CustomOp, args: tuple[Any, ...]) -> CheckResult:
    def step(*inputs: Any) -> Any:
        return op(*inputs).sum()

    torch._dynamo.reset()
    explained = torch._dynamo.explain(step)(*args)
    torch._dynamo.reset()
    if explained.graph_break_count or explained.graph_count != 1:
        reasons = "; ".join(str(b.reason)[:200] for b in explained.break_reasons) or "more than one graph"
        return CheckResult("graph breaks", False, f"{explained.graph_break_count} break(s): {reasons}")
    ops = explained.graphs[0].code.count(op.name.split("::")[1])
    return CheckResult("graph breaks", True, f"1 graph, 0 breaks under torch.compile (op in graph: {ops > 0})")


def _check_compiled_step(op: CustomOp, cases: list[tuple[Any, ...]]) -> CheckResult:
    """Median time of a forward+backward step, eager vs ``torch.compile`` (inductor), on the largest sample.

    Timed on one thread: the samples are small, and with several threads on a busy machine the
    thread pool's wake-ups (milliseconds) would be measured instead of the step.
    """
    args = max(cases, key=lambda a: sum(t.numel() for t in a if isinstance(t, torch.Tensor)))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _time_compiled_step(op, args)
    finally:
        torch.set_num_threads(threads)


def _time_compiled_step(op: CustomOp, args: tuple[Any, ...]) -> CheckResult:

    def step(*inputs: Any) -> Any:
        out = op(*inputs)
        (out * out).sum().backward()

    compiled = torch.compile(step)
    compiled(*args)  # compile outside the timing
    eager_s, compiled_s = _median_s(step, args), _median_s(compiled, args)
    ratio = eager_s / compiled_s
    detail = f"eager {eager_s * 1e6:.0f} us, compiled {compiled_s * 1e6:.0f} us per step, 1 thread ({ratio:.2f}x)"
    return CheckResult("compiled step", ratio >= 0.95, detail + ("" if ratio >= 0.95 else ": compiled is slower"))


def _median_s(fn: Callable[..., Any], args: tuple[Any, ...], repeat: int = 200) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn(*args)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _describe(args: tuple[Any, ...]) -> str:
    return "(" + ", ".join(str(list(a.shape)) if isinstance(a, torch.Tensor) else repr(a) for a in args) + ")"
