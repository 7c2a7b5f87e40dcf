"""Classify text with an oar package on a small device: ``python classify.py "text" ...``.

Copied as-is into every edge pack. It needs only onnxruntime, tokenizers and numpy (see
requirements.txt) and nothing from oar, so the directory works wherever Python does.
Texts come from the arguments, or one per line on standard input; one JSON line per text
goes to standard output.
"""

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

HERE = Path(__file__).resolve().parent


def load() -> tuple[dict, Tokenizer, ort.InferenceSession]:
    manifest = json.loads((HERE / "manifest.json").read_text(encoding="utf-8"))
    runtime = manifest["runtime"]
    model_path = HERE / runtime["model_file"]
    digest = "sha256:" + hashlib.sha256(model_path.read_bytes()).hexdigest()
    if digest != manifest["files"][runtime["model_file"]]:
        sys.exit(f"error: {model_path.name} does not match the digest in manifest.json; copy the pack again")
    tokenizer = Tokenizer.from_file(str(HERE / runtime["tokenizer_file"]))
    session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    return manifest, tokenizer, session


def logits_of(manifest: dict, tokenizer: Tokenizer, session: ort.InferenceSession, texts: list[str]) -> np.ndarray:
    """The package's padding (manifest runtime.padding): one padded batch only for padding-invariant models."""
    padding = manifest["runtime"].get("padding") or {"strategy": "longest", "pad_id": 0}
    name = session.get_inputs()[0].name
    rows = [
        e.ids[: len(e.ids) - sum(1 for m in e.attention_mask if m == 0) or 1] for e in tokenizer.encode_batch(texts)
    ]
    if padding["strategy"] == "per-text":
        return np.concatenate([session.run(None, {name: np.array([row], dtype=np.int64)})[0] for row in rows])
    width = padding["length"] if padding["strategy"] == "fixed" else max(len(row) for row in rows)
    ids = np.full((len(rows), width), padding.get("pad_id", 0), dtype=np.int64)
    for i, row in enumerate(rows):
        ids[i, : min(len(row), width)] = row[:width]
    return session.run(None, {name: ids})[0]


def classify(texts: list[str]) -> list[dict]:
    manifest, tokenizer, session = load()
    logits = logits_of(manifest, tokenizer, session, texts)
    if manifest["runtime"].get("output_activation", "softmax") == "none":
        probabilities = logits
    else:
        exp = np.exp(logits - logits.max(axis=1, keepdims=True))
        probabilities = exp / exp.sum(axis=1, keepdims=True)
    labels = manifest["labels"]
    return [
        {"text": text, "label": labels[int(p.argmax())], "score": round(float(p.max()), 6)}
        for text, p in zip(texts, probabilities, strict=True)
    ]


def main() -> None:
    texts = sys.argv[1:] or [line.strip() for line in sys.stdin]
    texts = [t for t in texts if t.strip()]
    if not texts:
        sys.exit('usage: python classify.py "text" ["text" ...]   (or one text per line on stdin)')
    for result in classify(texts):
        print(json.dumps(result, ensure_ascii=False))


if __name__ == "__main__":
    main()
