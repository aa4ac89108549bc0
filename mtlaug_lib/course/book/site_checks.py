"""Checks of the built site, read from its HTML (no browser): what a reader gets.

Sphinx's ``-W`` catches what Sphinx knows is wrong (a broken internal link, a bad directive).
These checks catch what it accepts but a reader should not see: a page of the table of
contents missing from the navigation, an image without alt text, the test harness's
``NBVAL`` markers, a path of the machine that built or ran the notebooks, and pages with
formulas but no MathJax.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from html.parser import HTMLParser
from pathlib import Path

__all__ = ["MACHINE_PATH", "site_problems", "toc_docnames"]

MACHINE_PATH = re.compile(
    r"(?:(?<![\w.:/-])/(?:tmp|work|root|home|Users)/[\w.-]+|site-packages|\.venv/|conda/envs/)"
)
"""Text that shows where the course was built or run, never what it teaches."""

HARNESS_MARKER = re.compile(r"NBVAL_")


def toc_docnames(toc: str | os.PathLike[str]) -> list[str]:
    """The documents a jb-book ``_toc.yml`` lists: the root first, then every chapter's file.

    Raises:
        ValueError: the file is not a jb-book table of contents (``root`` and ``chapters``).
    """
    import yaml  # PyYAML: a dependency of Jupyter Book and of JupyterLab's server

    data = yaml.safe_load(Path(toc).read_text(encoding="utf-8"))
    if not isinstance(data, dict) or "root" not in data or not isinstance(
            data.get("chapters"), list):
        raise ValueError(f"toc {str(toc)!r}: expected a jb-book table of contents with 'root' "
                         f"and a list of 'chapters', got {data!r}")
    return [str(data["root"]), *(str(chapter["file"]) for chapter in data["chapters"])]


class _Page(HTMLParser):
    """The parts of one HTML page the checks read."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.images: list[dict[str, str | None]] = []
        self.nav_links: set[str] = set()
        self.scripts: list[str] = []
        self.has_math = False
        self._nav_depth = 0  # > 0 inside the primary sidebar's <nav>

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        classes = (attributes.get("class") or "").split()
        if tag == "nav":
            if self._nav_depth or "bd-docs-nav" in classes:
                self._nav_depth += 1
        elif tag == "img":
            self.images.append(attributes)
        elif tag == "a" and self._nav_depth and attributes.get("href"):
            self.nav_links.add(str(attributes["href"]).split("#")[0])
        elif tag == "script" and attributes.get("src"):
            self.scripts.append(str(attributes["src"]))
        if "math" in classes:
            self.has_math = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "nav" and self._nav_depth:
            self._nav_depth -= 1


def _read(path: Path) -> tuple[str, _Page]:
    text = path.read_text(encoding="utf-8")
    page = _Page()
    page.feed(text)
    return text, page


def site_problems(html: str | os.PathLike[str], docnames: Sequence[str]) -> list[str]:
    """Every problem of the site in ``html``, whose pages are ``docnames`` (toc order), one a line.

    An empty list means: every page exists and the navigation of the first lists all the
    others; the search page exists; every image has alt text; no page holds ``NBVAL_`` or a
    machine path; every page with formulas loads MathJax.
    """
    html = Path(html)
    problems: list[str] = []
    if not (html / "search.html").is_file() or not (html / "searchindex.js").is_file():
        problems.append("no search page (search.html and searchindex.js)")
    pages = {name: html / f"{name}.html" for name in docnames}
    for name, path in pages.items():
        if not path.is_file():
            problems.append(f"{name}: no page {path.relative_to(html)}")
    for path in sorted(html.rglob("*.html")):
        if "_static" in path.relative_to(html).parts:
            continue
        where = str(path.relative_to(html))
        text, page = _read(path)
        for image in page.images:
            if not (image.get("alt") or "").strip():
                problems.append(f"{where}: an image without alt text ({image.get('src')})")
        if match := HARNESS_MARKER.search(text):
            problems.append(f"{where}: shows the test harness's marker {match.group(0)!r}")
        if match := MACHINE_PATH.search(text):
            problems.append(f"{where}: shows a machine path ({match.group(0)!r})")
        if page.has_math and not any("mathjax" in src.lower() for src in page.scripts):
            problems.append(f"{where}: has formulas but does not load MathJax")
    first = pages.get(docnames[0]) if docnames else None
    if first is not None and first.is_file():
        linked = {os.path.normpath(first.parent / href) for href in _read(first)[1].nav_links}
        for name, path in list(pages.items())[1:]:
            if os.path.normpath(path) not in linked:
                problems.append(f"{docnames[0]}: the navigation does not list {name}")
    return problems
