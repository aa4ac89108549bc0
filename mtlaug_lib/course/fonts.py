"""A fallback font for Chinese (CJK) text in the course's figures.

matplotlib's default font, DejaVu Sans, has no Chinese glyphs: a title such as "多任务学习"
renders as empty boxes, with a "Glyph ... missing from font(s) DejaVu Sans" warning.
Since matplotlib 3.6, ``rcParams["font.family"]`` may list several families and each glyph
comes from the first family in the list that has it. ``use_cjk_fonts`` appends one installed
CJK font to that list: Latin text still comes from the first family (unchanged pixels), and
only the glyphs it lacks come from the CJK font.

It is an explicit call, not something importing ``plots`` does: it changes a global matplotlib
setting for every figure of the session, the reader's own included, so the reader asks for it.

Where no CJK font is installed it changes nothing and returns ``None``. To install one:

- Debian/Ubuntu: ``sudo apt-get install fonts-noto-cjk`` (Noto Sans CJK; 57 MB download)
  or ``fonts-wqy-microhei`` (WenQuanYi Micro Hei; 1.6 MB download);
- macOS: nothing to install (PingFang SC, Heiti and Arial Unicode MS ship with the system);
- Windows: nothing to install (Microsoft YaHei and SimHei ship with the system);
- anywhere: download Noto Sans CJK SC or Source Han Sans SC and install the font file.
"""

from __future__ import annotations

import matplotlib
from matplotlib import font_manager

# Preferred families, Simplified Chinese first (the article's script), by their names in
# matplotlib's font list. Any other family whose name says CJK comes after these.
CJK_FAMILIES = (
    "Noto Sans CJK SC",
    "Source Han Sans SC",
    "Noto Sans SC",
    "WenQuanYi Zen Hei",
    "WenQuanYi Micro Hei",
    "Microsoft YaHei",
    "PingFang SC",
    "SimHei",
    "Heiti SC",
    "Heiti TC",
    "STHeiti",
    "Noto Sans CJK JP",
    "Noto Sans CJK TC",
    "Noto Sans CJK KR",
    "Source Han Sans",
    "Arial Unicode MS",
    "Droid Sans Fallback",
)
# The glyphs a family must have to count: the course's title in Chinese, "multi-task learning".
PROBE = "多任务学习"
# The first matplotlib release that falls back glyph by glyph through font.family.
MIN_MATPLOTLIB = (3, 6)


def _installed_names() -> list[str]:
    """The family names in matplotlib's font list, in its (cached) order."""
    return [entry.name for entry in font_manager.fontManager.ttflist]


def _covers(family: str, text: str) -> bool:
    """Whether ``family`` (installed) has a glyph for every character of ``text``."""
    try:
        path = font_manager.findfont(font_manager.FontProperties(family=family),
                                     fallback_to_default=False)
        font = font_manager.get_font(path)
    except (ValueError, OSError, RuntimeError):  # not found, or a file FreeType cannot read
        return False
    return all(font.get_char_index(ord(c)) != 0 for c in text)


def _add_new_system_fonts() -> None:
    """Add the system's font files that matplotlib's cached font list does not know yet.

    matplotlib caches its font list on first use and does not look again, so a font installed
    after that (``apt-get install fonts-noto-cjk``) stays invisible until the cache is deleted.
    Only files missing from the list are read, so this is cheap when nothing is new."""
    known = {entry.fname for entry in font_manager.fontManager.ttflist}
    for path in font_manager.findSystemFonts():
        if path not in known:
            try:
                font_manager.fontManager.addfont(path)
            except (OSError, RuntimeError, ValueError):  # as matplotlib does: skip bad files
                continue


def _candidates() -> list[str]:
    """Installed families that may hold CJK glyphs, preferred first (not yet probed)."""
    installed = _installed_names()
    if not any(name in CJK_FAMILIES or "CJK" in name for name in installed):
        _add_new_system_fonts()
        installed = _installed_names()
    present = set(installed)
    ordered = [name for name in CJK_FAMILIES if name in present]
    ordered += sorted({name for name in installed if "CJK" in name} - set(ordered))
    return ordered


def find_cjk_font() -> str | None:
    """The name of an installed font family with Chinese glyphs, or ``None`` where none is.

    The families of ``CJK_FAMILIES`` are tried in that order, then any other family named
    "... CJK ..."; the first whose glyphs cover ``PROBE`` wins."""
    return next((name for name in _candidates() if _covers(name, PROBE)), None)


def use_cjk_fonts() -> str | None:
    """Let matplotlib draw Chinese (and Japanese, Korean) text with an installed CJK font.

    Appends the family ``find_cjk_font`` finds to ``rcParams["font.family"]``, after the
    families already there, so Latin text looks exactly as before and only glyphs the first
    families lack come from the CJK font. Affects the figures (and texts) created afterwards,
    in the whole session. Calling it again changes nothing more. To undo:
    ``matplotlib.rcParams["font.family"] = ["sans-serif"]`` (the default).

    Returns:
        The family used, or ``None`` where no CJK font is installed; then no setting is
        changed (see this module's docstring for what to install).

    Raises:
        RuntimeError: with matplotlib older than 3.6, which uses only the first family found
            and so cannot fall back glyph by glyph.
    """
    version = tuple(int(part) for part in matplotlib.__version__.split(".")[:2])
    if version < MIN_MATPLOTLIB:
        raise RuntimeError(
            f"use_cjk_fonts needs matplotlib >= 3.6 (per-glyph font fallback), found "
            f"{matplotlib.__version__}: pip install -U matplotlib")
    family = find_cjk_font()
    if family is None:
        return None
    current = matplotlib.rcParams["font.family"]
    current = [current] if isinstance(current, str) else list(current)
    if family not in current:
        matplotlib.rcParams["font.family"] = [*current, family]
    return family
