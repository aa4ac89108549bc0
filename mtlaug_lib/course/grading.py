"""nbgrader for the course: cell metadata derived from the notebooks, and a course folder.

The teacher notebooks follow one structure (COURSE.md): after "## Exercises", a checked
exercise is a heading "### Exercise N: ...", a code cell with the solution between
``### BEGIN SOLUTION`` and ``### END SOLUTION``, and a check cell right after it that calls
``exercises.check_...``; an open exercise is a heading "### Exercise N (open): ..." alone.
nbgrader needs each such cell marked in its metadata (``metadata.nbgrader``, schema 3).
``annotate_notebook`` derives that metadata from the structure, so nobody types it by hand:

- the solution cell: an autograded answer (``solution``), grade id ``nbNN-exK-answer``;
- the check cell: a locked autograder test (``grade``, ``locked``), ``nbNN-exK-check``,
  worth ``CHECK_POINTS`` (1) point: the check raises ``ExerciseError``, an AssertionError,
  on a wrong answer, which nbgrader scores 0;
- an open exercise: a NEW markdown cell right after its heading, a manually graded written
  answer (``solution`` and ``grade``), ``nbNN-exK-open``, worth ``OPEN_POINTS`` (2) points,
  since it asks for an argument, not one value. In the teacher notebook it holds a short model
  answer; nbgrader's release and ``mtlaug-student`` replace it by "YOUR ANSWER HERE".

``NN`` is the notebook's number (the leading digits of its file name; the whole name where it
has none) and ``K`` the exercise's number from its heading, so ids stay the same when cells
move, and the new cells get the grade id as their cell id. Annotating is deterministic and
idempotent: metadata the structure does not call for is removed, a model answer already
written is kept. Command line (``mtlaug-nbgrader``)::

    mtlaug-nbgrader annotate [NOTEBOOK_OR_FOLDER ...]          # rewrite in place
    mtlaug-nbgrader annotate --check                           # exit 1 and list differences
    mtlaug-nbgrader setup COURSE_DIR [NOTEBOOK_OR_FOLDER ...] [--force]

``setup`` writes ``COURSE_DIR/nbgrader_config.py`` (the course's config, shipped in this
package: what the release keeps, the autograde timeout) and one nbgrader assignment per
notebook, ``COURSE_DIR/source/<stem>/<stem>.ipynb``, annotated. Nothing here imports
nbgrader: it only reads and writes notebooks (nbformat, a development dependency, is imported
where needed).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import re
import shutil
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .execute import find_notebooks, read_notebook, write_notebook
from .student import exercise_name, has_solution, is_written_answer

if TYPE_CHECKING:
    from nbformat import NotebookNode

__all__ = [
    "CHECK_POINTS",
    "CONFIG_FILE",
    "MODEL_ANSWER_STUB",
    "OPEN_POINTS",
    "AnnotationError",
    "annotate_notebook",
    "annotate_paths",
    "differences",
    "main",
    "notebook_prefix",
    "setup_course",
]

CHECK_POINTS = 1
"""Points of one check cell (an autograded exercise)."""
OPEN_POINTS = 2
"""Points of one open exercise's written answer (graded by hand)."""
SCHEMA_VERSION = 3
"""nbgrader's cell metadata schema (nbgrader 0.7 to 0.9)."""

MODEL_ANSWER_STUB = (
    "**Model answer (teacher edition; the release shows YOUR ANSWER HERE):** not written yet."
)
"""The text of a new written-answer cell; ``--check`` reports it until a teacher replaces it."""

CONFIG_FILE = Path(__file__).resolve().parent / "nbgrader_config.py"
"""The course's nbgrader config, copied into a course folder by ``setup_course``."""

DEFAULT_SOURCE = Path("notebooks")

_EXERCISE = re.compile(r"^exercise\s+(?P<number>\d+)\b(?P<rest>.*)$", re.IGNORECASE)
_OPEN = re.compile(r"\(open\)", re.IGNORECASE)
_CHECK_CALL = re.compile(r"\bexercises\.check_\w+\s*\(")
_GRADE_ID = re.compile(r"^[A-Za-z0-9_-]+$")


