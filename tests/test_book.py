"""The course as a book (``mtlaug-book``): what a reader sees, checked without building it.

Static checks of the notebooks and of the book's files (fast, no Sphinx): no test harness,
short errors and no machine paths in what the book shows; alt text for every figure; a table
of contents that lists every notebook; internal links that resolve. Unit tests of the staging
transform, the figures file, the checks of the built HTML, and the command's early errors.
The build itself (Sphinx, with every warning an error) runs in CI: ``.ci/run``.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
import sys
from pathlib import Path

import pytest

from mtlaug_lib.course.book import build, figures, site_checks, staging
from mtlaug_lib.course.book.figures import NotebookFigures

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
ARTICLE_PAGE = "notebooks/00_from_the_article"
MAX_TRACEBACK_ENTRIES = 2  # "Type: message" (%xmode Minimal), perhaps the cell's own line
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def _notebook(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _text(value: str | list[str]) -> str:
    return "".join(value) if isinstance(value, list) else value


def _output_text(output: dict) -> str:
    parts = [_text(output.get("text", ""))]
    parts += [_text(v) for mime, v in output.get("data", {}).items() if mime.startswith("text/")]
    parts += [output.get("ename", ""), output.get("evalue", "")]
    parts += [ANSI.sub("", line) for line in output.get("traceback", [])]
    return "\n".join(parts)


def _code_cells(path: Path):
    for cell in _notebook(path)["cells"]:
        if cell["cell_type"] == "code":
            yield cell


def test_the_course_has_its_eight_notebooks() -> None:
    # The static checks below loop over NOTEBOOKS: they must not pass on an empty list.
    assert [p.stem[:2] for p in NOTEBOOKS] == [f"{i:02d}" for i in range(1, 9)]


# --------------------------------------------------------------------------- what a reader sees


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_test_harness_marker_in_a_notebook(path: Path) -> None:
    """nbval's markers are cell tags (the book turns them into CSS classes), never text."""
    for i, cell in enumerate(_notebook(path)["cells"]):
        assert "NBVAL_" not in _text(cell["source"]), f"{path.name} cell {i}: use a cell tag"
        for output in cell.get("outputs", []):
            assert "NBVAL_" not in _output_text(output), f"{path.name} cell {i}'s output"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_errors_shown_are_short(path: Path) -> None:
    """A deliberate error shows its type and message, not a traceback through the library."""
    for cell in _code_cells(path):
        for output in cell.get("outputs", []):
            if output["output_type"] != "error":
                continue
            # nbformat stores one entry per frame (and one for the message, which may have
            # several lines: an audit lists its problems)
            entries = [ANSI.sub("", entry) for entry in output["traceback"]]
            assert len(entries) <= MAX_TRACEBACK_ENTRIES, (
                f"{path.name} cell {cell['id']}: a traceback of {len(entries)} frames; show the "
                f"exception's type and message only (e.g. %xmode Minimal)")
            assert not any(re.search(r"File .*\.py|site-packages|mtlaug_lib/", entry)
                           for entry in entries), (
                f"{path.name} cell {cell['id']}: the traceback walks through source files")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_stored_output_holds_a_machine_path(path: Path) -> None:
    """Every output is in the book, nbval-ignore-output ones included: none shows a path."""
    for cell in _code_cells(path):
        for output in cell.get("outputs", []):
            match = site_checks.MACHINE_PATH.search(_output_text(output))
            assert match is None, f"{path.name} cell {cell['id']}: shows {match.group(0)!r}"


def test_machine_path_pattern_finds_paths_and_spares_urls_and_prose() -> None:
    for text in ["/tmp/ipykernel_12/1.py", "see /home/ann/x", "/work/main/notebooks",
                 "lib/python3.11/site-packages/torch", "/repo/.venv/bin/python"]:
        assert site_checks.MACHINE_PATH.search(text), text
    for text in ["https://example.org/home/page", "a 28 x 28 image", "loss/step", "tmp files"]:
        assert site_checks.MACHINE_PATH.search(text) is None, text


# --------------------------------------------------------------------------- figures.toml


@pytest.fixture(scope="module")
def notebooks() -> dict[str, dict]:
    return {path.stem: _notebook(path) for path in NOTEBOOKS}


