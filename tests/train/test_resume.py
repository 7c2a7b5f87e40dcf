"""An interrupted and resumed fit ends bit-identical to an uninterrupted one (CPU), whatever the step."""

from __future__ import annotations

import pytest
from train_helpers import StopAt, assert_bit_identical, curve, make_trainer, weights

from oar.train import CheckpointConfig

TOTAL_STEPS = 20  # 320 texts / 32 per batch x 2 epochs


def _interrupted_then_resumed(small_text, tmp_path, stop_at: int, every: int, **options):
    checkpoint = CheckpointConfig(dir=str(tmp_path), every_steps=every, keep_last=2)
    with pytest.raises(KeyboardInterrupt):
        make_trainer(small_text, callbacks=[StopAt(stop_at)], checkpoint=checkpoint, **options).fit()
    resumed = make_trainer(small_text, checkpoint=checkpoint, **options)
    return resumed, resumed.fit()


@pytest.mark.parametrize(
    ("stop_at", "every", "options"),
    [
        (7, 3, {}),  # mid-epoch, 1 step lost since the checkpoint at 6
        (11, 5, {}),  # resumes exactly at the end of epoch 1
        (13, 4, {"accumulate": 2, "epochs": 4}),  # gradient accumulation
        (9, 2, {"precision": "16-mixed"}),  # the loss scaler's state travels too
    ],
)
def test_resume_is_bit_exact(small_text, tmp_path, stop_at, every, options):
    reference = make_trainer(small_text, **options)
    expected = reference.fit()
    resumed, result = _interrupted_then_resumed(small_text, tmp_path, stop_at, every, **options)
    assert result.resumed_from == (stop_at - 1) // every * every
    assert result.steps == expected.steps
    assert_bit_identical(weights(reference), weights(resumed))
    assert curve(result.history) == curve(expected.history)


def test_the_best_weights_survive_a_resume(small_text, tmp_path):
    reference = make_trainer(small_text, restore_best=True)
    expected = reference.fit()
    resumed, result = _interrupted_then_resumed(small_text, tmp_path, 12, 4, restore_best=True)
    assert result.best_metrics == expected.best_metrics
    assert_bit_identical(weights(reference), weights(resumed))


def test_a_finished_run_resumed_does_no_more_steps(small_text, tmp_path):
    checkpoint = CheckpointConfig(dir=str(tmp_path))
    first = make_trainer(small_text, checkpoint=checkpoint)
    first.fit()
    again = make_trainer(small_text, checkpoint=checkpoint)
    result = again.fit()
    assert result.resumed_from == TOTAL_STEPS and result.steps == TOTAL_STEPS
    assert_bit_identical(weights(first), weights(again))


def test_early_stopping_and_its_counter_are_resumed(small_text, tmp_path):
    options = {"patience": 1, "eval_every": 2, "epochs": 3, "lr": 0.05}
    reference = make_trainer(small_text, **options)
    expected = reference.fit()
    assert expected.stopped_early
    resumed, result = _interrupted_then_resumed(small_text, tmp_path, expected.steps - 1, 1, **options)
    assert result.stopped_early and result.steps == expected.steps
    assert_bit_identical(weights(reference), weights(resumed))
