"""Re-execute notebooks in a fresh kernel and store their outputs in place.

The course's stored outputs are what nbval compares a fresh run against, so they must come
from a clean top-to-bottom run, never from hand edits or an interactive session with hidden
state. This module is that run, as one command::

    mtlaug-execute                      # every notebooks/*.ipynb, sorted
    mtlaug-execute notebooks/01_backbone.ipynb --timeout 300
    python -m mtlaug_lib.course.execute some/folder

Each notebook runs with nbclient in a fresh ``python3`` kernel of the *current* Python
environment (the interpreter running this command), with the notebook's folder as working
directory. Errors stop the run, except in cells tagged ``raises-exception`` (the course's
deliberate errors). A notebook is only rewritten when every cell ran; the write is atomic.

nbformat and nbclient are imported inside the functions that need them: they are development
dependencies, and ``import mtlaug_lib`` must keep working without them.
"""

from __future__ import annotations

import argparse
import functools
import os
import re
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..core.checks import check_positive_int
from ..core.files import atomic_write

if TYPE_CHECKING:
    from nbformat import NotebookNode

__all__ = [
    "DEFAULT_TIMEOUT",
    "KERNEL_NAME",
    "NotebookExecutionError",
    "current_env_kernel_manager",
    "execute_notebook",
    "find_notebooks",
    "main",
    "read_notebook",
    "write_notebook",
]

DEFAULT_TIMEOUT = 600
"""Seconds one cell may run before the execution is stopped."""

KERNEL_NAME = "python3"
"""The kernel name the notebooks declare; it always means the running interpreter here."""

DEFAULT_FOLDER = Path("notebooks")

# pydevd (ipykernel's debugger) warns on the kernel's stderr about frozen modules on
# Python >= 3.11; the warning is noise in the command's output and in CI logs.
KERNEL_ENV = {"PYDEVD_DISABLE_FILE_VALIDATION": "1"}

_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class NotebookExecutionError(RuntimeError):
    """A notebook failed to run top to bottom; the message names the notebook and the cell.

    Attributes:
        path: the notebook that failed.
        cell_index: 0-based index of the failing cell in ``nb.cells``, or None when the
            failure happened outside a cell (e.g. the kernel did not start).
        ename: the exception's class name raised in the kernel, when there was one.
    """

    def __init__(
        self, message: str, path: Path, cell_index: int | None, ename: str | None = None
    ) -> None:
        super().__init__(message)
        self.path = path
        self.cell_index = cell_index
        self.ename = ename


# --------------------------------------------------------------------------- paths and I/O


