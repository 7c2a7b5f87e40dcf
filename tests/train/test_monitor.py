"""``TrainerConfig.monitor``: the validation figure that keeps the best weights and stops early."""

from __future__ import annotations

import math

import pytest
import torch
from sklearn.metrics import roc_auc_score
from train_helpers import make_trainer

from oar._core.errors import InvalidInputError
from oar.train import TrainerConfig
from oar.train.trainer import binary_auc


def test_valid_auc_is_recorded_at_each_evaluation_and_picks_the_best_weights(small_text) -> None:
    trainer = make_trainer(small_text, epochs=2, monitor="valid_auc", restore_best=True)
    result = trainer.fit()
    evaluations = [h for h in result.history if "valid_loss" in h]
    assert len(evaluations) >= 3 and all(0.0 <= h["valid_auc"] <= 1.0 for h in evaluations)
    best = max(evaluations, key=lambda h: h["valid_auc"])
    assert result.best_metrics["step"] == best["step"]
    # The kept weights are the best evaluation's: evaluating them again gives its AUC.
    assert trainer.evaluate(trainer.valid_data, auc=True)["auc"] == pytest.approx(best["valid_auc"], abs=1e-9)


def test_valid_auc_is_scikit_learns_roc_auc_of_the_logit_margin() -> None:
    labels = torch.tensor([0, 1, 1, 0, 1, 0, 0, 1])
    margins = torch.tensor([-1.0, 2.0, 0.5, 0.7, 0.1, -3.0, 0.2, 1.5])
    assert binary_auc(labels, margins) == pytest.approx(roc_auc_score(labels.numpy(), margins.numpy()))
    assert math.isnan(binary_auc(torch.zeros(4, dtype=torch.long), margins[:4]))  # one class only


def test_an_unknown_monitor_is_refused_naming_the_choices() -> None:
    with pytest.raises(ValueError, match="monitor must be one of valid_accuracy, valid_auc; got 'valid_f1'"):
        TrainerConfig(monitor="valid_f1")


def test_valid_auc_on_a_model_with_more_than_two_classes_is_a_clear_error(small_text) -> None:
    trainer = make_trainer(small_text, epochs=1, monitor="valid_auc")
    trainer.model.head = torch.nn.Linear(trainer.model.head.in_features, 3)  # a three-class head
    with pytest.raises(InvalidInputError, match="AUC needs a two-class model"):
        trainer.evaluate(trainer.valid_data, auc=True)
