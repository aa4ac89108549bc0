"""The course as a static web site (a book), built with Jupyter Book 1.x: ``mtlaug-book``.

:mod:`.build` is the command, :mod:`.staging` the copy of the course it builds from (where
presentation is applied; the notebooks are never written), :mod:`.figures` the alt text of
every figure (``figures.toml``). ``_config.yml`` and ``_toc.yml`` are the book's Jupyter Book
configuration and table of contents.
"""

from .build import BookBuildError, BookResult, build_book, main
from .figures import NotebookFigures, figure_problems, load_figures
from .staging import present_notebook, stage

__all__ = [
    "BookBuildError",
    "BookResult",
    "NotebookFigures",
    "build_book",
    "figure_problems",
    "load_figures",
    "main",
    "present_notebook",
    "stage",
]