def find_notebooks(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Expand notebook files and folders (each folder gives its ``*.ipynb``, sorted).

    Raises:
        FileNotFoundError: a path does not exist.
        ValueError: a file is not a ``.ipynb`` notebook, or a folder holds none.
    """
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise FileNotFoundError(
                f"path {str(path)!r} does not exist; expected a .ipynb notebook or a folder "
                "of notebooks"
            )
        if path.is_dir():
            in_folder = sorted(path.glob("*.ipynb"))
            if not in_folder:
                raise ValueError(f"folder {str(path)!r} holds no .ipynb notebooks")
            found.extend(in_folder)
        elif path.suffix != ".ipynb":
            raise ValueError(f"path {str(path)!r} is not a notebook; expected a .ipynb file")
        else:
            found.append(path)
    # The same notebook named twice (as a file and via its folder) runs once.
    unique: dict[Path, Path] = {}
    for path in found:
        unique.setdefault(path.resolve(), path)
    return list(unique.values())


def read_notebook(path: str | os.PathLike[str]) -> NotebookNode:
    """Read a notebook as nbformat v4 and check that it is a valid one.

    Raises:
        FileNotFoundError: the path does not exist.
        ValueError: the file is not a valid Jupyter notebook.
    """
    import nbformat

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"notebook {str(path)!r} does not exist")
    try:
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
    except Exception as err:  # nbformat raises several unrelated types for bad files
        raise ValueError(f"{path} is not a valid Jupyter notebook: {err}") from err
    return nb


def write_notebook(nb: NotebookNode, path: str | os.PathLike[str]) -> None:
    """Write ``nb`` to ``path`` atomically (``core.files.atomic_write``).

    A reader (or a crash) never sees a half-written notebook, and an existing file keeps its
    permission bits.
    """
    import nbformat

    atomic_write(path, lambda handle: nbformat.write(nb, handle), text=True, keep_mode=True)


# --------------------------------------------------------------------------- the kernel


@functools.cache
def _current_env_spec_manager_class() -> type:
    """A KernelSpecManager whose ``python3`` kernel is this interpreter's ipykernel.

    A ``python3`` kernelspec installed elsewhere on the Jupyter path (a conda env, a user
    install) could otherwise win, and the notebooks would run in another environment than the
    one being tested. nbval's ``--nbval-current-env`` does the same. Defined lazily because
    jupyter_client is a development dependency.
    """
    import ipykernel.kernelspec
    from jupyter_client.kernelspec import KernelSpec, KernelSpecManager

    class CurrentEnvKernelSpecManager(KernelSpecManager):
        def get_kernel_spec(self, kernel_name: str) -> KernelSpec:
            if kernel_name == KERNEL_NAME:
                return self.kernel_spec_class(
                    resource_dir=ipykernel.kernelspec.RESOURCES,
                    **ipykernel.kernelspec.get_kernel_dict(),
                )
            return super().get_kernel_spec(kernel_name)

    return CurrentEnvKernelSpecManager


def current_env_kernel_manager() -> Any:
    """A kernel manager for this environment's ``python3`` kernel, for nbclient.

    Pass it as ``NotebookClient(nb, km=...)`` and call ``execute(cleanup_kc=True)`` so that
    nbclient shuts the kernel down afterwards.
    """
    import zmq
    from jupyter_client.manager import AsyncKernelManager

    spec_manager = _current_env_spec_manager_class()()
    manager = AsyncKernelManager(kernel_name=KERNEL_NAME, kernel_spec_manager=spec_manager)
    # ipykernel >= 7 warns on stderr when its local TCP sockets are unencrypted; give it
    # CurveZMQ keys where libzmq and jupyter_client (>= 8.10) can (the default is "disabled").
    if manager.has_trait("transport_encryption") and zmq.has("curve"):
        manager.transport_encryption = "auto"
    return manager


def _clear_outputs(nb: NotebookNode) -> None:
    """Drop old outputs, execution counts and timing metadata of every code cell.

    The timing metadata (``metadata.execution``, written by nbconvert) describes a previous
    run; keeping it would make the stored notebook lie about when its outputs were made.
    """
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
            cell.metadata.pop("execution", None)


def _failure_message(path: Path, cell_index: int | None, err: Exception) -> str:
    """One summary line naming notebook, cell and error, then the details."""
    ename = getattr(err, "ename", None) or type(err).__name__
    evalue = getattr(err, "evalue", None)
    where = f"cell {cell_index}" if cell_index is not None else "before the first cell"
    summary = f"{path}: {where} failed with {ename}"
    if evalue:
        summary += f": {evalue}"
    details = _ANSI_ESCAPE.sub("", str(err)).strip()
    return f"{summary}\n\n{details}" if details else summary


def execute_notebook(path: str | os.PathLike[str], timeout: int = DEFAULT_TIMEOUT) -> float:
    """Run a notebook top to bottom in a fresh kernel and store its outputs in place.

    Args:
        path: the ``.ipynb`` file; its folder is the kernel's working directory.
        timeout: seconds one cell may run (a positive integer, as nbclient expects).

    Returns:
        The wall time in seconds, kernel start included.

    Raises:
        FileNotFoundError, ValueError: ``path`` is missing or not a notebook, or ``timeout``
            is not a positive integer.
        NotebookExecutionError: a cell not tagged ``raises-exception`` raised, timed out or
            killed the kernel. The file on disk is left untouched.
    """
    from nbclient import NotebookClient
    from nbclient.exceptions import CellControlSignal, DeadKernelError

    path = Path(path)
    timeout = check_positive_int("timeout", timeout)
    nb = read_notebook(path)
    _clear_outputs(nb)

    current: dict[str, int | None] = {"index": None}

    def remember_cell(cell: NotebookNode, cell_index: int) -> None:
        # nbclient's errors do not say which cell failed; this hook does.
        current["index"] = cell_index

    client = NotebookClient(
        nb,
        km=current_env_kernel_manager(),
        kernel_name=KERNEL_NAME,
        timeout=timeout,
        allow_errors=False,  # cells tagged raises-exception may still raise (nbclient)
        record_timing=False,  # timestamps would change the file on every run
        resources={"metadata": {"path": str(path.parent.resolve())}},
        on_cell_execute=remember_cell,
    )
    start = time.perf_counter()
    try:
        # We pass our own kernel manager, so nbclient would leave the kernel running
        # unless told to clean up.
        client.execute(cleanup_kc=True, env={**os.environ, **KERNEL_ENV})
    except (CellControlSignal, DeadKernelError) as err:
        # CellControlSignal covers CellExecutionError and CellTimeoutError.
        raise NotebookExecutionError(
            _failure_message(path, current["index"], err),
            path,
            current["index"],
            getattr(err, "ename", None),
        ) from err
    seconds = time.perf_counter() - start
    write_notebook(nb, path)
    return seconds


# --------------------------------------------------------------------------- command line


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mtlaug-execute",
        description=(
            "Re-execute notebooks in a fresh kernel of this Python environment and store "
            "their outputs in place."
        ),
    )
    parser.add_argument(
        "paths",
        nargs="*",
        metavar="PATH",
        help="notebooks or folders of notebooks (default: every notebooks/*.ipynb)",
    )
    parser.add_argument(
        "--timeout",
        type=int,
        default=DEFAULT_TIMEOUT,
        help=f"seconds one cell may run (default: {DEFAULT_TIMEOUT})",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``mtlaug-execute``; returns the exit status (0: all notebooks ran)."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.timeout <= 0:
        parser.error(f"--timeout must be a positive number of seconds, got {args.timeout}")
    try:
        notebooks = find_notebooks(args.paths or [DEFAULT_FOLDER])
    except (OSError, ValueError) as err:
        print(f"mtlaug-execute: error: {err}", file=sys.stderr)
        return 2

    failed: list[Path] = []
    for path in notebooks:
        try:
            seconds = execute_notebook(path, timeout=args.timeout)
        except (OSError, ValueError, NotebookExecutionError) as err:
            print(f"mtlaug-execute: error: {err}", file=sys.stderr)
            print(f"{path}: FAILED, file left unchanged", flush=True)
            failed.append(path)
            continue
        print(f"{path}: {seconds:.1f} s", flush=True)

    if failed:
        names = ", ".join(str(path) for path in failed)
        print(f"mtlaug-execute: {len(failed)} of {len(notebooks)} failed: {names}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
