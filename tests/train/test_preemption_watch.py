"""A SIGTERM that arrives outside the training steps is not lost: the next phase boundary stops the run."""

from __future__ import annotations

import os
import signal
import time

import pytest
from train_helpers import make_trainer

from oar.train import CheckpointConfig, TrainingPreempted
from oar.train.preemption import PreemptionWatch


def _sigterm_self() -> None:
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(0.05)  # the handler runs in the main thread between bytecodes


def test_a_signal_between_phases_stops_at_the_next_one_and_the_handler_is_restored():
    previous = signal.getsignal(signal.SIGTERM)
    with PreemptionWatch() as watch:
        watch.phase("data")  # nothing pending: passes
        _sigterm_self()
        with pytest.raises(TrainingPreempted) as stopped:
            watch.phase("model", checkpoint="ckpt/step-000000004")
    assert stopped.value.phase == "model" and stopped.value.checkpoint == "ckpt/step-000000004"
    assert "before phase 'model'" in str(stopped.value)
    assert signal.getsignal(signal.SIGTERM) is previous and PreemptionWatch.active() is None


def test_fit_inside_a_watch_sees_a_signal_sent_before_it_started(small_text, tmp_path):
    """As in `oar train`: SIGTERM during data/model build, then fit: it stops before restoring anything."""
    checkpoint = CheckpointConfig(dir=str(tmp_path), every_steps=2)
    with PreemptionWatch():
        trainer = make_trainer(small_text, checkpoint=checkpoint)
        _sigterm_self()
        with pytest.raises(TrainingPreempted) as stopped:
            trainer.fit()
    assert stopped.value.phase == "restore" and trainer.state.step == 0
    assert not list(tmp_path.iterdir())  # nothing half-done to save
    assert make_trainer(small_text, checkpoint=checkpoint).fit().steps == 20  # and the run is intact
