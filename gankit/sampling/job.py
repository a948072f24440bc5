"""What a sampling run is asked to do (``SampleJob``), how its index range splits into shards, and what it did.

Shards are fixed index ranges: shard k holds samples [start + k * shard_size, ...), so their contents do
not depend on the number of processes or on interruptions.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from gankit.checkpoint import model_path
from gankit.errors import SamplingError
from gankit.labels import LabelSpec
from gankit.models import ImportOptions

FORMATS = ("npy", "png", "webdataset", "parquet", "grid")
ENGINES = ("local", "ray")
DTYPES = ("uint8", "float16")
MAX_GRID = 4096
MAX_PNG = 100_000
BATCH = 4096  # the default --batch-size
N = 64  # the default --n: an 8 x 8 grid
SHARD_SIZE = 65536  # the default --shard-size
MAX_SHARDS = 1_000_000  # the manifest lists every shard and is rewritten whole: a bound on its size
MAX_INDEX = 2**63  # the noise contract's Philox counters (gankit.noise; a latent above 4 lowers it further)


@dataclass
class SampleJob:
    """What to generate and where. ``out`` is a folder for npy/png/webdataset/parquet, a .png file for grid.

    ``engine``: ``local`` (this process, or one a torchrun rank) or ``ray`` (shards as Ray tasks on the cluster at
    ``address``, None: a local Ray; at most ``workers`` at once, None: one a CPU); the files are the same."""

    out: Path
    n: int
    model: Path | None = None
    seed: int = 0
    start: int = 0
    backend: str = "auto"
    precision: str = "fp32"
    batch_size: int = BATCH
    format: str = "npy"
    dtype: str = "uint8"
    shard_size: int = SHARD_SIZE
    device: str = "auto"
    compile_mode: str = "default"
    resume: bool = False
    force: bool = False  # a grid: replace an existing --out (gankit.io.refuse_overwrite)
    import_options: ImportOptions | None = None  # what a foreign model file cannot say (gankit.models)
    labels: LabelSpec | None = None  # a class-conditional generator's labels (None: balanced); gankit.labels
    engine: str = "local"
    address: str | None = None
    workers: int | None = None

    def __post_init__(self) -> None:
        self.out = Path(self.out)
        self.model = Path(self.model) if self.model is not None else None
        if self.n <= 0:
            raise SamplingError(f"--n must be positive, got {self.n}")
        if self.start < 0 or not 0 <= self.seed < 2**64:
            raise SamplingError(f"need --start >= 0 and 0 <= --seed < 2**64 (got {self.start}, {self.seed})")
        if self.batch_size <= 0 or self.shard_size <= 0:
            raise SamplingError(
                f"--batch-size and --shard-size must be positive ({self.batch_size}, {self.shard_size})"
            )
        if self.start + self.n > MAX_INDEX:
            raise SamplingError(
                f"samples {self.start} .. {self.start + self.n - 1} pass the last index the noise defines "
                f"({MAX_INDEX - 1}); lower --start or --n"
            )
        shards = -(-self.n // self.shard_size)
        if self.format != "grid" and shards > MAX_SHARDS:
            raise SamplingError(
                f"--n {self.n} at --shard-size {self.shard_size} is {shards:,} shards; at most {MAX_SHARDS:,}: "
                "raise --shard-size"
            )
        # A batch never spans two shards (nor passes n), so a larger one makes the same images and only costs
        # memory; above BATCH it is lowered to what the job can use (a small job keeps BATCH: the batch size keys
        # the cached lanes measurement).
        usable = max(BATCH, min(self.n, self.shard_size if self.format != "grid" else self.n))
        self.batch_size = min(self.batch_size, usable)
        if self.format not in FORMATS:
            raise SamplingError(f"unknown --format {self.format!r}; choose from {', '.join(FORMATS)}")
        if self.dtype not in DTYPES:
            raise SamplingError(f"unknown --dtype {self.dtype!r}; choose from {', '.join(DTYPES)}")
        if self.format == "parquet" and self.dtype != "uint8":
            raise SamplingError("--format parquet stores PNG images (uint8); use npy or webdataset for float16")
        if self.format == "parquet" and importlib.util.find_spec("pyarrow") is None:
            raise SamplingError("--format parquet needs pyarrow: pip install 'gankit[parquet]'")
        if self.engine not in ENGINES:
            raise SamplingError(f"unknown --engine {self.engine!r}; choose from {', '.join(ENGINES)}")
        if self.engine == "ray" and self.format == "grid":
            raise SamplingError("--engine ray writes shards; a grid is one picture: drop --engine ray")
        if self.engine != "ray" and (self.address is not None or self.workers is not None):
            raise SamplingError("--address and --workers are options of --engine ray")
        if self.workers is not None and self.workers <= 0:
            raise SamplingError(f"--workers must be positive, got {self.workers}")
        if self.format == "grid" and self.n > MAX_GRID:
            raise SamplingError(f"a grid holds at most {MAX_GRID} samples (asked {self.n}); use --format npy")
        if self.format == "png" and self.n > MAX_PNG:
            raise SamplingError(f"--format png writes one file a sample, at most {MAX_PNG}; use --format npy")

    def backend_options(self) -> dict[str, object]:
        """What ``gankit.backends.resolve.open_backend`` takes from this job besides the model."""
        return {
            "backend": self.backend,
            "precision": self.precision,
            "device": self.device,
            "batch_size": self.batch_size,
            "compile_mode": self.compile_mode,
            "import_options": self.import_options,
        }

    @property
    def model_path(self) -> Path:
        return model_path(self.model)


CHECKSUMS = ("crc32", "sha256")  # what new shards record; what earlier runs recorded (still read)


def format_for(out: str | Path, format: str | None = None) -> str:
    """The ``--format`` of a job: ``format`` when given, else ``grid`` for an ``--out`` ending in .png, else npy."""
    return format or ("grid" if str(out).endswith(".png") else "npy")


@dataclass
class ShardRecord:
    """A finished shard: its file (or PNG folder), index range, size in bytes and checksum (hex, of ``algorithm``);
    for a class-conditional generator, ``labels``: its labels file's entry ``{"file", "bytes", "crc32"}``."""

    file: str
    start: int
    count: int
    bytes: int
    checksum: str
    algorithm: str = CHECKSUMS[0]
    labels: dict[str, object] | None = None

    def to_json(self) -> dict[str, object]:
        """The manifest's entry: the checksum under its algorithm's name (``"crc32": "1c291ca3"``), and the labels
        file's entry under ``labels`` when there is one."""
        entry = {
            "file": self.file,
            "start": self.start,
            "count": self.count,
            "bytes": self.bytes,
            self.algorithm: self.checksum,
        }
        return entry if self.labels is None else {**entry, "labels": self.labels}

    @classmethod
    def from_json(cls, entry: dict[str, object]) -> ShardRecord:
        algorithm = next((name for name in CHECKSUMS if name in entry), None)
        if algorithm is None:
            raise SamplingError(f"a shard entry names no checksum of {', '.join(CHECKSUMS)}: {entry}")
        fields = {key: entry[key] for key in ("file", "start", "count", "bytes")}
        return cls(**fields, checksum=entry[algorithm], algorithm=algorithm, labels=entry.get("labels"))


