"""gankit.web: the exported folder runs in a real browser (Debian's headless Chromium driven by Playwright, served
from 127.0.0.1) and its images are gankit's for the same (seed, index, label); the export's refusals; the pinned
onnxruntime-web runtime and its integrity check.

Tolerance, 1 uint8 level: the page runs the uint8 ONNX graph (gankit.onnx, parity-gated) in onnxruntime-web's
WASM build on bit-identical noise (tests/test_web_noise.py); its float32 GEMMs may sum in another order than
torch's, and an output that lands next to a rounding boundary then rounds to the neighbouring level (the uint8
parity gate of gankit.onnx.parity allows the same one level).
"""

from __future__ import annotations

import base64
import functools
import http.server
import io
import re
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from benchmarks.harness import CHROMIUM, CHROMIUM_FLAGS
from gankit.checkpoint import model_path
from gankit.errors import ExportError, GankitError
from gankit.labels import LabelSpec
from gankit.models import load_model
from gankit.noise import noise
from gankit.pixels import grid, to_uint8
from gankit.web import export_web, runtime

pytestmark = pytest.mark.xdist_group("web-exports")  # one worker exports the folders and starts the browser once
LEVELS = 1  # see the module doc
PAGE_TIMEOUT_MS = 120_000
SEED_64 = 2**64 - 12345
START_PAST_2_32 = 2**32 + 7


def quiet(_message: str) -> None:
    pass


class _Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def exports(tmp_path_factory) -> dict[str, Path]:
    """The web folders of the bundled unconditional and conditional generators and of a classic-script G.pth."""
    root = tmp_path_factory.mktemp("web")
    torch.manual_seed(7)
    classic = nn.Sequential(
        nn.Linear(100, 256), nn.LeakyReLU(0.2), nn.Linear(256, 512), nn.LeakyReLU(0.2), nn.Linear(512, 784), nn.Tanh()
    )
    torch.save(classic.state_dict(), root / "G.pth")
    models = {"unconditional": "unconditional", "conditional": "conditional", "classic": str(root / "G.pth")}
    return {name: export_web(model, root / name, log=quiet) for name, model in models.items()}


@pytest.fixture(scope="module")
def server(exports):
    """A static server of the export folders' parent on 127.0.0.1: its base URL."""
    root = next(iter(exports.values())).parent
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Handler, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}"
    httpd.shutdown()
    thread.join()
    httpd.server_close()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), "the browser tests need Debian's chromium (.ci/run installs it)"
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True)
        yield chromium
        chromium.close()


def open_page(browser, url: str):
    """A new page at ``url``, waited on until it sets window.gankitResult; (page, result)."""
    page = browser.new_page()
    page.goto(url)
    page.wait_for_function("window.gankitResult !== undefined", timeout=PAGE_TIMEOUT_MS)
    return page, page.evaluate("window.gankitResult")


def library_uint8(model: str, seed: int, start: int, n: int, digit: int | None) -> tuple[np.ndarray, list | None]:
    """gankit's uint8 images (n, C, H, W) and labels of samples start .. start+n-1 of ``seed``, run eagerly."""
    generator = load_model(model_path(model), None, quiet).eval()
    classes = generator.config.num_classes
    spec = None if not classes else LabelSpec("digit", digit) if digit is not None else LabelSpec()
    labels = spec.labels(seed, start, n, classes) if spec else None
    with torch.no_grad():
        images = generator(noise(seed, start, n, generator.config.latent_dim), *(() if labels is None else (labels,)))
    return to_uint8(images).numpy(), None if labels is None else labels.tolist()


CASES = [  # (export, seed, start, n, digit)
    ("unconditional", SEED_64, START_PAST_2_32, 16, None),
    ("unconditional", 0, 0, 64, None),
    ("conditional", SEED_64, START_PAST_2_32, 20, 7),
    ("conditional", 2**40 + 3, 2**33, 12, None),
    ("classic", 5, START_PAST_2_32, 9, None),
]


@pytest.mark.parametrize(("name", "seed", "start", "n", "digit"), CASES)
def test_page_images_equal_gankit(exports, server, browser, name, seed, start, n, digit):
    query = f"seed={seed}&start={start}&n={n}" + ("" if digit is None else f"&digit={digit}")
    page, result = open_page(browser, f"{server}/{name}/index.html?{query}")
    model = str(exports[name].parent / "G.pth") if name == "classic" else name
    expected, labels = library_uint8(model, seed, start, n, digit)
    assert "error" not in result, result.get("error")
    assert result["indices"] == [str(start + j) for j in range(n)]
    assert result["labels"] == labels
    pixels = np.array(result["pixels"], dtype=np.int16).reshape(expected.shape)
    assert np.abs(pixels - expected.astype(np.int16)).max() <= LEVELS
    assert "samples/s" in page.inner_text("#status")
    page.close()


