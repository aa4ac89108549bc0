"""nbgrader configuration for the course "Multi-task learning and data augmentation in PyTorch".

``mtlaug-nbgrader setup COURSE_DIR`` copies this file to ``COURSE_DIR/nbgrader_config.py``;
nbgrader reads it when it runs in COURSE_DIR. It is a config file, not a module to import:
nbgrader runs it with ``get_config`` defined.
"""

from mtlaug_lib.course.grading_release import release_preprocessors

c = get_config()  # noqa: F821 (nbgrader defines it when it loads this file)

# The release keeps the lesson's outputs (figures, tables, printed shapes): nbgrader's default
# ClearOutput would clear them all. Only the exercise part is cleared (the solution cells, the
# check cells with their stored "Correct! ...", every code cell after the first exercise
# heading), the same rule as mtlaug-student.
c.GenerateAssignment.preprocessors = release_preprocessors()

# Autograde runs the whole notebook, lesson included, before the checks. nbgrader stops a cell
# after 30 s by default and scores every later check 0. Measured on a 2-core CPU (nbclient's
# cell timings, one run of each notebook), the longest cell of notebooks 02 to 07 takes 41 s to
# 94 s (07's scenes at equal compute: 94 s; 06: 89 s; 05: 73 s). 600 s a cell
# (mtlaug-execute's default too) leaves room for a machine six times slower and still stops
# an endless loop.
c.Execute.timeout = 600
