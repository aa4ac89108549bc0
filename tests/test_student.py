"""mtlaug-student: the student edition hides every solution and still runs up to an exercise."""

from __future__ import annotations

import ast
import os
from collections import Counter
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from mtlaug_lib.course.execute import current_env_kernel_manager
from mtlaug_lib.course.student import (
    BEGIN_SOLUTION,
    END_SOLUTION,
    TEXT_PLACEHOLDER,
    SolutionMarkerError,
    exercise_part_start,
    main,
    make_student_notebook,
    write_student_edition,
)

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = REPO / "notebooks"
REAL_NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
FIRST_NOTEBOOK = next(iter(sorted(NOTEBOOK_DIR.glob("01_*.ipynb"))), None)

PLACEHOLDER = "# YOUR CODE HERE"


def _ran(source: str, count: int, text: str) -> nbformat.NotebookNode:
    """A code cell as a teacher's run stored it: an output and an execution count."""
    output = new_output("stream", name="stdout", text=text)
    return new_code_cell(source, outputs=[output], execution_count=count)


def _teacher() -> nbformat.NotebookNode:
    """Two exercises: one block in a function body, two blocks (one nested) in one cell."""
    return new_notebook(
        cells=[
            new_markdown_cell("# Title\n\nWhat you will learn."),
            _ran("x = 3\nprint(x)", 1, "3\n"),
            new_markdown_cell("## Exercises\n\n### Exercise 1: double it\n\nWrite `double`."),
            _ran(
                "def double(v):\n"
                "    ### BEGIN SOLUTION\n"
                "    result = 2 * v\n"
                "    return result\n"
                "    ### END SOLUTION\n",
                2,
                "",
            ),
            _ran("exercises.check_double(double)", 3, "Correct! double works\n"),
            new_markdown_cell("### Exercise 2: two blocks\n\nSet `a` and `b`."),
            _ran(
                "### BEGIN SOLUTION\n"
                "a = 10\n"
                "### END SOLUTION\n"
                "print('between')\n"
                "if True:\n"
                "        ### BEGIN SOLUTION\n"
                "        b = 20\n"
                "        ### END SOLUTION",
                4,
                "between\n",
            ),
            _ran("exercises.check_ab(a, b)", 5, "Correct! a and b\n"),
        ]
    )


def _placeholder(exercise: str) -> str:
    return f'raise NotImplementedError("{exercise}: replace this line with your solution")'


# --------------------------------------------------------------------------- synthetic notebooks


def test_solution_text_is_gone_and_placeholder_names_the_exercise() -> None:
    student = make_student_notebook(_teacher())

    source = student.cells[3].source
    assert "2 * v" not in source and "return result" not in source
    assert BEGIN_SOLUTION not in source and END_SOLUTION not in source
    assert source.splitlines() == [
        "def double(v):",
        f"    {PLACEHOLDER}",
        f"    {_placeholder('Exercise 1: double it')}",
    ]


def test_placeholder_raises_not_implemented_with_the_exercise_name() -> None:
    student = make_student_notebook(_teacher())
    namespace: dict[str, object] = {}
    exec(student.cells[3].source, namespace)

    with pytest.raises(NotImplementedError, match="^Exercise 1: double it: replace this line"):
        namespace["double"](1)  # type: ignore[operator]


def test_multiple_blocks_in_one_cell_keep_their_indentation() -> None:
    student = make_student_notebook(_teacher())

    lines = student.cells[6].source.splitlines()
    assert lines == [
        PLACEHOLDER,
        _placeholder("Exercise 2: two blocks"),
        "print('between')",
        "if True:",
        f"        {PLACEHOLDER}",
        f"        {_placeholder('Exercise 2: two blocks')}",
    ]
    compile(student.cells[6].source, "cell", "exec")  # still valid Python


