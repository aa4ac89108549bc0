"""Build the course as a static web site (a book): ``mtlaug-book``.

One command, from the repository's root::

    mtlaug-book                         # -> _build/book/html/index.html
    python -m mtlaug_lib.course.book --out /tmp/book

It needs the ``book`` extra (``python -m pip install -e ".[book]"``). The steps:

1. check ``figures.toml`` against the notebooks: every image output has alt text and no key is
   stale (see :mod:`.figures`); a mismatch stops the build before Sphinx starts;
2. write the staging copy, ``_build/book/src``: the README as the landing page, every
   ``notebooks/*.ipynb`` with its presentation applied, ``notebooks/*.md`` pages, and the
   book's ``_config.yml`` and ``_toc.yml`` (see :mod:`.staging`). ``notebooks/`` is only read;
3. build it with Jupyter Book into ``_build/book/html``, from scratch every time (an
   incremental Sphinx build re-reads only changed pages, so it would not repeat the warnings of
   the others), with every warning an error (``-W``), all of them listed (``--keep-going``),
   and nitpicky cross-references. A link to a page or a heading anchor that does not exist is
   such a warning, so the exit status is non-zero on a broken internal link. External links
   are not checked: the build machines have no network (Sphinx's ``linkcheck`` builder does
   that where there is one);
4. read the built HTML (:mod:`.site_checks`): every page of the toc is there and in the
   navigation, a search page, alt text on every image, MathJax where there are formulas, and
   no ``NBVAL_`` marker or machine path in any page.

Why Jupyter Book 1.x (``jupyter-book>=1.0.4,<2``: Sphinx 7.4, myst-nb 1.4,
sphinx-book-theme): myst-nb renders the outputs stored in the notebooks without running them
(``execute_notebooks: "off"``), so the book shows exactly what nbval checks; it brings a
search page, MathJax for the notebooks' LaTeX, navigation built from one ``_toc.yml``, cell
tags for presentation (``full-width``, ``remove-input``) and per-cell image options (alt
text); Sphinx's ``-W`` turns every warning, a missing document included, into a failure. It
installs from PyPI next to the development extra and nbgrader. Jupyter Book 2 is another tool
(mystmd, on Node.js), and mkdocs-jupyter would need more glue for the same result (alt text,
failing on broken links).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .figures import DEFAULT_FIGURES, figure_problems, load_figures
from .site_checks import site_problems, toc_docnames
from .staging import stage

__all__ = ["BookBuildError", "BookResult", "TEMPLATES", "build_book", "main"]

TEMPLATES = (Path(__file__).with_name("_config.yml"), Path(__file__).with_name("_toc.yml"))
"""The book's Jupyter Book configuration and table of contents, copied into the staging folder."""

DEFAULT_OUT = Path("_build") / "book"

INSTALL_HINT = 'python -m pip install -e ".[book]"'


class BookBuildError(RuntimeError):
    """The book could not be built; the message says why (the Sphinx warnings are above it)."""


@dataclass(frozen=True)
class BookResult:
    """A built book: its folder, its pages (the toc's documents, in order), the build's time."""

    html: Path
    pages: tuple[str, ...]
    seconds: float


def _notebooks(root: Path) -> dict[str, dict]:
    return {path.stem: json.loads(path.read_text(encoding="utf-8"))
            for path in sorted((root / "notebooks").glob("*.ipynb"))}


def _sphinx_build(src: Path, html: Path, doctrees: Path, nitpicky: bool) -> int:
    """Run Jupyter Book's Sphinx build; returns Sphinx's status (0: no warning)."""
    try:
        from jupyter_book.sphinx import build_sphinx
    except ImportError as err:
        raise BookBuildError(f"mtlaug-book needs Jupyter Book 1.x: {INSTALL_HINT}") from err
    # sphinx-external-toc scans every live object with isinstance(); on torch's deprecated
    # module attributes that raises a FutureWarning which says nothing about the book.
    warnings.filterwarnings("ignore", category=FutureWarning,
                            module="sphinx_external_toc.collectors")
    result = build_sphinx(
        src,
        html,
        doctreedir=doctrees,
        noconfig=True,  # the configuration is _config.yml, as `jupyter-book build` reads it
        path_config=src / "_config.yml",
        # the keys `jupyter-book build` passes (its config reader requires the latex one)
        confoverrides={"external_toc_path": "_toc.yml", "nitpicky": nitpicky,
                       "latex_individualpages": False},
        warningiserror=True,
        keep_going=True,
        freshenv=True,
        force_all=True,
    )
    if isinstance(result, Exception):
        raise BookBuildError(f"Sphinx stopped with {type(result).__name__}: {result}") from result
    return result