def test_next_advances_and_download_is_the_grid(exports, server, browser):
    page, first = open_page(browser, f"{server}/conditional/index.html?seed=3&start={START_PAST_2_32}&n=6&digit=2")
    page.evaluate("window.gankitResult = undefined")
    page.click("#next")
    page.wait_for_function("window.gankitResult !== undefined", timeout=PAGE_TIMEOUT_MS)
    result = page.evaluate("window.gankitResult")
    start = START_PAST_2_32 + 6
    assert result["indices"] == [str(start + j) for j in range(6)]
    assert f"start={start}" in page.url
    expected, labels = library_uint8("conditional", 3, start, 6, 2)
    pixels = np.array(result["pixels"], dtype=np.uint8).reshape(expected.shape)
    assert result["labels"] == labels == [2] * 6
    assert np.abs(pixels.astype(np.int16) - expected).max() <= LEVELS
    href = page.get_attribute("#download", "href")
    assert href.startswith("data:image/png;base64,")
    png = np.array(Image.open(io.BytesIO(base64.b64decode(href.split(",", 1)[1]))).convert("RGB"))
    assert np.array_equal(png, grid(torch.from_numpy(pixels)))
    page.close()


@pytest.mark.parametrize(
    ("name", "query", "message"),
    [
        ("unconditional", "seed=-1", "seed must be a non-negative integer"),
        ("unconditional", f"seed={2**64}", "seed must be below"),
        ("unconditional", "digit=3", "unconditional"),
        ("conditional", "digit=10", "digit must be in 0..9"),
        ("conditional", "n=0", "n must be an integer"),
    ],
)
def test_bad_query_is_an_error(server, browser, name, query, message):
    page, result = open_page(browser, f"{server}/{name}/index.html?{query}")
    assert message in result["error"]
    assert message in page.inner_text("#error")
    page.close()


def test_bad_model_file_is_a_visible_error(exports, server, browser):
    broken = exports["unconditional"].parent / "broken"
    shutil.copytree(exports["unconditional"], broken)
    (broken / "generator.onnx").write_bytes(b"not an onnx model")
    page, result = open_page(browser, f"{server}/broken/index.html")
    assert result["error"].startswith("cannot load generator.onnx")
    assert page.is_visible("#error") and "cannot load generator.onnx" in page.inner_text("#error")
    page.close()


def test_refuses_a_non_empty_folder_without_force(tmp_path, exports):
    out = tmp_path / "web"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(GankitError, match="not empty"):
        export_web("unconditional", out, log=quiet)
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]
    (tmp_path / "file").write_text("")
    with pytest.raises(GankitError, match="is a file"):
        export_web("unconditional", tmp_path / "file", log=quiet)
    assert export_web("unconditional", out, force=True, log=quiet) == out
    names = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    expected = {
        p.relative_to(exports["unconditional"]).as_posix() for p in exports["unconditional"].rglob("*") if p.is_file()
    }
    assert names == expected | {"keep.txt"}
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging folder left behind


def test_runtime_files_are_the_pinned_release(exports):
    folder = exports["unconditional"] / "ort"
    assert sorted(p.name for p in folder.iterdir()) == sorted(runtime.RUNTIME_FILES)
    assert runtime.integrity_of(runtime.tarball_path()) == runtime.ORT_WEB_INTEGRITY
    assert (folder / "ort.wasm.min.js").read_text().count(runtime.ORT_WEB_VERSION) >= 1


def test_without_npm_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("GANKIT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("PATH", str(tmp_path))  # no npm on it
    with pytest.raises(ExportError, match="npm was not found") as caught:
        runtime.fetch_runtime(quiet)
    assert "\n" not in str(caught.value) and str(runtime.tarball_path()) in str(caught.value)


def test_integrity_mismatch_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("GANKIT_CACHE_DIR", str(tmp_path / "cache"))
    runtime.tarball_path().parent.mkdir(parents=True)
    runtime.tarball_path().write_bytes(b"a corrupt download")  # a cached file that fails the check is fetched again
    monkeypatch.setattr(runtime, "ORT_WEB_INTEGRITY", "sha512-" + base64.b64encode(bytes(64)).decode())
    with pytest.raises(ExportError, match="not the pinned"):
        runtime.fetch_runtime(quiet)
    assert not runtime.tarball_path().exists()


def test_offline_npm_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("GANKIT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("npm_config_registry", "http://127.0.0.1:9/")  # nothing listens on the discard port
    with pytest.raises(
        ExportError, match=rf"npm pack onnxruntime-web@{re.escape(runtime.ORT_WEB_VERSION)} failed .*ECONNREFUSED"
    ) as caught:
        runtime.fetch_runtime(quiet)
    assert "\n" not in str(caught.value)
    assert not runtime.tarball_path().exists()
