"""kernels.generator (the whole generator in one launch) vs a float64 reference, and its noise contract.

Check: max |image - reference| over the batch, images in [-1, 1], reference in float64 from the same
z and the unrounded weights. Tolerance per compute dtype: fp32 (IEEE) 1e-5; fp16 1e-2; bf16 2e-2 (on
the CPU the interpreter widens bf16 to fp32 before each dot, so the CPU proves the roundings and the
fp32 accumulation, a GPU the tensor-core instruction); tf32 5e-3 on a GPU only (the interpreter
ignores ``input_precision``: its CPU twin checks that the TF32 path runs, in exact fp32). uint8: equal
to ``to_uint8`` of the kernel's own float output under the interpreter, within one level on a GPU.
Outputs are poisoned (NaN, or 77 for uint8) before every launch.
"""

from __future__ import annotations

import pytest
import torch
import triton
from triton.runtime.errors import OutOfResources

from gankit.config import GeneratorConfig
from gankit.model import Generator
from gankit.noise import noise
from kernels import generator as generator_module
from kernels.fused_linear import config_tuple, dot_precision
from kernels.generator import (
    CONFIG_KEYS,
    GPU_CONFIGS,
    PackedGenerator,
    _keep_valid_configs,
    fits_whole_generator,
    generator_forward,
    generator_kernel,
    pack_generator,
)
from kernels.reference import generator_reference, to_uint8_reference

ON_GPU = torch.cuda.is_available()
DEVICE = torch.device("cuda" if ON_GPU else "cpu")
NEEDS_GPU = pytest.mark.skipif(not ON_GPU, reason="needs a CUDA GPU; its CPU twin runs here instead")
GPU_ONLY = [pytest.mark.gpu, NEEDS_GPU]
INTERPRETER_ONLY = pytest.mark.skipif(ON_GPU, reason="checks the interpreter; its GPU twin runs here instead")
TOLERANCE = {torch.float32: 1e-5, torch.float16: 1e-2, torch.bfloat16: 2e-2}
TF32_TOLERANCE = 5e-3


def pack(generator: Generator, dtype: torch.dtype = torch.float32) -> PackedGenerator:
    layers = generator.layers
    weights, biases, config = [x.weight for x in layers], [x.bias for x in layers], generator.config
    return pack_generator(weights, biases, config.hidden_slopes, dtype, DEVICE, config.output_activation)


def reference(generator: Generator, z: torch.Tensor) -> torch.Tensor:
    """Flat float64 images of z, on the CPU."""
    weights = [layer.weight.detach().double() for layer in generator.layers]
    biases = [layer.bias.detach().double() for layer in generator.layers]
    config = generator.config
    return generator_reference(z.double().cpu(), weights, biases, config.hidden_slopes, config.output_activation)


def fresh_z(batch: int, latent: int) -> torch.Tensor:
    return torch.randn(batch, latent, generator=torch.Generator().manual_seed(batch * 31 + latent)).to(DEVICE)