def build_book(
    root: str | os.PathLike[str] = ".",
    out: str | os.PathLike[str] | None = None,
    figures: str | os.PathLike[str] = DEFAULT_FIGURES,
    *,
    nitpicky: bool = True,
) -> BookResult:
    """Build the book of the course in ``root`` into ``out``/html (default ``root/_build/book``).

    Raises:
        FileNotFoundError: ``root`` is not the course's repository, or ``figures`` is missing.
        ValueError: ``figures`` is malformed, or ``out`` holds the repository or folders
            ``src``/``html`` with files that an earlier build did not write.
        BookBuildError: ``figures`` disagrees with the notebooks (each mismatch listed),
            Sphinx reported a warning or an error (listed above, on stderr), or the built
            site fails a check of :func:`.site_checks.site_problems` (each listed).
    """
    start = time.perf_counter()
    root = Path(root).resolve()
    out = Path(out).resolve() if out is not None else root / DEFAULT_OUT
    presentation = load_figures(figures)
    if not (root / "notebooks").is_dir():
        raise FileNotFoundError(f"root {str(root)!r} has no notebooks/ folder: expected the "
                                f"course's repository")
    problems = figure_problems(presentation, _notebooks(root))
    if problems:
        raise BookBuildError(f"{figures} does not match the notebooks:\n  " + "\n  ".join(problems))
    src, html = out / "src", out / "html"
    # html/ is ours to replace if Sphinx finished a build there (.buildinfo) or if this
    # command staged next to it (a build that stopped half-way leaves no .buildinfo).
    ours = (html / ".buildinfo").is_file() or (src / "_toc.yml").is_file()
    if html.exists() and any(html.iterdir()) and not ours:
        raise ValueError(f"out {str(out)!r} holds an html/ folder that Sphinx did not write (no "
                         f".buildinfo): expected a new or earlier build folder")
    stage(root, src, presentation, TEMPLATES)
    if html.exists():
        shutil.rmtree(html)  # no page of an earlier build survives
    status = _sphinx_build(src, html, out / ".doctrees", nitpicky)
    if status:
        raise BookBuildError(f"the book has warnings (listed above); Sphinx's status {status}")
    docnames = toc_docnames(src / "_toc.yml")
    problems = site_problems(html, docnames)
    if problems:
        raise BookBuildError("the built site has problems:\n  " + "\n  ".join(problems))
    return BookResult(html=html, pages=tuple(docnames), seconds=time.perf_counter() - start)


# --------------------------------------------------------------------------- command line


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mtlaug-book",
        description=("Build the course as a static web site from the README and the notebooks' "
                     "stored outputs (nothing is executed); fails on any warning."),
    )
    parser.add_argument("--root", default=".",
                        help="the course's repository (default: the current folder)")
    parser.add_argument("--out", default=None,
                        help=f"build folder (default: ROOT/{DEFAULT_OUT.as_posix()}); the site "
                             f"goes to OUT/html, the staging copy to OUT/src")
    parser.add_argument("--figures", default=str(DEFAULT_FIGURES),
                        help="alt text of the figures (default: the one shipped with the course)")
    parser.add_argument("--no-nitpicky", dest="nitpicky", action="store_false",
                        help="do not warn about cross-references Sphinx cannot resolve")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``mtlaug-book``; returns the exit status (0: built without a warning)."""
    args = _parser().parse_args(argv)
    try:
        result = build_book(args.root, args.out, args.figures, nitpicky=args.nitpicky)
    except (OSError, ValueError, BookBuildError) as err:
        print(f"mtlaug-book: error: {err}", file=sys.stderr)
        return 1
    index = result.html / "index.html"
    print(f"mtlaug-book: {len(result.pages)} pages ({', '.join(result.pages)}) in "
          f"{result.seconds:.1f} s; open {index}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
