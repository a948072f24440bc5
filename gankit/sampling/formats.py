"""Shard files for training pipelines: WebDataset tar shards and Parquet files with Hugging Face's Image feature.

Both are built in memory from a finished shard buffer and then written like every shard (``writer``: temp file,
fsync, rename, CRC-32 in the manifest). Their bytes depend on the pixels, labels and the job only, so a resumed,
multi-process or Ray run writes the same files as one process:

- ``webdataset``: a POSIX (ustar) tar, one member group a sample keyed by its zero-padded index
  (``000000123.png``, ``.cls`` with the label of a class-conditional generator, ``.json`` with seed, index, the
  model's sha256 and the noise's name); members carry mtime 0, uid/gid 0, no user names and mode 0644. uint8
  images are PNGs (``gankit.pixels.png_bytes``), float16 ones ``.npy`` arrays (C, H, W).
- ``parquet``: columns ``index`` (int64), ``label`` (int64, class-conditional only) and ``image``, Hugging Face's
  Image feature (a struct of PNG ``bytes`` and a null ``path``), with the ``huggingface`` schema metadata that
  tells ``datasets`` to decode it; row groups of about ``ROW_GROUP_BYTES`` of images, no compression on the
  PNGs (already deflated), statistics on ``index`` and ``label`` only.
"""

from __future__ import annotations

import io
import json
import tarfile
from typing import Any

import numpy as np

from gankit.pixels import png_bytes

TAR_MODE = 0o644
ROW_GROUP_BYTES = 1 << 20  # images a Parquet row group holds: a reader fetches and decodes one group at a time


def sample_meta(header: dict[str, Any]) -> dict[str, Any]:
    """What every sample's ``.json`` repeats of the job (``manifest.job_header``): seed, model sha256, noise."""
    return {"seed": header["seed"], "model_sha256": header["model"]["sha256"], "noise": header["noise_name"]}


_TAR_IDS = b"%07o\0" % TAR_MODE + b"0000000\0" * 2  # mode, uid, gid
_TAR_MTIME = b"00000000000\0"
_TAR_TAIL = b"0" + bytes(100) + b"ustar\x0000" + bytes(64 + 16 + 155 + 12)  # type, link, magic, names, dev, prefix
_TAR_FIXED_SUM = sum(_TAR_IDS) + sum(_TAR_MTIME) + sum(_TAR_TAIL) + 8 * ord(" ")  # the checksum field counts as spaces


def tar_header(name: str, size: int) -> bytes:
    """The ustar header of a regular file ``name`` (ASCII, < 100 bytes) of ``size`` bytes: mode ``TAR_MODE``, uid,
    gid and mtime 0, no user or group names; the bytes ``tarfile.TarInfo.tobuf(USTAR_FORMAT)`` gives them, built
    directly (tobuf costs more than a sample's PNG)."""
    encoded, length = name.encode("ascii"), b"%011o\0" % size
    checksum = _TAR_FIXED_SUM + sum(encoded) + sum(length)
    return b"".join(
        (encoded, bytes(100 - len(encoded)), _TAR_IDS, length, _TAR_MTIME, b"%06o\0 " % checksum, _TAR_TAIL)
    )


def _member(name: str, data: bytes) -> bytes:
    return tar_header(name, len(data)) + data + bytes(-len(data) % tarfile.BLOCKSIZE)


def _npy_bytes(array: np.ndarray) -> bytes:
    out = io.BytesIO()
    np.save(out, np.ascontiguousarray(array), allow_pickle=False)
    return out.getvalue()


def webdataset_shard(first: int, images: np.ndarray, labels: np.ndarray | None, meta: dict[str, Any]) -> bytes:
    """The tar bytes of samples first .. first+len(images)-1. images: (count, C, H, W) uint8 or float16;
    labels: (count,) int64 or None; meta: ``sample_meta``."""
    members = []
    for offset, image in enumerate(images):
        index = first + offset
        key = f"{index:09d}"
        if image.dtype == np.uint8:
            members.append(_member(f"{key}.png", png_bytes(image)))
        else:
            members.append(_member(f"{key}.npy", _npy_bytes(image)))
        if labels is not None:
            members.append(_member(f"{key}.cls", str(int(labels[offset])).encode()))
        record = json.dumps({**meta, "index": index}, sort_keys=True, separators=(",", ":"))
        members.append(_member(f"{key}.json", record.encode()))
    data = b"".join(members) + bytes(2 * tarfile.BLOCKSIZE)  # the end-of-archive marker
    return data + bytes(-len(data) % tarfile.RECORDSIZE)  # padded to whole records, as tar itself writes


def _features(conditional: bool) -> dict[str, Any]:
    """The ``huggingface`` metadata ``datasets`` reads back as its Features."""
    features: dict[str, Any] = {"index": {"dtype": "int64", "_type": "Value"}}
    if conditional:
        features["label"] = {"dtype": "int64", "_type": "Value"}
    features["image"] = {"_type": "Image"}
    return {"info": {"features": features}}


def parquet_shard(first: int, images: np.ndarray, labels: np.ndarray | None) -> bytes:
    """The Parquet bytes of samples first .. first+len(images)-1. images: (count, C, H, W) uint8; labels:
    (count,) int64 or None."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    pngs = [png_bytes(image) for image in images]
    columns: dict[str, pa.Array] = {"index": pa.array(np.arange(first, first + len(images), dtype=np.int64))}
    if labels is not None:
        columns["label"] = pa.array(np.asarray(labels, dtype=np.int64))
    columns["image"] = pa.StructArray.from_arrays(
        [pa.array(pngs, pa.binary()), pa.nulls(len(pngs), pa.string())], names=["bytes", "path"]
    )
    table = pa.table(columns).replace_schema_metadata({"huggingface": json.dumps(_features(labels is not None))})
    rows = max(1, ROW_GROUP_BYTES * len(pngs) // max(1, sum(map(len, pngs))))
    numbers = [name for name in columns if name != "image"]
    out = io.BytesIO()
    pq.write_table(
        table,
        out,
        row_group_size=rows,
        compression={**dict.fromkeys(numbers, "snappy"), "image.bytes": "none", "image.path": "none"},
        use_dictionary=False,
        write_statistics=numbers,
    )
    return out.getvalue()
