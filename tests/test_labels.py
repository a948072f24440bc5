"""gankit.labels: a sample's label is a function of (seed, index), balanced over any K consecutive indices."""

from __future__ import annotations

import pytest
import torch

from gankit.labels import BALANCED, LabelError, LabelSpec, check_labels, from_options, resolve


@pytest.mark.parametrize("seed", [0, 3, 2**64 - 1])
@pytest.mark.parametrize("classes", [1, 3, 10])
def test_balanced_is_i_plus_seed_mod_k_and_balanced_over_any_k_in_a_row(seed: int, classes: int) -> None:
    labels = BALANCED.labels(seed, 17, 5 * classes + 3, classes)
    assert labels.dtype == torch.int64 and labels.shape == (5 * classes + 3,)
    assert labels.tolist() == [(i + seed) % classes for i in range(17, 17 + 5 * classes + 3)]
    for first in range(len(labels) - classes + 1):
        assert sorted(labels[first : first + classes].tolist()) == list(range(classes))


def test_labels_of_a_range_do_not_depend_on_how_it_is_split() -> None:
    whole = BALANCED.labels(9, 0, 100, 10)
    parts = torch.cat([BALANCED.labels(9, start, 7, 10) for start in range(0, 100, 7)])[:100]
    assert torch.equal(whole, parts)
    assert not torch.equal(BALANCED.labels(9, 0, 10, 10), BALANCED.labels(8, 0, 10, 10))  # seeds shift labels


def test_digit_spec_gives_that_digit_everywhere() -> None:
    assert LabelSpec("digit", 7).labels(5, 100, 4, 10).tolist() == [7, 7, 7, 7]


def test_resolve_defaults_to_balanced_and_refuses_labels_for_unconditional() -> None:
    assert resolve(None, 10) == BALANCED
    assert resolve(None, 0) is None
    assert resolve(LabelSpec("digit", 3), 10) == LabelSpec("digit", 3)
    with pytest.raises(LabelError, match="unconditional: it takes no labels"):
        resolve(LabelSpec("digit", 3), 0)
    with pytest.raises(LabelError, match="digit 10 is out of range.*0..9"):
        resolve(LabelSpec("digit", 10), 10)


def test_specs_round_trip_and_bad_ones_are_refused() -> None:
    for spec in (BALANCED, LabelSpec("digit", 0)):
        assert LabelSpec.from_json(spec.to_json()) == spec
    assert from_options(digit=4) == LabelSpec("digit", 4)
    assert from_options(labels="balanced") == BALANCED and from_options() is None
    with pytest.raises(LabelError):
        LabelSpec("digit", -1)
    with pytest.raises(LabelError):
        LabelSpec("shuffled")
    with pytest.raises(LabelError, match="not both"):
        from_options(digit=1, labels="balanced")


def test_check_labels() -> None:
    check_labels(torch.tensor([0, 9]), 2, 10, "x")
    check_labels(None, 2, 0, "x")
    for labels, classes, message in [
        (None, 10, "conditional on 10 classes"),
        (torch.tensor([0]), 0, "unconditional"),
        (torch.tensor([0, 1], dtype=torch.int32), 10, "int64"),
        (torch.tensor([0]), 10, r"shape \(2,\)"),
        (torch.tensor([0, 10]), 10, "in 0..9"),
    ]:
        with pytest.raises(LabelError, match=message):
            check_labels(labels, 2, classes, "x")
