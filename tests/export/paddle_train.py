"""Runs in the Paddle environment: train a tiny Paddle text classifier a few steps and jit.save it.

    python paddle_train.py DATA.npz PREFIX   (DATA: train_ids, train_labels, probe_ids)

Writes PREFIX.json + PREFIX.pdiparams, and PREFIX.probe.npy: Paddle's own logits for probe_ids.
"""

import sys

import numpy as np
import paddle
from paddle import nn


class BagOfEmbeddings(nn.Layer):
    def __init__(self, vocab: int, classes: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab, 32, padding_idx=0)
        self.head = nn.Linear(32, classes)

    def forward(self, ids):  # the first parameter must be named self for paddle.jit.save
        mask = paddle.cast(ids != 0, "float32").unsqueeze(-1)
        pooled = (self.embedding(ids) * mask).sum(1) / paddle.clip(mask.sum(1), min=1.0)
        return self.head(pooled)


def main(data_path: str, prefix: str) -> None:
    paddle.seed(0)
    data = np.load(data_path)
    ids, labels = data["train_ids"], data["train_labels"]
    model = BagOfEmbeddings(int(data["vocab_size"]), 2)
    optimizer = paddle.optimizer.Adam(learning_rate=0.01, parameters=model.parameters())
    for step in range(40):
        index = np.random.default_rng(step).choice(len(ids), 64, replace=False)
        loss = nn.functional.cross_entropy(model(paddle.to_tensor(ids[index])), paddle.to_tensor(labels[index]))
        loss.backward()
        optimizer.step()
        optimizer.clear_grad()
    model.eval()
    spec = [paddle.static.InputSpec([None, ids.shape[1]], "int64", "input_ids")]
    paddle.jit.save(model, prefix, input_spec=spec)
    np.save(prefix + ".probe.npy", model(paddle.to_tensor(data["probe_ids"])).numpy())


if __name__ == "__main__":
    main(*sys.argv[1:])
