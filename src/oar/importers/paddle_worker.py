"""Runs inside the isolated Paddle environment (paddlepaddle + paddle2onnx); imports nothing from oar.

    python paddle_worker.py convert PREFIX OUT_DIR    -> OUT_DIR/model.onnx
    python paddle_worker.py run PREFIX INPUTS.npy OUT.npy -> Paddle's own outputs for the inputs

The conversion passes ``optimize_tool="None"``: paddle2onnx's default optimiser (polygraphy)
tries to pip-install packages while converting, which must never happen offline.
"""

import json
import sys
from pathlib import Path

import numpy as np


def model_files(prefix: str) -> tuple[Path, Path]:
    """The 3.x PIR program (``.json``) or the older ``.pdmodel``, and the weights."""
    for suffix in (".json", ".pdmodel"):
        program = Path(prefix + suffix)
        if program.is_file():
            return program, Path(prefix + ".pdiparams")
    sys.exit(f"error: no {prefix}.json or {prefix}.pdmodel; pass the prefix given to paddle.jit.save")


def convert(prefix: str, out_dir: str) -> None:
    import paddle2onnx

    program, params = model_files(prefix)
    target = Path(out_dir) / "model.onnx"
    paddle2onnx.export(
        str(program),
        str(params),
        save_file=str(target),
        opset_version=17,
        enable_onnx_checker=True,
        optimize_tool="None",
    )
    print(json.dumps({"program": program.name, "onnx": str(target)}))


def run(prefix: str, inputs_path: str, out_path: str) -> None:
    import paddle

    program, _ = model_files(prefix)
    if program.suffix == ".pdmodel":
        paddle.enable_static()
        exe = paddle.static.Executor(paddle.CPUPlace())
        with paddle.pir_utils.OldIrGuard():
            prog, feeds, fetches = paddle.static.load_inference_model(prefix, exe)
            out = exe.run(prog, feed={feeds[0]: np.load(inputs_path)}, fetch_list=fetches)[0]
    else:
        layer = paddle.jit.load(prefix)
        layer.eval()
        out = layer(paddle.to_tensor(np.load(inputs_path)))
        out = (out[0] if isinstance(out, (list, tuple)) else out).numpy()
    np.save(out_path, np.asarray(out, dtype=np.float32))


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    {"convert": convert, "run": run}[command](*args)
