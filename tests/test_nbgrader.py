"""The teacher's nbgrader loop on the course, with nbgrader's own command line.

In a temporary course folder: ``mtlaug-nbgrader setup``, ``nbgrader generate_assignment`` for
all eight notebooks, three submissions of notebook 01 (the teacher's answers; wrong answers
students give with one exercise left as the placeholder; one right and one wrong), ``nbgrader
autograde``, ``nbgrader export``, and the scores. The README's teacher section gives the same
commands. The whole file takes about a minute on a 2-core CPU (autograde runs notebook 01 once
per submission).
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from mtlaug_lib.course.grading import main as mtlaug_nbgrader

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
ASSIGNMENT = "01_backbone"

RIGHT = {  # the teacher's solutions, without the markers
    "nb01-ex1-answer": "def feature_size(height, width):\n"
                       "    return 64 * (height // 2 // 2) * (width // 2 // 2)",
    "nb01-ex2-answer": "def conv_parameters(c_in, c_out, k):\n"
                       "    return c_out * (c_in * k * k + 1)",
    "nb01-ex3-open": "A fixed colour per side would label each stroke's side.",
}
# Mistakes the checks know: halving once for two max-pools; counting the weights, not the bias.
HALVED_ONCE = "def feature_size(height, width):\n    return 64 * (height // 2) * (width // 2)"
NO_BIAS = "def conv_parameters(c_in, c_out, k):\n    return c_out * c_in * k * k"
SUBMISSIONS = {
    "right": RIGHT,
    "wrong": {"nb01-ex1-answer": HALVED_ONCE},  # exercise 2 left as the placeholder
    "mixed": {"nb01-ex1-answer": RIGHT["nb01-ex1-answer"], "nb01-ex2-answer": NO_BIAS},
}
EXPECTED_CHECKS = {  # grade id -> score, per student
    "right": {"nb01-ex1-check": 1.0, "nb01-ex2-check": 1.0},
    "wrong": {"nb01-ex1-check": 0.0, "nb01-ex2-check": 0.0},
    "mixed": {"nb01-ex1-check": 1.0, "nb01-ex2-check": 0.0},
}


def nbgrader(course: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``nbgrader ARGS`` in the course folder with this environment's Python."""
    bin_dir = str(Path(sys.executable).parent)
    env = {
        **os.environ,
        # the kernel's "python" is this environment's, and it imports this checkout
        "PATH": os.pathsep.join([bin_dir, os.environ.get("PATH", "")]),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        # no user-level Jupyter config or kernels: only the course's config decides
        "JUPYTER_CONFIG_DIR": str(course.parent / "jupyter-config"),
        "JUPYTER_DATA_DIR": str(course.parent / "jupyter-data"),
        "MTLAUG_DEVICE": "cpu",
        "PYDEVD_DISABLE_FILE_VALIDATION": "1",
    }
    run = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=course, env=env,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, f"nbgrader {' '.join(args)} failed:\n{run.stderr[-4000:]}"
    return run


def _submit(release: nbformat.NotebookNode, answers: dict[str, str], path: Path) -> None:
    """What a student hands in: the release with some answer cells edited."""
    nb = nbformat.from_dict(json.loads(json.dumps(release)))
    for cell in nb.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id in answers:
            cell.source = answers[grade_id]
    path.parent.mkdir(parents=True)
    nbformat.write(nb, path)


