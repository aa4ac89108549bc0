"""The book's staging copy: the course's pages, with presentation applied, in a folder of their own.

The notebooks in ``notebooks/`` are what nbval replays, so the build never writes them. It
copies them into a staging folder and applies presentation there, through the cell metadata
and tags that myst-nb and sphinx-book-theme read:

- alt text: myst-nb takes an image output's options from the cell metadata key
  ``mystnb: {image: {alt: ...}}`` (``render_image_options``, cell key ``image``, in
  ``myst_nb/core/config.py``; applied to every image the cell outputs in
  ``myst_nb/core/render.py``). Those options are per cell, so a cell with several image
  outputs is split into one cell per image: the first keeps the code, the others carry the
  ``remove-input`` tag, a one-line comment as source (myst-nb skips a cell whose source is
  empty, outputs and all) and only their own outputs.
- wide figures: the ``full-width`` cell tag, which sphinx-book-theme's stylesheet widens into
  the page's margin (``div.cell.tag_full-width``).
- solutions folded: an exercise's solution cell (nbgrader's ``solution`` cell that is not
  graded by hand) gets the ``hide-input`` tag, so a reader sees a "show code" toggle and can
  try the exercise first; an open exercise's model answer (nbgrader's written answer, a
  markdown cell) goes into an admonition with the ``dropdown`` class (sphinx-togglebutton),
  closed until the reader opens it.
- the harness's one line: every notebook's setup cell runs ``%xmode Minimal`` (errors shown as
  type and message), which prints "Exception reporting mode: Minimal"; that line is dropped
  from the stream output. Nothing else of any output is changed.

The staging folder mirrors the repository's layout (``README.md`` at the top, the notebooks
and pages under ``notebooks/``), so the relative links written for GitHub resolve in the book.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .figures import NotebookFigures, is_image_output

__all__ = ["WIDE_TAG", "present_notebook", "stage"]

WIDE_TAG = "full-width"
"""sphinx-book-theme's cell tag for content that spans the page's width."""

HIDDEN_INPUT_TAG = "remove-input"
CONTINUED_SOURCE = "# (more figures of the cell above)"
FOLDED_INPUT_TAG = "hide-input"
"""myst-nb's tag for an input shown behind a toggle (the exercises' solutions)."""
ANSWER_TITLE = "A model answer (open it after trying the exercise)"
"""The title of the dropdown that holds an open exercise's model answer."""
XMODE_LINE = "Exception reporting mode: Minimal\n"
"""What ``%xmode Minimal`` prints in every notebook's setup cell: harness, not course."""


def _is_solution(cell: Mapping[str, Any]) -> bool:
    """An autograded answer: a code cell nbgrader marks as a solution and does not grade."""
    grading = cell.get("metadata", {}).get("nbgrader", {})
    return cell.get("cell_type") == "code" and grading.get("solution") and not grading.get("grade")


def _is_written_answer(cell: Mapping[str, Any]) -> bool:
    """An open exercise's answer: a markdown cell nbgrader marks as a solution graded by hand."""
    grading = cell.get("metadata", {}).get("nbgrader", {})
    return (cell.get("cell_type") == "markdown" and bool(grading.get("solution"))
            and bool(grading.get("grade")))


def _folded_markdown(text: str) -> str:
    """``text`` inside a closed dropdown; the fence is longer than any backtick run in it."""
    fence = "`" * max(3, 1 + max((len(run) for run in text.split("\n") if set(run) == {"`"}),
                                 default=0))
    return f"{fence}{{admonition}} {ANSWER_TITLE}\n:class: dropdown\n\n{text}\n{fence}"


def _without_harness(cell: dict[str, Any]) -> dict[str, Any]:
    """``cell`` with its solution folded and the ``%xmode`` line dropped (changed in place)."""
    if _is_written_answer(cell):
        source = cell.get("source", "")
        cell["source"] = _folded_markdown("".join(source) if isinstance(source, list) else source)
    if _is_solution(cell) and FOLDED_INPUT_TAG not in cell.get("metadata", {}).get("tags", []):
        metadata = cell.setdefault("metadata", {})
        metadata["tags"] = [*metadata.get("tags", []), FOLDED_INPUT_TAG]
    outputs = []
    for output in cell.get("outputs", []):
        if output.get("output_type") == "stream":
            text = output["text"]
            text = "".join(text) if isinstance(text, list) else text
            if XMODE_LINE in text:
                output = {**output, "text": text.replace(XMODE_LINE, "")}
                if not output["text"]:
                    continue
        outputs.append(output)
    if "outputs" in cell:
        cell["outputs"] = outputs
    return cell


def _split_outputs(outputs: Sequence[Any]) -> list[list[Any]]:
    """Outputs in groups that each end with one image; trailing non-images join the last."""
    groups: list[list[Any]] = [[]]
    for output in outputs:
        if groups[-1] and is_image_output(groups[-1][-1]):
            groups.append([])
        groups[-1].append(output)
    if len(groups) > 1 and not any(is_image_output(output) for output in groups[-1]):
        groups[-2].extend(groups.pop())
    return groups