def test_exercise_name_falls_back_to_counting_solution_cells() -> None:
    teacher = _teacher()
    teacher.cells[2].source = "## Exercises\n\nWrite `double`."  # no "Exercise N" heading
    teacher.cells[5].source = "Now set `a` and `b`."

    student = make_student_notebook(teacher)

    assert _placeholder("Exercise 1") in student.cells[3].source
    assert _placeholder("Exercise 2") in student.cells[6].source


def test_heading_inside_a_code_fence_is_not_an_exercise_name() -> None:
    teacher = _teacher()
    teacher.cells[5].source = "### Exercise 2: real\n\n```python\n# Exercise 9: fake\n```"

    student = make_student_notebook(teacher)

    assert _placeholder("Exercise 2: real") in student.cells[6].source


def test_exercise_cells_lose_outputs_and_earlier_cells_keep_them() -> None:
    teacher = _teacher()
    student = make_student_notebook(teacher)

    assert student.cells[1].outputs == teacher.cells[1].outputs
    assert student.cells[1].execution_count == 1
    for index in (3, 4, 6, 7):  # solutions and checks
        assert student.cells[index].outputs == []
        assert student.cells[index].execution_count is None


def test_teacher_notebook_is_not_modified_and_copy_is_valid() -> None:
    teacher = _teacher()
    before = nbformat.writes(teacher)

    student = make_student_notebook(teacher)

    assert nbformat.writes(teacher) == before
    nbformat.validate(student)
    assert student.metadata["mtlaug_edition"] == "student"
    assert "mtlaug_edition" not in teacher.metadata
    assert len(student.cells) == len(teacher.cells)


def _written_answer(text: str) -> nbformat.NotebookNode:
    """A manually graded answer cell as ``mtlaug-nbgrader annotate`` writes one."""
    cell = new_markdown_cell(text)
    cell.metadata["nbgrader"] = {"grade": True, "grade_id": "nb01-ex3-open", "locked": False,
                                 "points": 2, "schema_version": 3, "solution": True,
                                 "task": False}
    return cell


def test_written_answer_text_is_replaced_and_other_markdown_kept() -> None:
    teacher = _teacher()
    teacher.cells.append(new_markdown_cell("### Exercise 3 (open): why?\n\nExplain."))
    teacher.cells.append(_written_answer("**Model answer.** Because of Exercise 2: a secret."))

    student = make_student_notebook(teacher)

    assert student.cells[-1].source == TEXT_PLACEHOLDER
    assert student.cells[-1].metadata == teacher.cells[-1].metadata  # nbgrader still finds it
    assert student.cells[-2].source == teacher.cells[-2].source  # the question stays
    assert "secret" not in nbformat.writes(student)


def test_the_exercise_part_starts_at_the_first_exercise_heading_or_solution() -> None:
    teacher = _teacher()
    assert exercise_part_start(teacher.cells) == 2  # "## Exercises"
    teacher.cells[2].source = "Some prose."
    assert exercise_part_start(teacher.cells) == 3  # the first solution cell
    # once nbgrader has replaced the markers, its solution flag still marks the cell
    teacher.cells[3].source = "def double(v):\n    raise NotImplementedError()"
    teacher.cells[3].metadata["nbgrader"] = {"solution": True}
    assert exercise_part_start(teacher.cells) == 3
    assert exercise_part_start(teacher.cells[:2]) == 2  # no exercise: nothing to clear


@pytest.mark.parametrize(
    ("source", "problem"),
    [
        (f"{BEGIN_SOLUTION}\na = 1\n", "has no matching"),
        (f"a = 1\n{END_SOLUTION}\n", "without a"),
        (f"{BEGIN_SOLUTION}\n{BEGIN_SOLUTION}\na = 1\n{END_SOLUTION}\n", "is not closed yet"),
    ],
    ids=["begin-without-end", "end-without-begin", "nested-begin"],
)
def test_mismatched_markers_are_a_clear_error(tmp_path: Path, source: str, problem: str) -> None:
    teacher = _teacher()
    teacher.cells[4].source = source
    path = tmp_path / "teacher" / "01_broken.ipynb"
    path.parent.mkdir()
    nbformat.write(teacher, path)
    out = tmp_path / "student"

    with pytest.raises(SolutionMarkerError, match=problem) as info:
        write_student_edition(path, out)

    assert f"{path}, cell 4" in str(info.value)
    assert not out.exists()  # nothing is written when one notebook is broken


