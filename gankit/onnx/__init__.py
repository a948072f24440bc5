"""ONNX: build a graph (``build``), quantize it (``quantize``), check it against float64 (``parity``,
``validate``), and land it only when it passes (``export``)."""
