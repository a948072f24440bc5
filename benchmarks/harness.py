"""The one harness of ``benchmarks/``: where results go, the environment they carry, how they are written.

Every script writes its result through ``write_results`` (atomic JSON, and Markdown beside it when it has a table)
with ``environment()`` in it, and a docs page's block of the latest result through ``put_block``. Timing lives in
``gankit.timing`` (``settle``, ``time_cpu``, ``time_gpu``, ``summarise``), the environment record in
``gankit.perf.environment``: the harness adds only what a result file needs around them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from gankit.io import atomic_path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def environment(device=None) -> dict:
    """``gankit.perf.environment.environment`` for ``device`` (the CPU when None), with the commit from
    $GANKIT_COMMIT where git cannot tell (a copy of the repository without .git, as on a lent GPU machine)."""
    import torch

    from gankit.perf.environment import environment as gankit_environment

    env = gankit_environment(torch.device("cpu") if device is None else device)
    if env.get("git_commit", "unknown") == "unknown" and os.environ.get("GANKIT_COMMIT"):
        env["git_commit"] = os.environ["GANKIT_COMMIT"]
    return env


def write_results(path: Path, data: dict, markdown: str | None = None) -> Path:
    """``data`` as JSON at ``path`` (a .json suffix is added when it has none), and ``markdown`` beside it as .md,
    each written atomically: an interrupted run never leaves half a result. Returns the JSON path."""
    path = Path(path)
    path = path if path.suffix == ".json" else path.with_name(path.name + ".json")
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2) + "\n")
    if markdown is not None:
        with atomic_path(path.with_suffix(".md")) as tmp:
            tmp.write_text(markdown if markdown.endswith("\n") else markdown + "\n")
    return path


def put_block(page: Path, markers: tuple[str, str], lines: list[str]) -> None:
    """Replace what lies between ``markers`` in ``page`` (a docs page) with ``lines``; SystemExit when the page has
    no such markers. The block is generated: never hand-edit it."""
    text = page.read_text()
    start, end = markers
    if start not in text or end not in text:
        raise SystemExit(f"{page} has no {start} ... {end} markers")
    head, rest = text.split(start, 1)
    tail = rest.split(end, 1)[1]
    with atomic_path(page) as tmp:
        tmp.write_text(head + "\n".join([start, *lines, end]) + tail)


def add_run_arguments(parser, result_name: str) -> None:
    """The options every sampling benchmark takes: the path it times, where samples go, where the result goes, a
    note for the reader."""
    parser.add_argument("--path", default="auto", help="auto (what --precision auto picks) or BACKEND:PRECISION")
    parser.add_argument("--workdir", type=Path, default=None, help="where samples are written [a temporary folder]")
    parser.add_argument("--out", type=Path, default=None, help=f"[benchmarks/results/{result_name}-<cpu>-<date>.json]")
    parser.add_argument("--note", default="", help="what else the reader must know (e.g. the machine's load)")


def cpu_path(spec: str) -> tuple[str, str, str]:
    """(backend, precision, why) of a ``--path`` option: ``auto`` (what ``--precision auto`` picks for the bundled
    generator on this machine, measured once and cached) or ``BACKEND:PRECISION``."""
    if spec != "auto":
        name, precision = spec.split(":")
        return name, precision, "asked for"
    from gankit.backends.autoselect import choose_cpu_path
    from gankit.checkpoint import PRETRAINED, load_generator
    from gankit.io import sha256_of

    return choose_cpu_path(load_generator(), sha256_of(PRETRAINED))


CHROMIUM = "/usr/bin/chromium"  # Debian's: Playwright's own browser download is not reachable here
CHROMIUM_FLAGS = [  # a closed network: no background connections, no component updates
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
