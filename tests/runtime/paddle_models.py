"""Runs in the Paddle environment: build, train a few steps and ``paddle.jit.save`` the models oar must import.

    python paddle_models.py lstm DATA.npz PREFIX [SEQ_LEN]   bidirectional LSTM over ids, no padding mask
    python paddle_models.py cnn DATA.npz PREFIX              a small CNN over [N, 1, H, W] float images
    python paddle_models.py predict PREFIX IN.npz OUT.npz     Paddle's output for each array alone

DATA.npz holds ``train_x``, ``train_y`` (and ``vocab_size`` for the LSTM). ``SEQ_LEN`` 0 (default) saves
the LSTM with a dynamic sequence axis, otherwise fixed at that length.
"""

import sys

import numpy as np
import paddle
from paddle import nn


class BiLSTM(nn.Layer):
    """Embedding -> bidirectional LSTM -> mean over time -> linear: padding changes its answers."""

    def __init__(self, vocab: int, classes: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab, 32, padding_idx=0)
        self.lstm = nn.LSTM(32, 32, direction="bidirect")
        self.head = nn.Linear(64, classes)

    def forward(self, ids):  # the first parameter must be named self for paddle.jit.save
        states, _ = self.lstm(self.embedding(ids))
        return self.head(states.mean(1))


class SmallConvNet(nn.Layer):
    def __init__(self, classes: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2D(1, 8, 3, padding=1)
        self.conv2 = nn.Conv2D(8, 16, 3, padding=1)
        self.pool = nn.AdaptiveAvgPool2D(1)
        self.head = nn.Linear(16, classes)

    def forward(self, image):
        x = nn.functional.relu(self.conv1(image))
        x = nn.functional.max_pool2d(x, 2)
        x = nn.functional.relu(self.conv2(x))
        return self.head(self.pool(x).flatten(1))


def _train(model, x: np.ndarray, y: np.ndarray, steps: int) -> None:
    optimizer = paddle.optimizer.Adam(learning_rate=0.01, parameters=model.parameters())
    for step in range(steps):
        index = np.random.default_rng(step).choice(len(x), 64, replace=False)
        loss = nn.functional.cross_entropy(model(paddle.to_tensor(x[index])), paddle.to_tensor(y[index]))
        loss.backward()
        optimizer.step()
        optimizer.clear_grad()
    model.eval()


def predict_each(prefix: str, inputs_path: str, out_path: str) -> None:
    """Paddle's own output for every array of INPUTS.npz run alone (a batch of one): the ground truth."""
    layer = paddle.jit.load(prefix)
    layer.eval()
    data = np.load(inputs_path)
    np.savez(out_path, **{key: layer(paddle.to_tensor(data[key][None])).numpy()[0] for key in data.files})


def main(kind: str, data_path: str, prefix: str, seq_len: str = "0") -> None:
    paddle.seed(0)
    data = np.load(data_path)
    x, y = data["train_x"], data["train_y"]
    classes = int(y.max()) + 1
    if kind == "lstm":
        model = BiLSTM(int(data["vocab_size"]), classes)
        _train(model, x, y, 30)
        spec = [paddle.static.InputSpec([None, int(seq_len) or None], "int64", "input_ids")]
    else:
        model = SmallConvNet(classes)
        _train(model, x, y, 60)
        spec = [paddle.static.InputSpec([None, *x.shape[1:]], "float32", "image")]
    paddle.jit.save(model, prefix, input_spec=spec)


if __name__ == "__main__":
    if sys.argv[1] == "predict":
        predict_each(*sys.argv[2:])
    else:
        main(*sys.argv[1:])
