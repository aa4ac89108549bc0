"""Atomic writes (``core.files``): all or nothing, no temporary file left, umask-based modes."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from mtlaug_lib.core.files import atomic_write, current_umask


@pytest.fixture
def umask_027() -> Iterator[int]:
    """A umask unlike the usual 0o022, so that a mode that ignores it shows."""
    old = os.umask(0o027)
    try:
        yield 0o027
    finally:
        os.umask(old)


def test_writes_bytes_and_utf8_text(tmp_path: Path) -> None:
    path = atomic_write(tmp_path / "a.bin", lambda f: f.write(b"\x00\xff"))
    assert path == tmp_path / "a.bin" and path.read_bytes() == b"\x00\xff"
    atomic_write(str(tmp_path / "a.txt"), lambda f: f.write("é ∑\n"), text=True)
    assert (tmp_path / "a.txt").read_bytes() == "é ∑\n".encode()


def test_replaces_an_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "a.txt"
    path.write_text("old and longer")
    atomic_write(path, lambda f: f.write("new"), text=True)
    assert path.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


@pytest.mark.parametrize("error", [OSError("No space left on device"), KeyboardInterrupt()])
def test_a_failure_mid_write_keeps_the_old_file_and_leaves_no_temporary(
    tmp_path: Path, error: BaseException
) -> None:
    path = tmp_path / "a.bin"
    path.write_bytes(b"the old content")

    def fail(f) -> None:
        f.write(b"half of the new content")
        raise error

    with pytest.raises(type(error)):
        atomic_write(path, fail)
    assert path.read_bytes() == b"the old content"
    assert [p.name for p in tmp_path.iterdir()] == ["a.bin"]


def test_a_failure_on_a_new_path_creates_nothing(tmp_path: Path) -> None:
    def fail(f) -> None:
        raise ValueError("bad")

    with pytest.raises(ValueError, match="bad"):
        atomic_write(tmp_path / "new.txt", fail, text=True)
    assert list(tmp_path.iterdir()) == []


def test_current_umask_reads_without_changing_it(umask_027: int) -> None:
    assert current_umask() == umask_027
    assert current_umask() == umask_027


def test_a_new_file_gets_the_mode_of_a_plain_open(tmp_path: Path, umask_027: int) -> None:
    path = atomic_write(tmp_path / "a.bin", lambda f: f.write(b"x"))
    with open(tmp_path / "plain.bin", "wb"):
        pass
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask_027 == 0o640
    assert (tmp_path / "plain.bin").stat().st_mode & 0o777 == 0o640


def test_modes_of_a_replaced_file(tmp_path: Path, umask_027: int) -> None:
    path = tmp_path / "a.txt"
    path.write_text("old")
    path.chmod(0o600)
    atomic_write(path, lambda f: f.write("new"), text=True, keep_mode=True)
    assert path.stat().st_mode & 0o777 == 0o600  # kept
    atomic_write(path, lambda f: f.write("newer"), text=True)
    assert path.stat().st_mode & 0o777 == 0o640  # umask-based, as for a new file
