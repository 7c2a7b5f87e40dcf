"""A checkpoint continues only the run that wrote it; a resumed run's figures cover the whole run."""

from __future__ import annotations

import statistics

import pytest
from train_helpers import StopAt, make_trainer

from oar.train import CheckpointConfig
from oar.train.checkpoint import CheckpointMismatchError


def _interrupted(small_text, tmp_path, stop_at: int = 7, **options) -> CheckpointConfig:
    checkpoint = CheckpointConfig(dir=str(tmp_path), every_steps=3)
    with pytest.raises(KeyboardInterrupt):
        make_trainer(small_text, callbacks=[StopAt(stop_at)], checkpoint=checkpoint, **options).fit()
    return checkpoint


@pytest.mark.parametrize(
    ("changed", "expected"),
    [
        ({"lr": 0.01}, "lr 0.002 -> 0.01"),
        ({"batch_size": 16}, "data batch_size 32 -> 16"),
        ({"limit": 200}, "data examples 320 -> 200"),
        ({"seed": 3}, "seed 0 -> 3"),
    ],
)
def test_resuming_with_other_settings_or_data_is_refused_naming_the_change(small_text, tmp_path, changed, expected):
    checkpoint = _interrupted(small_text, tmp_path)
    data = small_text
    if "limit" in changed:
        limit = changed.pop("limit")
        data = type(small_text)(
            small_text.train_ids[:limit],
            small_text.train_y[:limit],
            small_text.valid_ids,
            small_text.valid_y,
            small_text.vocab_size,
        )
    with pytest.raises(CheckpointMismatchError) as refused:
        make_trainer(data, checkpoint=checkpoint, **changed).fit()
    message = str(refused.value)
    assert expected in message and "step-000000006" in message and "allow_changes=True" in message
    assert "\n" not in message


def test_an_explicit_override_continues_and_is_recorded(small_text, tmp_path):
    _interrupted(small_text, tmp_path)
    allowed = CheckpointConfig(dir=str(tmp_path), every_steps=3, allow_changes=True)
    result = make_trainer(small_text, checkpoint=allowed, lr=0.01).fit()
    assert result.resumed_from == 6 and result.steps == 20
    assert result.config_changes == [{"step": 6, "changes": ["lr 0.002 -> 0.01"]}]
    # the record travels with the run: resuming its finished checkpoint still reports it
    again = make_trainer(small_text, checkpoint=allowed, lr=0.01).fit()
    assert again.config_changes == result.config_changes


def test_the_same_settings_resume_without_complaint(small_text, tmp_path):
    checkpoint = _interrupted(small_text, tmp_path)
    result = make_trainer(small_text, checkpoint=checkpoint, threads=1, tensorboard_dir=None).fit()
    assert result.resumed_from == 6 and result.config_changes == []


def test_training_time_and_samples_add_up_across_resumes(small_text, tmp_path):
    """One segment per process; the total is their sum; throughput after a resume has no spike."""
    checkpoint = _interrupted(small_text, tmp_path, stop_at=11)
    result = make_trainer(small_text, checkpoint=checkpoint).fit()
    segments = result.segments
    assert [(s["from_step"], s["to_step"]) for s in segments] == [(0, 9), (9, 20)]
    assert result.seconds == pytest.approx(sum(s["seconds"] for s in segments), abs=1e-3)
    assert all(s["seconds"] > 0 for s in segments)
    assert sum(s["samples"] for s in segments) == 320 * 2  # steps 10, 11 of the first process were redone
    rates = [h["samples_per_s"] for h in result.history if "samples_per_s" in h]
    after_resume = [h["samples_per_s"] for h in result.history if h.get("step") == 10 and "samples_per_s" in h]
    assert after_resume and after_resume[0] < 3 * statistics.median(rates), (after_resume, rates)


def test_a_setting_added_after_the_checkpoint_was_written_is_not_a_change_of_the_run() -> None:
    from oar.train.fingerprint import differences

    saved = {"config": {"lr": 0.002, "epochs": 2}, "data": {}, "model": {"sha256": "m"}}
    upgraded = {"config": {"lr": 0.002, "epochs": 2, "monitor": "valid_accuracy"}, "data": {}, "model": {"sha256": "m"}}
    assert differences(saved, upgraded) == []
    changed = {"config": {"lr": 0.001, "epochs": 2, "monitor": "valid_auc"}, "data": {}, "model": {"sha256": "m"}}
    assert differences(saved, changed) == ["lr 0.002 -> 0.001"]
