"""mtlaug-nbgrader: nbgrader's cell metadata derived from the notebooks' structure, the course
folder, and the release step that keeps the lesson's outputs."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from mtlaug_lib.course.grading import (
    CHECK_POINTS,
    CONFIG_FILE,
    MODEL_ANSWER_STUB,
    OPEN_POINTS,
    AnnotationError,
    annotate_notebook,
    annotate_paths,
    main,
    notebook_prefix,
    setup_course,
)

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))


def _ran(source: str, text: str) -> nbformat.NotebookNode:
    return new_code_cell(source, outputs=[new_output("stream", name="stdout", text=text)],
                         execution_count=1)


def _teacher() -> nbformat.NotebookNode:
    """A lesson cell, two checked exercises and an open one, as the course writes them."""
    return new_notebook(cells=[
        new_markdown_cell("# Title"),
        _ran("x = 3\nprint(x)", "3\n"),
        new_markdown_cell("## Exercises\n\n### Exercise 1: double it"),
        new_code_cell("def double(v):\n    ### BEGIN SOLUTION\n    return 2 * v\n"
                      "    ### END SOLUTION"),
        _ran("exercises.check_double(double)", "Correct! double works\n"),
        new_markdown_cell("### Exercise 2: triple it"),
        new_code_cell("### BEGIN SOLUTION\nt = 3 * x\n### END SOLUTION"),
        _ran("exercises.check_triple(t)", "Correct!\n"),
        new_markdown_cell("### Exercise 3 (open): why?\n\nExplain."),
    ])


def _meta(nb: nbformat.NotebookNode) -> list[dict | None]:
    return [cell.metadata.get("nbgrader") for cell in nb.cells]


def test_metadata_follows_the_structure() -> None:
    annotated = annotate_notebook(_teacher(), "01_demo")

    meta = _meta(annotated)
    assert meta[:3] == [None, None, None] and meta[5] is None and meta[8] is None
    assert meta[3] == {"grade": False, "grade_id": "nb01-ex1-answer", "locked": False,
                       "schema_version": 3, "solution": True, "task": False}
    assert meta[4] == {"grade": True, "grade_id": "nb01-ex1-check", "locked": True,
                       "points": CHECK_POINTS, "schema_version": 3, "solution": False,
                       "task": False}
    assert meta[6]["grade_id"] == "nb01-ex2-answer" and meta[7]["grade_id"] == "nb01-ex2-check"
    written = annotated.cells[9]
    assert written.cell_type == "markdown" and written.id == "nb01-ex3-open"
    assert written.source == MODEL_ANSWER_STUB
    assert meta[9] == {"grade": True, "grade_id": "nb01-ex3-open", "locked": False,
                       "points": OPEN_POINTS, "schema_version": 3, "solution": True,
                       "task": False}
    nbformat.validate(annotated)


def test_the_input_is_unchanged_and_sources_and_outputs_are_kept() -> None:
    teacher = _teacher()
    before = nbformat.writes(teacher)

    annotated = annotate_notebook(teacher, "01_demo")

    assert nbformat.writes(teacher) == before
    for old, new in zip(teacher.cells, annotated.cells[:9], strict=True):
        assert (old.id, old.source, old.get("outputs")) == (new.id, new.source, new.get("outputs"))


def test_annotating_is_idempotent_and_keeps_a_written_model_answer() -> None:
    once = annotate_notebook(_teacher(), "01_demo")
    once.cells[9].source = "**Model answer.** Because."

    twice = annotate_notebook(once, "01_demo")

    assert nbformat.writes(twice) == nbformat.writes(once)


def test_ids_depend_on_the_exercise_number_not_on_cell_positions() -> None:
    teacher = _teacher()
    teacher.cells.insert(1, new_markdown_cell("More lesson."))
    teacher.cells.insert(1, new_code_cell("y = 1"))

    annotated = annotate_notebook(teacher, "01_demo")

    ids = [m["grade_id"] for m in _meta(annotated) if m]
    assert ids == ["nb01-ex1-answer", "nb01-ex1-check", "nb01-ex2-answer", "nb01-ex2-check",
                   "nb01-ex3-open"]


def test_metadata_the_structure_does_not_call_for_is_removed() -> None:
    teacher = _teacher()
    teacher.cells[1].metadata["nbgrader"] = {"grade": True, "grade_id": "stale", "locked": True,
                                             "points": 5, "schema_version": 3, "solution": False}

    annotated = annotate_notebook(teacher, "01_demo")

    assert "nbgrader" not in annotated.cells[1].metadata


@pytest.mark.parametrize(
    ("stem", "prefix"),
    [("01_backbone", "nb01"), ("12_more", "nb12"), ("extra notes", "nb-extra-notes")],
)
def test_notebook_prefix(stem: str, prefix: str) -> None:
    assert notebook_prefix(stem) == prefix


def _broken(change: str) -> nbformat.NotebookNode:
    teacher = _teacher()
    if change == "no-heading":
        teacher.cells[2].source = "## Exercises\n\nDouble it."
    elif change == "no-check":
        teacher.cells[4].source = "print(double(2))"
    elif change == "last-cell":
        teacher.cells = teacher.cells[:4]
    elif change == "same-number":
        teacher.cells[5].source = "### Exercise 1: triple it"
    elif change == "orphan-answer":
        orphan = annotate_notebook(_teacher(), "01_demo").cells[9]
        teacher.cells.insert(1, orphan)
    return teacher


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("no-heading", "cell 3 holds a solution but no heading 'Exercise N"),
        ("no-check", "cell 4 follows the solution cell of nb01-ex1 but is not a code cell"),
        ("last-cell", "the solution cell of nb01-ex1 is the last cell"),
        ("same-number", "cells 3 and 6 both give grade id 'nb01-ex1-answer'"),
        ("orphan-answer", "cell 1 is a written-answer cell"),
    ],
)
def test_a_notebook_without_the_structure_is_a_clear_error(change: str, message: str) -> None:
    with pytest.raises(AnnotationError, match=message) as info:
        annotate_notebook(_broken(change), "01_demo", name="demo.ipynb")
    assert str(info.value).startswith("demo.ipynb: ")


# --------------------------------------------------------------------------- the real notebooks


def test_committed_notebooks_are_exactly_what_the_annotator_writes() -> None:
    assert NOTEBOOKS, "no notebooks/*.ipynb"
    differences = annotate_paths(NOTEBOOKS, check=True)
    assert differences == {path: [] for path in NOTEBOOKS}


def test_check_mode_lists_what_differs_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    copy_path = tmp_path / NOTEBOOKS[0].name
    nb = nbformat.read(NOTEBOOKS[0], as_version=4)
    answer = next(i for i, c in enumerate(nb.cells)
                  if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("solution"))
    del nb.cells[answer].metadata["nbgrader"]
    nb.cells = [c for c in nb.cells if c.cell_type == "code" or "nbgrader" not in c.metadata]
    nbformat.write(nb, copy_path)
    before = copy_path.read_bytes()

    assert main(["annotate", "--check", str(copy_path)]) == 1

    out = capsys.readouterr().out
    assert f"{copy_path}: differs" in out
    assert f"cell {answer} (nb01-ex1-answer): nbgrader metadata none -> " in out
    assert "(nb01-ex3-open): new markdown cell" in out
    assert "(nb01-ex3-open): the model answer is not written yet" in out
    assert copy_path.read_bytes() == before

    assert main(["annotate", str(copy_path)]) == 0  # writes, keeping the JSON layout
    fixed = nbformat.read(copy_path, as_version=4)
    assert _meta(fixed) == _meta(annotate_notebook(nbformat.read(NOTEBOOKS[0], as_version=4),
                                                   NOTEBOOKS[0].stem))


def test_every_open_exercise_has_a_written_model_answer() -> None:
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        for index, cell in enumerate(nb.cells):
            if cell.cell_type == "markdown" and "(open)" in cell.source:
                answer = nb.cells[index + 1]
                assert answer.metadata["nbgrader"]["grade_id"].endswith("-open")
                lines = answer.source.splitlines()
                assert answer.source.startswith("**Model answer.**") and 3 <= len(lines) <= 6, (
                    f"{path.name}: the model answer has {len(lines)} lines")


# --------------------------------------------------------------------------- the course folder


def test_setup_writes_config_and_one_assignment_per_notebook(tmp_path: Path) -> None:
    course = tmp_path / "course"

    written = setup_course(course, NOTEBOOKS[:2])

    assert written == [course / "nbgrader_config.py",
                       *(course / "source" / p.stem / p.name for p in NOTEBOOKS[:2])]
    assert written[0].read_text() == CONFIG_FILE.read_text()
    for path in NOTEBOOKS[:2]:
        assert (course / "source" / path.stem / path.name).read_bytes() == path.read_bytes()


def test_setup_refuses_to_overwrite_without_force(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    course = tmp_path / "course"
    setup_course(course, NOTEBOOKS[:1])
    config = course / "nbgrader_config.py"
    config.write_text("# the teacher's own edits\n")

    assert main(["setup", str(course), str(NOTEBOOKS[0])]) == 1
    err = capsys.readouterr().err
    assert "refusing to overwrite" in err and "--force" in err and str(config) in err
    assert config.read_text() == "# the teacher's own edits\n"

    assert main(["setup", "--force", str(course), str(NOTEBOOKS[0])]) == 0
    assert config.read_text() == CONFIG_FILE.read_text()


def test_setup_errors_name_the_bad_argument(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    a_file = tmp_path / "course"
    a_file.write_text("")
    assert main(["setup", str(a_file), str(NOTEBOOKS[0])]) == 1
    assert "course_dir" in capsys.readouterr().err

    assert main(["setup", str(tmp_path / "c"), str(tmp_path / "missing.ipynb")]) == 1
    assert "missing.ipynb' does not exist" in capsys.readouterr().err
    assert not (tmp_path / "c").exists()


def test_setup_annotates_notebooks_that_lack_the_metadata(tmp_path: Path) -> None:
    plain = tmp_path / "05_plain.ipynb"
    nbformat.write(_teacher(), plain)

    setup_course(tmp_path / "course", [plain])

    written = nbformat.read(tmp_path / "course" / "source" / "05_plain" / plain.name, as_version=4)
    assert [m["grade_id"] for m in _meta(written) if m][0] == "nb05-ex1-answer"


# --------------------------------------------------------------------------- the release


def test_release_clears_the_exercise_part_and_keeps_the_lesson() -> None:
    from mtlaug_lib.course.grading_release import ClearExerciseOutputs

    nb = annotate_notebook(_teacher(), "01_demo")
    lesson = copy.deepcopy(nb.cells[1])

    released, _ = ClearExerciseOutputs().preprocess(nb, {})

    assert released.cells[1] == lesson
    for index in (3, 4, 6, 7):
        assert released.cells[index].outputs == []
        assert released.cells[index].execution_count is None


def test_release_steps_are_nbgraders_with_clear_output_swapped() -> None:
    from nbgrader.converters import GenerateAssignment
    from nbgrader.preprocessors import ClearOutput

    from mtlaug_lib.course.grading_release import ClearExerciseOutputs, release_preprocessors

    default = GenerateAssignment.class_traits()["preprocessors"].default()
    steps = release_preprocessors()
    assert ClearOutput not in steps and steps.count(ClearExerciseOutputs) == 1
    assert steps.index(ClearExerciseOutputs) == default.index(ClearOutput)
    assert [s for s in steps if s is not ClearExerciseOutputs] == [
        s for s in default if s is not ClearOutput]


def test_the_shipped_config_is_installed_with_the_package() -> None:
    assert CONFIG_FILE.is_file() and shutil.which("mtlaug-nbgrader")
    text = CONFIG_FILE.read_text()
    assert "c.GenerateAssignment.preprocessors = release_preprocessors()" in text
    assert "c.Execute.timeout = 600" in text
