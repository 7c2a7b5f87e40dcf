"""Runs inside the isolated Paddle environment (paddlepaddle + paddle2onnx); imports nothing from oar.

    python paddle_worker.py convert PREFIX OUT_DIR    -> OUT_DIR/model.onnx
    python paddle_worker.py run PREFIX INPUTS.npz OUT.npz NAMES -> Paddle's own outputs, batch by batch

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


def run(prefix: str, inputs_path: str, out_path: str, names: str) -> None:
    """Run every batch of INPUTS.npz (keys ``b<i>.<input name>``); write ``b<i>.<output index>`` to OUT.npz."""
    import paddle

    program, _ = model_files(prefix)
    order = names.split(",")
    data = np.load(inputs_path)
    batches = sorted({int(key.split(".", 1)[0][1:]) for key in data.files})
    if program.suffix == ".pdmodel":
        paddle.enable_static()
        exe = paddle.static.Executor(paddle.CPUPlace())
        with paddle.pir_utils.OldIrGuard():
            prog, feeds, fetches = paddle.static.load_inference_model(prefix, exe)
            results = {
                b: exe.run(
                    prog, feed={f: data[f"b{b}.{n}"] for f, n in zip(feeds, order, strict=True)}, fetch_list=fetches
                )
                for b in batches
            }
    else:
        layer = paddle.jit.load(prefix)
        layer.eval()
        results = {}
        for b in batches:
            out = layer(*(paddle.to_tensor(data[f"b{b}.{n}"]) for n in order))
            results[b] = [t.numpy() for t in (out if isinstance(out, (list, tuple)) else [out])]
    np.savez(out_path, **{f"b{b}.{k}": np.asarray(o) for b, outs in results.items() for k, o in enumerate(outs)})


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    {"convert": convert, "run": run}[command](*args)