def poisoned(batch: int, width: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    fill = 77 if dtype == torch.uint8 else float("nan")
    return torch.full((batch, width), fill, dtype=dtype, device=DEVICE)


def max_error(images: torch.Tensor, expected: torch.Tensor) -> float:
    assert torch.isfinite(images).all(), "the kernel left NaN (unwritten) elements"
    return (images.double().cpu() - expected).abs().max().item()


@pytest.mark.parametrize("batch", [1, 3, 64, 257, 1000])
def test_seed_sized_generator(seed_generator: Generator, batch: int) -> None:
    z = fresh_z(batch, 100)
    images = generator_forward(pack(seed_generator), z=z, out=poisoned(batch, 784))
    assert max_error(images, reference(seed_generator, z)) <= TOLERANCE[torch.float32]


@pytest.mark.parametrize("batch", [1, 3, 64, 257, 1000])
def test_odd_sizes(small_generator: Generator, batch: int) -> None:
    """20 -> 48 -> 80 -> 100: every width padded and masked."""
    z = fresh_z(batch, 20)
    images = generator_forward(pack(small_generator), z=z, out=poisoned(batch, 100))
    assert max_error(images, reference(small_generator, z)) <= TOLERANCE[torch.float32]


@pytest.mark.parametrize(
    ("slopes", "output_act"),
    [((0.01, 0.0), "tanh"), ((0.2, 0.2), "sigmoid"), ((1.0, -0.3), "sigmoid")],
    ids=["leaky-relu-tanh", "sigmoid", "none-negative-slope-sigmoid"],
)
def test_per_layer_slopes_and_output_activation(slopes: tuple[float, float], output_act: str) -> None:
    """Imported generators: each hidden layer its own slope (0 = ReLU, 1 = none), tanh or sigmoid (2y - 1)."""
    torch.manual_seed(8)
    config = GeneratorConfig(20, (48, 80), (1, 10, 10), slope=slopes, output_activation=output_act)
    generator = Generator(config).eval()
    z = fresh_z(70, 20) * 3  # wide pre-activations: both sides of every activation are exercised
    packed = pack(generator)
    assert packed.slopes == slopes and packed.output_act == output_act
    images = generator_forward(packed, z=z, out=poisoned(70, 100))
    assert max_error(images, reference(generator, z)) <= TOLERANCE[torch.float32]
    with torch.no_grad():  # the reference is the model's own forward, in float64
        model = generator.double()(z.double().cpu()).flatten(1)
    assert (reference(generator, z) - model).abs().max().item() <= 1e-12


def test_pack_rejects_unknown_output_activation(small_generator: Generator) -> None:
    layers = small_generator.layers
    with pytest.raises(ValueError, match="output_act must be one of tanh, sigmoid, got 'relu'"):
        pack_generator([x.weight for x in layers], [x.bias for x in layers], 0.2, torch.float32, DEVICE, "relu")
    with pytest.raises(ValueError, match="2 hidden-layer slopes"):
        pack_generator([x.weight for x in layers], [x.bias for x in layers], (0.2,), torch.float32, DEVICE)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["fp16", "bf16"])
def test_half_precisions(seed_generator: Generator, dtype: torch.dtype) -> None:
    z = fresh_z(257, 100)
    images = generator_forward(pack(seed_generator, dtype), z=z, out=poisoned(257, 784))
    assert max_error(images, reference(seed_generator, z)) <= TOLERANCE[dtype]


@pytest.mark.gpu
@NEEDS_GPU
def test_tf32_on_gpu(seed_generator: Generator) -> None:
    packed, z = pack(seed_generator), fresh_z(257, 100)
    tf32 = generator_forward(packed, z=z, allow_tf32=True)
    ieee = generator_forward(packed, z=z)
    assert max_error(tf32, reference(seed_generator, z)) <= TF32_TOLERANCE
    assert max_error(ieee, reference(seed_generator, z)) <= TOLERANCE[torch.float32]
    assert not torch.equal(tf32, ieee)


@INTERPRETER_ONLY
def test_tf32_flag_under_interpreter(seed_generator: Generator) -> None:
    packed, z = pack(seed_generator), fresh_z(64, 100)
    assert torch.equal(generator_forward(packed, z=z, allow_tf32=True), generator_forward(packed, z=z))


def test_extreme_inputs_stay_finite_and_close(seed_generator: Generator) -> None:
    z = (torch.randint(0, 2, (16, 100), generator=torch.Generator().manual_seed(5)) * 20 - 10).float().to(DEVICE)
    images = generator_forward(pack(seed_generator), z=z, out=poisoned(16, 784))
    assert max_error(images, reference(seed_generator, z)) <= 1e-4  # |z| = 10: sums 10x larger, see gankit.onnx.parity


