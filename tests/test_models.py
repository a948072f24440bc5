"""gankit.models: generators trained elsewhere -> gankit generators, exactly; and every bad input refused.

The two generators users arrive with are written here as their scripts write them: the classic script's
``Generator`` (the seed: a view to (B, 1, 28, 28) in forward) and PyTorch-GAN's gan.py generator (blocks of
Linear -> BatchNorm1d(n, 0.8) -> LeakyReLU(0.2), the first without BatchNorm), each trained a few steps on
the bundled digits so that the weights, and BatchNorm's running statistics, are not their initial values.

Tolerances. Without BatchNorm the imported generator runs the module's own ops on the module's own fp32
weights, so its images are equal bit for bit. With BatchNorm folded the weights change: compared in
float64 (fold and module both exact to ~1e-15) the issue's bound 1e-6 holds with room; compared as an fp32
file, the fold's one rounding to fp32 is held to the parity rule of ``gankit.onnx.parity``: 3x PyTorch's own
fp32 error against float64 on the same z, never below 8 fp32 epsilons.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from torch import nn

import gankit
from gankit.checkpoint import PRETRAINED, load_generator, read_generator_file
from gankit.cli import main
from gankit.config import GeneratorConfig
from gankit.data import load_bundled
from gankit.errors import ConfigError, ConversionError
from gankit.models import ImportOptions, from_module, load_model
from gankit.noise import noise
from gankit.onnx.parity import FP32_FLOOR, FP32_HEADROOM
from gankit.pixels import to_uint8
from gankit.tolerances import IMPORT_VERIFY


class Generator(nn.Module):
    """The classic script's generator, as it writes it."""

    def __init__(self):
        super().__init__()
        self.model = nn.Sequential(
            nn.Linear(100, 256),
            nn.LeakyReLU(0.2),
            nn.Linear(256, 512),
            nn.LeakyReLU(0.2),
            nn.Linear(512, 784),
            nn.Tanh(),
        )

    def forward(self, z):
        return self.model(z).view(z.size(0), 1, 28, 28)


class Discriminator(nn.Module):
    """The classic script's discriminator (sigmoid output, BCELoss)."""

    def __init__(self):
        super().__init__()
        self.model = nn.Sequential(
            nn.Linear(784, 512),
            nn.LeakyReLU(0.2),
            nn.Linear(512, 256),
            nn.LeakyReLU(0.2),
            nn.Linear(256, 1),
            nn.Sigmoid(),
        )

    def forward(self, img):
        return self.model(img.view(img.size(0), -1))


class PyTorchGanGenerator(nn.Module):
    """PyTorch-GAN's implementations/gan/gan.py generator, as it writes it (opt.latent_dim = 100, 1x28x28)."""

    def __init__(self):
        super().__init__()

        def block(in_feat, out_feat, normalize=True):
            layers = [nn.Linear(in_feat, out_feat)]
            if normalize:
                layers.append(nn.BatchNorm1d(out_feat, 0.8))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
            return layers

        self.model = nn.Sequential(
            *block(100, 128, normalize=False),
            *block(128, 256),
            *block(256, 512),
            *block(512, 1024),
            nn.Linear(1024, int(np.prod((1, 28, 28)))),
            nn.Tanh(),
        )

    def forward(self, z):
        img = self.model(z)
        img = img.view(img.size(0), *(1, 28, 28))
        return img


