"""Run code in a user's kernel through JupyterHub's proxy, as JupyterLab does: the Jupyter messaging
protocol over the kernel's websocket (``/api/kernels/<id>/channels``). Used by the isolation tests and
``bench/notebooks.py``; ``headers`` carry a token allowed on that server."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass

import httpx
import websocket


@dataclass
class Outcome:
    stdout: str
    result: str | None
    error: str | None


def start_kernel(server_url: str, headers: dict[str, str], name: str = "oar-python") -> str:
    answer = httpx.post(f"{server_url}/api/kernels", json={"name": name}, headers=headers, timeout=60)
    answer.raise_for_status()
    return answer.json()["id"]


def execute(server_url: str, headers: dict[str, str], kernel_id: str, code: str, timeout: float = 120) -> Outcome:
    ws_url = server_url.replace("http://", "ws://") + f"/api/kernels/{kernel_id}/channels"
    sock = websocket.create_connection(ws_url, header=[f"{k}: {v}" for k, v in headers.items()], timeout=timeout)
    msg_id = uuid.uuid4().hex
    header = {
        "msg_id": msg_id,
        "msg_type": "execute_request",
        "username": "t",
        "session": uuid.uuid4().hex,
        "version": "5.3",
        "date": "",
    }
    content = {"code": code, "silent": False, "store_history": False, "user_expressions": {}, "allow_stdin": False}
    sock.send(
        json.dumps(
            {
                "header": header,
                "parent_header": {},
                "metadata": {},
                "content": content,
                "channel": "shell",
                "buffers": [],
            }
        )
    )
    stdout, result, error = [], None, None
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            message = json.loads(sock.recv())
            if message.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind, body = message["msg_type"], message["content"]
            if kind == "stream":
                stdout.append(body["text"])
            elif kind == "execute_result":
                result = body["data"].get("text/plain")
            elif kind == "error":
                error = f"{body['ename']}: {body['evalue']}"
            elif kind == "status" and body["execution_state"] == "idle":
                return Outcome("".join(stdout), result, error)
    finally:
        sock.close()
    raise TimeoutError(f"the kernel did not finish within {timeout} s")
