"""Which digit each sample of a class-conditional generator is asked for: a function of (seed, index).

A label spec names the rule; ``LabelSpec.labels(seed, start, count, num_classes)`` gives the labels of samples
start .. start+count-1 of ``seed`` as an int64 (count,) tensor, so the label of sample i, like its noise, does
not depend on batch sizes, shards, processes or resumes:

- ``digit D``: every sample's label is D.
- ``balanced``: the label of sample i is ``(i + seed) mod K`` (K = ``num_classes``): any K consecutive indices
  hold each label once, and sample i of another seed gets another label (a shift), so seeds do not all start
  at digit 0.

An unconditional generator (``num_classes == 0``) takes no spec (``resolve`` refuses one with a one-line
error); a conditional generator without one gets ``balanced``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from gankit.errors import ConfigError

if TYPE_CHECKING:
    import torch

KINDS = ("balanced", "digit")


class LabelError(ConfigError):
    """A label spec that does not fit the generator (a digit out of range, labels for an unconditional one)."""


@dataclass(frozen=True)
class LabelSpec:
    """``kind``: "balanced" or "digit"; ``digit``: the label of every sample when kind is "digit" (else None)."""

    kind: str = "balanced"
    digit: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise LabelError(f"unknown label spec {self.kind!r}; choose from {', '.join(KINDS)}")
        if (self.kind == "digit") != (self.digit is not None) or self.digit is not None and self.digit < 0:
            raise LabelError(f"a digit spec needs one digit >= 0 (and balanced none), got {self.kind} {self.digit}")

    def check(self, num_classes: int) -> None:
        """LabelError unless this spec fits a generator of ``num_classes`` classes (0 = unconditional)."""
        if not num_classes:
            raise LabelError(f"this generator is unconditional: it takes no labels (got {self.describe()})")
        if self.digit is not None and self.digit >= num_classes:
            raise LabelError(f"digit {self.digit} is out of range: this generator has labels 0..{num_classes - 1}")

    def label_array(self, seed: int, start: int, count: int, num_classes: int) -> np.ndarray:
        """Labels of samples start .. start+count-1 of ``seed``: a (count,) int64 array in [0, num_classes)."""
        self.check(num_classes)
        if self.digit is not None:
            return np.full((count,), self.digit, dtype=np.int64)
        first = (start + seed) % num_classes  # Python ints: seed < 2**64 does not overflow int64
        return (np.arange(count, dtype=np.int64) + first) % num_classes

    def labels(self, seed: int, start: int, count: int, num_classes: int) -> torch.Tensor:
        """``label_array`` as a torch tensor."""
        import torch

        return torch.from_numpy(self.label_array(seed, start, count, num_classes))

    def describe(self) -> str:
        """``balanced`` or ``digit 7``."""
        return self.kind if self.digit is None else f"digit {self.digit}"

    def to_json(self) -> dict[str, object]:
        return {"kind": self.kind, "digit": self.digit}

    @classmethod
    def from_json(cls, values: dict[str, object]) -> LabelSpec:
        return cls(str(values["kind"]), None if values.get("digit") is None else int(values["digit"]))


BALANCED = LabelSpec()


def from_options(digit: int | None = None, labels: str | None = None) -> LabelSpec | None:
    """The spec of ``gankit sample``'s ``--digit D`` / ``--labels balanced`` (None when neither is given)."""
    if digit is not None and labels is not None:
        raise LabelError("give --digit or --labels, not both")
    if digit is not None:
        return LabelSpec("digit", digit)
    return None if labels is None else LabelSpec(labels)


def resolve(spec: LabelSpec | None, num_classes: int) -> LabelSpec | None:
    """The spec a generator of ``num_classes`` runs with: None for an unconditional one (LabelError if a spec was
    given), the given spec (checked) or ``balanced`` for a conditional one."""
    if spec is None:
        return BALANCED if num_classes else None
    spec.check(num_classes)
    return spec


def num_classes_of(config: object) -> int:
    """The classes of a generator config (0 for an unconditional one, or a graph made elsewhere)."""
    return int(getattr(config, "num_classes", 0))


def check_labels(labels: torch.Tensor | None, batch: int, num_classes: int, where: str) -> None:
    """LabelError (one line naming ``where``) unless ``labels`` is (batch,) int64 in [0, K) when num_classes = K > 0,
    and None when num_classes = 0."""
    if not num_classes:
        if labels is not None:
            raise LabelError(f"{where} is unconditional (num_classes = 0): call it without labels")
        return
    if labels is None:
        raise LabelError(f"{where} is conditional on {num_classes} classes: pass labels (batch,) int64")
    if tuple(labels.shape) != (batch,) or str(labels.dtype) not in ("torch.int64", "int64"):
        raise LabelError(f"{where} takes labels of shape ({batch},) int64; got {tuple(labels.shape)} {labels.dtype}")
    if batch and not (0 <= int(labels.min()) and int(labels.max()) < num_classes):
        raise LabelError(f"{where} takes labels in 0..{num_classes - 1}; got {int(labels.min())}..{int(labels.max())}")
