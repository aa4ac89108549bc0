"""The book's figure presentation: alt text for every image output, and which figures are wide.

It lives in ``figures.toml`` next to this module, one table per notebook stem::

    [01_backbone]
    "3f2a9c1e" = "A grid of eight MultiDigits images ..."       # the cell's one image output
    "9b7d0c2a" = ["first image's alt text", "second image's"]  # one string per image output

    [01_backbone.wide]                                          # optional
    "3f2a9c1e" = true                                           # shown at the page's full width

A key is a code cell's ``id`` (nbformat >= 4.5 gives every cell one, and the course keeps them
stable), so the alt text follows a figure when cells are added around it. The notebooks
themselves are never edited for presentation: the book's staging copy applies it.

:func:`figure_problems` compares the file with the notebooks both ways (an image without alt
text, a key that names no image cell any more), so the file cannot drift silently.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10
    import tomli as tomllib

__all__ = [
    "DEFAULT_FIGURES",
    "IMAGE_MIME_TYPES",
    "NotebookFigures",
    "figure_problems",
    "image_output_counts",
    "is_image_output",
    "load_figures",
    "parse_figures",
]

DEFAULT_FIGURES = Path(__file__).with_name("figures.toml")
"""The alt text that ships with the course."""

IMAGE_MIME_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/svg+xml"})
"""Outputs holding one of these render as an image in the book (the course stores PNG only)."""

WIDE_KEY = "wide"


@dataclass(frozen=True)
class NotebookFigures:
    """One notebook's figure presentation.

    Attributes:
        alt: code cell id -> the alt text of each of its image outputs, in output order.
        wide: ids of the cells whose figures are shown at the page's full width.
    """

    alt: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    wide: frozenset[str] = frozenset()


def _alt_texts(value: Any, where: str) -> tuple[str, ...]:
    texts = [value] if isinstance(value, str) else value
    if not isinstance(texts, list) or not texts:
        raise ValueError(f"{where}: expected an alt text (a string) or a non-empty array of "
                         f"strings, got {value!r}")
    for text in texts:
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"{where}: expected non-empty alt text strings, got {text!r}")
    return tuple(text.strip() for text in texts)


def _wide_ids(value: Any, where: str) -> frozenset[str]:
    if not isinstance(value, dict):
        raise ValueError(f"{where}: expected a table of cell id = true, got {value!r}")
    for cell_id, flag in value.items():
        if not isinstance(flag, bool):
            raise ValueError(f"{where}.{cell_id}: expected true or false, got {flag!r}")
    return frozenset(cell_id for cell_id, flag in value.items() if flag)


def parse_figures(data: Mapping[str, Any], source: str = "figures") -> dict[str, NotebookFigures]:
    """Check and convert the parsed TOML ``data``; ``source`` names it in error messages.

    Raises:
        ValueError: a notebook entry that is not a table, an alt text that is not a non-empty
            string or array of them, or a ``wide`` entry that is not ``true``/``false``.
    """
    figures: dict[str, NotebookFigures] = {}
    for stem, table in data.items():
        if not isinstance(table, dict):
            raise ValueError(f"{source}: [{stem}] must be a table of cell id = alt text, "
                             f"got {table!r}")
        alt = {cell_id: _alt_texts(value, f"{source}: [{stem}] {cell_id!r}")
               for cell_id, value in table.items() if cell_id != WIDE_KEY}
        wide = _wide_ids(table.get(WIDE_KEY, {}), f"{source}: [{stem}.{WIDE_KEY}]")
        figures[stem] = NotebookFigures(alt=alt, wide=wide)
    return figures


def load_figures(path: str | os.PathLike[str] = DEFAULT_FIGURES) -> dict[str, NotebookFigures]:
    """Read a figures file (see the module docstring); notebook stem -> its presentation.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: the file is not valid TOML or not in the expected shape.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"figures file {str(path)!r} not found")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as err:
        raise ValueError(f"{path}: not valid TOML: {err}") from err
    return parse_figures(data, source=str(path))


def is_image_output(output: Mapping[str, Any]) -> bool:
    """Whether a notebook output renders as an image (it holds an image MIME type)."""
    return bool(IMAGE_MIME_TYPES & set(output.get("data", {})))


def image_output_counts(nb: Mapping[str, Any]) -> dict[str, int]:
    """Code cell id -> how many image outputs it stores, for cells with at least one."""
    counts: dict[str, int] = {}
    for cell in nb.get("cells", []):
        if cell.get("cell_type") != "code":
            continue
        n = sum(is_image_output(output) for output in cell.get("outputs", []))
        if n:
            counts[cell.get("id", "")] = n
    return counts


def figure_problems(
    figures: Mapping[str, NotebookFigures], notebooks: Mapping[str, Mapping[str, Any]]
) -> list[str]:
    """Every mismatch between ``figures`` and ``notebooks`` (stem -> notebook JSON), one line each.

    An image output without alt text, a cell with a different number of alt texts than image
    outputs, and any key (notebook, cell, wide cell) that names no image of the notebooks. An
    empty list means the two agree.
    """
    problems = []
    for stem, nb in notebooks.items():
        counts = image_output_counts(nb)
        presentation = figures.get(stem, NotebookFigures())
        for cell_id, n in counts.items():
            texts = presentation.alt.get(cell_id)
            if texts is None:
                problems.append(f"{stem}: cell {cell_id!r} has {n} image output(s) and no alt "
                                f"text in the figures file")
            elif len(texts) != n:
                problems.append(f"{stem}: cell {cell_id!r} has {n} image output(s) but "
                                f"{len(texts)} alt text(s)")
        for cell_id in sorted(set(presentation.alt) - set(counts)):
            problems.append(f"{stem}: stale alt text for cell {cell_id!r}, which has no image "
                            f"output (removed or re-numbered?)")
        for cell_id in sorted(presentation.wide - set(counts)):
            problems.append(f"{stem}: stale wide entry for cell {cell_id!r}, which has no image "
                            f"output")
    for stem in sorted(set(figures) - set(notebooks)):
        problems.append(f"stale table [{stem}] in the figures file: no such notebook")
    return problems
