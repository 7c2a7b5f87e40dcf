"""Export trained modules to ONNX packages, checking parity against PyTorch."""

from oar.export.module_package import export_module
from oar.export.onnx import InputSpec, export_onnx
from oar.export.parity import check_parity
from oar.export.text_package import save_text_classifier

__all__ = ["InputSpec", "check_parity", "export_module", "export_onnx", "save_text_classifier"]