def test_uint8_output(seed_generator: Generator) -> None:
    packed, z = pack(seed_generator), fresh_z(257, 100)
    levels = generator_forward(packed, z=z, output="uint8", out=poisoned(257, 784, torch.uint8))
    own_float = to_uint8_reference(generator_forward(packed, z=z))
    if ON_GPU:  # the two variants may round a product differently (FMA) right at a half level
        assert (levels.int() - own_float.int()).abs().max().item() <= 1
    else:
        assert torch.equal(levels, own_float)
    from_float64 = to_uint8_reference(reference(seed_generator, z))
    assert (levels.cpu().int() - from_float64.int()).abs().max().item() <= 1


@pytest.mark.parametrize(("seed", "start"), [(0, 0), (1234, 5), (2**40 + 17, 2**33), (2**64 - 1, 999)])
@pytest.mark.parametrize("output", ["float", "uint8"])
def test_in_kernel_noise_equals_gankit_noise(seed_generator: Generator, seed: int, start: int, output: str) -> None:
    """(seed, index) -> image with the noise made in the kernel == the same kernel fed gankit.noise."""
    packed = pack(seed_generator)
    dtype = torch.uint8 if output == "uint8" else torch.float32
    from_seed = generator_forward(packed, count=67, seed=seed, start=start, output=output, out=poisoned(67, 784, dtype))
    z = noise(seed, start, 67, 100, device=DEVICE)
    from_z = generator_forward(packed, z=z, output=output)
    if not ON_GPU:
        assert torch.equal(from_seed, from_z)
    elif output == "float":  # GPU: both within TOLERANCE of float64 (the kernel's FMA noise included, below)
        torch.testing.assert_close(from_seed, from_z, atol=2 * TOLERANCE[torch.float32], rtol=0)
    else:
        assert (from_seed.int() - from_z.int()).abs().max().item() <= 1
    if output == "float":
        assert max_error(from_seed, reference(seed_generator, z)) <= TOLERANCE[torch.float32]


def test_noise_is_independent_of_chunking(small_generator: Generator) -> None:
    """Samples 0-99 of seed 9 in one launch and in three. The noise: the kernel makes gankit.noise's z
    for every chunk (its images equal the images of that z, bit for bit under the interpreter), and
    gankit.noise's chunks are its whole range bit for bit. The images: within 2 x TOLERANCE[fp32] and
    one uint8 level, because each batch size may sum the dots' fp32 products in another order (an
    autotuned block on a GPU; on the CPU the interpreter's BLAS, whose order can depend on a row's
    position in the block and on the CPU); each image is within TOLERANCE of float64, so two are within
    twice that. The same launch twice: equal."""
    packed, chunks = pack(small_generator), [(0, 1), (1, 64), (65, 35)]
    latent = small_generator.config.latent_dim
    whole_z = noise(9, 0, 100, latent)
    assert torch.equal(torch.cat([noise(9, s, c, latent) for s, c in chunks]), whole_z)
    whole = generator_forward(packed, count=100, seed=9, start=0)
    parts = []
    for s, c in chunks:
        parts.append(generator_forward(packed, count=c, seed=9, start=s))
        from_z = generator_forward(packed, z=whole_z[s : s + c].to(DEVICE))
        if not ON_GPU:  # same shapes, same ops: only the noise could differ
            assert torch.equal(parts[-1], from_z)
    parts = torch.cat(parts)
    assert max_error(whole, reference(small_generator, whole_z)) <= TOLERANCE[torch.float32]
    assert (parts - whole).abs().max().item() <= 2 * TOLERANCE[torch.float32]
    levels = [generator_forward(packed, count=c, seed=9, start=s, output="uint8") for s, c in chunks]
    whole_levels = generator_forward(packed, count=100, seed=9, start=0, output="uint8")
    assert (torch.cat(levels).int() - whole_levels.int()).abs().max().item() <= 1
    assert torch.equal(generator_forward(packed, count=100, seed=9, start=0), whole)