def train_a_few_steps(generator: nn.Module, steps: int = 6) -> nn.Module:
    """The classic loop (BCELoss, Adam 2e-4, batch 64) on the bundled digits in [-1, 1]; returns G in eval mode."""
    torch.manual_seed(0)
    discriminator = Discriminator()
    images = load_bundled()[0][: steps * 64].float() / 127.5 - 1
    loss = nn.BCELoss()
    opt_g = torch.optim.Adam(generator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    generator.train()
    for real in images.split(64):
        valid, fake_label = torch.ones(len(real), 1), torch.zeros(len(real), 1)
        opt_g.zero_grad()
        fake = generator(torch.randn(len(real), 100))
        loss(discriminator(fake), valid).backward()
        opt_g.step()
        opt_d.zero_grad()
        (loss(discriminator(real), valid) + loss(discriminator(fake.detach()), fake_label)).backward()
        opt_d.step()
    return generator.eval()


@pytest.fixture(scope="module")
def classic() -> Generator:
    torch.manual_seed(1)
    return train_a_few_steps(Generator())


@pytest.fixture(scope="module")
def pytorch_gan() -> PyTorchGanGenerator:
    torch.manual_seed(2)
    module = train_a_few_steps(PyTorchGanGenerator())
    norms = [m for m in module.modules() if isinstance(m, nn.BatchNorm1d)]
    assert len(norms) == 3 and all(m.num_batches_tracked.item() == 6 for m in norms)
    assert all((m.running_mean.abs() > 1e-3).any() and (m.running_var - 1).abs().max() > 1e-2 for m in norms)
    return module


def z_of(batch: int = 200, latent: int = 100, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return noise(7, 0, batch, latent).to(dtype)


def run_cli(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# --- from_module ---------------------------------------------------------------------------------------


def test_from_module_equals_the_classic_generator_bit_for_bit(classic: Generator) -> None:
    generator = gankit.from_module(classic)
    assert generator.config == GeneratorConfig() and not generator.training
    with torch.no_grad():
        assert torch.equal(generator(z_of()), classic(z_of()))


def test_from_module_folds_batchnorm_within_1e6_in_float64(pytorch_gan: PyTorchGanGenerator) -> None:
    module = PyTorchGanGenerator().double()
    module.load_state_dict(pytorch_gan.state_dict())
    generator = from_module(module.eval())
    assert generator.config.hidden == (128, 256, 512, 1024) and generator.layers[0].weight.dtype == torch.float64
    with torch.no_grad():
        difference = (generator(z_of(dtype=torch.float64)) - module(z_of(dtype=torch.float64))).abs().max().item()
    assert difference <= 1e-6


def test_from_module_takes_the_eval_function_and_leaves_the_module_alone(pytorch_gan: PyTorchGanGenerator) -> None:
    """A module still in train mode converts as in eval mode; its mode and running statistics stay as they were."""
    module = PyTorchGanGenerator()
    module.load_state_dict(pytorch_gan.state_dict())
    module.train()
    before = {k: v.clone() for k, v in module.state_dict().items()}
    generator = from_module(module)
    assert module.training and all(torch.equal(v, module.state_dict()[k]) for k, v in before.items())
    module64 = PyTorchGanGenerator().double()
    module64.load_state_dict(pytorch_gan.state_dict())
    with torch.no_grad():  # fp32 with BatchNorm folded: the parity rule (module docstring); float64: see above
        exact = module64.eval()(z_of(dtype=torch.float64))
        own = (module.eval()(z_of()).double() - exact).abs().max().item()
        assert (generator(z_of()).double() - exact).abs().max().item() <= max(FP32_FLOOR, FP32_HEADROOM * own)


class Nested(nn.Module):
    """Custom forward over nested containers: a ModuleList of blocks, then a Sequential head."""

    def __init__(self):
        super().__init__()
        self.blocks = nn.ModuleList(
            [
                nn.Sequential(nn.Linear(16, 32, bias=False), nn.BatchNorm1d(32), nn.ReLU()),
                nn.Sequential(nn.Linear(32, 24), nn.Dropout(0.3), nn.LeakyReLU(0.01), nn.Identity()),
            ]
        )
        self.head = nn.Sequential(nn.Linear(24, 48), nn.Sigmoid(), nn.Unflatten(1, (3, 4, 4)))

    def forward(self, z):
        for block in self.blocks:
            z = block(z)
        return self.head(z)


def _randomise_batchnorm(module: nn.Module) -> nn.Module:
    torch.manual_seed(3)
    for m in module.modules():
        if isinstance(m, nn.BatchNorm1d):
            m.running_mean.normal_()
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.normal_()
    return module.eval()


@pytest.mark.parametrize(
    ("build", "config"),
    [
        (Nested, GeneratorConfig(16, (32, 24), (3, 4, 4), slope=(0.0, 0.01), output_activation="sigmoid")),
        (
            lambda: nn.Sequential(
                nn.Linear(8, 12),
                nn.Linear(12, 20),
                nn.LeakyReLU(0.3),
                nn.Linear(20, 9),
                nn.Tanh(),
                nn.Unflatten(1, (3, 3)),
            ),
            GeneratorConfig(8, (12, 20), (1, 3, 3), slope=(1.0, 0.3)),  # Linear, Linear: slope 1; (B, 3, 3) images
        ),
    ],
    ids=["nested-bn-relu-sigmoid-unflatten", "linear-linear"],
)
def test_from_module_layer_kinds(build, config: GeneratorConfig) -> None:
    torch.manual_seed(4)
    module = _randomise_batchnorm(build()).double()
    generator = from_module(module)
    assert generator.config == config
    z = z_of(50, config.latent_dim, torch.float64)
    with torch.no_grad():
        expected = module(z).reshape(50, *config.image_shape)
        if config.output_activation == "sigmoid":
            expected = 2 * expected - 1  # gankit's images are in [-1, 1]
        assert (generator(z) - expected).abs().max().item() <= IMPORT_VERIFY


def test_flat_output_needs_the_image_shape() -> None:
    module = nn.Sequential(nn.Linear(10, 20), nn.ReLU(), nn.Linear(20, 12), nn.Tanh())
    with pytest.raises(ConversionError, match=r"output is flat \(12 values a sample\): pass image_shape"):
        from_module(module)
    assert from_module(module, image_shape=(3, 2, 2)).config.image_shape == (3, 2, 2)
    with pytest.raises(ConversionError, match=r"image_shape \(1, 28, 28\) does not fit"):
        from_module(module, image_shape=(1, 28, 28))


class SkipsALayer(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.act = nn.Linear(6, 6), nn.LeakyReLU(0.2)
        self.b, self.c, self.out = nn.Linear(6, 6), nn.Linear(6, 4), nn.Tanh()

    def forward(self, z):  # registered a, act, b, c, out; runs a, act, c, out: the walk cannot see that
        return self.out(self.c(self.act(self.a(z))))


class AddsSomething(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 4), nn.Tanh())

    def forward(self, z):
        return self.net(z + 0.01)


class OwnParameter(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 4), nn.Tanh())
        self.scale = nn.Parameter(torch.ones(4))

    def forward(self, z):
        return self.net(z) * self.scale


class NeedsLabels(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 4), nn.Tanh())

    def forward(self, z, labels):
        return self.net(z)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (
            lambda: nn.Sequential(nn.Linear(10, 64), nn.Unflatten(1, (4, 4, 4)), nn.ConvTranspose2d(4, 1, 3)),
            r"2 is a convolution layer \(ConvTranspose2d\): gankit takes MLP generators",
        ),
        (lambda: nn.Sequential(nn.Linear(6, 8), nn.GELU(), nn.Linear(8, 4), nn.Tanh()), r"^1 is a GELU: gankit"),
        (SkipsALayer, r"forward differs from its layers in order .* cannot see"),
        (AddsSomething, r"forward differs from its layers in order"),
        (OwnParameter, r"OwnParameter\) holds scale besides its submodules"),
        (NeedsLabels, r"forward failed on a probe batch z \(64, 6\) float64: TypeError"),
        (
            lambda: nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.BatchNorm1d(8), nn.Linear(8, 4), nn.Tanh()),
            r"2 \(BatchNorm1d\) does not follow a Linear directly \(1 comes between\)",
        ),
        (
            lambda: nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8, track_running_stats=False), nn.Linear(8, 4)),
            r"no running statistics",
        ),
        (lambda: nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 4)), r"\(2\) is followed by nothing"),
        (
            lambda: nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 4), nn.Tanh()),
            r"1 \(tanh\) follows the hidden layer 0: gankit's hidden layers take LeakyReLU, ReLU",
        ),
        (
            lambda: nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.LeakyReLU(), nn.Linear(8, 4), nn.Tanh()),
            r"2 \(LeakyReLU\) follows 1, another activation of 0",
        ),
        (lambda: nn.Sequential(nn.ReLU(), nn.Linear(6, 4), nn.Tanh()), r"0 \(ReLU\) comes before any Linear"),
    ],
    ids=[
        "conv",
        "unknown-layer",
        "skipped-layer",
        "adds-in-forward",
        "own-parameter",
        "forward-fails",
        "bn-after-activation",
        "bn-without-stats",
        "no-output-activation",
        "hidden-tanh",
        "two-activations",
        "activation-first",
    ],
)
def test_from_module_refuses_what_it_cannot_take(build, message: str) -> None:
    torch.manual_seed(5)
    with pytest.raises(ConversionError, match=message):
        from_module(build())


