"""mtlaug-execute: fresh-kernel runs, stored outputs, failures that leave the file alone."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from mtlaug_lib.course.execute import NotebookExecutionError, execute_notebook, find_notebooks, main


def _write(path: Path, cells: list) -> Path:
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nb.metadata["course"] = {"part": 1}  # a custom key that must survive the run
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


def _stale(source: str, **kwargs: object) -> nbformat.NotebookNode:
    """A code cell carrying an output and an execution count from an older run."""
    stale = new_output("stream", name="stdout", text="stale output\n")
    return new_code_cell(source, outputs=[stale], execution_count=42, **kwargs)


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    return _write(
        tmp_path / "folder" / "tiny.ipynb",
        [
            new_markdown_cell("# A tiny notebook"),
            _stale("print('hello')"),
            _stale(
                "raise ValueError('on purpose')",
                metadata={"tags": ["raises-exception"]},
            ),
            _stale(
                "import os, sys\n"
                "print(sys.executable)\n"
                "print(os.getcwd())\n"
                "print(os.environ.get('PYDEVD_DISABLE_FILE_VALIDATION'))"
            ),
            _stale("6 * 7"),
            # nbclient skips empty cells: old outputs and timings there must still go
            _stale("", metadata={"execution": {"iopub.status.busy": "2020-01-01T00:00:00Z"}}),
        ],
    )


def _stdout(cell: nbformat.NotebookNode) -> str:
    return "".join(o["text"] for o in cell.outputs if o["output_type"] == "stream")


def test_cli_runs_in_fresh_current_env_kernel_and_stores_outputs(
    tiny: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tiny.chmod(0o640)

    status = main([str(tiny)])

    assert status == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{tiny}: ") and out.rstrip().endswith(" s")
    nb = nbformat.read(tiny, as_version=4)
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert [cell.execution_count for cell in code] == [1, 2, 3, 4, None]
    assert "stale output" not in str(nb)
    assert "execution" not in code[4].metadata
    assert _stdout(code[0]) == "hello\n"
    # the tagged cell raised, and the run went on
    assert [o["output_type"] for o in code[1].outputs] == ["error"]
    assert code[1].outputs[0]["ename"] == "ValueError"
    executable, cwd, pydevd = _stdout(code[2]).splitlines()
    assert executable == sys.executable
    assert os.path.realpath(cwd) == os.path.realpath(tiny.parent)
    assert pydevd == "1"
    assert code[3].outputs[0]["data"]["text/plain"] == "42"
    # metadata preserved, the write was atomic and kept the file's mode
    assert nb.metadata["course"] == {"part": 1}
    assert code[1].metadata["tags"] == ["raises-exception"]
    nbformat.validate(nb)
    assert sorted(p.name for p in tiny.parent.iterdir()) == ["tiny.ipynb"]
    assert tiny.stat().st_mode & 0o777 == 0o640


def test_failing_cell_raises_naming_notebook_and_cell_and_leaves_file(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "broken.ipynb",
        [new_markdown_cell("# Broken"), _stale("x = 1"), _stale("1 / 0"), _stale("x")],
    )
    before = path.read_bytes()

    with pytest.raises(NotebookExecutionError) as info:
        execute_notebook(path)

    message = str(info.value)
    first_line = message.splitlines()[0]
    assert str(path) in first_line
    assert "cell 2" in first_line
    assert "ZeroDivisionError" in first_line
    assert info.value.cell_index == 2
    assert info.value.ename == "ZeroDivisionError"
    assert "\x1b[" not in message  # no terminal colour codes in the message
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["broken.ipynb"]


def test_cell_timeout_fails_with_the_cell(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "slow.ipynb",
        [_stale("x = 1"), _stale("import time\ntime.sleep(30)")],
    )
    before = path.read_bytes()

    with pytest.raises(NotebookExecutionError, match=r"slow\.ipynb: cell 1 failed") as info:
        execute_notebook(path, timeout=1)

    assert info.value.cell_index == 1
    assert path.read_bytes() == before


def test_missing_path_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        execute_notebook(tmp_path / "missing.ipynb")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        find_notebooks([tmp_path / "missing"])


def test_not_a_notebook_is_a_clear_error(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    garbage = tmp_path / "garbage.ipynb"
    garbage.write_text("{ not json")

    with pytest.raises(ValueError, match="not a notebook; expected a .ipynb file"):
        find_notebooks([text])
    with pytest.raises(ValueError, match="garbage.ipynb is not a valid Jupyter notebook"):
        execute_notebook(garbage)
    assert garbage.read_text() == "{ not json"


@pytest.mark.parametrize("timeout", [0, -5, True, 2.5, "60"])
def test_bad_timeout_is_a_clear_error(tiny: Path, timeout: object) -> None:
    before = tiny.read_bytes()
    with pytest.raises(ValueError, match=r"argument 'timeout' is .*, expected a positive integer"):
        execute_notebook(tiny, timeout=timeout)
    assert tiny.read_bytes() == before


def test_folder_expands_to_sorted_notebooks(tmp_path: Path) -> None:
    for name in ["b.ipynb", "a.ipynb", "c.txt"]:
        (tmp_path / name).write_text("{}")

    assert [p.name for p in find_notebooks([tmp_path])] == ["a.ipynb", "b.ipynb"]
    # a notebook named twice runs once
    assert len(find_notebooks([tmp_path, tmp_path / "a.ipynb"])) == 2


def test_cli_bad_paths_exit_non_zero_with_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert main([str(tmp_path / "missing.ipynb")]) == 2
    assert "missing.ipynb' does not exist" in capsys.readouterr().err

    assert main([str(tmp_path)]) == 2  # an empty folder
    assert "holds no .ipynb notebooks" in capsys.readouterr().err

    monkeypatch.chdir(tmp_path)  # no notebooks/ folder here: the default fails clearly
    assert main([]) == 2
    assert "'notebooks' does not exist" in capsys.readouterr().err