@pytest.fixture(scope="module")
def shipped_figures() -> dict[str, NotebookFigures]:
    return figures.load_figures()


def test_every_image_output_has_alt_text(notebooks, shipped_figures) -> None:
    missing = [p for p in figures.figure_problems(shipped_figures, notebooks) if "stale" not in p]
    assert not missing, "figures.toml lacks alt text:\n" + "\n".join(missing)


def test_the_figures_file_has_no_stale_keys(notebooks, shipped_figures) -> None:
    stale = [p for p in figures.figure_problems(shipped_figures, notebooks) if "stale" in p]
    assert not stale, "figures.toml names what the notebooks no longer have:\n" + "\n".join(stale)


def test_figure_problems_finds_each_kind_of_mismatch() -> None:
    image = {"output_type": "display_data", "data": {"image/png": "AAAA", "text/plain": "<Fig>"}}
    text = {"output_type": "stream", "name": "stdout", "text": "hello\n"}
    nb = {"cells": [
        {"cell_type": "code", "id": "one", "outputs": [text, image]},
        {"cell_type": "code", "id": "two", "outputs": [image, image]},
        {"cell_type": "code", "id": "none", "outputs": [text]},
        {"cell_type": "code", "id": "bare", "outputs": [image]},
    ]}
    assert figures.image_output_counts(nb) == {"one": 1, "two": 2, "bare": 1}
    good = {"n": NotebookFigures(alt={"one": ("a",), "two": ("b", "c"), "bare": ("d",)},
                                 wide=frozenset({"two"}))}
    assert figures.figure_problems(good, {"n": nb}) == []
    bad = {"n": NotebookFigures(alt={"one": ("a",), "two": ("b",), "none": ("x",)},
                                wide=frozenset({"gone"})),
           "old": NotebookFigures()}
    problems = "\n".join(figures.figure_problems(bad, {"n": nb}))
    assert "'bare' has 1 image output(s) and no alt text" in problems
    assert "'two' has 2 image output(s) but 1 alt text(s)" in problems
    assert "stale alt text for cell 'none'" in problems
    assert "stale wide entry for cell 'gone'" in problems
    assert "stale table [old]" in problems


def test_figures_file_is_read_in_its_documented_shape(tmp_path: Path) -> None:
    path = tmp_path / "figures.toml"
    path.write_text('[01_backbone]\n"3f2a" = "A grid."\n"9b7d" = ["first", "second"]\n'
                    '[01_backbone.wide]\n"3f2a" = true\n"9b7d" = false\n', encoding="utf-8")
    loaded = figures.load_figures(path)
    assert loaded == {"01_backbone": NotebookFigures(
        alt={"3f2a": ("A grid.",), "9b7d": ("first", "second")}, wide=frozenset({"3f2a"}))}


@pytest.mark.parametrize(("body", "message"), [
    ('[nb]\n"c" = 3\n', "expected an alt text"),
    ('[nb]\n"c" = []\n', "expected an alt text"),
    ('[nb]\n"c" = ["ok", " "]\n', "non-empty alt text"),
    ('[nb]\n"c" = ""\n', "non-empty alt text"),
    ('[nb.wide]\n"c" = "yes"\n', "expected true or false"),
    ('nb = "text"\n', "must be a table"),
    ('[nb\n', "not valid TOML"),
])
def test_a_malformed_figures_file_is_refused_with_where_and_what(
    tmp_path: Path, body: str, message: str
) -> None:
    path = tmp_path / "figures.toml"
    path.write_text(body, encoding="utf-8")
    with pytest.raises(ValueError, match=message) as err:
        figures.load_figures(path)
    assert str(path) in str(err.value)


def test_a_missing_figures_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nothere.toml"):
        figures.load_figures(tmp_path / "nothere.toml")


# --------------------------------------------------------------------------- toc and links


def test_the_toc_lists_the_readme_the_article_page_and_every_notebook_in_order() -> None:
    docnames = site_checks.toc_docnames(build.TEMPLATES[1])
    chapters = [f"notebooks/{p.stem}" for p in NOTEBOOKS]
    pages = [f"notebooks/{p.stem}" for p in sorted((ROOT / "notebooks").glob("*.md"))]
    assert docnames[:2] == ["README", ARTICLE_PAGE]
    assert docnames[2:] == chapters
    assert sorted(docnames[1:]) == sorted(chapters + pages)  # no page left out of the toc