# --- state dicts through the CLI -----------------------------------------------------------------------


def test_cli_import_of_the_classic_state_dict(tmp_path: Path, classic: Generator, capsys) -> None:
    torch.save(classic.state_dict(), tmp_path / "G.pth")
    code, out, err = run_cli(capsys, "import", tmp_path / "G.pth", "--out", tmp_path / "G.safetensors")
    assert code == 0, err
    assert "G.pth (torch.save state dict: 3 Linear, leaky_relu(0.2), tanh)" in out
    imported = load_generator(tmp_path / "G.safetensors")
    assert imported.config == GeneratorConfig()
    with torch.no_grad():
        assert torch.equal(imported(z_of()), classic(z_of()))
    training = json.loads(read_generator_file(tmp_path / "G.safetensors")[2]["training"])
    assert training["imported"]["source"].endswith("G.pth") and len(training["imported"]["source_sha256"]) == 64


def test_every_command_takes_the_classic_state_dict(tmp_path: Path, classic: Generator, capsys) -> None:
    """export (parity-checked), sample and info take G.pth directly and say that they converted it."""
    torch.save(classic.state_dict(), tmp_path / "G.pth")
    notice = "converted G.pth (torch.save state dict: 3 Linear, leaky_relu(0.2), tanh) on the fly"
    code, out, err = run_cli(capsys, "export", tmp_path / "G.pth", "--out", tmp_path / "g.onnx")
    assert code == 0, err
    assert notice in out and "PASSED" in out
    assert json.loads((tmp_path / "g.parity.json").read_text())["passed"]

    args = ["--n", "300", "--out", tmp_path / "run", "--backend", "eager", "--quiet", "--shard-size", "128"]
    code, out, err = run_cli(capsys, "sample", tmp_path / "G.pth", *args)
    assert code == 0, err
    assert notice in out
    shards = np.concatenate([np.load(p) for p in sorted((tmp_path / "run").glob("shard_*.npy"))])
    with torch.no_grad():
        expected = to_uint8(classic(noise(0, 0, 300, 100))).numpy()
    assert np.array_equal(shards, expected)

    code, out, err = run_cli(capsys, "info", tmp_path / "G.pth", "--json")
    assert code == 0 and notice in err
    info = json.loads(out)
    assert info["layers"] == GeneratorConfig().describe() and info["parameters"] == GeneratorConfig().parameter_count


