"""Static mode compiles the step but never breaks or slows a run: it falls back and says why."""

from __future__ import annotations

import json
import logging

import pytest
import torch
from train_helpers import StopAt, assert_bit_identical, make_trainer, weights

import oar
from oar.train import CheckpointConfig, Trainer


def _losses(result):
    return [h["train_loss"] for h in result.history if "train_loss" in h]


def test_a_failing_compile_falls_back_to_dynamic_with_the_reason(small_text, caplog):
    dynamic = make_trainer(small_text, epochs=1, mode="dynamic").fit()
    with caplog.at_level(logging.WARNING, logger="oar.train"):
        result = make_trainer(
            small_text, epochs=1, mode="static", compile_backend="no-such-backend", compile_policy="always"
        ).fit()
    assert result.graph["requested"] == "static" and result.graph["used"] == "dynamic"
    assert "compiling failed" in result.graph["reason"] and "no-such-backend" in result.graph["reason"]
    assert "fell back to dynamic" in caplog.text
    assert _losses(result) == _losses(dynamic)  # the failed attempt left no trace in the run


def test_a_slower_compiled_step_falls_back_listing_graph_breaks(small_text):
    class Chatty(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, ids):
            torch._dynamo.graph_break(msg="chatty wrapper")  # a graph break dynamo must report
            return self.inner(ids)

    trainer = make_trainer(
        small_text,
        epochs=1,
        mode="static",
        compile_backend="eager",
        compile_probe_steps=2,
        compile_min_speedup=1000.0,
        compile_policy="always",
    )
    trainer.model = Chatty(trainer.model)
    result = trainer.fit()
    graph = result.graph
    assert graph["used"] == "dynamic" and "< required 1000.00x" in graph["reason"]
    assert graph["compiled_step_ms"] > 0 and graph["eager_step_ms"] > 0 and graph["compile_s"] > 0
    assert any("chatty wrapper" in reason for reason in graph["graph_breaks"]), graph["graph_breaks"]


def test_static_and_dynamic_give_the_same_loss_curve(small_text):
    dynamic = make_trainer(small_text, epochs=1, mode="dynamic").fit()
    static = make_trainer(
        small_text,
        epochs=1,
        mode="static",
        compile_backend="aot_eager",
        compile_min_speedup=0.0,
        compile_policy="always",
    ).fit()
    assert static.graph["used"] == "static", static.graph
    assert _losses(static) == pytest.approx(_losses(dynamic), rel=1e-4, abs=1e-5)


def test_enable_static_switches_the_default_mode(small_text):
    oar.enable_static()
    try:
        assert oar.in_static_mode()
        assert make_trainer(small_text).mode == "static"
        assert make_trainer(small_text, mode="dynamic").mode == "dynamic"  # per-run override
    finally:
        oar.disable_static()
    assert make_trainer(small_text).mode == "dynamic"


def test_an_unknown_mode_is_refused(small_text):
    with pytest.raises(ValueError, match="mode must be"):
        Trainer(torch.nn.Linear(2, 2), [], config=oar.TrainerConfig(mode="fast"))


def test_a_run_too_short_to_repay_the_compile_is_not_compiled(small_text, tmp_path):
    """10 steps of a few ms cannot repay even a fast compile: static must cost nothing over dynamic."""
    dynamic = make_trainer(small_text, epochs=1, mode="dynamic").fit()
    static = make_trainer(small_text, epochs=1, mode="static", compile_probe_steps=2).fit()
    graph = static.graph
    assert graph["used"] == "dynamic" and graph["reason"].startswith("not compiled")
    expected = max(20.0, 100 * graph["eager_step_ms"] / 1000)  # inductor's prior
    assert graph["compile_s"] is None and graph["expected_compile_s"] == pytest.approx(expected, abs=1e-2)
    assert _losses(static) == _losses(dynamic)


def test_the_measured_compile_time_is_remembered_and_decides_the_next_run(small_text, tmp_path):
    cache = tmp_path / "compile-cache"
    options = {"epochs": 1, "mode": "static", "compile_backend": "aot_eager", "compile_probe_steps": 2}
    first = make_trainer(small_text, compile_policy="always", compile_cache_dir=str(cache), **options).fit()
    assert first.graph["compile_s"] > 0
    costs = json.loads((cache / "compile_seconds.json").read_text())
    assert list(costs.values()) == [first.graph["compile_s"]]
    # a machine where that graph compiled in a millisecond: now the short run is worth compiling
    (cache / "compile_seconds.json").write_text(json.dumps(dict.fromkeys(costs, 0.001)))
    second = make_trainer(small_text, compile_cache_dir=str(cache), compile_min_speedup=0.0, **options).fit()
    assert second.graph["expected_compile_s"] == 0.001 and second.graph["used"] == "static"
    assert second.graph["compile_s"] > 0


@pytest.mark.parametrize("min_speedup", [0.0, 1000.0])  # compiled kept / fell back after the probe
def test_a_resumed_static_run_uses_the_graph_the_first_chose_and_is_bit_exact(small_text, tmp_path, min_speedup):
    options = {
        "mode": "static",
        "compile_backend": "aot_eager",
        "compile_probe_steps": 2,
        "compile_min_speedup": min_speedup,
        "compile_policy": "always",
    }
    reference = make_trainer(small_text, **options)
    expected = reference.fit()
    checkpoint = CheckpointConfig(dir=str(tmp_path), every_steps=3, keep_last=None)
    with pytest.raises(KeyboardInterrupt):
        make_trainer(small_text, callbacks=[StopAt(8)], checkpoint=checkpoint, **options).fit()
    resumed = make_trainer(small_text, checkpoint=checkpoint, **options)
    result = resumed.fit()
    assert result.resumed_from == 6
    chosen = json.loads((tmp_path / "step-000000006" / "meta.json").read_text())["graph"]["report"]
    assert result.graph == chosen  # the decision (and its figures) of the interrupted run, not a new probe
    assert result.graph["used"] == expected.graph["used"] == ("static" if min_speedup == 0.0 else "dynamic")
    assert_bit_identical(weights(reference), weights(resumed))
