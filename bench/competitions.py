"""Competition scoring: submit → scored for predictions files and for a model package, 10 queued at once,
and the sandbox's overhead against the same package run outside it.

1. files: 10 predictions files for the chnsenti competition (1,736 hidden rows) submitted at once; each
   one's time from submission to its recorded score, first with a scoring job each on the default pools
   (the baseline), then scored as they arrive (a built-in metric: the default).
2. packages: 10 submissions of one package at once (metric + latency p50/p99 at batch 1 + throughput
   at batch 32, each in a fresh sandbox).
3. sandbox overhead: the package runner on the same inputs in the sandbox and outside it, alternating.

    python bench/competitions.py                                   # builds a small digits classifier
    python bench/competitions.py --home ~/.oar --model chnsenti-cls:1   # a hub package (the quickstart's)

Needs root (the sandbox). Prints figures and the ratio sandboxed / not.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def spec(name: str, dataset: str, rows: int | None) -> dict:
    return {
        "name": name,
        "dataset": {"name": dataset},
        "test_rows": rows,
        "public_fraction": 0.3,
        "phases": [{"name": "main", "start": "2020-01-01T00:00:00Z", "end": "2099-01-01T00:00:00Z"}],
        "limits": {"daily": 1000, "total": 1000, "final_selections": 2},
        "sandbox": {"time_s": 300, "memory_mb": 4096, "cpus": 1},
    }


def wait_all(core, ids: list[str], started: dict[str, float], timeout: float = 900) -> dict[str, float]:
    done: dict[str, float] = {}
    deadline = time.monotonic() + timeout
    while len(done) < len(ids) and time.monotonic() < deadline:
        for submission_id in ids:
            if submission_id in done:
                continue
            s = core.refresh(core.store.submission(submission_id))
            if s.status not in ("queued", "running"):
                if s.status != "scored":
                    print(f"  {submission_id}: {s.status}: {s.error}")
                done[submission_id] = (s.scored_at.timestamp() if s.scored_at else time.time()) - started[submission_id]
        time.sleep(0.1)
    return done


def summary(label: str, seconds: dict[str, float]) -> None:
    values = sorted(seconds.values())
    print(
        f"{label}: n={len(values)} first {values[0]:.2f} s, median {statistics.median(values):.2f} s, "
        f"last {values[-1]:.2f} s"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", default=None, help="OAR_HOME (default: a temporary hub)")
    parser.add_argument("--model", default=None, help="a hub package NAME:VERSION (default: a digits classifier)")
    parser.add_argument("--dataset", default="chnsenti", help="the built-in dataset --model was trained for")
    parser.add_argument("--count", type=int, default=10)
    args = parser.parse_args()
    home = Path(args.home or tempfile.mkdtemp(prefix="oar-bench-competitions-"))
    os.environ["OAR_HOME"] = str(home)
    sys.path.insert(0, str(ROOT / "tests"))
    import oar.competitions
    import oar.jobs  # noqa: F401
    from oar.competitions import hidden, packages, sandbox
    from oar.competitions.config import parse_spec
    from oar.competitions.service import Competitions
    from oar.hub import Hub

    hub = Hub()
    core = Competitions(hub)
    stamp = str(int(time.time()))
    text_cup = core.create(parse_spec(spec(f"bench-text-{stamp}", "chnsenti", None), "bench"), "organizer")
    ids = hidden.input_ids(home, text_cup.name)
    content = ("id,prediction\n" + "".join(f"{i},{n % 2}\n" for n, i in enumerate(ids))).encode()
    firsts = {}
    for at_once in (False, True):  # before: a scoring job per file; after: scored as it arrives
        core.score_files_at_once = at_once
        started, submitted = {}, []
        for _ in range(args.count):
            t = time.time()
            s = core.submit_file(text_cup, "bench", content, "p.csv")
            started[s.id] = t
            submitted.append(s.id)
        seconds = wait_all(core, submitted, started)
        firsts[at_once] = min(seconds.values())
        how = "scored at submission" if at_once else "a scoring job each"
        summary(f"predictions file, {len(ids)} rows, {args.count} at once, {how}", seconds)
    print(f"  first file scored: {firsts[False] / max(firsts[True], 1e-6):.0f}x sooner at submission than by a job")

    if args.model:
        ref = args.model
        name, _, _ = ref.partition(":")
        record = hub.models.get(name, int(ref.partition(":")[2]) if ":" in ref else None)
        dataset = (
            (record.lineage or {}).get("dataset", {}).get("name", "chnsenti")
            if hasattr(record, "lineage")
            else "chnsenti"
        )
    else:
        from competitions.conftest import digits_classifier

        print("building a digits classifier package ...")
        package = digits_classifier(home / "staged" / "digits-lr")
        ref = hub.register_model(package.path, "digits-lr", "bench").model_id
        dataset = "digits"
    cup = core.create(parse_spec(spec(f"bench-pkg-{stamp}", dataset, None), "bench"), "organizer")
    started, submitted = {}, []
    for _ in range(args.count):
        t = time.time()
        s = core.submit_package(cup, "bench", ref)
        started[s.id] = t
        submitted.append(s.id)
    seconds = wait_all(core, submitted, started)
    summary(f"package {ref} on {dataset} ({cup.test_size} rows), {args.count} queued at once", seconds)
    print("  details of one:", core.store.submission(submitted[0]).details)

    # the same runner, in the sandbox and outside it, alternating
    inputs = hidden.competition_dir(home, cup.name) / hidden.INPUTS
    package_dir = hub.open_package(*packages.parse_ref(ref)).path
    inside, outside = [], []
    for _ in range(3):
        box = sandbox.Box()
        t = time.perf_counter()
        box_package = box.add_input(package_dir, "package")
        box_inputs = box.add_input(inputs, "inputs.jsonl")
        command = [sys.executable, "-m", "oar.competitions.package_runner", str(box_package), str(box_inputs)]
        outcome = sandbox.run(box, command, packages.package_limits(cup), env={"PYTHONPATH": str(ROOT / "src")})
        inside.append(time.perf_counter() - t)
        box.close()
        assert outcome.exit_code == 0, outcome.stderr_tail
        with tempfile.TemporaryDirectory() as work:
            t = time.perf_counter()
            subprocess.run(
                [sys.executable, "-m", "oar.competitions.package_runner", str(package_dir), str(inputs)],
                cwd=work,
                check=True,
                env={**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"},
                stdout=subprocess.DEVNULL,
            )
            outside.append(time.perf_counter() - t)
    a, b = statistics.median(inside), statistics.median(outside)
    print(f"package runner: sandboxed median {a:.2f} s, outside {b:.2f} s, ratio {a / b:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