def test_every_toc_entry_is_a_file_of_the_course() -> None:
    for name in site_checks.toc_docnames(build.TEMPLATES[1]):
        found = [p for p in (ROOT / f"{name}.md", ROOT / f"{name}.ipynb") if p.is_file()]
        assert len(found) == 1, f"_toc.yml lists {name!r}: expected one .md or .ipynb file"


LINK = re.compile(r"\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")


def _markdown_sources() -> list[tuple[Path, str]]:
    sources = [(ROOT / "README.md", (ROOT / "README.md").read_text(encoding="utf-8"))]
    sources += [(p, p.read_text(encoding="utf-8"))
                for p in sorted((ROOT / "notebooks").glob("*.md"))]
    for path in NOTEBOOKS:
        cells = _notebook(path)["cells"]
        sources += [(path, _text(c["source"])) for c in cells if c["cell_type"] == "markdown"]
    return sources


def test_every_internal_link_of_the_book_names_a_page_of_the_book() -> None:
    """The build fails on these too (Sphinx, -W); this says which link, without a build.

    The book holds the README and notebooks/ only, so a link to any other file of the
    repository breaks in the book even where it works on GitHub. Anchors are checked by the
    build (they need MyST's slugs).
    """
    book_files = {ROOT / "README.md", *NOTEBOOKS, *(ROOT / "notebooks").glob("*.md")}
    broken = []
    for path, text in _markdown_sources():
        for target in LINK.findall(text):
            if re.match(r"[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
                continue  # an external URL (not checked: no network here) or a local anchor
            file = (path.parent / target.split("#")[0]).resolve()
            if file not in book_files:
                broken.append(f"{path.relative_to(ROOT)}: {target}")
    assert not broken, "links to files that are not pages of the book:\n" + "\n".join(broken)


@pytest.mark.parametrize("path", NOTEBOOKS[1:], ids=lambda p: p.stem)
def test_each_chapter_links_to_the_chapters_it_builds_on(path: Path) -> None:
    """A chapter that names an earlier notebook links to it, so the book's pages connect."""
    text = "\n".join(_text(c["source"]) for c in _notebook(path)["cells"]
                     if c["cell_type"] == "markdown")
    targets = {target.split("#")[0] for target in LINK.findall(text)}
    earlier = {p.name for p in NOTEBOOKS if p.name < path.name}
    assert targets & earlier, f"{path.name} links to no earlier chapter"


def test_the_link_pattern_reads_markdown_links() -> None:
    text = ('See [01](notebooks/01_backbone.ipynb), [x](02_heads.ipynb#setup "a title") and '
            '[w](https://x.org/a); `a[i](j)` is code, but reads the same.')
    assert LINK.findall(text) == ["notebooks/01_backbone.ipynb", "02_heads.ipynb#setup",
                                  "https://x.org/a", "j"]


# --------------------------------------------------------------------------- staging transform

IMAGE = {"output_type": "display_data", "metadata": {},
         "data": {"image/png": "iVBORw0KGgo=", "text/plain": ["<Figure size 640x480 with 1 Axes>"]}}
STREAM = {"output_type": "stream", "name": "stdout", "text": ["before\n"]}
AFTER = {"output_type": "stream", "name": "stdout", "text": ["after\n"]}


def _tiny_notebook() -> dict:
    return {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [
        {"cell_type": "markdown", "id": "md", "metadata": {}, "source": "# Title"},
        {"cell_type": "code", "id": "single", "execution_count": 1,
         "metadata": {"tags": ["nbval-ignore-output"]}, "source": "plot()",
         "outputs": [IMAGE]},
        {"cell_type": "code", "id": "double", "execution_count": 2, "metadata": {},
         "source": "plot(); plot()", "outputs": [STREAM, IMAGE, IMAGE, AFTER]},
        {"cell_type": "code", "id": "plain", "execution_count": 3, "metadata": {},
         "source": "1 + 1", "outputs": []},
    ]}


def test_alt_text_lands_where_myst_nb_reads_it_and_the_input_is_left_alone() -> None:
    nb = _tiny_notebook()
    before = copy.deepcopy(nb)
    shown = staging.present_notebook(nb, NotebookFigures(alt={"single": ("A plot.",)}))
    assert nb == before
    single = next(c for c in shown["cells"] if c["id"] == "single")
    assert single["metadata"]["mystnb"] == {"image": {"alt": "A plot."}}
    assert single["metadata"]["tags"] == ["nbval-ignore-output"]  # nothing else changes
    assert single["source"] == "plot()" and single["outputs"] == [IMAGE]
    assert [c["id"] for c in shown["cells"]] == ["md", "single", "double", "plain"]


def test_a_cell_with_two_figures_becomes_one_cell_per_figure() -> None:
    alt = NotebookFigures(alt={"double": ("First.", "Second.")}, wide=frozenset({"double"}))
    shown = staging.present_notebook(_tiny_notebook(), alt)
    first, second = (c for c in shown["cells"] if c["id"].startswith("double"))
    assert [c["id"] for c in shown["cells"]] == ["md", "single", "double", "double-1", "plain"]
    assert first["source"] == "plot(); plot()" and first["outputs"] == [STREAM, IMAGE]
    assert second["outputs"] == [IMAGE, AFTER]  # a trailing text output stays with the last
    assert first["metadata"]["mystnb"]["image"]["alt"] == "First."
    assert second["metadata"]["mystnb"]["image"]["alt"] == "Second."
    assert staging.HIDDEN_INPUT_TAG in second["metadata"]["tags"]
    assert second["source"].strip()  # myst-nb drops a cell with an empty source, outputs too
    for part in (first, second):
        assert staging.WIDE_TAG in part["metadata"]["tags"]


def test_solutions_are_folded_and_the_xmode_line_is_dropped() -> None:
    nb = _tiny_notebook()
    nb["cells"] += [
        {"cell_type": "code", "id": "setup", "execution_count": 4, "metadata": {},
         "source": "%xmode Minimal",
         "outputs": [{"output_type": "stream", "name": "stdout",
                      "text": ["Exception reporting mode: Minimal\n", "device: cpu\n"]}]},
        {"cell_type": "code", "id": "quiet", "execution_count": 5, "metadata": {},
         "source": "%xmode Minimal",
         "outputs": [{"output_type": "stream", "name": "stdout",
                      "text": "Exception reporting mode: Minimal\n"}]},
        {"cell_type": "code", "id": "answer", "execution_count": 6,
         "metadata": {"nbgrader": {"solution": True, "grade": False}},
         "source": "x = 1", "outputs": []},
        {"cell_type": "code", "id": "check", "execution_count": 7,
         "metadata": {"nbgrader": {"solution": False, "grade": True}},
         "source": "check(x)", "outputs": [STREAM]},
        {"cell_type": "markdown", "id": "open",
         "metadata": {"nbgrader": {"solution": True, "grade": True}}, "source": "An answer."},
    ]
    shown = {c["id"]: c for c in staging.present_notebook(nb, NotebookFigures())["cells"]}
    assert shown["setup"]["outputs"][0]["text"] == "device: cpu\n"
    assert shown["quiet"]["outputs"] == []  # nothing left of that output
    assert staging.FOLDED_INPUT_TAG in shown["answer"]["metadata"]["tags"]
    for other in ("check", "open", "plain"):
        assert staging.FOLDED_INPUT_TAG not in shown[other]["metadata"].get("tags", [])
    assert shown["check"]["outputs"] == [STREAM]  # other outputs are left as they are
    assert shown["open"]["source"] == (f"```{{admonition}} {staging.ANSWER_TITLE}\n"
                                       ":class: dropdown\n\nAn answer.\n```")
    assert shown["md"]["source"] == "# Title"  # other markdown is left as it is
    assert shown["double"]["outputs"] == [STREAM, IMAGE, IMAGE, AFTER]


def test_a_count_mismatch_is_refused_naming_the_cell() -> None:
    with pytest.raises(ValueError, match="'double' has 2 image output"):
        staging.present_notebook(_tiny_notebook(), NotebookFigures(alt={"double": ("One.",)}))


def _digest(folder: Path) -> dict[str, tuple[str, float]]:
    return {p.name: (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime)
            for p in sorted(folder.iterdir())}


def _alt_for_every_image(nbs: dict[str, dict]) -> dict[str, NotebookFigures]:
    return {stem: NotebookFigures(alt={cid: tuple(f"{stem} {cid} {k}" for k in range(n))
                                       for cid, n in figures.image_output_counts(nb).items()})
            for stem, nb in nbs.items()}


def test_staging_the_course_presents_every_figure_and_never_writes_notebooks(
    tmp_path: Path, notebooks
) -> None:
    import nbformat

    before = _digest(ROOT / "notebooks")
    written = staging.stage(ROOT, tmp_path / "src", _alt_for_every_image(notebooks),
                            build.TEMPLATES)
    assert _digest(ROOT / "notebooks") == before
    src = tmp_path / "src"
    assert {p.relative_to(src).as_posix() for p in written} >= {
        "README.md", "_config.yml", "_toc.yml", *(f"notebooks/{p.name}" for p in NOTEBOOKS)}
    for path in NOTEBOOKS:
        staged = _notebook(src / "notebooks" / path.name)
        nbformat.validate(nbformat.reads(json.dumps(staged), as_version=4))
        # every image output carries its own alt text, in the notebook's order
        shown = [c["metadata"].get("mystnb", {}).get("image", {}).get("alt")
                 for c in staged["cells"] if c["cell_type"] == "code"
                 for o in c.get("outputs", []) if figures.is_image_output(o)]
        expected = [f"{path.stem} {cid} {k}"
                    for cid, n in figures.image_output_counts(notebooks[path.stem]).items()
                    for k in range(n)]
        assert shown == expected, path.name


def test_staging_refuses_a_folder_that_holds_the_repository(tmp_path: Path) -> None:
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "README.md").write_text("# R\n", encoding="utf-8")
    with pytest.raises(ValueError, match="dest"):
        staging.stage(tmp_path, tmp_path, {})
    with pytest.raises(FileNotFoundError, match="README.md and notebooks/"):
        staging.stage(tmp_path / "notebooks", tmp_path / "out", {})
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "keep.txt").write_text("a user's file", encoding="utf-8")
    with pytest.raises(ValueError, match="not a staging folder"):
        staging.stage(tmp_path, mine, {})
    assert (mine / "keep.txt").is_file()
    staging.stage(tmp_path, tmp_path / "src", {}, build.TEMPLATES)
    staging.stage(tmp_path, tmp_path / "src", {}, build.TEMPLATES)  # an earlier staging: replaced


