"""pyproject.toml and environment.yml name the same dependencies; the README's commands exist;
``import mtlaug_lib`` stays light (the course's modules, matplotlib included, load on first use)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[; ]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _environment_pip_lines() -> list[str]:
    lines = (ROOT / "environment.yml").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == "- pip:")
    pip = []
    for line in lines[start + 1:]:
        stripped = line.strip()
        if stripped.startswith("#") or not stripped:
            continue
        if not line.startswith(" " * 6 + "- "):
            break
        pip.append(stripped[2:])
    return pip


def test_environment_yml_names_the_same_packages_as_pyproject() -> None:
    project = _pyproject()["project"]
    wanted = [*project["dependencies"], *project["optional-dependencies"]["dev"]]
    pip = [line for line in _environment_pip_lines() if not line.startswith("-e")]
    assert sorted(map(_name, pip)) == sorted(map(_name, wanted))
    # Same version bounds, not only the same names.
    assert sorted(p.replace(" ", "") for p in pip) == sorted(w.replace(" ", "") for w in wanted)
    assert "-e ." in _environment_pip_lines()


def test_no_upper_pins_and_torch_within_what_installs_here() -> None:
    project = _pyproject()["project"]
    for req in [*project["dependencies"], *project["optional-dependencies"]["dev"]]:
        spec = req.split(";")[0]  # the environment marker may compare versions
        assert "<" not in spec and "==" not in spec, f"{req!r} pins an upper bound"
    assert project["requires-python"] == ">=3.10"


def test_readme_gives_the_two_commands_and_ci_runs_them() -> None:
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert 'python -m pip install -e ".[dev]"' in readme
    assert 'python -m pip install -e ".[dev]"' in ci
    assert re.search(r"^pytest$", readme, re.M)
    assert re.search(r"^(time )?pytest$", ci, re.M)  # the README's command, no extra options


def test_pytest_runs_notebooks_under_nbval_strict() -> None:
    options = _pyproject()["tool"]["pytest"]["ini_options"]
    assert "notebooks" in options["testpaths"] and "tests" in options["testpaths"]
    flags = ("--nbval ", "--nbval-current-env", "--nbval-sanitize-with tests/nbval_sanitize.cfg")
    for flag in flags:
        assert flag in options["addopts"] + " "
    assert "--nbval-lax" not in options["addopts"]


def test_sanitize_file_pairs_every_regex_with_a_replace() -> None:
    lines = [line for line in (ROOT / "tests" / "nbval_sanitize.cfg").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    for i, line in enumerate(lines):
        if line.startswith("regex:"):
            assert lines[i + 1].startswith("replace:"), f"regex without replace: {line}"
            re.compile(line.split(":", 1)[1].strip())


def test_notebooks_mark_cells_with_tags_not_comments() -> None:
    """nbval's cell tags, not ``# NBVAL_*`` comments: readers see the course's code, and the
    tag on a cell that raises is honoured by nbval and by ``nbconvert --execute`` alike."""
    import json

    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        for i, cell in enumerate(cells):
            source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
            assert "# NBVAL_" not in source, f"{path.name} cell {i}: use a cell tag instead"
            if cell["cell_type"] == "code" and any(
                o.get("output_type") == "error" for o in cell.get("outputs", [])
            ):
                assert "raises-exception" in cell["metadata"].get("tags", []), (
                    f"{path.name} cell {i} stores an error but is not tagged raises-exception")


# Run in a fresh interpreter: in this one, other tests have imported the course already.
IMPORT_COST = """
import sys
import mtlaug_lib
assert "matplotlib" not in sys.modules, "import mtlaug_lib imported matplotlib"
assert "mtlaug_lib.course" not in sys.modules, "import mtlaug_lib imported the course"
import mtlaug_lib.course.exercises
assert "matplotlib" not in sys.modules, "the exercise checks imported matplotlib"
from mtlaug_lib import exercises, plots
assert callable(exercises.check_feature_size) and callable(plots.show_samples)
backends = sorted(m for m in sys.modules if m.startswith("matplotlib.backends.backend_"))
assert not backends, f"importing the plots chose a backend: {backends}"
print("ok")
"""


def test_import_mtlaug_lib_loads_neither_the_course_nor_matplotlib() -> None:
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}  # the library's choice only
    run = subprocess.run([sys.executable, "-c", IMPORT_COST], capture_output=True, text=True,
                         cwd=ROOT, env=env, timeout=120)
    assert run.returncode == 0 and run.stdout.strip() == "ok", run.stderr
