"""Write the student edition of the course notebooks: the solutions replaced by placeholders.

The teacher notebooks hold each exercise's solution between nbgrader's markers::

    ### BEGIN SOLUTION
    n_params = sum(p.numel() for p in net.parameters())
    ### END SOLUTION

The student edition replaces every such block, markers included, with (indented like the
``### BEGIN SOLUTION`` line)::

    # YOUR CODE HERE
    raise NotImplementedError("Exercise 2: count the parameters: replace this line with ...")

so that a student who runs the notebook stops at the first exercise with a message that says
what to do. A markdown cell that nbgrader's metadata marks as a written answer (the model answer
of an open exercise, added by ``mtlaug-nbgrader annotate``) gets ``YOUR ANSWER HERE`` instead of
the teacher's text. The outputs of the exercise part (the solution cells and every code cell
after the first exercise heading, checks included) are cleared, since they would show the
answers; earlier cells keep their outputs so the edition still reads like the course.

Command line::

    mtlaug-student                          # notebooks/*.ipynb -> student/
    mtlaug-student --out handout notebooks/01_backbone.ipynb
    python -m mtlaug_lib.course.student

This is what nbgrader's ClearSolutions does, without nbgrader's database and course layout,
and it needs no nbgrader. Teachers who use nbgrader take the teacher notebooks, which carry
nbgrader's cell metadata, through ``mtlaug-nbgrader setup`` (``mtlaug_lib.course.grading``);
its release clears the same exercise part (``exercise_part_start``).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import re
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from .execute import find_notebooks, read_notebook, write_notebook

if TYPE_CHECKING:
    from nbformat import NotebookNode

__all__ = [
    "BEGIN_SOLUTION",
    "EDITION_KEY",
    "END_SOLUTION",
    "TEXT_PLACEHOLDER",
    "SolutionMarkerError",
    "exercise_part_start",
    "is_written_answer",
    "main",
    "make_student_notebook",
    "write_student_edition",
]

BEGIN_SOLUTION = "### BEGIN SOLUTION"
END_SOLUTION = "### END SOLUTION"
PLACEHOLDER_COMMENT = "# YOUR CODE HERE"
TEXT_PLACEHOLDER = "YOUR ANSWER HERE"
"""What replaces a written answer's text; nbgrader's ClearSolutions writes the same."""
EDITION_KEY = "mtlaug_edition"
"""Notebook metadata key; the student edition sets it to ``"student"``."""

DEFAULT_SOURCE = Path("notebooks")
DEFAULT_OUT = Path("student")

_HEADING = re.compile(r"^ {0,3}#{1,6}\s+(?P<text>.+?)\s*$")
# "Exercise" names one exercise; "Exercises" (the section heading) only starts the exercise
# part of the notebook.
_EXERCISE_WORD = re.compile(r"\bexercise\b", re.IGNORECASE)
_EXERCISE_SECTION_WORD = re.compile(r"\bexercises?\b", re.IGNORECASE)
_FENCE = re.compile(r"^\s*(```|~~~)")


class SolutionMarkerError(ValueError):
    """A ``### BEGIN SOLUTION`` / ``### END SOLUTION`` pair is broken in a code cell."""


# --------------------------------------------------------------------------- one cell


def _source(cell: NotebookNode) -> str:
    """A cell's source as one string (nbformat allows a list of lines on disk)."""
    source = cell.source
    return "".join(source) if isinstance(source, list) else source


def _is_marker(line: str, marker: str) -> bool:
    # Same rule as nbgrader's ClearSolutions: the stripped line starts with the marker.
    return line.strip().startswith(marker)


def has_solution(source: str) -> bool:
    """Whether a code cell's source contains a solution marker line."""
    return any(
        _is_marker(line, BEGIN_SOLUTION) or _is_marker(line, END_SOLUTION)
        for line in source.split("\n")
    )


def placeholder_lines(exercise: str, indent: str = "") -> list[str]:
    """The two lines that replace one solution block, indented like its BEGIN marker."""
    message = f"{exercise}: replace this line with your solution"
    # json.dumps gives a double-quoted literal that Python also reads, whatever the name holds.
    literal = json.dumps(message, ensure_ascii=False)
    return [f"{indent}{PLACEHOLDER_COMMENT}", f"{indent}raise NotImplementedError({literal})"]