@pytest.fixture(scope="module")
def course(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A course folder after setup, generate_assignment (all notebooks), three submissions of
    notebook 01, autograde and export."""
    course = tmp_path_factory.mktemp("nbgrader") / "course"
    assert mtlaug_nbgrader(["setup", str(course), str(REPO / "notebooks")]) == 0
    nbgrader(course, "generate_assignment", "*")
    release = nbformat.read(course / "release" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", as_version=4)
    for student, answers in SUBMISSIONS.items():
        _submit(release, answers,
                course / "submitted" / student / ASSIGNMENT / f"{ASSIGNMENT}.ipynb")
    nbgrader(course, "autograde", ASSIGNMENT)
    nbgrader(course, "export")
    return course


def _release(course: Path, stem: str) -> nbformat.NotebookNode:
    return nbformat.read(course / "release" / stem / f"{stem}.ipynb", as_version=4)


def _images(cells: list[nbformat.NotebookNode]) -> int:
    return sum("image/png" in output.get("data", {}) for cell in cells
               if cell.cell_type == "code" for output in cell.outputs)


def test_every_notebook_is_released(course: Path) -> None:
    for path in NOTEBOOKS:
        released = _release(course, path.stem)
        teacher = nbformat.read(path, as_version=4)
        assert len(released.cells) == len(teacher.cells)
        text = "\n".join(cell.source for cell in released.cells)
        assert "BEGIN SOLUTION" not in text
        for cell in released.cells:
            if cell.cell_type == "code":
                shown = json.dumps(cell.outputs)
                assert "Correct!" not in shown, f"{path.name}: a check's output survives"


def test_release_of_notebook_01(course: Path) -> None:
    teacher = nbformat.read(REPO / "notebooks" / f"{ASSIGNMENT}.ipynb", as_version=4)
    released = _release(course, ASSIGNMENT)
    by_id = {c.metadata["nbgrader"]["grade_id"]: (i, c) for i, c in enumerate(released.cells)
             if "nbgrader" in c.metadata}

    assert sorted(by_id) == ["nb01-ex1-answer", "nb01-ex1-check", "nb01-ex2-answer",
                             "nb01-ex2-check", "nb01-ex3-open"]
    for grade_id in ("nb01-ex1-answer", "nb01-ex2-answer"):  # solutions replaced
        index, cell = by_id[grade_id]
        assert "raise NotImplementedError()" in cell.source
        assert "64 * (height" not in cell.source and "c_in * k * k + 1" not in cell.source
    assert by_id["nb01-ex3-open"][1].source == "YOUR ANSWER HERE"  # the model answer is gone
    for grade_id in ("nb01-ex1-check", "nb01-ex2-check"):  # locked, outputs cleared
        index, cell = by_id[grade_id]
        assert cell.source == teacher.cells[index].source
        assert cell.outputs == [] and cell.execution_count is None
        assert cell.metadata["editable"] is False and cell.metadata["deletable"] is False
    # the lesson keeps its outputs: every figure, and every printed result before the exercises
    first_exercise = by_id["nb01-ex1-answer"][0]
    assert _images(released.cells) == _images(teacher.cells) >= 5
    for index in range(first_exercise - 1):
        cell = released.cells[index]
        if cell.cell_type == "code":
            assert cell.outputs == teacher.cells[index].outputs, f"cell {index} lost its outputs"


def test_autograde_scores(course: Path) -> None:
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        for student, expected in EXPECTED_CHECKS.items():
            submission = gradebook.find_submission(ASSIGNMENT, student)
            assert submission.max_code_score == 2.0 and submission.max_written_score == 2.0
            assert submission.code_score == sum(expected.values()), student
            for grade_id, score in expected.items():
                grade = gradebook.find_grade(grade_id, ASSIGNMENT, ASSIGNMENT, student)
                assert grade.auto_score == score, (student, grade_id)
            written = gradebook.find_grade("nb01-ex3-open", ASSIGNMENT, ASSIGNMENT, student)
            # an edited written answer waits for the teacher; an untouched one scores 0
            assert written.needs_manual_grade == (student == "right"), student


def test_export_lists_the_scores(course: Path) -> None:
    with open(course / "grades.csv", newline="") as handle:
        rows = {row["student_id"]: row for row in csv.DictReader(handle)
                if row["assignment"] == ASSIGNMENT}
    assert {s: float(rows[s]["raw_score"]) for s in SUBMISSIONS} == {
        "right": 2.0, "wrong": 0.0, "mixed": 1.0}
    assert {float(rows[s]["max_score"]) for s in SUBMISSIONS} == {4.0}
