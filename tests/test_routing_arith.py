"""Re-checking written-out arithmetic (the signal behind `arithmetic_consistent`)."""

from __future__ import annotations

import pytest

from costwise.routing._arith import arithmetic_errors, numbers_in


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("16 - 3 = 13", (1, 0)),
        ("16 - 3 = 12", (1, 1)),
        ("<<9*2=18>>18 and <<9*2=19>>19", (2, 1)),
        ("<<40*1.25+20*1.5=50+30=80>>80", (2, 0)),
        ("2 \\* 20 - 64 = 8", (1, 1)),
        ("3 x 4 = 12, 3 \u00d7 4 = 12, 12 \u00f7 4 = 3", (3, 0)),
        ("1,000 * 2 = 2,000", (1, 0)),
        ("1/3 = 0.33 and 20% * 50 = 10", (2, 0)),
        ("4 dozens + 2 = 4*12 + 2 = 50", (1, 0)),
        ("a total of 12 = 12", (0, 0)),
        ("x = 2y + 3", (0, 0)),
        ("5 / 0 = 1", (0, 0)),
        ("no numbers", (0, 0)),
    ],
    ids=[
        "right",
        "wrong",
        "annotations",
        "annotation-chain",
        "escaped-star",
        "signs",
        "thousands",
        "rounding-percent",
        "left-side-cut",
        "nothing-computed",
        "algebra-skipped",
        "division-by-zero-skipped",
        "empty",
    ],
)
def test_arithmetic_errors(text: str, expected: tuple[int, int]) -> None:
    """Steps are counted and recomputed; what is not plain arithmetic is skipped."""
    assert arithmetic_errors(text) == expected


def test_numbers_in() -> None:
    """Numbers are normalised so that 1,000 and 1000, 2.50 and 2.5 match."""
    assert numbers_in("1,000 apples at $2.50 and 3.0 kg") == {"1000", "2.5", "3"}
