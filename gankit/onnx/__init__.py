"""ONNX: build a graph (``build``), quantize it (``quantize``), read one (``graph``), keep one per machine
(``cache``), check it against float64 (``parity``: the check every format shares, and the one owner of its report;
``validate``: an ONNX file through onnxruntime). ``gankit.export.export_onnx`` lands a graph only when it passes."""