class AnnotationError(ValueError):
    """A notebook's exercise part does not have the structure the metadata is derived from."""


# --------------------------------------------------------------------------- one notebook


def notebook_prefix(stem: str) -> str:
    """The grade-id prefix of a notebook: ``"01_backbone"`` -> ``"nb01"``.

    A name without leading digits gives ``nb-<name>``, characters nbgrader refuses in grade
    ids replaced by ``-``.
    """
    match = re.match(r"\d+", stem)
    if match:
        return f"nb{match.group(0)}"
    cleaned = re.sub(r"[^A-Za-z0-9_-]+", "-", stem).strip("-")
    if not cleaned:
        raise AnnotationError(f"stem {stem!r} gives no grade-id prefix; expected a file name "
                              "with letters or digits, e.g. '01_backbone'")
    return f"nb-{cleaned}"


def _source(cell: NotebookNode) -> str:
    source = cell.source
    return "".join(source) if isinstance(source, list) else source


def _exercise_heading(cell: NotebookNode) -> tuple[int, bool] | None | str:
    """What a markdown cell's last exercise heading names: ``(number, is_open)``, ``"none"``
    for a heading without a number ("## Exercises"), or None when it has no such heading."""
    name = exercise_name(_source(cell))
    if name is None:
        return None
    match = _EXERCISE.match(name)
    if match is None:
        return "none"
    return int(match["number"]), bool(_OPEN.search(match["rest"]))


def _metadata(grade_id: str, *, solution: bool, grade: bool, locked: bool,
              points: int | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "grade": grade,
        "grade_id": grade_id,
        "locked": locked,
        "schema_version": SCHEMA_VERSION,
        "solution": solution,
        "task": False,
    }
    if points is not None:
        meta["points"] = points
    return meta


def annotate_notebook(nb: NotebookNode, stem: str, *, name: str | None = None) -> NotebookNode:
    """The notebook with nbgrader's metadata derived from its structure (``nb`` is unchanged).

    Args:
        nb: an nbformat v4 teacher notebook.
        stem: its file name without ``.ipynb``; gives the grade ids' prefix.
        name: how error messages name the notebook (default: ``stem``).

    Raises:
        AnnotationError: a solution cell with no numbered exercise heading before it, or no
            check cell right after it; two answer cells for one exercise; a written-answer
            cell that does not follow an open exercise's heading (the message names the cell).
    """
    import nbformat

    where = name or stem
    prefix = notebook_prefix(stem)
    old = nbformat.from_dict(copy.deepcopy(nb))
    cells: list[NotebookNode] = []
    grade_ids: dict[str, int] = {}
    exercise: int | None = None
    expect_check: str | None = None  # the grade id base whose check must come next
    skip: set[int] = set()

    def claim(grade_id: str, index: int) -> str:
        if grade_id in grade_ids:
            raise AnnotationError(
                f"{where}: cells {grade_ids[grade_id]} and {index} both give grade id "
                f"{grade_id!r}; expected one answer cell per exercise number"
            )
        grade_ids[grade_id] = index
        return grade_id

    for index, cell in enumerate(old.cells):
        if index in skip:
            continue
        source = _source(cell)
        if expect_check is not None:
            if cell.cell_type != "code" or not _CHECK_CALL.search(source):
                raise AnnotationError(
                    f"{where}: cell {index} follows the solution cell of {expect_check} but "
                    "is not a code cell calling exercises.check_...; expected the exercise's "
                    "check right after its solution"
                )
            cell.metadata["nbgrader"] = _metadata(
                claim(f"{expect_check}-check", index),
                solution=False, grade=True, locked=True, points=CHECK_POINTS,
            )
            expect_check = None
            cells.append(cell)
            continue
        if is_written_answer(cell):
            raise AnnotationError(
                f"{where}: cell {index} is a written-answer cell (nbgrader solution) but does "
                "not come right after an open exercise's heading; move it there or delete it"
            )
        cell.metadata.pop("nbgrader", None)  # whatever the structure does not call for goes
        cells.append(cell)
        if cell.cell_type == "markdown":
            heading = _exercise_heading(cell)
            if heading == "none":
                exercise = None  # "## Exercises": no numbered exercise yet
            elif isinstance(heading, tuple):
                exercise, is_open = heading
                if is_open:
                    grade_id = claim(f"{prefix}-ex{exercise}-open", index)
                    cells.append(_written_answer(old.cells, index, grade_id))
                    if index + 1 < len(old.cells) and is_written_answer(old.cells[index + 1]):
                        skip.add(index + 1)
        elif cell.cell_type == "code" and has_solution(source):
            if exercise is None:
                raise AnnotationError(
                    f"{where}: cell {index} holds a solution but no heading 'Exercise N: ...' "
                    "comes before it; expected a numbered exercise heading"
                )
            base = f"{prefix}-ex{exercise}"
            cell.metadata["nbgrader"] = _metadata(
                claim(f"{base}-answer", index), solution=True, grade=False, locked=False
            )
            expect_check = base
    if expect_check is not None:
        raise AnnotationError(
            f"{where}: the solution cell of {expect_check} is the last cell; expected a check "
            "cell after it"
        )
    old.cells = cells
    return old


