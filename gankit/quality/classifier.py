"""A small MNIST digit classifier: the feature extractor of gankit's quality metrics (MNIST-FID).

Inception weights cannot be fetched offline, so, as MNIST GAN work does, features come from a digit
classifier trained here: a 2-conv CNN whose 128-d penultimate layer is the feature space. It trains
on 4,000 of the bundled 5,000 digits (the first 400 of each class) and states its accuracy on the
other 1,000. Shipped as ``gankit/pretrained/classifier.safetensors`` (accuracy in its metadata);
made by ``python -m gankit.quality.classifier`` (see ``gankit/pretrained/CLASSIFIER.md``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn
from torch.nn import functional as F

from gankit.data import load_bundled
from gankit.errors import CheckpointError
from gankit.io import atomic_path
from gankit.pixels import from_uint8

SHIPPED = Path(__file__).parents[1] / "pretrained" / "classifier.safetensors"
FORMAT = "gankit.classifier"
FEATURES = 128


class DigitClassifier(nn.Module):
    """image (B, 1, 28, 28) in [-1, 1] -> (features (B, 128), logits (B, 10))."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, padding=1)
        self.conv2 = nn.Conv2d(32, 64, 3, padding=1)
        self.hidden = nn.Linear(64 * 7 * 7, FEATURES)
        self.head = nn.Linear(FEATURES, 10)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = F.max_pool2d(F.relu(self.conv1(images)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        features = F.relu(self.hidden(x.flatten(1)))
        return features, self.head(features)


def split_bundled() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(train images, train labels, held-out images, held-out labels): 400 + 100 of each digit."""
    images, labels = load_bundled()
    train_index, test_index = [], []
    for digit in range(10):
        index = (labels == digit).nonzero().flatten()
        train_index.append(index[:400])
        test_index.append(index[400:])
    train, test = torch.cat(train_index), torch.cat(test_index)
    images = from_uint8(images)
    return images[train], labels[train], images[test], labels[test]


def accuracy(model: DigitClassifier, images: torch.Tensor, labels: torch.Tensor) -> float:
    model.eval()
    with torch.no_grad():
        predicted = torch.cat([model(chunk)[1].argmax(1) for chunk in images.split(1000)])
    return (predicted == labels).float().mean().item()


def train_classifier(epochs: int = 8, seed: int = 0, augment: bool = True) -> tuple[DigitClassifier, float]:
    """Train on the 4,000-digit split (with small random shifts); returns (model, held-out accuracy)."""
    torch.manual_seed(seed)
    train_x, train_y, test_x, test_y = split_bundled()
    model = DigitClassifier()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    rng = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        model.train()
        order = torch.randperm(len(train_x), generator=rng)
        for batch in order.split(64):
            x = train_x[batch]
            if augment:  # shifts of up to 2 pixels: generated digits are not centred like MNIST's
                dx, dy = torch.randint(-2, 3, (2,), generator=rng).tolist()
                x = torch.roll(x, shifts=(dy, dx), dims=(2, 3))
            loss = F.cross_entropy(model(x)[1], train_y[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return model.eval(), accuracy(model, test_x, test_y)


def save_classifier(model: DigitClassifier, held_out_accuracy: float, path: Path = SHIPPED, **meta: object) -> None:
    metadata = {"format": FORMAT, "held_out_accuracy": f"{held_out_accuracy:.4f}", "info": json.dumps(meta)}
    with atomic_path(path, durable=True) as tmp:
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp), metadata=metadata)


def load_classifier(path: Path = SHIPPED) -> tuple[DigitClassifier, float]:
    """The feature extractor and its held-out accuracy."""
    if not path.is_file():
        raise CheckpointError(f"{path}: no classifier file (make it with: python -m gankit.quality.classifier)")
    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata() or {}
        if metadata.get("format") != FORMAT:
            raise CheckpointError(f"{path}: not a gankit classifier")
        tensors = {name: handle.get_tensor(name) for name in handle.keys()}
    model = DigitClassifier()
    model.load_state_dict(tensors)
    return model.eval(), float(metadata["held_out_accuracy"])


def main() -> None:
    parser = argparse.ArgumentParser(description="Train the MNIST-FID feature extractor on the bundled digits.")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=SHIPPED)
    args = parser.parse_args()
    model, held_out = train_classifier(args.epochs, args.seed)
    save_classifier(model, held_out, args.out, epochs=args.epochs, seed=args.seed, split="400/100 per digit")
    print(f"held-out accuracy {held_out:.4f} (1,000 digits); wrote {args.out}")


if __name__ == "__main__":
    main()
