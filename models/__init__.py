"""The seat-demand model: features, ONNX inference at the edge, training and evaluation off it.

Gateway code imports :mod:`models.inference` (numpy and onnxruntime only). Training
(:mod:`models.training`, :mod:`models.onnx_export`) needs the ``train`` extra and is imported only
by ``edge-agent model train``. The shipped model is ``models/default.onnx`` (see MODEL_CARD.md).
"""

from pathlib import Path

DEFAULT_MODEL_PATH = Path(__file__).with_name("default.onnx")
