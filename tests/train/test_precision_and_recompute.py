"""Each precision trains; autocast really runs in the low precision; recompute changes memory, not results."""

from __future__ import annotations

import math

import pytest
import torch
from train_helpers import StopAt, assert_bit_identical, make_trainer, weights

from oar.models import TransformerClassifier, resnet18
from oar.train import precision as precision_module
from oar.train.recompute import apply_recompute


@pytest.fixture(scope="module")
def fp32_losses(small_text):
    return _losses(make_trainer(small_text, epochs=1, eval_every=None).fit())


def _losses(result):
    return [h["train_loss"] for h in result.history if "train_loss" in h]


@pytest.mark.parametrize(("precision", "dtype"), [("bf16-mixed", torch.bfloat16), ("16-mixed", torch.float16)])
def test_mixed_precision_runs_in_its_dtype_and_follows_the_fp32_curve(small_text, fp32_losses, precision, dtype):
    trainer = make_trainer(small_text, precision=precision, epochs=1, eval_every=None, precision_probe=False)
    seen = []
    hook = trainer.model.blocks[0].qkv.register_forward_hook(lambda m, i, out: seen.append(out.dtype))
    losses = _losses(trainer.fit())
    hook.remove()
    assert seen and set(seen) == {dtype}
    assert all(p.dtype == torch.float32 for p in trainer.model.parameters())  # master weights stay fp32
    assert all(math.isfinite(x) for x in losses)
    assert losses == pytest.approx(fp32_losses, abs=0.01)


def test_fp16_scaler_state_is_in_the_checkpoint(small_text, tmp_path):
    from oar.train import CheckpointConfig, Checkpoints

    checkpoint = CheckpointConfig(dir=str(tmp_path))
    make_trainer(small_text, precision="16-mixed", epochs=1, checkpoint=checkpoint, precision_probe=False).fit()
    scaler = Checkpoints(tmp_path).latest().state()["precision"]["scaler"]
    assert scaler["scale"] > 0 and "_growth_tracker" in scaler


def test_the_precision_probe_measures_both_and_decides_by_the_ratio(small_text, fp32_losses):
    result = make_trainer(small_text, precision="bf16-mixed", epochs=1, eval_every=None).fit()
    report = result.precision
    assert report["requested"] == "bf16-mixed" and report["fp32_step_ms"] > 0 and report["mixed_step_ms"] > 0
    slower = report["mixed_step_ms"] / report["fp32_step_ms"] > precision_module.MAX_SLOWDOWN
    assert report["used"] == ("32" if slower else "bf16-mixed"), report
    if slower:  # the probe left no trace: exactly the float32 run
        assert _losses(result) == fp32_losses and "float32" in report["reason"]


@pytest.mark.parametrize(("limit", "used"), [(0.0, "32"), (math.inf, "bf16-mixed")])
def test_a_fallback_or_keep_decision_is_checkpointed_and_a_resume_keeps_it(
    small_text, tmp_path, monkeypatch, limit, used
):
    from oar.train import CheckpointConfig

    monkeypatch.setattr(precision_module, "MAX_SLOWDOWN", limit)
    reference = make_trainer(small_text, precision="bf16-mixed")
    assert reference.fit().precision["used"] == used
    checkpoint = CheckpointConfig(dir=str(tmp_path), every_steps=4)
    with pytest.raises(KeyboardInterrupt):
        make_trainer(small_text, precision="bf16-mixed", checkpoint=checkpoint, callbacks=[StopAt(6)]).fit()
    monkeypatch.setattr(precision_module, "MAX_SLOWDOWN", math.inf if limit == 0.0 else 0.0)  # would decide otherwise
    resumed = make_trainer(small_text, precision="bf16-mixed", checkpoint=checkpoint)
    assert resumed.fit().precision["used"] == used
    assert_bit_identical(weights(reference), weights(resumed))


@pytest.mark.parametrize("recompute", [True, ["blocks.0"]])
def test_recompute_gives_the_same_weights_with_dropout_on(small_text, recompute):
    plain = make_trainer(small_text, epochs=1)
    plain.fit()
    checkpointed = make_trainer(small_text, epochs=1, recompute=recompute)
    checkpointed.fit()
    assert_bit_identical(weights(plain), weights(checkpointed))
    assert "forward" not in vars(checkpointed.model.blocks[0])  # removed after fit


def test_recompute_really_recomputes():
    model = TransformerClassifier(100, 2, dim=16, depth=2, heads=2)
    calls = []
    model.blocks[1].ff.register_forward_hook(lambda *_: calls.append(1))
    handle = apply_recompute(model, True)
    model(torch.randint(1, 100, (2, 5))).sum().backward()
    handle.remove()
    assert handle.names == ["blocks.0", "blocks.1"] and len(calls) == 2  # forward, then again in backward


def test_recompute_finds_resnet_blocks_and_rejects_unknown_names():
    assert len(apply_recompute(resnet18(1, 10, width=8), True).names) == 8
    with pytest.raises(ValueError, match="has no module 'nope'"):
        apply_recompute(resnet18(1, 10, width=8), ["nope"])
    with pytest.raises(ValueError, match="found no blocks"):
        apply_recompute(torch.nn.Linear(2, 2), True)