def test_cli_writes_the_edition_to_out(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "teacher"
    source.mkdir()
    for name in ("01_a.ipynb", "02_b.ipynb"):
        nbformat.write(_teacher(), source / name)
    out = tmp_path / "handout"

    assert main(["--out", str(out), str(source)]) == 0

    written = sorted(out.iterdir())
    assert [p.name for p in written] == ["01_a.ipynb", "02_b.ipynb"]
    assert capsys.readouterr().out.split() == [str(p) for p in written]
    for path in written:
        student = nbformat.read(path, as_version=4)
        nbformat.validate(student)
        assert student.metadata["mtlaug_edition"] == "student"
        assert "2 * v" not in nbformat.writes(student)
    # writing again over a student edition is fine
    assert main(["--out", str(out), str(source)]) == 0


def test_cli_refuses_to_overwrite_teacher_notebooks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    teacher = tmp_path / "01_a.ipynb"
    nbformat.write(_teacher(), teacher)
    before = teacher.read_bytes()

    assert main(["--out", str(tmp_path), str(teacher)]) == 1

    assert "would overwrite the teacher notebook" in capsys.readouterr().err
    assert teacher.read_bytes() == before


# --------------------------------------------------------------------------- the real notebooks


def _solution_blocks(source: str) -> list[list[str]]:
    """The lines strictly between each BEGIN/END SOLUTION pair of a teacher cell."""
    blocks: list[list[str]] = []
    current: list[str] | None = None
    for line in source.split("\n"):
        if line.strip().startswith(BEGIN_SOLUTION):
            current = []
        elif line.strip().startswith(END_SOLUTION):
            assert current is not None, "END SOLUTION without BEGIN"
            blocks.append(current)
            current = None
        elif current is not None:
            current.append(line)
    assert current is None, "BEGIN SOLUTION without END"
    return blocks


def _solution_cells(nb: nbformat.NotebookNode) -> list[int]:
    return [
        index
        for index, cell in enumerate(nb.cells)
        if cell.cell_type == "code" and BEGIN_SOLUTION in cell.source
    ]


def _real_notebook_params() -> list:
    if not REAL_NOTEBOOKS:
        reason = f"no notebooks in {NOTEBOOK_DIR} yet"
        return [pytest.param(None, marks=pytest.mark.skip(reason=reason), id="no-notebooks")]
    return [pytest.param(path, id=path.name) for path in REAL_NOTEBOOKS]


@pytest.mark.parametrize("path", _real_notebook_params())
def test_real_notebook_has_solutions_and_checks(path: Path) -> None:
    teacher = nbformat.read(path, as_version=4)
    solution_cells = _solution_cells(teacher)

    blocks = sum(len(_solution_blocks(teacher.cells[i].source)) for i in solution_cells)
    assert blocks >= 2, f"{path.name} has {blocks} solution block(s); expected at least two"
    for position, index in enumerate(solution_cells):
        end = solution_cells[position + 1] if position + 1 < len(solution_cells) else None
        checks = [
            later
            for later, cell in enumerate(teacher.cells[index + 1 : end], start=index + 1)
            if cell.cell_type == "code" and "exercises." in cell.source
        ]
        assert checks, f"{path.name}: no check cell calls exercises. after solution cell {index}"


@pytest.mark.parametrize("path", _real_notebook_params())
def test_real_notebook_solutions_do_not_survive(path: Path) -> None:
    teacher = nbformat.read(path, as_version=4)
    student = make_student_notebook(teacher, name=str(path))

    nbformat.validate(student)
    assert len(student.cells) == len(teacher.cells)
    for index in _solution_cells(teacher):
        teacher_lines = teacher.cells[index].source.split("\n")
        hidden = Counter(
            line for block in _solution_blocks(teacher.cells[index].source) for line in block
        )
        # a solution line may also occur outside the blocks; it may survive only that often
        allowed = Counter(teacher_lines) - hidden
        student_lines = Counter(student.cells[index].source.split("\n"))
        for line in hidden:
            if line.strip():
                assert student_lines[line] <= allowed[line], (
                    f"{path.name}, cell {index}: solution line {line!r} survives"
                )
        assert BEGIN_SOLUTION not in student.cells[index].source
        assert END_SOLUTION not in student.cells[index].source


@pytest.mark.parametrize("path", _real_notebook_params())
def test_real_notebook_model_answers_do_not_survive(path: Path) -> None:
    teacher = nbformat.read(path, as_version=4)
    student = make_student_notebook(teacher, name=str(path))
    markdown = [(i, cell) for i, cell in enumerate(teacher.cells) if cell.cell_type == "markdown"]
    answers = [i for i, cell in markdown if cell.metadata.get("nbgrader", {}).get("solution")]
    opens = [i for i, cell in markdown if "(open)" in cell.source]

    assert [i + 1 for i in opens] == answers  # one written answer right after each open heading
    text = "\n".join(cell.source for cell in student.cells)
    for index in answers:
        assert student.cells[index].source == TEXT_PLACEHOLDER
        for line in filter(None, teacher.cells[index].source.splitlines()):
            assert line not in text, f"{path.name}, cell {index}: answer line {line!r} survives"


def _first_check_after(nb: nbformat.NotebookNode, index: int) -> int | None:
    later = enumerate(nb.cells[index + 1 :], start=index + 1)
    return next((i for i, c in later if c.cell_type == "code" and "exercises." in c.source), None)


@pytest.mark.skipif(FIRST_NOTEBOOK is None, reason=f"no notebooks/01_*.ipynb in {NOTEBOOK_DIR}")
def test_student_copy_of_first_notebook_stops_at_first_exercise(tmp_path: Path) -> None:
    assert FIRST_NOTEBOOK is not None
    teacher = nbformat.read(FIRST_NOTEBOOK, as_version=4)
    first_solution = _solution_cells(teacher)[0]
    [student_path] = write_student_edition(FIRST_NOTEBOOK, tmp_path)
    student = nbformat.read(student_path, as_version=4)
    prefix = "raise NotImplementedError("
    raises = [
        line.strip()
        for line in student.cells[first_solution].source.splitlines()
        if line.strip().startswith(prefix)
    ]
    expected_message = ast.literal_eval(raises[0][len(prefix) : -1])
    started: list[int] = []
    client = NotebookClient(
        student,
        km=current_env_kernel_manager(),
        timeout=600,
        # the real notebooks folder, so the notebook's relative paths work
        resources={"metadata": {"path": str(NOTEBOOK_DIR)}},
        on_cell_execute=lambda cell, cell_index: started.append(cell_index),
    )
    # The kernel imports this checkout's mtlaug_lib, installed or not; CPU keeps it comparable.
    pythonpath = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": pythonpath, "MTLAUG_DEVICE": "cpu"}

    with pytest.raises(CellExecutionError) as info:
        client.execute(cleanup_kc=True, env=env)

    # The placeholder raises in the solution cell itself, or, when the solution is a function
    # body, in the check cell that calls the function. Either way: the first exercise's message.
    assert info.value.ename == "NotImplementedError"
    assert info.value.evalue == expected_message
    failed = started[-1]
    assert failed in (first_solution, _first_check_after(teacher, first_solution))
    for index, cell in enumerate(student.cells[:failed]):
        if cell.cell_type != "code" or not cell.source.strip():
            continue
        assert cell.execution_count is not None, f"cell {index} did not run"
        if "raises-exception" not in cell.metadata.get("tags", []):
            errors = [o for o in cell.outputs if o["output_type"] == "error"]
            assert not errors, f"cell {index} raised {errors[0]['ename']}"
