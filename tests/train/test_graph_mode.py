"""Static mode compiles the step but never breaks or slows a run: it falls back and says why."""

from __future__ import annotations

import logging

import pytest
import torch
from train_helpers import make_trainer

import oar
from oar.train import Trainer


def _losses(result):
    return [h["train_loss"] for h in result.history if "train_loss" in h]


def test_a_failing_compile_falls_back_to_dynamic_with_the_reason(small_text, caplog):
    dynamic = make_trainer(small_text, epochs=1, mode="dynamic").fit()
    with caplog.at_level(logging.WARNING, logger="oar.train"):
        result = make_trainer(small_text, epochs=1, mode="static", compile_backend="no-such-backend").fit()
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
            print(end="")  # a graph break dynamo must report
            return self.inner(ids)

    trainer = make_trainer(
        small_text, epochs=1, mode="static", compile_backend="eager", compile_probe_steps=2, compile_min_speedup=1000.0
    )
    trainer.model = Chatty(trainer.model)
    result = trainer.fit()
    graph = result.graph
    assert graph["used"] == "dynamic" and "< required 1000.00x" in graph["reason"]
    assert graph["compiled_step_ms"] > 0 and graph["eager_step_ms"] > 0 and graph["compile_s"] > 0
    assert any("print" in reason for reason in graph["graph_breaks"])


def test_static_and_dynamic_give_the_same_loss_curve(small_text):
    dynamic = make_trainer(small_text, epochs=1, mode="dynamic").fit()
    static = make_trainer(
        small_text, epochs=1, mode="static", compile_backend="aot_eager", compile_min_speedup=0.0
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