# --------------------------------------------------------------------------- the built site


def _page(nav: str = "", body: str = "", scripts: str = "") -> str:
    return (f"<html><head>{scripts}</head><body><nav class=\"bd-links bd-docs-nav\">{nav}</nav>"
            f"<main>{body}</main></body></html>")


MATHJAX = '<script src="https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-mml-chtml.js"></script>'


def _site(tmp_path: Path, chapter_body: str, nav: str | None = None) -> Path:
    html = tmp_path / "html"
    (html / "notebooks").mkdir(parents=True)
    (html / "search.html").write_text(_page(), encoding="utf-8")
    (html / "searchindex.js").write_text("Search.setIndex({})", encoding="utf-8")
    if nav is None:
        nav = '<a href="#">Home</a><a href="notebooks/01_a.html">01</a>'
    (html / "README.html").write_text(_page(nav=nav), encoding="utf-8")
    (html / "notebooks" / "01_a.html").write_text(_page(body=chapter_body, scripts=MATHJAX),
                                                  encoding="utf-8")
    return html


GOOD = '<span class="math notranslate">\\(x^2\\)</span><img alt="A plot." src="../_images/a.png">'


def test_a_good_site_passes_the_checks(tmp_path: Path) -> None:
    assert site_checks.site_problems(_site(tmp_path, GOOD), ["README", "notebooks/01_a"]) == []