@pytest.mark.parametrize(
    "count", [pytest.param(2**22, marks=GPU_ONLY, id="B*NOUT>2**31"), pytest.param(1003, id="cpu-twin")]
)
def test_offsets_past_int32(seed_generator: Generator, count: int) -> None:
    """count * 784 > 2**31 output bytes: offsets must be int64. The CPU twin checks the same at a size it holds."""
    levels = generator_forward(pack(seed_generator), count=count, seed=3, start=10, output="uint8")
    tail = torch.arange(count - 4, count)
    expected = to_uint8_reference(reference(seed_generator, noise(3, 10 + count - 4, 4, 100)))
    assert (levels[tail.to(DEVICE)].cpu().int() - expected.int()).abs().max().item() <= 1


def config_id(config) -> str:
    k = config.kwargs
    return f"M{k['BLOCK_M']}-K{k['BLOCK_K']}-H{k['BLOCK_H2']}-split{k['OUT_SPLIT']}-w{config.num_warps}"


@pytest.mark.parametrize("config", GPU_CONFIGS, ids=config_id)
def test_every_autotune_config(seed_generator, small_generator, config, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each GPU block configuration (OUT_SPLIT included), seeded, on both generators (CPU: under the interpreter)."""
    monkeypatch.setattr(generator_kernel, "configs", [config])
    monkeypatch.setattr(generator_kernel, "cache", {})
    for generator, dtype in ((seed_generator, torch.bfloat16), (small_generator, torch.float32)):
        packed = pack(generator, dtype)
        nout_pad = max(16, triton.next_power_of_2(packed.sizes[3]))
        launch = {"NOUTP": nout_pad, "NOISE": True, "DOT_PRECISION": dot_precision(dtype, False)}
        if not kept([config], packed.weights_t[0], **launch):
            continue  # too narrow for this output, or NOT_FOR it: the autotuner drops it (see test_config_pruning)
        out = poisoned(37, packed.sizes[3])
        try:
            images = generator_forward(packed, count=37, seed=1, start=2, out=out)
        except OutOfResources:  # a GPU with less shared memory: the autotuner skips the config too
            pytest.skip(f"{config_id(config)} does not fit this GPU in {dtype}")
        expected = reference(generator, noise(1, 2, 37, generator.config.latent_dim))
        assert max_error(images, expected) <= TOLERANCE[dtype], (config_id(config), dtype)


def kept(configs, w1: torch.Tensor, **launch) -> list:
    """``_keep_valid_configs`` for a launch with weights like ``w1`` (bf16, tf32 unless told; z -> float, uncond.)."""
    launch = {"NOUTP": 1024, "DOT_PRECISION": "tf32", "CONDITIONAL": False, "UINT8": False, "NOISE": False, **launch}
    return _keep_valid_configs(configs, {"w1_ptr": w1}, **launch)


def test_config_pruning(monkeypatch: pytest.MonkeyPatch) -> None:
    bf16, fp32 = torch.empty(1, dtype=torch.bfloat16), torch.empty(1)
    monkeypatch.setattr(generator_module, "NOT_FOR", {})
    assert kept(GPU_CONFIGS, bf16) == GPU_CONFIGS
    narrow = kept(GPU_CONFIGS, bf16, NOUTP=16)
    assert narrow and all(c.kwargs["OUT_SPLIT"] == 1 for c in narrow)
    first, second = (config_tuple(c, CONFIG_KEYS) for c in GPU_CONFIGS[:2])
    monkeypatch.setattr(generator_module, "NOT_FOR", {first: ("conditional+fp32",), second: ("uint8",)})
    assert kept(GPU_CONFIGS, fp32, DOT_PRECISION="ieee", CONDITIONAL=True) == GPU_CONFIGS[1:]
    assert kept(GPU_CONFIGS, fp32, CONDITIONAL=True) == GPU_CONFIGS  # tf32 is not fp32
    assert kept(GPU_CONFIGS, bf16, CONDITIONAL=True, UINT8=True) == GPU_CONFIGS[:1] + GPU_CONFIGS[2:]


def test_fit_rule() -> None:
    assert fits_whole_generator([(100, 256), (256, 512), (512, 784)])
    assert fits_whole_generator([(7, 1024), (1024, 5000), (5000, 2048)])
    assert not fits_whole_generator([(100, 256), (256, 784)])  # two layers: per-layer kernels
    assert not fits_whole_generator([(100, 1025), (1025, 512), (512, 784)])  # h1 too wide for registers
    assert not fits_whole_generator([(100, 256), (256, 512), (512, 3 * 32 * 32)])  # output too wide


def test_launcher_checks(seed_generator: Generator) -> None:
    packed = pack(seed_generator)
    with pytest.raises(ValueError, match=r"z must be \(B, 100\) float32, got \(4, 99\)"):
        generator_forward(packed, z=torch.randn(4, 99, device=DEVICE))
    with pytest.raises(ValueError, match="z must be contiguous"):
        generator_forward(packed, z=torch.randn(100, 4, device=DEVICE).t())
    with pytest.raises(ValueError, match="without z, count must be given and >= 0, got None"):
        generator_forward(packed)
    with pytest.raises(ValueError, match="need 0 <= seed < 2\\*\\*64"):
        generator_forward(packed, count=1, seed=2**64)
    with pytest.raises(ValueError, match="output must be 'float' or 'uint8', got 'png'"):
        generator_forward(packed, z=torch.randn(4, 100, device=DEVICE), output="png")
    with pytest.raises(ValueError, match=r"out must be contiguous \(4, 784\) torch.uint8"):
        generator_forward(packed, count=4, output="uint8", out=poisoned(4, 784))
    assert generator_forward(packed, count=0).shape == (0, 784)
    layers = seed_generator.layers
    weights, biases = [x.weight for x in layers], [x.bias for x in layers]
    with pytest.raises(ValueError, match="exactly 3 layers, got 2"):
        pack_generator(weights[:2], biases[:2], 0.2, torch.float32, DEVICE)
    with pytest.raises(ValueError, match="not a chain of Linears"):
        pack_generator([weights[0], weights[2], weights[1]], biases, 0.2, torch.float32, DEVICE)
    with pytest.raises(ValueError, match="tensors are on meta: the kernels need a CUDA device"):
        pack_generator(weights, biases, 0.2, torch.float32, torch.device("meta"))


@pytest.mark.parametrize("seeded", [False, True], ids=["from-z", "seeded"])
def test_class_conditional_gathers_each_samples_row_of_class_bias(seeded: bool) -> None:
    """labels[b] picks row b's layer-1 bias; the reference (kernels.reference) adds the same row in float64."""
    torch.manual_seed(12)
    generator = Generator(GeneratorConfig(20, (48, 80), (1, 10, 10), num_classes=10)).eval()
    layers = generator.layers
    packed = pack_generator(
        [x.weight for x in layers], [x.bias for x in layers], 0.2, torch.float32, DEVICE, "tanh", generator.class_bias
    )
    labels = torch.randint(0, 10, (70,), generator=torch.Generator().manual_seed(3))
    z = noise(4, 9, 70, 20) if seeded else fresh_z(70, 20)
    call = dict(count=70, seed=4, start=9) if seeded else dict(z=z.to(DEVICE))
    images = generator_forward(packed, labels=labels.to(DEVICE), out=poisoned(70, 100), **call)
    weights = [x.weight.detach().double() for x in layers]
    biases = [x.bias.detach().double() for x in layers]
    expected = generator_reference(
        z.double().cpu(), weights, biases, 0.2, "tanh", generator.class_bias.double(), labels
    )
    assert max_error(images, expected) <= TOLERANCE[torch.float32]
    with torch.no_grad():  # the reference is the model's own forward
        assert (expected - generator.double()(z.double().cpu(), labels).flatten(1)).abs().max() < 1e-12
    other = generator_forward(packed, labels=((labels + 1) % 10).to(DEVICE), **call)
    assert (other.cpu() - images.cpu()).abs().amax(1).min() > 100 * TOLERANCE[torch.float32]
    with pytest.raises(ValueError, match="labels are required"):
        generator_forward(packed, **call)
    with pytest.raises(ValueError, match="labels must be"):
        generator_forward(packed, labels=labels[:5].to(DEVICE), **call)
