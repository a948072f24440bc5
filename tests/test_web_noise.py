"""The noise contract in JavaScript (gankit/web/static/gankit.js, ``GankitNoise``) run by Node: bit for bit
``gankit.noise`` for (seed, index) pairs at the extremes (64-bit seeds, indices past 2**32, counters that carry
across 2**32 inside one call) and for every one of the 2**23 uniforms through the float part (ln, sqrt, cos,
sin). Exact equality: every step is a correctly rounded float32 operation in a fixed order, so no tolerance."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
from pathlib import Path

import numpy as np

from gankit._noise import np_impl
from gankit.noise import NOISE_NAME, noise

SCRIPT = Path(__file__).resolve().parents[1] / "gankit" / "web" / "static" / "gankit.js"
ALL_WORDS = np.arange(2**23, dtype=np.uint32) << np.uint32(9)  # every top-23-bit pattern: every uniform
CASE_SEED = 20261202  # the random pairs below are drawn from this seed
FIXED_CASES = [  # (seed, start, count, latent)
    (0, 0, 40, 100),
    (2**64 - 1, 2**33 + 3, 17, 7),
    (2**32 - 1, 2**31 - 3, 9, 1),
    (2**32, 2**32, 5, 100),
    (2**40 + 17, 5, 3, 101),
    (987654321, 2**33 - 2, 9, 4),
    (12345, 2**32 // 25 - 1, 4, 100),  # counters i * 25 + g cross 2**32 inside the call
    (2**63 + 1, 2**63 // 25 - 2, 2, 100),  # the last samples below the 2**63 counters
]
NODE_RUNNER = """
const fs = require("fs");
const vm = require("vm");
vm.runInThisContext(fs.readFileSync(process.argv[2], "utf8"), { filename: "gankit.js" });
const job = JSON.parse(fs.readFileSync(process.argv[3], "utf8"));
const out = fs.openSync(process.argv[4], "w");
const write = (array) => fs.writeSync(out, new Uint8Array(array.buffer, array.byteOffset, array.byteLength));
if (job.kind === "name") {
  fs.writeSync(out, GankitNoise.NAME);
} else if (job.kind === "noise") {
  for (const [seed, start, count, latent] of job.cases) {
    write(GankitNoise.noise(BigInt(seed), BigInt(start), count, latent));
  }
} else {
  const words = new Uint32Array(job.count);
  for (let j = 0; j < job.count; j++) words[j] = (j << 9) >>> 0;
  const parts = GankitNoise.uniformParts(words);
  write(parts.radii);
  write(parts.cos);
  write(parts.sin);
}
fs.closeSync(out);
"""


def run_node(tmp_path: Path, job: dict) -> bytes:
    """Run GankitNoise in Node on ``job``; the raw bytes it writes."""
    node = shutil.which("node")
    assert node is not None, "Node.js is needed for the JavaScript noise tests (CI has it)"
    runner, job_file, out = tmp_path / "runner.js", tmp_path / "job.json", tmp_path / "out.bin"
    runner.write_text(NODE_RUNNER)
    job_file.write_text(json.dumps(job))
    subprocess.run([node, str(runner), str(SCRIPT), str(job_file), str(out)], check=True, timeout=300)
    return out.read_bytes()


def test_name_is_the_contract(tmp_path):
    assert run_node(tmp_path, {"kind": "name"}).decode() == NOISE_NAME


def test_noise_equals_gankit_noise(tmp_path):
    rng = random.Random(CASE_SEED)
    cases = list(FIXED_CASES)
    for _ in range(200):
        latent = rng.choice([1, 3, 4, 7, 100, 101])
        groups = -(-latent // 4)
        start = rng.choice([rng.randrange(2**32), rng.randrange(2**32, 2**62 // groups)])
        cases.append((rng.randrange(2**64), start, rng.randrange(1, 4), latent))
    # Seeds and starts as strings: JSON numbers past 2**53 lose digits in JavaScript.
    got = np.frombuffer(
        run_node(tmp_path, {"kind": "noise", "cases": [[str(s), str(i), n, lat] for s, i, n, lat in cases]}), np.uint32
    )
    at = 0
    for seed, start, count, latent in cases:
        expected = noise(seed, start, count, latent).numpy().view(np.uint32).ravel()
        mine = got[at : at + expected.size]
        at += expected.size
        assert np.array_equal(mine, expected), f"seed {seed} start {start} count {count} latent {latent}"
    assert at == got.size


def test_float_part_over_all_uniforms(tmp_path):
    count = ALL_WORDS.size
    got = np.frombuffer(run_node(tmp_path, {"kind": "uniforms", "count": count}), np.uint32).reshape(3, count)
    cos, sin = np_impl.cos_sin(ALL_WORDS)
    for name, mine, expected in zip(("radius", "cos", "sin"), got, (np_impl.radius(ALL_WORDS), cos, sin)):
        differ = np.flatnonzero(mine != expected.view(np.uint32))
        assert differ.size == 0, (
            f"{name}: {differ.size} of 2**23 uniforms differ, first at word {ALL_WORDS[differ[0]]:#x}"
        )
