// gankit's web page: the noise contract in JavaScript (GankitNoise), then the page that runs the exported
// generator with onnxruntime-web (the global `ort`, loaded before this script by index.html).
"use strict";

// Noise v2 (gankit/noise.py): Philox4x32-10 words -> uniforms -> Box-Muller with gankit's own float32 ln, cos
// and sin polynomials, bit for bit the NumPy and C implementations. Every float32 step is one correctly rounded
// operation: a double +, -, *, sqrt of float32 operands rounded by Math.fround equals the float32 operation
// (a double has more than 2 x 24 + 2 bits), never fused, in the order of gankit/_noise/native.c.
// The constants are those of gankit/_noise/constants.py (tests/test_web_noise.py compares the outputs).
var GankitNoise = (function () {
  const NAME = "philox4x32-10/bm4/v2";
  const ROUNDS = 10;
  const ROUND_A = 0xd2511f53;
  const ROUND_B = 0xcd9e8d57;
  const KEY_A = 0x9e3779b9;
  const KEY_B = 0xbb67ae85;
  const f = Math.fround;
  const LN_P = [
    0.3333333134651184, -0.250008225440979, 0.20001226663589478, -0.16623355448246002, 0.14201751351356506,
    -0.1316019743680954, 0.12761640548706055, -0.07634538412094116,
  ].map(f);
  const LN2_HI = f(0.693359375);
  const LN2_LO = f(-0.00021219444170128554);
  const SQRT2_BITS = 0x3fb504f3;
  const SIN_LEAD = f(1.5);
  const SIN_P = [0.07079631835222244, -0.6459634900093079, 0.07968003302812576, -0.004601658787578344].map(f);
  const COS_P = [-1.2337005138397217, 0.25366923213005066, -0.02086016535758972, 0.0009037664858624339].map(f);
  const UNIFORM_SCALE = 2 ** -24;
  const QUARTER_SCALE = 2 ** -22;
  const MAX_COUNTER = 2n ** 63n; // Triton's int64 offsets: every counter q < 2**63
  const bitsView = new DataView(new ArrayBuffer(4));

  function floatBits(x) {
    bitsView.setFloat32(0, x);
    return bitsView.getUint32(0);
  }

  function bitsFloat(bits) {
    bitsView.setUint32(0, bits);
    return bitsView.getFloat32(0);
  }

  // High 32 bits of the 64-bit product of two uint32: 16-bit halves keep every partial product exact.
  function mulhi(a, b) {
    const aLo = a & 0xffff;
    const aHi = a >>> 16;
    const bLo = b & 0xffff;
    const bHi = b >>> 16;
    const lh = aLo * bHi;
    const hl = aHi * bLo;
    const middle = ((aLo * bLo) >>> 16) + (lh & 0xffff) + (hl & 0xffff);
    return (aHi * bHi + (lh >>> 16) + (hl >>> 16) + Math.floor(middle / 65536)) >>> 0;
  }

  // Philox4x32-10 of key (k0, k1), counter (c0, c1, 0, 0) -> out[0..3] (uint32 words).
  function philox(k0, k1, c0, c1, out) {
    let c2 = 0;
    let c3 = 0;
    for (let r = 0; r < ROUNDS; r++) {
      const x0 = (mulhi(c2, ROUND_B) ^ c1 ^ k0) >>> 0;
      const x2 = (mulhi(c0, ROUND_A) ^ c3 ^ k1) >>> 0;
      c1 = Math.imul(c2, ROUND_B) >>> 0;
      c3 = Math.imul(c0, ROUND_A) >>> 0;
      c0 = x0;
      c2 = x2;
      k0 = (k0 + KEY_A) >>> 0;
      k1 = (k1 + KEY_B) >>> 0;
    }
    out[0] = c0;
    out[1] = c1;
    out[2] = c2;
    out[3] = c3;
  }

  // sqrt(-2 ln u), u = ((w >> 8) | 1) * 2**-24 (float32).
  function radius(w) {
    const u = f(((w >>> 8) | 1) * UNIFORM_SCALE);
    const bits = floatBits(u);
    let mantissa = ((bits & 0x7fffff) | 0x3f800000) >>> 0;
    const big = mantissa > SQRT2_BITS ? 1 : 0; // above sqrt(2): halve it, raise the exponent
    mantissa -= big << 23;
    const e = (bits >>> 23) - 127 + big; // a small integer: exact as a float32
    const x = f(bitsFloat(mantissa) - 1);
    const z = f(x * x);
    let p = LN_P[7];
    for (let i = 6; i >= 0; i--) p = f(f(p * x) + LN_P[i]);
    let y = f(f(p * x) * z);
    y = f(y + f(e * LN2_LO));
    y = f(y - f(0.5 * z));
    const ln = f(f(x + y) + f(e * LN2_HI));
    return f(Math.sqrt(f(-2 * ln)));
  }

  // cos(2 pi u) and sin(2 pi u) into out[at], out[at + 1]: the quarter turn n and the rest t found in integers.
  function cosSin(w, out, at) {
    const k = (w >>> 8) | 1;
    const n = (k + (1 << 21)) >>> 22; // nearest quarter turn, 0..4 (never a tie: k is odd)
    const t = f((k - n * 4194304) * QUARTER_SCALE); // in (-1/2, 1/2) quarter turns, exact
    const z = f(t * t);
    let s = SIN_P[3];
    for (let i = 2; i >= 0; i--) s = f(f(s * z) + SIN_P[i]);
    s = f(f(s * t) + f(t * SIN_LEAD));
    let c = COS_P[3];
    for (let i = 2; i >= 0; i--) c = f(f(c * z) + COS_P[i]);
    c = f(f(c * z) + 1);
    const quadrant = n & 3;
    const cv = quadrant & 1 ? s : c;
    const sv = quadrant & 1 ? c : s;
    out[at] = (quadrant + 1) & 2 ? -cv : cv;
    out[at + 1] = quadrant & 2 ? -sv : sv;
  }

  function checkSeed(seed) {
    if (typeof seed !== "bigint" || seed < 0n || seed >= 2n ** 64n) {
      throw new RangeError(`seed must be an integer in [0, 2**64), got ${seed}`);
    }
  }

  // Latent vectors of samples start .. start+count-1 of seed (BigInt, BigInt, Number, Number):
  // a Float32Array of count * latent, row-major, equal to gankit.noise(seed, start, count, latent).
  function noise(seed, start, count, latent) {
    checkSeed(seed);
    if (typeof start !== "bigint" || start < 0n || !(count >= 0) || !(latent > 0)) {
      throw new RangeError(`need start >= 0 (a BigInt), count >= 0, latent > 0 (got ${start}, ${count}, ${latent})`);
    }
    const groups = Math.ceil(latent / 4);
    if ((start + BigInt(count)) * BigInt(groups) > MAX_COUNTER) {
      throw new RangeError(`samples up to ${start + BigInt(count)} of latent ${latent} pass the 2**63 Philox counters`);
    }
    const k0 = Number(seed & 0xffffffffn);
    const k1 = Number(seed >> 32n);
    const first = start * BigInt(groups);
    let lo = Number(first & 0xffffffffn);
    let hi = Number(first >> 32n);
    const out = new Float32Array(count * latent);
    const words = new Uint32Array(4);
    const trig = new Float32Array(4);
    const normals = new Float32Array(4);
    for (let row = 0; row < count; row++) {
      for (let g = 0; g < groups; g++) {
        philox(k0, k1, lo, hi, words);
        const r01 = radius(words[0]);
        const r23 = radius(words[2]);
        cosSin(words[1], trig, 0);
        cosSin(words[3], trig, 2);
        normals[0] = f(r01 * trig[0]);
        normals[1] = f(r01 * trig[1]);
        normals[2] = f(r23 * trig[2]);
        normals[3] = f(r23 * trig[3]);
        const base = row * latent + 4 * g;
        const kept = Math.min(4, latent - 4 * g);
        for (let r = 0; r < kept; r++) out[base + r] = normals[r];
        lo = (lo + 1) >>> 0;
        if (lo === 0) hi = (hi + 1) >>> 0;
      }
    }
    return out;
  }

  // The float part of the contract for each word: radius, cos and sin (for the exhaustive test).
  function uniformParts(words) {
    const radii = new Float32Array(words.length);
    const cos = new Float32Array(words.length);
    const sin = new Float32Array(words.length);
    const pair = new Float32Array(2);
    for (let i = 0; i < words.length; i++) {
      radii[i] = radius(words[i]);
      cosSin(words[i], pair, 0);
      cos[i] = pair[0];
      sin[i] = pair[1];
    }
    return { radii, cos, sin };
  }

  return { NAME, noise, philox, uniformParts, checkSeed };
})();