def replace_solutions(source: str, exercise: str, where: str = "cell") -> str:
    """Replace every solution block of ``source`` (markers included) by the placeholder.

    Args:
        source: a code cell's source.
        exercise: the exercise's name, shown in the NotImplementedError message.
        where: names the notebook and cell in error messages.

    Raises:
        SolutionMarkerError: a BEGIN without END, an END without BEGIN, or nested BEGINs.
    """
    kept: list[str] = []
    open_line: int | None = None  # 1-based line of the unclosed BEGIN marker
    for number, line in enumerate(source.split("\n"), start=1):
        if _is_marker(line, BEGIN_SOLUTION):
            if open_line is not None:
                raise SolutionMarkerError(
                    f"{where}: line {number} has {BEGIN_SOLUTION!r} but the block opened on "
                    f"line {open_line} is not closed yet; expected {END_SOLUTION!r} first"
                )
            open_line = number
            indent = line[: len(line) - len(line.lstrip())]
            kept.extend(placeholder_lines(exercise, indent))
        elif _is_marker(line, END_SOLUTION):
            if open_line is None:
                raise SolutionMarkerError(
                    f"{where}: line {number} has {END_SOLUTION!r} without a "
                    f"{BEGIN_SOLUTION!r} before it"
                )
            open_line = None
        elif open_line is None:
            kept.append(line)
    if open_line is not None:
        raise SolutionMarkerError(
            f"{where}: {BEGIN_SOLUTION!r} on line {open_line} has no matching {END_SOLUTION!r}"
        )
    return "\n".join(kept)


# --------------------------------------------------------------------------- headings


def _headings(markdown: str) -> list[str]:
    """The ATX heading texts of a markdown cell, leading #'s stripped, code fences skipped."""
    texts: list[str] = []
    in_fence = False
    for line in markdown.split("\n"):
        if _FENCE.match(line):
            in_fence = not in_fence
            continue
        match = None if in_fence else _HEADING.match(line)
        if match:
            texts.append(match["text"].rstrip("#").strip())
    return texts


def exercise_name(markdown: str) -> str | None:
    """The last heading of a markdown cell that names an exercise, e.g. "Exercise 2: ..."."""
    names = [text for text in _headings(markdown) if _EXERCISE_WORD.search(text)]
    return names[-1] if names else None


def _starts_exercises(markdown: str) -> bool:
    """Whether a markdown cell has an "Exercise" or "Exercises" heading."""
    return any(_EXERCISE_SECTION_WORD.search(text) for text in _headings(markdown))


# --------------------------------------------------------------------------- a notebook


def _nbgrader_flag(cell: NotebookNode, key: str) -> bool:
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return bool(meta.get(key, False))


def is_written_answer(cell: NotebookNode) -> bool:
    """Whether a cell is a manually graded written answer: markdown, nbgrader ``solution``."""
    return cell.cell_type == "markdown" and _nbgrader_flag(cell, "solution")


def exercise_part_start(cells: Sequence[NotebookNode]) -> int:
    """Index of the first cell of a notebook's exercise part (``len(cells)`` if none).

    The part starts at the first markdown cell with an "Exercise" or "Exercises" heading, or
    at the first code cell that holds a solution (markers, or nbgrader's ``solution`` flag,
    which stays after nbgrader has replaced the markers), whichever comes first. The student
    edition and the nbgrader release (``grading_release``) clear the outputs of every code
    cell from there on: the checks' stored "Correct! ..." would give answers away.
    """
    for index, cell in enumerate(cells):
        source = _source(cell)
        if cell.cell_type == "markdown" and _starts_exercises(source):
            return index
        if cell.cell_type == "code" and (has_solution(source) or _nbgrader_flag(cell, "solution")):
            return index
    return len(cells)


def _clear_outputs(cell: NotebookNode) -> None:
    cell.outputs = []
    cell.execution_count = None


