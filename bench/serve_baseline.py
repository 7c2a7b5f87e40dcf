"""The baseline for bench/serve.py: a plain FastAPI + uvicorn server running the package once per request.

What a competent user writes without a serving framework: one async endpoint,
the same v2 JSON in and out, ``runtime.infer`` on each request's own texts, the
same uvicorn (uvloop + httptools) as oar. No batching, no custom transport.

    python bench/serve_baseline.py PACKAGE_DIR --port 8600
"""

from __future__ import annotations

import argparse

import numpy as np
import uvicorn
from fastapi import FastAPI, HTTPException, Request

from oar._core.errors import OarError
from oar.runtime import load_runtime


def create_app(package_dir: str) -> FastAPI:
    runtime = load_runtime(package_dir, intra_op_threads=1)
    app = FastAPI()

    @app.post("/v2/models/{name}/infer")
    async def infer(name: str, request: Request) -> dict:
        payload = await request.json()
        try:
            inputs = {
                t["name"]: np.array([s.encode() for s in t["data"]], dtype=object)
                if t["datatype"] == "BYTES"
                else np.asarray(t["data"]).reshape(t["shape"])
                for t in payload["inputs"]
            }
            outputs = runtime.infer(inputs)
        except (KeyError, TypeError, OarError) as exc:
            raise HTTPException(400, str(exc)) from None
        return {
            "model_name": name,
            "outputs": [
                {
                    "name": k,
                    "datatype": "BYTES" if v.dtype == object else "FP32",
                    "shape": list(v.shape),
                    "data": [x.decode() for x in v] if v.dtype == object else v.ravel().tolist(),
                }
                for k, v in outputs.items()
            ],
        }

    @app.get("/v2/health/ready")
    async def ready() -> dict:
        return {"ready": True}

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("package_dir")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8600)
    args = parser.parse_args()
    uvicorn.run(
        create_app(args.package_dir),
        host=args.host,
        port=args.port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="warning",
        backlog=4096,
    )


if __name__ == "__main__":
    main()