def _written_answer(cells: Sequence[NotebookNode], heading: int, grade_id: str) -> NotebookNode:
    """The written-answer cell after the open heading at ``heading``: the existing one (its
    text and cell id kept) or a new one holding ``MODEL_ANSWER_STUB``."""
    from nbformat.v4 import new_markdown_cell

    following = cells[heading + 1] if heading + 1 < len(cells) else None
    if following is not None and is_written_answer(following):
        cell = following
    else:
        cell = new_markdown_cell(MODEL_ANSWER_STUB)
        cell.id = grade_id
    cell.metadata["nbgrader"] = _metadata(grade_id, solution=True, grade=True, locked=False,
                                          points=OPEN_POINTS)
    return cell


# --------------------------------------------------------------------------- differences


def differences(old: NotebookNode, new: NotebookNode) -> list[str]:
    """What annotating changes, one line each (empty: the notebook is already annotated).

    A written answer still holding ``MODEL_ANSWER_STUB`` counts as a difference too: the
    committed notebooks must carry real model answers.
    """
    lines: list[str] = []
    old_ids = [cell.get("id") for cell in old.cells]
    for index, cell in enumerate(new.cells):
        meta = cell.metadata.get("nbgrader")
        label = f"cell {index}" + (f" ({meta['grade_id']})" if meta else "")
        if cell.get("id") not in old_ids:
            lines.append(f"{label}: new {cell.cell_type} cell")
        else:
            before = old.cells[old_ids.index(cell.get("id"))]
            if before.metadata.get("nbgrader") != meta:
                lines.append(f"{label}: nbgrader metadata {_brief(before.metadata.get('nbgrader'))}"
                             f" -> {_brief(meta)}")
        if is_written_answer(cell) and _source(cell).strip() == MODEL_ANSWER_STUB:
            lines.append(f"{label}: the model answer is not written yet")
    new_ids = {cell.get("id") for cell in new.cells}
    lines += [f"cell {i} ({cid}): removed" for i, cid in enumerate(old_ids) if cid not in new_ids]
    if not lines and json.dumps(old, sort_keys=True) != json.dumps(new, sort_keys=True):
        lines.append("the notebook differs outside the cells' nbgrader metadata")
    return lines


def _brief(meta: dict[str, Any] | None) -> str:
    return "none" if meta is None else json.dumps(meta, sort_keys=True)


# --------------------------------------------------------------------------- files


def annotate_paths(
    sources: Iterable[str | os.PathLike[str]], *, check: bool = False
) -> dict[Path, list[str]]:
    """Annotate notebooks (files or folders) in place; with ``check``, write nothing.

    Every notebook is annotated in memory before any is written, so an error in one leaves all
    files as they were.

    Returns:
        ``{path: differences}`` for every notebook; empty lists where nothing changed.

    Raises:
        FileNotFoundError, ValueError: a source is missing or not a notebook.
        AnnotationError: a notebook does not have the exercise structure (names the cell).
    """
    notebooks = find_notebooks(sources)
    results: dict[Path, tuple[NotebookNode, list[str]]] = {}
    for path in notebooks:
        nb = read_notebook(path)
        annotated = annotate_notebook(nb, path.stem, name=str(path))
        results[path] = (annotated, differences(nb, annotated))
    if not check:
        for path, (annotated, changes) in results.items():
            if changes:
                write_notebook(annotated, path)
    return {path: changes for path, (_, changes) in results.items()}


