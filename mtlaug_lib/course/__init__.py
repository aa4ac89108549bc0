"""The course's own tools: exercise checks, figures, notebook execution, the student edition.

Nothing else in the library imports this package, and ``import mtlaug_lib`` does not load it
(matplotlib included): ``from mtlaug_lib import exercises, plots`` loads those on first use.
"""
