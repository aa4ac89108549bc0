"""What nbgrader's release keeps of a course notebook: the lesson's outputs, not the exercises'.

nbgrader's ``generate_assignment`` clears every output (its ``ClearOutput`` step), so the
released lesson would lose its figures and tables, the point of reading it. The course's
``nbgrader_config.py`` swaps that step for ``ClearExerciseOutputs``, which clears only the
code cells of the exercise part, by the same rule as ``mtlaug-student``
(``student.exercise_part_start``): the solution cells, the check cells whose stored
"Correct! ..." would give an answer away, and every code cell after the first exercise heading.

This module imports nbgrader and is only loaded by the nbgrader config; ``import mtlaug_lib``
and ``mtlaug-student`` never load it.
"""

from __future__ import annotations

from nbconvert.exporters.exporter import ResourcesDict
from nbformat import NotebookNode
from nbgrader.converters import GenerateAssignment
from nbgrader.preprocessors import ClearOutput, NbGraderPreprocessor

from .student import exercise_part_start

__all__ = ["ClearExerciseOutputs", "release_preprocessors"]


class ClearExerciseOutputs(NbGraderPreprocessor):
    """Clear the outputs and execution counts of the exercise part's code cells only."""

    def preprocess(self, nb: NotebookNode, resources: ResourcesDict
                   ) -> tuple[NotebookNode, ResourcesDict]:
        start = exercise_part_start(nb.cells)
        for cell in nb.cells[start:]:
            if cell.cell_type == "code":
                cell.outputs = []
                cell.execution_count = None
        return nb, resources


def release_preprocessors() -> list[type]:
    """nbgrader's own ``generate_assignment`` steps, with ``ClearOutput`` swapped for
    ``ClearExerciseOutputs`` (read from the installed nbgrader, not copied, so its other steps
    stay whatever that version runs).

    Raises:
        RuntimeError: the installed nbgrader has no ``ClearOutput`` step to swap.
    """
    steps = list(GenerateAssignment.class_traits()["preprocessors"].default())
    if ClearOutput not in steps:
        raise RuntimeError(
            "nbgrader's GenerateAssignment.preprocessors has no ClearOutput step to replace; "
            f"got {[step.__name__ for step in steps]}, expected nbgrader 0.9's list"
        )
    return [ClearExerciseOutputs if step is ClearOutput else step for step in steps]
