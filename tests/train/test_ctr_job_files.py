"""Click-through-rate job files: a task, a dataset and an arch that do not fit together are refused
before anything is recorded, each problem named with its key."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import yaml

from oar._core.errors import InvalidInputError
from oar.hub import Hub
from oar.train.job import parse_job

CTR = {"task": "ctr", "data": {"dataset": "synthetic-ctr"}, "model": "dlrm"}


def _with(**changes) -> dict:
    return {**CTR, **changes}


def test_the_ctr_job_reads_with_the_model_shorthand():
    job = parse_job(CTR)
    assert (job.task, job.model.arch, job.data.dataset) == ("ctr", "dlrm", "synthetic-ctr")
    assert parse_job({k: v for k, v in CTR.items() if k != "task"}).model.arch == "dlrm"  # task follows the data


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (_with(task="tabular"), "task: Input should be 'text', 'image' or 'ctr'"),
        (
            _with(data={"dataset": "chnsenti"}),
            "data: task 'ctr' does not fit dataset 'chnsenti' (text data); datasets for ctr: synthetic-",
        ),
        (_with(model="text-cnn"), "model: arch 'text-cnn' is a text model, not a ctr one; choose one of dlrm"),
        ({"data": {"dataset": "digits"}, "model": "dlrm"}, "model: arch 'dlrm' is a ctr model, not a image one"),
        (_with(task="text", data={"dataset": "chnsenti"}), "model: arch 'dlrm' is a ctr model, not a text one"),
        (_with(model="dlrn"), "model.arch: unknown arch 'dlrn'; available:"),
        (_with(data={"dataset": "synthetic-ctr", "batch_size": 0}), "data.batch_size: Input should be greater"),
        (_with(dat={"dataset": "synthetic-ctr"}), "dat: unknown key"),
    ],
)
def test_a_job_that_does_not_fit_names_its_key(raw, message):
    with pytest.raises(InvalidInputError, match=r"job\.yaml is invalid") as caught:
        parse_job(raw, "job.yaml")
    assert message in str(caught.value)


def test_dlrm_options_are_checked_against_its_signature():
    from oar.train.job import validate_job

    with pytest.raises(InvalidInputError, match=r"option\(s\) heads for 'dlrm'; it takes: dim, bottom"):
        validate_job(parse_job(_with(model={"arch": "dlrm", "options": {"heads": 2}})))
    with pytest.raises(InvalidInputError, match=r"model.options.dim: expected <class 'int'>, got 'wide'"):
        validate_job(parse_job(_with(model={"arch": "dlrm", "options": {"dim": "wide"}})))


def test_oar_train_refuses_a_bad_ctr_job_in_one_clean_message_and_records_nothing(tmp_path):
    job = tmp_path / "job.yaml"
    job.write_text(yaml.safe_dump(_with(model="text-cnn")))
    env = {**os.environ, "OAR_HOME": str(tmp_path / "home")}
    done = subprocess.run(
        [sys.executable, "-m", "oar.cli.main", "train", str(job)], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 1 and "Traceback" not in done.stdout + done.stderr
    assert "is a text model" in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines == [
        f"error: {job} is invalid:",
        "  model: arch 'text-cnn' is a text model, not a ctr one; choose one of dlrm",
    ]
    assert Hub(tmp_path / "home").runs.list() == []