def test_batchnorm_state_dict_with_its_eps(tmp_path: Path, pytorch_gan: PyTorchGanGenerator, capsys) -> None:
    """gan.py's BatchNorm eps is 0.8 (a state dict does not store it): with --bn-eps 0.8 the imported fp32
    file is within the parity rule of the module, the default 1e-5 makes another generator, and its ONNX
    export passes parity."""
    torch.save(pytorch_gan.state_dict(), tmp_path / "gan.pth")
    z = z_of()
    module64 = PyTorchGanGenerator().double()
    module64.load_state_dict(pytorch_gan.state_dict())
    with torch.no_grad():
        exact = module64.eval()(z.double())
        torch_error = (pytorch_gan(z).double() - exact).abs().max().item()
        imported = load_model(tmp_path / "gan.pth", ImportOptions(bn_eps=0.8), log=lambda line: None)
        wrong_eps = load_model(tmp_path / "gan.pth", log=lambda line: None)
        assert (imported(z).double() - exact).abs().max().item() <= max(FP32_FLOOR, FP32_HEADROOM * torch_error)
        assert (wrong_eps(z).double() - exact).abs().max().item() > 1e-2
    code, out, err = run_cli(capsys, "export", tmp_path / "gan.pth", "--bn-eps", "0.8", "--out", tmp_path / "gan.onnx")
    assert code == 0, err
    assert "5 Linear, 3 BatchNorm1d folded, leaky_relu(0.2), tanh" in out and "PASSED" in out


