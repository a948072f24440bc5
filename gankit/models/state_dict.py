"""A state dict (tensor names -> tensors) of an MLP generator -> ``Linear`` steps, read from the names and shapes.

Keys are grouped by their prefix (``model.0.weight`` -> ``model.0``), in the order given (a torch.save file
keeps the module's registration order; a safetensors file does not keep any, so its keys come in natural
order: ``model.2`` before ``model.10``). Each group is:

- a Linear: ``weight`` (out, in) and ``bias`` (out,) (the bias may only be missing before a BatchNorm,
  the ``bias=False`` idiom);
- a BatchNorm1d: ``running_mean`` and ``running_var`` (n,), with ``weight`` and ``bias`` (n,) unless it
  has no affine part, and ``num_batches_tracked``; folded into the Linear before it with ``bn_eps``
  (a state dict does not store eps);
- anything else is refused: 3-D to 5-D weights are convolutions, other names are extra keys.

The Linears must chain ((out, in) of one, (., out) of the next). What the names cannot say (activations,
image shape, BatchNorm's eps) comes from ``ImportOptions``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch

from gankit.errors import ConversionError
from gankit.models.chain import Linear, check_finite, fold_batchnorm

BATCHNORM_KEYS = {"running_mean", "running_var", "weight", "bias", "num_batches_tracked"}


def natural_key(name: str) -> list[object]:
    """Sort key that orders the numbers in a name by value: ``model.2`` < ``model.10``."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def _groups(tensors: Mapping[str, torch.Tensor]) -> dict[str, dict[str, torch.Tensor]]:
    groups: dict[str, dict[str, torch.Tensor]] = {}
    for key, tensor in tensors.items():
        prefix, _, suffix = key.rpartition(".")
        groups.setdefault(prefix, {})[suffix] = tensor
    return groups


def _key(prefix: str, suffix: str) -> str:
    return f"{prefix}.{suffix}" if prefix else suffix


def _float64(key: str, tensor: torch.Tensor) -> torch.Tensor:
    if not tensor.is_floating_point():
        raise ConversionError(f"{key} is a {tensor.dtype} tensor, not floating point weights")
    check_finite(key, tensor)
    return tensor.detach().to("cpu", torch.float64)


def linears_from_state_dict(tensors: Mapping[str, torch.Tensor], bn_eps: float) -> list[Linear]:
    """The Linears of an MLP generator's state dict, BatchNorm1d folded in (float64); see the module docstring.

    Raises ConversionError naming the keys: missing or extra keys, conv weights, shapes that do not chain
    (checked in ``build_generator``), non-float, NaN or inf tensors."""
    linears: list[Linear] = []
    extra: list[str] = []
    pending_no_bias: str | None = None  # a Linear without a bias: only a BatchNorm may follow it
    for prefix, group in _groups(tensors).items():
        weight = group.get("weight")
        if "running_mean" in group or "running_var" in group:
            extra += [_key(prefix, s) for s in sorted(set(group) - BATCHNORM_KEYS)]
            _fold(linears, prefix, group, bn_eps)
            pending_no_bias = None
            continue
        if pending_no_bias:
            raise ConversionError(f"missing key {pending_no_bias} (the Linear's bias; only a BatchNorm may replace it)")
        if weight is not None and 3 <= weight.ndim <= 5:
            raise ConversionError(
                f"{_key(prefix, 'weight')} has shape {tuple(weight.shape)}: a convolution layer; gankit takes MLP "
                "generators (Linear layers, with BatchNorm1d and activations between them)"
            )
        if weight is None and set(group) == {"bias"}:
            raise ConversionError(f"missing key {_key(prefix, 'weight')} ({_key(prefix, 'bias')} is there)")
        if weight is None or weight.ndim != 2:
            extra += [_key(prefix, s) for s in group]
            continue
        extra += [_key(prefix, s) for s in sorted(set(group) - {"weight", "bias"})]
        bias = group.get("bias")
        if bias is not None and tuple(bias.shape) != (weight.shape[0],):
            raise ConversionError(
                f"{_key(prefix, 'bias')} has shape {tuple(bias.shape)}, but {_key(prefix, 'weight')} "
                f"{tuple(weight.shape)} makes {weight.shape[0]} features"
            )
        if bias is None:
            pending_no_bias = _key(prefix, "bias")
            bias = torch.zeros(weight.shape[0])
        linears.append(Linear(prefix, _float64(_key(prefix, "weight"), weight), _float64(_key(prefix, "bias"), bias)))
    if pending_no_bias:
        raise ConversionError(f"missing key {pending_no_bias} (the last Linear's bias)")
    if extra:
        raise ConversionError(
            f"extra keys that are neither a Linear's weight/bias nor a BatchNorm1d's: {', '.join(extra)}"
        )
    if not linears:
        raise ConversionError(f"found no Linear weight (a 2-D 'weight') among the keys {', '.join(tensors)}")
    return linears


def _fold(linears: list[Linear], prefix: str, group: dict[str, torch.Tensor], eps: float) -> None:
    """Fold the BatchNorm1d ``prefix`` into the last Linear; ConversionError for missing keys or a bad place."""
    needed = ["running_mean", "running_var"] + (["weight", "bias"] if {"weight", "bias"} & set(group) else [])
    missing = [_key(prefix, s) for s in needed if s not in group]
    if missing:
        raise ConversionError(f"missing key {', '.join(missing)} (BatchNorm1d {prefix} has the others)")
    if not linears or linears[-1].batchnorm is not None:
        after = "comes first" if not linears else f"follows BatchNorm1d {linears[-1].batchnorm}"
        raise ConversionError(f"BatchNorm1d {prefix} {after}: gankit folds BatchNorm into the Linear before it")
    mean, var = (_float64(_key(prefix, s), group[s]) for s in ("running_mean", "running_var"))
    gamma, beta = (_float64(_key(prefix, s), group[s]) if s in group else None for s in ("weight", "bias"))
    linears[-1] = fold_batchnorm(linears[-1], prefix, mean, var, gamma, beta, eps)
