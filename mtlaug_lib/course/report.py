"""Results over seeds, as the notebooks report them: a mean with its min-max range, tables of
settings against metrics, and the separation rule that every claim in a notebook uses.

A difference between two settings is claimed only where it is *separated*: every seed of one is
better than every seed of the other. With three seeds that is a strict rule (it ignores how far
apart the means are), which is the point: a notebook says no more than its runs show.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence


def _values(name: str, values: Sequence[float]) -> list[float]:
    values = [float(v) for v in values]
    if not values:
        raise ValueError(f"argument {name!r} is empty, expected one value per seed")
    return values


def mean(values: Sequence[float]) -> float:
    """The mean of a non-empty sequence of numbers."""
    values = _values("values", values)
    return sum(values) / len(values)


def span(values: Sequence[float], fmt: str = ".3f") -> str:
    """``"mean (min to max)"`` of per-seed values, each formatted with ``fmt``."""
    values = _values("values", values)
    return f"{mean(values):{fmt}} ({min(values):{fmt}} to {max(values):{fmt}})"


def beats(a: Sequence[float], b: Sequence[float], lower: bool = False) -> bool:
    """Whether every value of ``a`` is better than every value of ``b`` (lower is better with
    ``lower=True``; a tie is not better)."""
    a, b = _values("a", a), _values("b", b)
    return max(a) < min(b) if lower else min(a) > max(b)


def separated(a: Sequence[float], b: Sequence[float]) -> bool:
    """Whether the ranges of ``a`` and ``b`` do not overlap (either one beats the other)."""
    return beats(a, b) or beats(b, a)


def seed_table(
    rows: Mapping[str, Mapping[str, Sequence[float]]],
    formats: Mapping[str, str],
    width: int = 24,
) -> str:
    """A text table: one line per setting (``rows``' keys), one column per entry of
    ``formats`` (its key is the column's title and the key into each row, its value the number
    format), each cell ``mean (min to max)`` over the row's per-seed values."""
    if not rows:
        raise ValueError("argument 'rows' is empty, expected at least one setting")
    missing = {name: sorted(set(formats) - set(row)) for name, row in rows.items()}
    missing = {name: keys for name, keys in missing.items() if keys}
    if missing:
        raise ValueError(f"argument 'rows' lacks columns {missing}, expected all of "
                         f"{list(formats)}")
    first = max(len(name) for name in rows) + 2
    lines = [f"{'':{first}}" + "".join(f"{title:>{width}}" for title in formats)]
    for name, row in rows.items():
        lines.append(f"{name:{first}}" + "".join(
            f"{span(row[key], fmt):>{width}}" for key, fmt in formats.items()))
    return "\n".join(lines)