def test_per_layer_activations_and_sigmoid_from_flags(tmp_path: Path, capsys) -> None:
    torch.manual_seed(6)
    module = nn.Sequential(
        nn.Linear(12, 20), nn.ReLU(), nn.Linear(20, 16), nn.LeakyReLU(0.1), nn.Linear(16, 27), nn.Sigmoid()
    ).eval()
    torch.save(module.state_dict(), tmp_path / "m.pt")
    flags = ["--hidden-act", "relu,leaky_relu", "--slope", "0.1", "--output-act", "sigmoid", "--image-shape", "3,3,3"]
    code, out, err = run_cli(capsys, "import", tmp_path / "m.pt", "--out", tmp_path / "m.safetensors", *flags)
    assert code == 0, err
    generator = load_generator(tmp_path / "m.safetensors")
    assert generator.config.slope == (0.0, 0.1) and generator.config.output_activation == "sigmoid"
    z = z_of(40, 12)
    with torch.no_grad():
        assert torch.equal(generator(z), (2 * module(z) - 1).view(40, 3, 3, 3))


def test_safetensors_state_dict_keys_in_natural_order(tmp_path: Path, capsys) -> None:
    """A safetensors file keeps no key order (model.10 sorts before model.2 as text): layers come in natural order."""
    torch.manual_seed(7)
    layers = []
    for fan_in, fan_out in [(10, 11), (11, 12), (12, 13), (13, 14), (14, 15)]:
        layers += [nn.Linear(fan_in, fan_out), nn.LeakyReLU(0.2)]
    module = nn.Sequential(*layers, nn.Linear(15, 16), nn.Tanh()).eval()  # Linears at model.0 .. model.10
    save_file({f"model.{k}": v.contiguous() for k, v in module.state_dict().items()}, tmp_path / "g.safetensors")
    generator = load_model(tmp_path / "g.safetensors", ImportOptions(image_shape=(1, 4, 4)), log=lambda line: None)
    assert generator.config.hidden == (11, 12, 13, 14, 15)
    with torch.no_grad():
        assert torch.equal(generator(z_of(30, 10)).flatten(1), module(z_of(30, 10)))


def test_a_gankit_file_is_copied_and_states_its_own_config(tmp_path: Path, capsys) -> None:
    code, out, err = run_cli(capsys, "import", PRETRAINED, "--out", tmp_path / "copy.safetensors")
    assert code == 0, err
    original, copy = read_generator_file(PRETRAINED), read_generator_file(tmp_path / "copy.safetensors")
    assert original[0] == copy[0] and all(torch.equal(original[1][k], copy[1][k]) for k in original[1])
    assert original[2]["training"] == copy[2]["training"]
    code, out, err = run_cli(capsys, "sample", PRETRAINED, "--slope", "0.1", "--out", tmp_path / "x.png")
    assert code == 2 and "is a gankit generator (its config is in the file): --slope does not apply" in err


