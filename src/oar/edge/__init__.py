"""``oar pack --target edge``: a directory that classifies text with onnxruntime, tokenizers and numpy only."""

from oar.edge.pack import EDGE_REQUIREMENTS, RUNNER_FILE, pack_edge

__all__ = ["EDGE_REQUIREMENTS", "RUNNER_FILE", "pack_edge"]
