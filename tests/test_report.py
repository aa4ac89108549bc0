"""The seed-spread helpers of ``course.report``: means, ranges, the separation rule, tables."""

from __future__ import annotations

import pytest

from mtlaug_lib import report


def test_span_is_the_mean_and_the_range() -> None:
    assert report.span([0.5, 0.25, 0.75]) == "0.500 (0.250 to 0.750)"
    assert report.span([-1.5, 2.0], "+.1f") == "+0.2 (-1.5 to +2.0)"
    assert report.mean([1, 2, 6]) == 3


@pytest.mark.parametrize(("a", "b", "lower", "expected"), [
    ([3, 4], [1, 2], False, True),
    ([3, 4], [1, 3], False, False),  # a tie is not better
    ([1, 2], [3, 4], False, False),
    ([1, 2], [3, 4], True, True),
    ([1, 5], [3, 4], True, False),  # overlapping ranges
])
def test_beats_needs_every_seed_better(a, b, lower, expected) -> None:
    assert report.beats(a, b, lower) is expected


def test_separated_is_symmetric() -> None:
    assert report.separated([1, 2], [3, 4]) and report.separated([3, 4], [1, 2])
    assert not report.separated([1, 3], [2, 4])


def test_seed_table_lines_and_cells() -> None:
    rows = {"hard": {"depth": [0.5, 0.6], "score": [1.0, -1.0]},
            "MTAN": {"depth": [0.7, 0.7], "score": [2.0, 4.0]}}
    lines = report.seed_table(rows, {"depth": ".2f", "score": "+.1f"}).splitlines()
    assert len(lines) == 3
    assert lines[0].split() == ["depth", "score"]
    assert lines[1].split() == ["hard", "0.55", "(0.50", "to", "0.60)", "+0.0", "(-1.0", "to",
                                "+1.0)"]
    assert lines[2].startswith("MTAN")


def test_bad_input_names_the_argument() -> None:
    with pytest.raises(ValueError, match="argument 'values' is empty"):
        report.span([])
    with pytest.raises(ValueError, match="argument 'b' is empty"):
        report.beats([1.0], [])
    with pytest.raises(ValueError, match=r"lacks columns \{'MTAN': \['score'\]\}"):
        report.seed_table({"MTAN": {"depth": [1.0]}}, {"depth": ".2f", "score": ".1f"})
    with pytest.raises(ValueError, match="argument 'rows' is empty"):
        report.seed_table({}, {"depth": ".2f"})
