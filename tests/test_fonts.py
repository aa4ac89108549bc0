"""The CJK font fallback of ``course.fonts`` (``plots.use_cjk_fonts``): Chinese titles render
without missing glyphs where a CJK font is installed, Latin text keeps its pixels, and nothing
changes where no CJK font is installed."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator

import matplotlib

matplotlib.use("Agg")  # no display in tests

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib import font_manager  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from mtlaug_lib.course import fonts, plots  # noqa: E402

CHINESE = "多任务学习"  # "multi-task learning"
NO_CJK_FONT = ("no CJK font installed (fc-list :lang=zh is empty); install one, e.g. "
               "apt-get install fonts-wqy-microhei, to run this test")


@pytest.fixture(autouse=True)
def restore_rcparams() -> Iterator[None]:
    """Each test starts from matplotlib's defaults and leaves the session's settings as found
    (``use_cjk_fonts`` changes them globally)."""
    with matplotlib.rc_context():
        matplotlib.rcdefaults()
        yield


def _chinese_bars() -> Figure:
    """The course's bar chart, titled and labelled in Chinese."""
    return plots.plot_bars([3, 5], ["左", "右"], title=CHINESE, ylabel="样本", xlabel="任务")


def _latin_bars() -> Figure:
    """Latin text of every kind the course draws: title, labels, ticks with minus signs,
    annotations, and mathtext."""
    return plots.plot_bars([-3, 5], ["left", "right"], title=r"Multi-task loss $\sum_t w_t L_t$",
                           ylabel="change (%)", xlabel="task")


def _missing_glyph_warnings(make: Callable[[], Figure]) -> list[str]:
    """Make a figure and render it with Agg; the missing-glyph warnings emitted meanwhile
    (making counts: ``tight_layout`` lays the text out already)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fig = make()
        fig.canvas.draw()
    plt.close(fig)
    return [str(w.message) for w in caught if "missing from font" in str(w.message)]


def _pixels(fig: Figure) -> np.ndarray:
    fig.canvas.draw()
    pixels = np.asarray(fig.canvas.buffer_rgba()).copy()
    plt.close(fig)
    return pixels


def test_default_font_lacks_chinese_so_a_title_in_chinese_warns() -> None:
    """Without the fallback a Chinese title loses its glyphs: the warning the next test looks
    for does appear, so that test can fail."""
    if fonts._covers("DejaVu Sans", CHINESE):
        pytest.skip("the default font has Chinese glyphs here: nothing would be missing")
    missing = _missing_glyph_warnings(_chinese_bars)
    assert missing and any("DejaVu Sans" in m for m in missing)
    assert len(missing) >= len(CHINESE)  # one per glyph of the title at least


def test_chinese_title_renders_with_the_fallback() -> None:
    family = fonts.find_cjk_font()
    if family is None:
        pytest.skip(NO_CJK_FONT)
    before = list(matplotlib.rcParams["font.family"])
    assert plots.use_cjk_fonts() == family
    assert matplotlib.rcParams["font.family"] == [*before, family]  # appended, not replacing
    assert _missing_glyph_warnings(_chinese_bars) == []


def test_latin_text_keeps_its_pixels_with_the_fallback() -> None:
    if fonts.find_cjk_font() is None:
        pytest.skip(NO_CJK_FONT)
    without = _pixels(_latin_bars())
    assert plots.use_cjk_fonts() is not None
    with_fallback = _pixels(_latin_bars())
    assert without.shape == with_fallback.shape
    assert np.array_equal(without, with_fallback), (
        f"{int((without != with_fallback).any(axis=2).sum())} pixels differ")


def test_a_font_installed_after_matplotlib_cached_its_list_is_found(monkeypatch) -> None:
    """matplotlib does not rescan the system's fonts once its list is cached; the lookup adds
    the new files itself."""
    family = fonts.find_cjk_font()
    if family is None:
        pytest.skip(NO_CJK_FONT)
    # Every face of every CJK font file out of the list, as before the fonts were installed.
    ttflist = font_manager.fontManager.ttflist
    files = {e.fname for e in ttflist if e.name in fonts.CJK_FAMILIES or "CJK" in e.name}
    monkeypatch.setattr(font_manager.fontManager, "ttflist",
                        [e for e in ttflist if e.fname not in files])
    assert fonts._installed_names() and family not in fonts._installed_names()
    assert fonts.find_cjk_font() == family
    assert family in {e.name for e in font_manager.fontManager.ttflist}


def test_no_cjk_font_installed_changes_nothing(monkeypatch) -> None:
    monkeypatch.setattr(fonts, "_installed_names", lambda: ["DejaVu Sans", "DejaVu Serif"])
    monkeypatch.setattr(font_manager, "findSystemFonts", lambda *args, **kwargs: [])
    before = dict(matplotlib.rcParams)
    assert fonts.find_cjk_font() is None
    assert plots.use_cjk_fonts() is None
    assert dict(matplotlib.rcParams) == before
    _missing_glyph_warnings(_chinese_bars)  # still draws (with empty boxes), no error


def test_a_family_without_the_glyphs_does_not_count(monkeypatch) -> None:
    """A font named like a CJK font but lacking the glyphs (here DejaVu Sans, which is
    installed) is not chosen."""
    monkeypatch.setattr(fonts, "CJK_FAMILIES", ("DejaVu Sans",))
    monkeypatch.setattr(fonts, "_installed_names", lambda: ["DejaVu Sans"])
    assert fonts.find_cjk_font() is None


def test_the_fallback_is_appended_once_after_the_readers_families(monkeypatch) -> None:
    monkeypatch.setattr(fonts, "find_cjk_font", lambda: "Some CJK Sans")
    matplotlib.rcParams["font.family"] = ["serif"]  # the reader's own choice stays first
    assert plots.use_cjk_fonts() == "Some CJK Sans"
    assert plots.use_cjk_fonts() == "Some CJK Sans"
    assert matplotlib.rcParams["font.family"] == ["serif", "Some CJK Sans"]


def test_importing_plots_changes_no_font_setting() -> None:
    """The fallback is opt-in: a fresh interpreter that imports the plots keeps the default."""
    import subprocess
    import sys

    code = ("import matplotlib; before = list(matplotlib.rcParams['font.family']); "
            "from mtlaug_lib import plots; "
            "assert list(matplotlib.rcParams['font.family']) == before == ['sans-serif']")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr


def test_old_matplotlib_is_refused_with_a_clear_message(monkeypatch) -> None:
    monkeypatch.setattr(matplotlib, "__version__", "3.5.3")
    with pytest.raises(RuntimeError, match=r"matplotlib >= 3\.6.*found 3\.5\.3"):
        plots.use_cjk_fonts()