def _with_alt(cell: dict[str, Any], alt: str, wide: bool) -> dict[str, Any]:
    metadata = cell.setdefault("metadata", {})
    image_options = metadata.setdefault("mystnb", {}).setdefault("image", {})
    image_options["alt"] = alt
    if wide and WIDE_TAG not in metadata.get("tags", []):
        metadata["tags"] = [*metadata.get("tags", []), WIDE_TAG]
    return cell


def _present_cell(cell: dict[str, Any], texts: Sequence[str], wide: bool) -> list[dict[str, Any]]:
    outputs = cell.get("outputs", [])
    n_images = sum(is_image_output(output) for output in outputs)
    if n_images != len(texts):
        raise ValueError(f"cell {cell.get('id')!r} has {n_images} image output(s) but "
                         f"{len(texts)} alt text(s) were given")
    groups = _split_outputs(outputs)
    parts = []
    for k, (outputs, alt) in enumerate(zip(groups, texts, strict=True)):
        part = copy.deepcopy(cell) if k == 0 else {
            "cell_type": "code",
            "execution_count": cell.get("execution_count"),
            "id": f"{cell.get('id')}-{k}",
            "metadata": {"tags": [HIDDEN_INPUT_TAG]},
            "source": CONTINUED_SOURCE,
        }
        part["outputs"] = copy.deepcopy(outputs)
        parts.append(_with_alt(part, alt, wide))
    return parts


def present_notebook(nb: Mapping[str, Any], figures: NotebookFigures) -> dict[str, Any]:
    """A copy of ``nb`` (notebook JSON) with ``figures``' alt text and wide tags applied,
    solutions folded and the ``%xmode`` line dropped (see the module's docstring).

    ``nb`` is not modified. Cells without an entry in ``figures`` are otherwise copied as they are.

    Raises:
        ValueError: a cell's number of image outputs differs from its number of alt texts.
    """
    presented = copy.deepcopy(dict(nb))
    cells: list[dict[str, Any]] = []
    for cell in map(_without_harness, presented.get("cells", [])):
        texts = figures.alt.get(cell.get("id", "")) if cell.get("cell_type") == "code" else None
        if texts is None:
            cells.append(cell)
        else:
            cells.extend(_present_cell(cell, texts, cell.get("id") in figures.wide))
    presented["cells"] = cells
    return presented


def _write_json(nb: Mapping[str, Any], path: Path) -> None:
    path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def stage(
    root: str | os.PathLike[str],
    dest: str | os.PathLike[str],
    figures: Mapping[str, NotebookFigures],
    templates: Sequence[Path] = (),
) -> list[Path]:
    """Fill ``dest`` (emptied first) with the book's sources; returns the files written.

    ``root`` is the repository: its ``README.md``, every ``notebooks/*.ipynb`` (presented with
    ``figures``, by notebook stem) and every ``notebooks/*.md`` page. ``templates`` (the book's
    ``_config.yml`` and ``_toc.yml``) are copied to the top of ``dest``.

    Raises:
        FileNotFoundError: ``root`` has no ``README.md`` or no ``notebooks/`` folder.
        ValueError: ``dest`` is ``root`` or holds it, or is a folder with files that is not an
            earlier staging folder: emptying it would delete what is not the book's.
    """
    root, dest = Path(root).resolve(), Path(dest).resolve()
    readme, notebooks = root / "README.md", root / "notebooks"
    if not readme.is_file() or not notebooks.is_dir():
        raise FileNotFoundError(f"root {str(root)!r} is not the course's repository: expected "
                                f"README.md and notebooks/ in it")
    if dest == root or dest in root.parents:
        raise ValueError(f"dest {str(dest)!r} holds the repository {str(root)!r}: expected a "
                         f"build folder inside or outside it")
    if dest.exists() and any(dest.iterdir()) and not (dest / "_toc.yml").is_file():
        raise ValueError(f"dest {str(dest)!r} exists and is not a staging folder of the book "
                         f"(no _toc.yml): expected a new or earlier staging folder")
    if dest.exists():
        shutil.rmtree(dest)  # no file of an earlier staging survives
    (dest / "notebooks").mkdir(parents=True)
    written = [Path(shutil.copyfile(readme, dest / "README.md"))]
    for template in templates:
        written.append(Path(shutil.copyfile(template, dest / template.name)))
    for page in sorted(notebooks.glob("*.md")):
        written.append(Path(shutil.copyfile(page, dest / "notebooks" / page.name)))
    for path in sorted(notebooks.glob("*.ipynb")):
        nb = json.loads(path.read_text(encoding="utf-8"))
        target = dest / "notebooks" / path.name
        _write_json(present_notebook(nb, figures.get(path.stem, NotebookFigures())), target)
        written.append(target)
    return written
