"""Lanes: what turns a seed's index range into images, one batch at a time, for the sampler and the dataset.

A lane runs the whole chain of one batch: noise (``gankit.noise``) [and, for a class-conditional generator, the
labels of its ``gankit.labels.LabelSpec``] -> the model -> images in the caller's dtype, written into the
caller's slice of a buffer. ``open_lanes`` builds them for a backend and a label spec:

- onnxruntime and OpenVINO on the CPU (``RuntimeLane``): each lane is its own session (an OpenVINO stream) of
  ``threads`` runtime threads, writing its float images into a buffer of its own (no fresh 12.8 MB array a
  batch), then mapped to uint8 on the lane's thread by ``gankit.pixels.to_uint8_into``, cache-sized chunk by
  chunk. (The same mapping inside the graph cost more, measured: ~1.5 CPU µs a 784-pixel image in both
  runtimes against 0.5.) Several lanes run side by side, each on its own batches: the cores are then shared
  between noise, model and conversion in proportion to what each costs, and no core waits at a barrier for
  another (one session of many threads makes every thread wait for the slowest at each layer, and any
  other stage running on the same cores slows the whole session).
- a runtime backend that does not run in lanes (a graph made elsewhere, whose output the backend reshapes and
  maps) on the CPU: one ``RuntimeLane`` on the backend's own session (``run_numpy``).
- any other backend, or a GPU (``BackendLane``): one lane, the backend itself. On a GPU the noise stays in
  the kernel (the Triton backend's ``generate_resolved``) and the copies into pinned host memory are
  asynchronous.

A lane fills a NumPy array or a CPU tensor (a pinned one from a GPU). The runtime lanes never import torch.

How many lanes of how many threads is measured, not guessed (``plan_lanes``): each split of the process's
threads (``gankit.cpu.compute_threads``) into lanes x threads runs the real chain (noise, model, uint8) on all its
lanes at once for half a second; the fastest wins. The measurement is made once per machine, model, path and
batch size and cached with the ``--backend auto`` choices (``gankit.cache``).

A runtime lane's images equal its backend's for the same batch, bit for bit: the same graph, the same
rounding, and a session's thread count (or OpenVINO's stream) does not change its sums (the tests check both
runtimes).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from gankit.backends import Backend
from gankit.cpu import compute_threads
from gankit.labels import LabelError, LabelSpec
from gankit.noise import noise_array
from gankit.pixels import check_finite, to_uint8_into
from gankit.runtime import compile_openvino, feeds, onnxruntime_session

if TYPE_CHECKING:
    import torch

RUNTIMES = ("onnxruntime", "openvino")
MEASURE_SECONDS = 0.5
DTYPES = {name: np.dtype(name) for name in ("uint8", "float16", "float32")}  # what a lane can write


class Lane(Protocol):
    def fill(self, seed: int, first: int, out: np.ndarray | torch.Tensor) -> None:
        """Write the images of samples first .. first+len(out)-1 of ``seed`` into ``out`` ((B, C, H, W), its
        dtype): a NumPy array or a CPU tensor (a pinned one, from a GPU backend)."""


def _host(out: Any) -> np.ndarray:
    """``out`` as a NumPy array sharing its memory (a CPU tensor's ``numpy()``)."""
    return out if isinstance(out, np.ndarray) else out.numpy()


class BackendLane:
    """Any backend: ``generate_resolved``, then copied into ``out`` (asynchronously into pinned memory from a GPU).
    ``labels``: the resolved spec of a class-conditional generator (None for an unconditional one)."""

    def __init__(self, backend: Backend, labels: LabelSpec | None = None) -> None:
        self.backend, self.labels = backend, labels
        self.non_blocking = backend.device_type == "cuda"

    def fill(self, seed: int, first: int, out: np.ndarray | torch.Tensor) -> None:
        import torch

        target = torch.from_numpy(out) if isinstance(out, np.ndarray) else out
        output = "uint8" if target.dtype == torch.uint8 else "float"
        images = self.backend.generate_resolved(seed, first, target.shape[0], output, self.labels)
        asynchronous = self.non_blocking and target.is_pinned()  # a pageable buffer is copied synchronously
        target.copy_(images if images.dtype == target.dtype else images.to(target.dtype), non_blocking=asynchronous)


class RuntimeLane:
    """A CPU session of onnxruntime or OpenVINO: ``run`` maps z (B, latent) float32 [and labels (B,) int64, for a
    class-conditional generator: ``labels`` is its spec, ``num_classes`` its K] to images (B, C, H, W) float32 in
    [-1, 1] (or uint8 0..255, from a uint8 export), an array the next call may overwrite."""

    def __init__(
        self,
        run: Callable[..., np.ndarray],
        latent_dim: int,
        labels: LabelSpec | None = None,
        num_classes: int = 0,
    ) -> None:
        self.run, self.latent_dim, self.labels, self.num_classes = run, latent_dim, labels, num_classes

    def fill(self, seed: int, first: int, out: np.ndarray | torch.Tensor) -> None:
        target = _host(out)
        given = (noise_array(seed, first, target.shape[0], self.latent_dim),)
        if self.labels is not None:
            given += (self.labels.label_array(seed, first, target.shape[0], self.num_classes),)
        images = self.run(*given)
        check_finite(images, first)
        if images.dtype == np.uint8:  # a uint8 export: its levels as they are, or back to [-1, 1] as the backend
            target[...] = images if target.dtype == np.uint8 else images.astype(np.float32) / 127.5 - 1.0
        elif target.dtype == np.uint8:
            to_uint8_into(images, target)
        else:
            target[...] = images  # float32, or cast to float16 (round to nearest even, as torch)


class _OnnxRun:
    """One onnxruntime session of ``graph`` writing into a float32 buffer of its own (IOBinding): a fresh output
    array each batch would cost its page faults."""

    def __init__(self, graph, threads: int) -> None:
        # spinning workers would keep the cores from the noise, the other lanes and the writer between runs
        self.session = onnxruntime_session(graph.path, threads, spin=False)
        self.graph, self.image_shape = graph, graph.config.image_shape
        self.buffer = np.empty((0, *self.image_shape), dtype=np.float32)

    def __call__(self, z: np.ndarray, labels: np.ndarray | None = None) -> np.ndarray:
        if len(self.buffer) != len(z):
            self.buffer = np.empty((len(z), *self.image_shape), dtype=np.float32)
        binding = self.session.io_binding()
        for name, value in feeds(self.graph, z, labels).items():
            binding.bind_cpu_input(name, value)
        binding.bind_output(self.graph.output_name, "cpu", 0, np.float32, self.buffer.shape, self.buffer.ctypes.data)
        self.session.run_with_iobinding(binding)
        return self.buffer


def runs_in_lanes(backend: Backend) -> bool:
    """Whether ``backend`` can run as several CPU lanes (onnxruntime or OpenVINO on the CPU, on a gankit graph).

    A generator graph made elsewhere runs as one lane through its backend, which reshapes its output and maps
    a [0, 1] range to [-1, 1]; lanes call the runtime on the raw graph."""
    graph = getattr(backend, "graph", None)
    foreign = graph is not None and graph.foreign
    return backend.name in RUNTIMES and backend.device_type == "cpu" and not foreign


def backend_lane(backend: Backend, labels: LabelSpec | None = None) -> Lane:
    """One lane running ``backend`` itself: on the CPU, a runtime backend's own session through ``run_numpy``
    (no torch; a foreign graph's output reshaped and mapped as the backend does), else a ``BackendLane``.
    ``labels``: resolved already (``gankit.labels.resolve``)."""
    if backend.name in RUNTIMES and backend.device_type == "cpu":
        return RuntimeLane(backend.run_numpy, backend.config.latent_dim, labels, backend.num_classes)
    return BackendLane(backend, labels)


def _openvino_runs(graph, precision: str, count: int, threads: int) -> list[Callable[[np.ndarray], np.ndarray]]:
    """``count`` infer requests on one OpenVINO compilation of ``graph``, one stream of
    ``threads`` threads each. One compilation with a stream a lane, not one a lane: each compilation pins its
    threads from the first core on, so separate ones of one thread each all ran on core 0 (measured: two such
    lanes made less than one)."""
    import openvino.properties as props
    import openvino.properties.hint as hints

    mode = hints.PerformanceMode.LATENCY if count == 1 else hints.PerformanceMode.THROUGHPUT
    config = {props.inference_num_threads: count * threads, props.num_streams: count, hints.performance_mode: mode}
    compiled = compile_openvino(graph.path, precision, config)

    def run_on(request):
        # share_outputs: a view of the request's output, valid until its next call: RuntimeLane copies it at once.
        def run(z: np.ndarray, labels: np.ndarray | None = None) -> np.ndarray:
            return request.infer(feeds(graph, z, labels), share_inputs=True, share_outputs=True)[0]

        return run

    return [run_on(compiled.create_infer_request()) for _ in range(count)]


def open_lanes(
    backend: Backend, count: int = 1, threads: int | None = None, labels: LabelSpec | None = None
) -> list[Lane]:
    """``count`` lanes of ``threads`` runtime threads each for ``backend`` (they write uint8, float16 or float32).
    ``labels``: the job's label spec, resolved already (``gankit.labels.resolve``: None for an unconditional
    generator, a spec for a conditional one).

    Each runtime lane runs once here, in the calling thread: the first ``infer`` of OpenVINO's Python binding
    initialises a function-level static that calls back into Python; two lanes making their first call at
    once deadlocked (one held the GIL waiting for the static, the other held the static waiting for the GIL).

    Backends that do not run in lanes (``runs_in_lanes``) give one ``backend_lane`` whatever ``count`` is."""
    if labels is None and backend.num_classes:
        raise LabelError("a class-conditional generator's lanes take the job's resolved spec (gankit.labels.resolve)")
    if not runs_in_lanes(backend):
        return [backend_lane(backend, labels)]
    threads = threads or compute_threads()
    if backend.name == "openvino":
        runs = _openvino_runs(backend.graph, backend.precision, count, threads)
    else:
        runs = [_OnnxRun(backend.graph, threads) for _ in range(count)]
    first = (np.zeros((1, backend.config.latent_dim), dtype=np.float32),)
    if labels is not None:
        first += (np.zeros(1, dtype=np.int64),)
    for run in runs:  # each lane's first call here, one at a time (see the docstring)
        run(*first)
    return [RuntimeLane(run, backend.config.latent_dim, labels, backend.num_classes) for run in runs]


def measure_split(
    backend: Backend, dtype: str, batch: int, count: int, threads: int, labels: LabelSpec | None = None
) -> float:
    """Samples/s of ``count`` lanes of ``threads`` threads making batches at once, after one warm-up batch each
    (``labels``: the resolved spec, as ``open_lanes``)."""
    lanes = open_lanes(backend, count, threads, labels)
    buffers = [np.empty((batch, *backend.config.image_shape), dtype=DTYPES[dtype]) for _ in lanes]
    batches = [0] * count
    for lane, buffer in zip(lanes, buffers):
        lane.fill(0, 0, buffer)
    stop = time.perf_counter() + MEASURE_SECONDS

    def work(i: int) -> None:
        while time.perf_counter() < stop:
            lanes[i].fill(0, (batches[i] * count + i) * batch, buffers[i])
            batches[i] += 1

    begin = time.perf_counter()
    workers = [threading.Thread(target=work, args=(i,)) for i in range(count)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return sum(batches) * batch / (time.perf_counter() - begin)


def plan_lanes(backend: Backend, dtype: str, batch: int, labels: LabelSpec | None = None) -> tuple[int, int, str]:
    """(lanes, threads a lane, why): the measured fastest split of ``compute_threads()`` (module docstring);
    ``labels``: the resolved spec, as ``open_lanes``."""
    total = compute_threads()
    if not runs_in_lanes(backend):
        return 1, total, f"{backend.name} runs as one lane"
    splits = [(total // t, t) for t in sorted({1, 2, 4, total}) if total % t == 0]
    if len(splits) == 1:
        return 1, total, "one thread: one lane"
    from gankit.cache import cached, machine_key
    from gankit.models import ModelFile

    source = backend.source or ModelFile(backend.path)  # a backend built directly: its graph file
    model = [source.sha256, backend.path.name]  # the model, and its graph (a cached export is named by its content)
    key = json.dumps(["lanes", *machine_key(), *model, backend.precision, dtype, batch, splits])

    def measure() -> dict[str, float]:
        return {
            f"{count}x{threads}": measure_split(backend, dtype, batch, count, threads, labels)
            for count, threads in splits
        }

    rates = cached(key, measure)
    best = max(rates, key=rates.get)
    count, threads = map(int, best.split("x"))
    shown = ", ".join(f"{label} {rate:,.0f}/s" for label, rate in sorted(rates.items(), key=lambda kv: -kv[1]))
    return count, threads, f"lanes x threads measured once per machine and model at batch {batch}: {shown}"
