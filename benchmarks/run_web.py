"""The generator in the browser beside native onnxruntime: samples/s of the same graph, measured in one run.

    python -m benchmarks.run_web [--model unconditional] [--batches 64,1024] [--threads 1,2] [--out PATH]

``gankit export --format web`` makes the folder (the model is its uint8-output ONNX graph); it is served on
127.0.0.1, with the cross-origin isolation headers (COOP/COEP) that onnxruntime-web needs for more than one WASM
thread, and opened in headless Debian Chromium driven by Playwright. A benchmark page written beside the export
(never shipped) loads the folder's own onnxruntime-web runtime with ``numThreads`` set before the WASM starts,
makes one session of the model and times ``session.run`` on z of each batch size (two warm-up runs, then at
least ``--seconds`` of runs; the median). Native onnxruntime runs the same file through ``gankit.runtime`` with
the same thread counts, timed by ``gankit.timing.time_cpu``. Writes benchmarks/results/web-<cpu>-<date>.json/.md.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import http.server
import json
import statistics
import tempfile
import threading
from pathlib import Path

import numpy as np

from benchmarks.harness import CHROMIUM, CHROMIUM_FLAGS, RESULTS, environment, write_results
from benchmarks.run_sampling import slug
from gankit.runtime import onnxruntime_session
from gankit.timing import settle, time_cpu

PAGE = """<!doctype html>
<meta charset="utf-8">
<title>gankit onnxruntime-web benchmark</title>
<script src="ort/ort.wasm.min.js"></script>
<script>
(async () => {
  try {
    const query = new URLSearchParams(location.search);
    const threads = Number(query.get("threads")), seconds = Number(query.get("seconds"));
    const batches = query.get("batches").split(",").map(Number);
    ort.env.wasm.wasmPaths = new URL("ort/", location.href).href;
    ort.env.wasm.numThreads = threads;
    const contract = await (await fetch("gankit.json")).json();
    const session = await ort.InferenceSession.create("generator.onnx", { executionProviders: ["wasm"] });
    const latent = contract.config.latent_dim;
    const rows = [];
    for (const batch of batches) {
      const z = new Float32Array(batch * latent);
      for (let i = 0; i < z.length; i++) z[i] = Math.sin(i * 12.9898) * 1.5;  // any finite values: speed only
      const feeds = { z: new ort.Tensor("float32", z, [batch, latent]) };
      await session.run(feeds);
      await session.run(feeds);
      const times = [];
      const begin = performance.now();
      while (times.length < 5 || performance.now() - begin < seconds * 1000) {
        const t0 = performance.now();
        await session.run(feeds);
        times.push((performance.now() - t0) / 1000);
      }
      rows.push({ batch, times });
    }
    window.benchResult = { threads, isolated: self.crossOriginIsolated, rows };
  } catch (error) {
    window.benchResult = { error: String(error && error.message || error) };
  }
})();
</script>
"""


class _Handler(http.server.SimpleHTTPRequestHandler):
    isolate = False

    def end_headers(self) -> None:
        if self.isolate:
            self.send_header("Cross-Origin-Opener-Policy", "same-origin")
            self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
        super().end_headers()

    def log_message(self, *args) -> None:
        pass


def serve(folder: Path, isolate: bool) -> tuple[http.server.ThreadingHTTPServer, str]:
    handler = type("Handler", (_Handler,), {"isolate": isolate})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(folder)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, f"http://127.0.0.1:{httpd.server_port}"


def browser_rows(folder: Path, batches: list[int], threads: list[int], seconds: float) -> list[dict]:
    """onnxruntime-web in headless Chromium: one page a thread count (isolated when more than one thread)."""
    from playwright.sync_api import sync_playwright

    (folder / "bench.html").write_text(PAGE)
    rows = []
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True)
        try:
            for count in threads:
                httpd, base = serve(folder, isolate=count > 1)
                try:
                    page = chromium.new_page()
                    page.goto(
                        f"{base}/bench.html?threads={count}&seconds={seconds}&batches={','.join(map(str, batches))}"
                    )
                    page.wait_for_function("window.benchResult !== undefined", timeout=600_000)
                    result = page.evaluate("window.benchResult")
                    page.close()
                finally:
                    httpd.shutdown()
                    httpd.server_close()
                if "error" in result:
                    raise SystemExit(f"the benchmark page failed: {result['error']}")
                if count > 1 and not result["isolated"]:
                    raise SystemExit("the page is not cross-origin isolated: onnxruntime-web would run one thread")
                for row in result["rows"]:
                    median = statistics.median(row["times"])
                    rows.append(
                        {
                            "runtime": f"onnxruntime-web {count} WASM thread{'s' if count > 1 else ''}",
                            "threads": count,
                            "batch": row["batch"],
                            "median_s": median,
                            "samples_per_s": row["batch"] / median,
                            "runs": len(row["times"]),
                        }
                    )
        finally:
            chromium.close()
    return rows


def native_rows(model: Path, latent: int, batches: list[int], threads: list[int], seconds: float) -> list[dict]:
    """Native onnxruntime (gankit.runtime's session) on the same file, the same thread counts and batches."""
    rows = []
    for count in threads:
        session = onnxruntime_session(model, threads=count)
        for batch in batches:
            z = np.random.default_rng(0).standard_normal((batch, latent), dtype=np.float32)
            times = time_cpu(lambda z=z, run=session.run: run(None, {"z": z}), min_seconds=seconds)
            median = statistics.median(times)
            rows.append(
                {
                    "runtime": f"onnxruntime (native) {count} thread{'s' if count > 1 else ''}",
                    "threads": count,
                    "batch": batch,
                    "median_s": median,
                    "samples_per_s": batch / median,
                    "runs": len(times),
                }
            )
        del session
        settle()
    return rows


def markdown(result: dict) -> str:
    env = result["environment"]
    lines = [
        "# The generator in the browser beside native onnxruntime",
        "",
        f"On {env['cpu']}, {env['cpu_count']} cores, {env['date']}; onnxruntime-web {result['onnxruntime_web']} in "
        f"headless Chromium ({result['chromium']}), onnxruntime {env['onnxruntime']} natively; the same uint8-output "
        f"ONNX graph of the {result['model']} generator. {result['note']}".rstrip(),
        "",
        "| runtime | batch | samples/s | median per batch | web / native (same threads) |",
        "|---|---:|---:|---:|---:|",
    ]
    native = {(r["threads"], r["batch"]): r for r in result["rows"] if r["runtime"].startswith("onnxruntime (native)")}
    for row in result["rows"]:
        twin = native.get((row["threads"], row["batch"]))
        ratio = (
            ""
            if row["runtime"].startswith("onnxruntime (native)") or twin is None
            else (f"{row['samples_per_s'] / twin['samples_per_s']:.2f}x")
        )
        lines.append(
            f"| {row['runtime']} | {row['batch']:,} | {row['samples_per_s']:,.0f} | {row['median_s'] * 1e3:.2f} ms "
            f"| {ratio} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="unconditional", help="any model gankit export takes [%(default)s]")
    parser.add_argument("--batches", default="64,1024", help="[%(default)s]")
    parser.add_argument("--threads", default="1,2", help="WASM and native thread counts [%(default)s]")
    parser.add_argument("--seconds", type=float, default=2.0, help="timed runs of each row at least [%(default)s]")
    parser.add_argument("--out", type=Path, default=None, help="[benchmarks/results/web-<cpu>-<date>.json]")
    parser.add_argument("--note", default="", help="what else the reader must know (e.g. the machine's load)")
    args = parser.parse_args()
    batches = [int(b) for b in args.batches.split(",")]
    threads = [int(t) for t in args.threads.split(",")]

    import subprocess

    from gankit.web import export_web
    from gankit.web.runtime import ORT_WEB_VERSION

    with tempfile.TemporaryDirectory(prefix="gankit-web-bench-") as work:
        folder = Path(work) / "web"
        export_web(args.model, folder, log=lambda message: None)
        contract = json.loads((folder / "gankit.json").read_text())
        latent = contract["config"]["latent_dim"]
        rows = native_rows(folder / "generator.onnx", latent, batches, threads, args.seconds)
        rows += browser_rows(folder, batches, threads, args.seconds)
    version = subprocess.run([CHROMIUM, "--version"], capture_output=True, text=True).stdout.strip()
    result = {
        "environment": environment(),
        "model": args.model,
        "onnxruntime_web": ORT_WEB_VERSION,
        "chromium": version,
        "note": args.note,
        "rows": rows,
    }
    out = args.out or RESULTS / f"web-{slug()}-{datetime.date.today().isoformat()}.json"
    text = markdown(result)
    write_results(out, result, text)
    print(text)
    print(f"wrote {out} and {out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