@pytest.mark.parametrize(("body", "nav", "problem"), [
    ('<img src="../_images/a.png">', None, "an image without alt text"),
    ('<img alt="" src="../_images/a.png">', None, "an image without alt text"),
    ("<pre># NBVAL_IGNORE_OUTPUT</pre>", None, "marker 'NBVAL_'"),
    ("<pre>saved to /tmp/run/x.pt</pre>", None, "a machine path ('/tmp/run"),
    (GOOD, '<a href="#">Home</a>', "the navigation does not list notebooks/01_a"),
])
def test_the_site_checks_find_what_a_reader_should_not_see(
    tmp_path: Path, body: str, nav: str | None, problem: str
) -> None:
    problems = site_checks.site_problems(_site(tmp_path, body, nav), ["README", "notebooks/01_a"])
    assert len(problems) == 1 and problem in problems[0], problems


def test_the_site_checks_find_missing_pages_search_and_mathjax(tmp_path: Path) -> None:
    html = _site(tmp_path, GOOD)
    (html / "searchindex.js").unlink()
    page = html / "notebooks" / "01_a.html"
    page.write_text(page.read_text(encoding="utf-8").replace(MATHJAX, ""), encoding="utf-8")
    problems = "\n".join(site_checks.site_problems(html, ["README", "notebooks/01_a", "gone"]))
    assert "no search page" in problems
    assert "notebooks/01_a.html: has formulas but does not load MathJax" in problems
    assert "gone: no page gone.html" in problems