# --- bad input: one line, exit 2, nothing written -------------------------------------------------------


class Writes:
    """A pickle that would create ``path`` if loading ran its code."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return open, (self.path, "w")


def _state(classic: Generator) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in classic.state_dict().items()}


def _write(path: Path, classic: Generator, case: str) -> str:
    """Write bad input ``case`` to ``path``; returns the text its error must contain."""
    state = _state(classic)
    if case == "missing-key":
        del state["model.2.bias"]
        message = "missing key model.2.bias"
    elif case == "extra-key":
        state["model.6.scale"] = torch.ones(3)
        message = "extra keys that are neither a Linear's weight/bias nor a BatchNorm1d's: model.6.scale"
    elif case == "shapes-do-not-chain":
        state["model.2.weight"] = torch.zeros(512, 300)
        message = "model.2 (weight (512, 300)) takes 300 inputs, but model.0 before it (weight (256, 100)) makes 256"
    elif case in ("nan", "inf"):
        state["model.4.weight"][3, 7] = float(case)
        message = "model.4.weight holds NaN or inf values"
    elif case == "conv":
        state = {"main.0.weight": torch.zeros(100, 512, 4, 4), "main.1.weight": torch.ones(512)}
        message = "main.0.weight has shape (100, 512, 4, 4): a convolution layer; gankit takes MLP generators"
    elif case == "image-shape":
        message = "makes 784 values a sample, but the image shape 1,28,28"
    else:
        raise AssertionError(case)
    torch.save(state, path)
    return message


@pytest.mark.parametrize("case", ["missing-key", "extra-key", "shapes-do-not-chain", "nan", "inf", "conv"])
def test_bad_state_dicts(tmp_path: Path, classic: Generator, case: str, capsys) -> None:
    message = _write(tmp_path / "bad.pth", classic, case)
    code, out, err = run_cli(capsys, "import", tmp_path / "bad.pth", "--out", tmp_path / "out.safetensors")
    assert code == 2 and err.count("\n") == 1 and err.startswith("gankit import: error: "), err
    assert message in err
    assert not (tmp_path / "out.safetensors").exists()


def test_bad_files(tmp_path: Path, classic: Generator, capsys) -> None:
    torch.save(classic.state_dict(), tmp_path / "good.pth")
    data = (tmp_path / "good.pth").read_bytes()
    (tmp_path / "empty.pth").write_bytes(b"")
    (tmp_path / "truncated.pth").write_bytes(data[: len(data) // 2])
    torch.save([1.0, 2.0], tmp_path / "list.pth")
    torch.save({"epoch": 3, "lr": 2e-4}, tmp_path / "numbers.pth")
    torch.save({"generator": classic.state_dict(), "epoch": 3}, tmp_path / "training.pth")
    torch.save({"model.0.weight": Writes(tmp_path / "ran")}, tmp_path / "code.pth")
    torch.save(classic, tmp_path / "module.pth")
    (tmp_path / "torn.safetensors").write_bytes(b"\x40\x00\x00\x00\x00\x00\x00\x00{")
    cases = {
        "empty.pth": "empty.pth: the file is empty (0 bytes)",
        "truncated.pth": "truncated.pth: not a readable torch.save file (truncated or corrupt?)",
        "list.pth": "list.pth: holds a Python list, not a state dict (tensor names -> tensors)",
        "numbers.pth": "numbers.pth: key 'epoch' holds a Python int, not a tensor",
        "training.pth": "holds dicts under generator (a training checkpoint?)",
        "code.pth": "code.pth: asks to run code or build objects other than tensors when loaded (",
        "module.pth": "module.pth: a whole pickled module (torch.save(model)), which only loads by running code; "
        "refused, nothing of it was run. Where its class is defined, load it and save its weights: "
        "torch.save(generator.state_dict(), 'G.pth')",
        "torn.safetensors": "torn.safetensors: not a readable safetensors file (truncated or corrupt?)",
        "missing.pth": "missing.pth: no such checkpoint file",
    }
    for name, message in cases.items():
        code, out, err = run_cli(capsys, "import", tmp_path / name, "--out", tmp_path / "out.safetensors")
        assert code == 2 and err.count("\n") == 1 and message in err, (name, err)
        assert not (tmp_path / "out.safetensors").exists()
    assert not (tmp_path / "ran").exists()  # the code pickle's payload never ran


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--image-shape", "3,32,32"], "makes 784 values a sample, but the image shape 3,32,32 holds 3072"),
        (["--hidden-act", "relu,relu,relu"], "3 values of hidden activation for 2 hidden layers"),
        (["--hidden-act", "gelu"], "hidden activation must be one of leaky_relu, relu, got ['gelu']"),
        (["--hidden-act", "relu", "--slope", "0.1"], "a slope was given, but no hidden layer is leaky_relu"),
        (["--image-shape", "1,28"], "--image-shape takes C,H,W (three sizes)"),
        (["--bn-eps", "0"], "BatchNorm eps must be positive"),
    ],
)
def test_bad_options(tmp_path: Path, classic: Generator, flags: list[str], message: str, capsys) -> None:
    torch.save(classic.state_dict(), tmp_path / "G.pth")
    code, out, err = run_cli(capsys, "import", tmp_path / "G.pth", "--out", tmp_path / "o.safetensors", *flags)
    assert code == 2 and err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "o.safetensors").exists()


def test_options_resolve_to_the_seed_defaults() -> None:
    options = ImportOptions()
    assert options.given() == [] and options.hidden_slopes(2) == (0.2, 0.2)
    assert options.resolved_output_act == "tanh" and options.resolved_bn_eps == 1e-5
    assert ImportOptions(hidden_act=("relu", "leaky_relu"), slope=(0.3,)).hidden_slopes(2) == (0.0, 0.3)
    with pytest.raises(ConfigError, match="output range must be -1,1 or 0,1"):
        ImportOptions(output_range=(0.0, 255.0))
    assert math.isclose(ImportOptions(slope=[0.25]).hidden_slopes(3)[2], 0.25)


def test_validate_takes_the_source_state_dict_with_its_flags(tmp_path: Path, classic: Generator, capsys) -> None:
    torch.save(classic.state_dict(), tmp_path / "G.pth")
    assert run_cli(capsys, "export", tmp_path / "G.pth", "--out", tmp_path / "g.onnx")[0] == 0
    validate = ["validate", tmp_path / "g.onnx", "--checkpoint", tmp_path / "G.pth"]
    code, out, err = run_cli(capsys, *validate)
    assert code == 0 and "PASSED" in out, err
    code, out, err = run_cli(capsys, *validate, "--slope", "0.1")
    assert code == 2 and "leaky_relu(0.2)" in err and "leaky_relu(0.1)" in err and "are different generators" in err


def test_sample_resume_refuses_the_same_file_read_with_other_flags(tmp_path: Path, capsys) -> None:
    """Import flags change the generator, not the file: resume compares the config too."""
    torch.manual_seed(7)
    module = nn.Sequential(nn.Linear(12, 20), nn.LeakyReLU(0.2), nn.Linear(20, 27), nn.Tanh()).eval()
    torch.save(module.state_dict(), tmp_path / "m.pt")
    out = tmp_path / "run"
    common = ["sample", tmp_path / "m.pt", "--image-shape", "3,3,3", "--n", "40", "--out", out, "--backend", "eager"]
    common += ["--shard-size", "16", "--quiet"]
    code, _, err = run_cli(capsys, *common, "--slope", "0.2")
    assert code == 0, err
    code, _, err = run_cli(capsys, *common, "--slope", "0.1", "--resume")
    assert code == 2 and "another config" in err, err
    code, _, err = run_cli(capsys, *common, "--slope", "0.2", "--resume")
    assert code == 0, err