// The page. Everything below runs only in a browser.
var GankitPage = (function () {
  const MAX_N = 1024;
  const PADDING = 2; // black pixels between tiles, as gankit.pixels.grid

  function parseIndex(text, name, limit) {
    if (!/^[0-9]+$/.test(text)) throw new Error(`${name} must be a non-negative integer, got "${text}"`);
    const value = BigInt(text);
    if (value >= limit) throw new Error(`${name} must be below ${limit}, got ${text}`);
    return value;
  }

  // The query (or form) values as a checked request: {seed, start, n, digit}.
  function parseRequest(values, contract) {
    const seed = parseIndex(values.seed ?? "0", "seed", 2n ** 64n);
    const start = parseIndex(values.start ?? "0", "start", 2n ** 63n);
    const nText = values.n ?? "64";
    if (!/^[0-9]+$/.test(nText) || Number(nText) < 1 || Number(nText) > MAX_N) {
      throw new Error(`n must be an integer in 1..${MAX_N}, got "${nText}"`);
    }
    const classes = contract.config.num_classes;
    let digit = null;
    if (values.digit !== undefined && values.digit !== null && values.digit !== "") {
      if (!classes) throw new Error("this generator is unconditional: it takes no digit");
      if (!/^[0-9]+$/.test(values.digit) || Number(values.digit) >= classes) {
        throw new Error(`digit must be in 0..${classes - 1}, got "${values.digit}"`);
      }
      digit = Number(values.digit);
    }
    return { seed, start, n: Number(nText), digit };
  }

  // Labels of the batch (gankit.labels): digit D for every sample, else balanced (i + seed) mod K.
  function labelsOf(request, classes) {
    if (!classes) return null;
    const labels = new BigInt64Array(request.n);
    const first = (request.start + request.seed) % BigInt(classes);
    for (let j = 0; j < request.n; j++) {
      labels[j] = request.digit !== null ? BigInt(request.digit) : (first + BigInt(j)) % BigInt(classes);
    }
    return labels;
  }

  function drawGrid(canvas, pixels, n, shape) {
    const [channels, height, width] = shape;
    const columns = Math.min(Math.max(1, Math.ceil(Math.sqrt(n))), n);
    const rows = Math.ceil(n / columns);
    canvas.width = (width + PADDING) * columns + PADDING;
    canvas.height = (height + PADDING) * rows + PADDING;
    const context = canvas.getContext("2d");
    const picture = context.createImageData(canvas.width, canvas.height);
    const data = picture.data;
    for (let i = 3; i < data.length; i += 4) data[i] = 255;
    const plane = height * width;
    for (let k = 0; k < n; k++) {
      const top = Math.floor(k / columns) * (height + PADDING) + PADDING;
      const left = (k % columns) * (width + PADDING) + PADDING;
      for (let y = 0; y < height; y++) {
        for (let x = 0; x < width; x++) {
          const to = ((top + y) * canvas.width + left + x) * 4;
          for (let c = 0; c < 3; c++) {
            data[to + c] = pixels[k * channels * plane + (channels === 1 ? 0 : c) * plane + y * width + x];
          }
        }
      }
    }
    context.putImageData(picture, 0, 0);
    canvas.style.width = `${canvas.width * 3}px`;
  }

  function showError(message) {
    const box = document.getElementById("error");
    box.textContent = message;
    box.hidden = false;
    document.getElementById("status").textContent = "failed";
    window.gankitResult = { error: message };
  }

  async function start() {
    const form = document.getElementById("controls");
    const query = Object.fromEntries(new URLSearchParams(location.search));
    let contract;
    let session;
    try {
      const response = await fetch("gankit.json");
      if (!response.ok) throw new Error(`gankit.json: HTTP ${response.status}`);
      contract = await response.json();
      if (contract.noise.name !== GankitNoise.NAME) {
        throw new Error(`the model was exported for noise ${contract.noise.name}; this page makes ${GankitNoise.NAME}`);
      }
      describe(contract);
      const request = parseRequest(query, contract);
      fillForm(form, request);
      ort.env.wasm.wasmPaths = new URL("ort/", location.href).href; // else resolved against the runtime script
      ort.env.wasm.numThreads = self.crossOriginIsolated ? Math.min(4, navigator.hardwareConcurrency || 1) : 1;
      document.getElementById("status").textContent = "loading the model...";
      try {
        session = await ort.InferenceSession.create(contract.model, { executionProviders: ["wasm"] });
      } catch (exc) {
        throw new Error(`cannot load ${contract.model}: ${exc.message || exc}`);
      }
      await run(session, contract, request);
    } catch (exc) {
      showError(String(exc.message || exc));
      return;
    }
    const again = async (advance) => {
      try {
        const request = parseRequest(readForm(form), contract);
        if (advance) request.start += BigInt(request.n);
        fillForm(form, request);
        await run(session, contract, request);
      } catch (exc) {
        showError(String(exc.message || exc));
      }
    };
    document.getElementById("regenerate").addEventListener("click", () => again(false));
    document.getElementById("next").addEventListener("click", () => again(true));
  }

  function describe(contract) {
    const config = contract.config;
    const shape = config.image_shape.join(" x ");
    const kind = config.num_classes ? `conditional on ${config.num_classes} classes` : "unconditional";
    document.getElementById("about").textContent =
      `${contract.source}: latent ${config.latent_dim}, images ${shape}, ${kind}; ` +
      `noise ${contract.noise.name}; onnxruntime-web ${contract.onnxruntime_web}`;
    const picker = document.getElementById("digit");
    if (config.num_classes) {
      for (let d = 0; d < config.num_classes; d++) picker.add(new Option(String(d), String(d)));
    } else {
      document.getElementById("digit-label").hidden = true;
    }
  }

  function readForm(form) {
    return { seed: form.seed.value.trim(), start: form.start.value.trim(), n: form.n.value.trim(), digit: form.digit.value };
  }

  function fillForm(form, request) {
    form.seed.value = request.seed.toString();
    form.start.value = request.start.toString();
    form.n.value = String(request.n);
    form.digit.value = request.digit === null ? "" : String(request.digit);
    const query = new URLSearchParams({ seed: form.seed.value, start: form.start.value, n: form.n.value });
    if (request.digit !== null) query.set("digit", String(request.digit));
    history.replaceState(null, "", `?${query}`);
  }

  async function run(session, contract, request) {
    window.gankitResult = undefined;
    document.getElementById("error").hidden = true;
    document.getElementById("status").textContent = "generating...";
    const config = contract.config;
    const began = performance.now();
    const z = GankitNoise.noise(request.seed, request.start, request.n, config.latent_dim);
    const labels = labelsOf(request, config.num_classes);
    const feeds = { z: new ort.Tensor("float32", z, [request.n, config.latent_dim]) };
    if (labels) feeds.label = new ort.Tensor("int64", labels, [request.n]);
    const outputs = await session.run(feeds);
    const pixels = outputs[contract.output].data;
    const elapsed = performance.now() - began;
    drawGrid(document.getElementById("grid"), pixels, request.n, config.image_shape);
    const rate = (request.n / elapsed) * 1000;
    document.getElementById("status").textContent =
      `${request.n} samples in ${elapsed.toFixed(1)} ms (${Math.round(rate)} samples/s), noise and model`;
    const download = document.getElementById("download");
    download.download = `gankit-seed${request.seed}-start${request.start}-n${request.n}.png`;
    download.href = document.getElementById("grid").toDataURL("image/png");
    const indices = [];
    for (let j = 0; j < request.n; j++) indices.push((request.start + BigInt(j)).toString());
    window.gankitResult = {
      indices,
      labels: labels ? Array.from(labels, Number) : null,
      pixels: Array.from(pixels),
    };
  }

  return { start, parseRequest, labelsOf };
})();

if (typeof document !== "undefined") {
  GankitPage.start();
}