def make_student_notebook(nb: NotebookNode, *, name: str = "notebook") -> NotebookNode:
    """The student edition of a teacher notebook (a new notebook; ``nb`` is not changed).

    Every solution block is replaced by a placeholder that raises NotImplementedError naming
    the exercise (the nearest preceding markdown heading containing "Exercise", else
    "Exercise N" with N counting solution cells). Every written answer cell
    (``is_written_answer``: the model answer of an open exercise) gets ``TEXT_PLACEHOLDER``
    as its whole text. Code cells of the exercise part (``exercise_part_start``) lose their
    outputs and execution counts. The notebook metadata gets ``"mtlaug_edition": "student"``.

    Args:
        nb: an nbformat v4 notebook.
        name: how error messages name the notebook (e.g. its path).

    Raises:
        SolutionMarkerError: broken markers; the message names the notebook and cell index.
    """
    import nbformat

    student = nbformat.from_dict(copy.deepcopy(nb))
    current_exercise: str | None = None
    start = exercise_part_start(student.cells)
    solutions = 0
    for index, cell in enumerate(student.cells):
        if is_written_answer(cell):
            # Checked before the heading rule: the teacher's text may itself name an exercise.
            cell.source = TEXT_PLACEHOLDER
        elif cell.cell_type == "markdown":
            current_exercise = exercise_name(_source(cell)) or current_exercise
        elif cell.cell_type == "code":
            source = _source(cell)
            if has_solution(source):
                solutions += 1
                exercise = current_exercise or f"Exercise {solutions}"
                cell.source = replace_solutions(source, exercise, where=f"{name}, cell {index}")
            if index >= start:
                _clear_outputs(cell)
    student.metadata[EDITION_KEY] = "student"
    return student


# --------------------------------------------------------------------------- files


def _check_targets(sources: list[Path], out_dir: Path) -> list[Path]:
    """The output path of each source; refuse anything that would lose a teacher notebook."""
    targets = [out_dir / source.name for source in sources]
    seen: dict[Path, Path] = {}
    for source, target in zip(sources, targets, strict=True):
        if target in seen:
            raise ValueError(
                f"notebooks {str(seen[target])!r} and {str(source)!r} would both be written "
                f"to {str(target)!r}; give notebooks with distinct file names"
            )
        seen[target] = source
        if target.resolve() == source.resolve():
            raise ValueError(
                f"out_dir {str(out_dir)!r} would overwrite the teacher notebook "
                f"{str(source)!r}; expected a separate folder such as 'student'"
            )
        if target.exists() and not _is_student_edition(target):
            raise ValueError(
                f"{str(target)!r} exists and is not a student edition; refusing to overwrite "
                "it (remove it or choose another out_dir)"
            )
    return targets


def _is_student_edition(path: Path) -> bool:
    try:
        return read_notebook(path).metadata.get(EDITION_KEY) == "student"
    except (OSError, ValueError):
        return False


def write_student_edition(
    sources: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
) -> list[Path]:
    """Write the student edition of notebooks (files or folders of them) into ``out_dir``.

    Every notebook is converted before any file is written, so a broken marker in one leaves
    ``out_dir`` as it was. Files are written atomically, under their original names.

    Returns:
        The written paths, in the order of ``sources``.

    Raises:
        FileNotFoundError, ValueError: a source is missing or not a notebook.
        SolutionMarkerError: broken solution markers (names the notebook and the cell).
        ValueError: a target would overwrite a teacher notebook or any file that is not a
            student edition, or two sources share a file name.
    """
    import nbformat

    if isinstance(sources, (str, os.PathLike)):
        sources = [sources]
    notebooks = find_notebooks(sources)
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"out_dir {str(out_dir)!r} exists and is not a folder")
    targets = _check_targets(notebooks, out_dir)
    editions = [make_student_notebook(read_notebook(path), name=str(path)) for path in notebooks]
    for edition in editions:
        nbformat.validate(edition)
    out_dir.mkdir(parents=True, exist_ok=True)
    for edition, target in zip(editions, targets, strict=True):
        write_notebook(edition, target)
    return targets


# --------------------------------------------------------------------------- command line


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mtlaug-student",
        description="Write the student edition of the notebooks: solutions replaced.",
    )
    parser.add_argument(
        "sources",
        nargs="*",
        metavar="NOTEBOOK_OR_FOLDER",
        help=f"teacher notebooks or folders of them (default: {DEFAULT_SOURCE}/)",
    )
    parser.add_argument(
        "--out",
        default=str(DEFAULT_OUT),
        help=f"folder for the student edition (default: {DEFAULT_OUT}/)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``mtlaug-student``; returns the exit status (0: edition written)."""
    args = _parser().parse_args(argv)
    try:
        written = write_student_edition(args.sources or [DEFAULT_SOURCE], args.out)
    except (OSError, ValueError) as err:  # SolutionMarkerError is a ValueError
        print(f"mtlaug-student: error: {err}", file=sys.stderr)
        return 1
    for path in written:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
