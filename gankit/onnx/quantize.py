"""int8 quantization of an fp32 ONNX export with onnxruntime, with the options a user picks.

``Int8Options`` (all stored as JSON in the export's ``gankit_int8`` metadata):

- ``mode``: ``dynamic`` (int8 weights; activations quantized at run time to 256 levels of each
  batch's own range: ``MatMulInteger``) or ``static`` (activations' ranges fixed beforehand by
  calibration; QDQ graph that onnxruntime fuses into ``QGemm``).
- ``per_channel``: one weight scale per output unit (True) or per tensor.
- ``weights``: ``qint8`` or ``quint8``. On x86 with VNNI, QInt8 weights take the fast int8 kernel;
  QUInt8 weights fall back to a slower one (measured ~1.1x fp32 against ~3.5x).
- ``activations`` (static only): ``quint8`` or ``qint8``.
- ``keep_fp32``: 1-based indices of the Linear layers left in fp32 (e.g. ``(3,)`` keeps the output
  layer, the one whose error tanh passes straight to the pixels).
- ``calibration`` (static only): ``minmax``, ``percentile`` or ``entropy``, over
  ``calibration_samples`` latent vectors. The generator's input *is* standard-normal noise, so
  calibrating on ``gankit.noise`` is calibrating on the real input distribution: no data set needed.

The defaults are dynamic, per-channel, QInt8 weights, every layer int8. What each option costs in speed and in
MNIST-FID is measured side by side by ``benchmarks/run_cpu_paths.py`` (results in ``benchmarks/results/``,
cited in docs/backends.md).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from gankit.config import GeneratorConfig
from gankit.errors import ExportError

if TYPE_CHECKING:  # the options are read without onnx (the CLI shows their defaults)
    import onnx

MODES = ("dynamic", "static")
INT8_TYPES = ("qint8", "quint8")
CALIBRATIONS = ("minmax", "percentile", "entropy")
LINEAR_OPS = ("Gemm", "MatMul")


@dataclass(frozen=True)
class Int8Options:
    mode: str = "dynamic"
    per_channel: bool = True
    weights: str = "qint8"
    activations: str = "quint8"
    keep_fp32: tuple[int, ...] = field(default_factory=tuple)
    calibration: str = "minmax"
    calibration_samples: int = 2048

    def __post_init__(self) -> None:
        for name, value, choices in (
            ("mode", self.mode, MODES),
            ("weights", self.weights, INT8_TYPES),
            ("activations", self.activations, INT8_TYPES),
            ("calibration", self.calibration, CALIBRATIONS),
        ):
            if value not in choices:
                raise ExportError(f"int8 {name} must be one of {', '.join(choices)}, got {value!r}")
        if self.calibration_samples < 1:
            raise ExportError(f"calibration samples must be >= 1, got {self.calibration_samples}")
        object.__setattr__(self, "keep_fp32", tuple(sorted(set(self.keep_fp32))))

    @property
    def label(self) -> str:
        """A short name, e.g. ``dynamic-pc-qint8`` or ``static-pt-qint8-a_quint8-entropy-keep3``."""
        parts = [self.mode, "pc" if self.per_channel else "pt", self.weights]
        if self.mode == "static":
            parts += [f"a_{self.activations}", self.calibration]
        if self.keep_fp32:
            parts.append("keep" + "".join(map(str, self.keep_fp32)))
        return "-".join(parts)

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "keep_fp32": list(self.keep_fp32)}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Int8Options:
        values = json.loads(text)
        values["keep_fp32"] = tuple(values.get("keep_fp32", ()))
        return cls(**values)


def parse_layers(text: str | None) -> tuple[int, ...]:
    """'3' or '1,3' -> (1, 3); '' or None -> ()."""
    if not text:
        return ()
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError as exc:
        raise ExportError(f"--int8-keep-fp32 takes layer numbers like 3 or 1,3; got {text!r}") from exc


def linear_nodes(model: onnx.ModelProto) -> list[str]:
    """Names of the Linear (Gemm/MatMul) nodes, in graph order: layer 1 first."""
    return [node.name for node in model.graph.node if node.op_type in LINEAR_OPS]


def _excluded_nodes(fp32_path: Path, keep_fp32: tuple[int, ...]) -> list[str]:
    import onnx

    names = linear_nodes(onnx.load(str(fp32_path), load_external_data=False))
    bad = [i for i in keep_fp32 if not 1 <= i <= len(names)]
    if bad:
        raise ExportError(f"--int8-keep-fp32: the generator has Linear layers 1..{len(names)}, not {bad}")
    # Dynamic quantization splits Gemm into MatMul + Add first, named NAME_MatMul: exclude both spellings.
    return [spelling for i in keep_fp32 for spelling in (names[i - 1], f"{names[i - 1]}_MatMul")]


class _NoiseReader:
    """Calibration batches of standard-normal z (``gankit.noise``, seed 0), as onnxruntime's reader wants; with
    balanced labels (``gankit.labels``, seed 0) for a class-conditional generator's ``label`` input."""

    def __init__(self, config: GeneratorConfig, samples: int, batch: int = 256) -> None:
        from gankit.labels import BALANCED
        from gankit.noise import noise

        inputs = {"z": noise(0, 0, samples, config.latent_dim).numpy()}
        if config.num_classes:
            inputs["label"] = BALANCED.labels(0, 0, samples, config.num_classes).numpy()
        self._batches: Iterator[dict] = iter(
            [{name: value[i : i + batch] for name, value in inputs.items()} for i in range(0, samples, batch)]
        )

    def get_next(self) -> dict | None:
        return next(self._batches, None)


def quantize(fp32_path: Path, out_path: Path, options: Int8Options, config: GeneratorConfig) -> None:
    """Write the int8 version of the fp32 export ``fp32_path`` (of a generator of ``config``) to ``out_path``."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )

    types = {"qint8": QuantType.QInt8, "quint8": QuantType.QUInt8}
    excluded = _excluded_nodes(fp32_path, options.keep_fp32)
    quiet = logging.getLogger()
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # onnxruntime.quantization logs advice on the root logger
    try:
        if options.mode == "dynamic":
            quantize_dynamic(
                str(fp32_path),
                str(out_path),
                weight_type=types[options.weights],
                per_channel=options.per_channel,
                nodes_to_exclude=excluded,
            )
            return

        class Reader(_NoiseReader, CalibrationDataReader):
            pass

        quantize_static(
            str(fp32_path),
            str(out_path),
            Reader(config, options.calibration_samples),
            quant_format=QuantFormat.QDQ,
            per_channel=options.per_channel,
            weight_type=types[options.weights],
            activation_type=types[options.activations],
            calibrate_method={
                "minmax": CalibrationMethod.MinMax,
                "percentile": CalibrationMethod.Percentile,
                "entropy": CalibrationMethod.Entropy,
            }[options.calibration],
            nodes_to_exclude=excluded,
        )
    finally:
        quiet.setLevel(level)