@dataclass
class SampleResult:
    out: Path
    backend: str
    samples_written: int
    seconds: float
    warmup_seconds: float
    interrupted: bool = False
    shards: list[ShardRecord] = field(default_factory=list)

    @property
    def samples_per_second(self) -> float:
        return self.samples_written / self.seconds if self.seconds > 0 else float("nan")


def shards_of(job: SampleJob) -> Iterator[tuple[int, int, int]]:
    """(shard index, first sample, count) over the job's range."""
    for index, offset in enumerate(range(0, job.n, job.shard_size)):
        yield index, job.start + offset, min(job.shard_size, job.n - offset)


SHARD_NAMES = {
    "npy": "shard_{:05d}.npy",
    "png": "shard_{:05d}/",
    "webdataset": "shard-{:05d}.tar",  # WebDataset's own spelling: shard-{00000..00009}.tar
    "parquet": "shard-{:05d}.parquet",
}


def shard_name(job: SampleJob, index: int) -> str:
    """``shard_NNNNN.npy`` (npy), the folder ``shard_NNNNN/`` of one PNG a sample (png), ``shard-NNNNN.tar``
    (webdataset) or ``shard-NNNNN.parquet`` (parquet)."""
    return SHARD_NAMES[job.format].format(index)


def holds_labels(name: str) -> bool:
    """Whether shard ``name`` holds its samples' labels itself (tar, Parquet) instead of a labels file beside it."""
    return name.endswith((".tar", ".parquet"))


def labels_name(shard: str) -> str:
    """The labels file beside shard ``shard_NNNNN.npy`` or ``shard_NNNNN/``: ``shard_NNNNN.labels.npy``."""
    return shard.removesuffix("/").removesuffix(".npy") + ".labels.npy"
