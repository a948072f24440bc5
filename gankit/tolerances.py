"""Every tolerance gankit holds a result to, and where each comes from: one table.

Images are in [-1, 1] unless a name says levels (uint8 grey levels: 127.5 a unit, ``gankit.pixels``).

Export parity (``gankit.onnx.parity``: an export against its generator in float64, on fresh inputs)
- fp32: FP32_HEADROOM (3) times the source generator's own fp32 forward's error against float64 on the same
  inputs, measured in the same check: every correct fp32 implementation shares the rounding of the fp32
  intermediates (h1, h2, the pre-tanh values) and adds only its own summation order, so it cannot be held to
  less. Never below FP32_FLOOR (8 float32 epsilons: the last roundings of tanh and its argument alone reach a few
  ulps).
- fp16: max 1e-2, mean 1e-3. fp16's unit roundoff is 2**-11 (4.9e-4); three layers of dot products of length
  <= 512 accumulate a few of those and tanh's slope is <= 1: 1e-2 is 20 roundoffs (~1.3 levels), the mean a
  tenth of it. A broken fp16 graph (a layer in the wrong precision, an overflow) is orders above either.
- int8: the 99.9th percentile of |diff| <= 1.0 (half the output range) and the mean <= 0.04 (5 levels).
  Activations are quantized to 256 levels of a range, so a correct int8 export moves a few outlier pixels near
  tanh's steep middle far: the max is not a bound a correct export keeps, the 99.9th percentile and the mean
  are (a broken model, wrong scales or a layer left out, is far above both).
- uint8 output: the graph rounds in its own precision, so a value on a .5 boundary may land one level from the
  rounded float64 reference: max 1 level and mean 0.5 levels in fp32; the precision's own bound otherwise.

The bench gate (``gankit.perf.bench``: each backend against eager fp32 before it is timed)
- fp32: 1e-4. Another backend sums the same products in another order; reordering a sum of n terms moves it by
  at most n x 2**-24 x the sum of their magnitudes, ~3e-5 for the widest layer (512 terms) at the magnitudes of
  these layers' sums, and tanh only shrinks it: 1e-4 leaves 3x.
- tf32: 1e-2, fp16's parity max (tf32 keeps 11 significant bits, as fp16 does); fp16: 3e-2, fp16's parity max
  times 3, since the gate's batch (4,096) is 4x parity's largest and a max over more samples reaches further
  into the tail.
- bf16 and int8 are gated on the 99.9th percentile and the mean, as int8's parity: int8 with its parity
  numbers; bf16 with fp16's parity numbers times 2**3, since bf16 keeps 8 significant bits to fp16's 11.

Auto-select (``gankit.backends.autoselect``: may a lower precision stand in for fp32?)
- 2,500 seeded samples must score an MNIST-FID within AUTO_FID_MARGIN (5 %) of eager fp32's on the same
  seeds: FID's own sampling spread at 2,500 samples between two seeds of the same generator is of that
  size, so a path inside it is indistinguishable from fp32 by this score; with every digit at least
  AUTO_COVERAGE_FRACTION as common as under fp32 (a lost mode is what FID at this size may miss).
- a generator that does not make 28x28 greyscale images: the mean pixel difference from fp32 within
  AUTO_MEAN_LEVELS (1 grey level: the uint8 files could differ by at most a rounding on average).

Importing a foreign module (``gankit.models.module``)
- IMPORT_VERIFY 1e-9: the folded generator and the module, both in float64 on the same z, differ only by
  reassociation (~1e-16 a step, ~1e-13 over a deep MLP); any missed step moves outputs by orders more.
"""

from __future__ import annotations

import numpy as np

# export parity
FP32_HEADROOM = 3.0
FP32_FLOOR = 8 * float(np.finfo(np.float32).eps)
PARITY_MAX = {"fp16": 1e-2, "int8": 1.0}  # int8: on the 99.9th percentile of |diff|, not its max
PARITY_MEAN = {"fp16": 1e-3, "int8": 0.04}
PARITY_QUANTILE = 0.999
UINT8_MAX_LEVELS, UINT8_MEAN_LEVELS = 1.0, 0.5

# the bench gate
BENCH_MAX = {"fp32": 1e-4, "tf32": 1e-2, "fp16": 3e-2}
BENCH_QUANTILE_RULE = {  # (99.9th percentile, mean) of |diff| against eager fp32
    "int8": (PARITY_MAX["int8"], PARITY_MEAN["int8"]),
    "bf16": (2**3 * PARITY_MAX["fp16"], 2**3 * PARITY_MEAN["fp16"]),
}

# auto-select's quality bound
AUTO_FID_MARGIN = 0.05
AUTO_COVERAGE_FRACTION = 0.5
AUTO_MEAN_LEVELS = 1.0

# importing a foreign module
IMPORT_VERIFY = 1e-9
