"""Performance: the environment of a result (``environment``), device ceilings and rooflines (``ceilings``), the
benchmark runner (``bench``) and how its results read (``report``)."""

# What ``gankit bench`` measures when not told, by where it runs (``bench.run_bench``; its --help shows these).
BATCH_SIZES = {"GPU": (1, 256, 65536, 1_048_576), "CPU": (1, 64, 4096)}
BENCH_PRECISIONS = {"GPU": ("fp32", "tf32", "bf16"), "CPU": ("fp32",)}
BACKENDS = {  # openvino where it is installed
    "GPU": ("eager", "compile", "triton"),
    "CPU": ("eager", "compile", "onnxruntime", "openvino"),
    ".onnx": ("onnxruntime", "openvino"),
}