# --------------------------------------------------------------------------- the command


def _tiny_course(tmp_path: Path) -> Path:
    root = tmp_path / "course"
    (root / "notebooks").mkdir(parents=True)
    (root / "README.md").write_text("# Course\n", encoding="utf-8")
    (root / "notebooks" / "01_a.ipynb").write_text(json.dumps(_tiny_notebook()),
                                                   encoding="utf-8")
    return root


def test_the_command_stops_before_sphinx_when_a_figure_lacks_alt_text(tmp_path: Path,
                                                                       capsys) -> None:
    empty = tmp_path / "figures.toml"
    empty.write_text("", encoding="utf-8")
    out = tmp_path / "b"
    status = build.main(["--root", str(_tiny_course(tmp_path)), "--figures", str(empty),
                         "--out", str(out)])
    err = capsys.readouterr().err
    assert status == 1
    assert "01_a: cell 'single' has 1 image output(s) and no alt text" in err
    assert not out.exists()  # nothing staged, nothing built


def test_the_command_never_deletes_a_folder_it_did_not_write(tmp_path: Path, capsys) -> None:
    alt = tmp_path / "figures.toml"
    alt.write_text('[01_a]\n"single" = "A plot."\n"double" = ["One.", "Two."]\n',
                   encoding="utf-8")
    out = tmp_path / "b"
    (out / "html").mkdir(parents=True)
    (out / "html" / "keep.txt").write_text("a user's file", encoding="utf-8")
    status = build.main(["--root", str(_tiny_course(tmp_path)), "--figures", str(alt),
                         "--out", str(out)])
    assert status == 1
    assert "html/ folder that Sphinx did not write" in capsys.readouterr().err
    assert (out / "html" / "keep.txt").is_file() and not (out / "src").exists()


def test_the_command_names_a_root_that_is_not_the_course(tmp_path: Path, capsys) -> None:
    assert build.main(["--root", str(tmp_path), "--out", str(tmp_path / "b")]) == 1
    assert "has no notebooks/ folder" in capsys.readouterr().err


def test_the_book_ships_with_the_package_and_runs_in_ci() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert any(r.replace(" ", "").startswith("jupyter-book>=1.0.4,<2")
               for r in project["project"]["optional-dependencies"]["book"])
    assert project["project"]["scripts"]["mtlaug-book"] == "mtlaug_lib.course.book.build:main"
    data = project["tool"]["setuptools"]["package-data"]["mtlaug_lib.course.book"]
    assert {"*.yml", "*.toml"} <= set(data)
    for template in build.TEMPLATES:
        assert template.is_file()
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert ci.index("time pytest") < ci.index('pip install -e ".[book]"') < ci.index(
        "time mtlaug-book")
    assert "_build/" in (ROOT / ".gitignore").read_text(encoding="utf-8").splitlines()
