"""Classify with an oar package on a small device: ``python classify.py "text" ...`` or ``classify.py images.npy``.

Copied as-is into every edge pack. It needs only onnxruntime, numpy and (text packs) tokenizers
(see requirements.txt) and nothing from oar, so the directory works wherever Python does.
Text packs: texts come from the arguments, or one per line on standard input. Image packs: each
argument is a ``.npy`` file holding one image or a batch, shaped as the model's input (for
mnist-5k, ``[N, 1, 28, 28]`` float32 in 0..1). One JSON line per text or image goes to standard output.
"""

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort

HERE = Path(__file__).resolve().parent


def load_model() -> tuple[dict, ort.InferenceSession]:
    manifest = json.loads((HERE / "manifest.json").read_text(encoding="utf-8"))
    runtime = manifest["runtime"]
    model_path = HERE / runtime["model_file"]
    digest = "sha256:" + hashlib.sha256(model_path.read_bytes()).hexdigest()
    if digest != manifest["files"][runtime["model_file"]]:
        sys.exit(f"error: {model_path.name} does not match the digest in manifest.json; copy the pack again")
    return manifest, ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])


def load() -> tuple[dict, "Tokenizer", ort.InferenceSession]:  # noqa: F821 (tokenizers: text packs only)
    from tokenizers import Tokenizer

    manifest, session = load_model()
    tokenizer = Tokenizer.from_file(str(HERE / manifest["runtime"]["tokenizer_file"]))
    return manifest, tokenizer, session


def logits_of(manifest: dict, tokenizer, session: ort.InferenceSession, texts: list[str]) -> np.ndarray:
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


def probabilities_of(manifest: dict, logits: np.ndarray) -> np.ndarray:
    if manifest["runtime"].get("output_activation", "softmax") == "none":
        return logits
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    return exp / exp.sum(axis=1, keepdims=True)


def classify(texts: list[str]) -> list[dict]:
    manifest, tokenizer, session = load()
    probabilities = probabilities_of(manifest, logits_of(manifest, tokenizer, session, texts))
    labels = manifest["labels"]
    return [
        {"text": text, "label": labels[int(p.argmax())], "score": round(float(p.max()), 6)}
        for text, p in zip(texts, probabilities, strict=True)
    ]


def read_images(path: str, graph_input: dict) -> np.ndarray:
    """A ``.npy`` file as a float32 batch of the model's input shape (one image gets a batch axis)."""
    try:
        images = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        sys.exit(f"error: {path}: not a readable .npy array ({exc})")
    expected = graph_input["shape"][1:]
    if list(images.shape) == [d if d > 0 else images.shape[i] for i, d in enumerate(expected)]:
        images = images[None]
    fits = images.ndim == len(expected) + 1 and all(
        d <= 0 or d == n for d, n in zip(expected, images.shape[1:], strict=True)
    )
    if not fits:
        sys.exit(f"error: {path}: shape {list(images.shape)} does not fit the model's input [N, {expected}]")
    return images.astype(np.float32, copy=False)


def classify_images(paths: list[str]) -> list[dict]:
    manifest, session = load_model()
    graph_input = manifest["runtime"]["graph_inputs"][0]
    labels, results = manifest["labels"], []
    for path in paths:
        images = read_images(path, graph_input)
        logits = session.run(None, {graph_input["name"]: images})[0]
        for i, p in enumerate(probabilities_of(manifest, logits)):
            results.append(
                {"file": path, "index": i, "label": labels[int(p.argmax())], "score": round(float(p.max()), 6)}
            )
    return results


def main() -> None:
    manifest = json.loads((HERE / "manifest.json").read_text(encoding="utf-8"))
    if manifest["task"] == "image-classification":
        if not sys.argv[1:]:
            sys.exit("usage: python classify.py images.npy [more.npy ...]   (arrays shaped as the model's input)")
        results = classify_images(sys.argv[1:])
    else:
        texts = sys.argv[1:] or [line.strip() for line in sys.stdin]
        texts = [t for t in texts if t.strip()]
        if not texts:
            sys.exit('usage: python classify.py "text" ["text" ...]   (or one text per line on stdin)')
        results = classify(texts)
    for result in results:
        print(json.dumps(result, ensure_ascii=False))


if __name__ == "__main__":
    main()