def setup_course(
    course_dir: str | os.PathLike[str],
    sources: Iterable[str | os.PathLike[str]] = (DEFAULT_SOURCE,),
    *,
    force: bool = False,
) -> list[Path]:
    """Write an nbgrader course folder: the course's config and one assignment per notebook.

    ``course_dir/nbgrader_config.py`` is a copy of ``CONFIG_FILE``; each notebook, annotated
    (``annotate_notebook``), goes to ``course_dir/source/<stem>/<stem>.ipynb``.

    Returns:
        The written files, the config first.

    Raises:
        FileNotFoundError, ValueError: a source is missing or not a notebook; ``course_dir``
            exists and is not a folder.
        FileExistsError: a file to write exists and ``force`` is false (nothing is written).
        AnnotationError: a notebook does not have the exercise structure.
    """
    course = Path(course_dir)
    if course.exists() and not course.is_dir():
        raise ValueError(f"course_dir {str(course)!r} exists and is not a folder; expected a "
                         "folder (it may not exist yet)")
    notebooks = find_notebooks(sources)
    assignments = [
        (course / "source" / path.stem / path.name,
         annotate_notebook(read_notebook(path), path.stem, name=str(path)))
        for path in notebooks
    ]
    config = course / "nbgrader_config.py"
    targets = [config, *(target for target, _ in assignments)]
    existing = [target for target in targets if target.exists()]
    if existing and not force:
        raise FileExistsError(
            f"{len(existing)} of the {len(targets)} files to write already exist (the first: "
            f"{str(existing[0])!r}); refusing to overwrite them without force (--force)"
        )
    for target in targets:
        target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(CONFIG_FILE, config)
    for target, nb in assignments:
        write_notebook(nb, target)
    return targets


# --------------------------------------------------------------------------- command line


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mtlaug-nbgrader",
        description="Prepare the course notebooks for nbgrader.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    annotate = commands.add_parser(
        "annotate", help="derive nbgrader's cell metadata from the notebooks' structure"
    )
    annotate.add_argument("sources", nargs="*", metavar="NOTEBOOK_OR_FOLDER",
                          help=f"teacher notebooks or folders (default: {DEFAULT_SOURCE}/)")
    annotate.add_argument("--check", action="store_true",
                          help="write nothing; exit 1 and list what annotating would change")
    setup = commands.add_parser(
        "setup", help="write an nbgrader course folder: config and one assignment per notebook"
    )
    setup.add_argument("course_dir", metavar="COURSE_DIR")
    setup.add_argument("sources", nargs="*", metavar="NOTEBOOK_OR_FOLDER",
                       help=f"teacher notebooks or folders (default: {DEFAULT_SOURCE}/)")
    setup.add_argument("--force", action="store_true", help="overwrite existing files")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``mtlaug-nbgrader``; returns the exit status (0: done, or nothing to change)."""
    args = _parser().parse_args(argv)
    sources = args.sources or [DEFAULT_SOURCE]
    try:
        if args.command == "setup":
            for path in setup_course(args.course_dir, sources, force=args.force):
                print(path)
            return 0
        results = annotate_paths(sources, check=args.check)
    except (OSError, ValueError) as err:  # AnnotationError is a ValueError
        print(f"mtlaug-nbgrader: error: {err}", file=sys.stderr)
        return 1
    status = 0
    for path, changes in results.items():
        if not changes:
            print(f"{path}: up to date")
            continue
        print(f"{path}: {'differs' if args.check else 'annotated'}")
        for line in changes:
            print(f"  {line}")
        status = 1 if args.check else status
    return status


if __name__ == "__main__":
    sys.exit(main())
