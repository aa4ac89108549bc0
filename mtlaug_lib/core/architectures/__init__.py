"""Multi-task architectures: what the tasks share, beyond one backbone with heads.

Every architecture is built from the same task declarations by ``make_architecture(name,
tasks, backbone, seed, **options)`` and has ``MultiTaskModel``'s interface, so the training
loop, every strategy and every weighting method take it:

- ``hard``: ``make_model``'s model, the whole backbone shared (the reference);
- ``branched``: the backbone's first k blocks shared, the rest copied per task;
- ``cross_stitch``: one column per task, mixed after each block (Misra et al. 2016);
- ``mtan``: a shared backbone read through per-task attention masks (Liu et al. 2019);
- ``mmoe``: expert backbones mixed per task by softmax gates (Ma et al. 2018).

``blocks`` cuts a backbone into the blocks these share, copy, mix or attend to; ``base`` holds
the interface and the parameter accounting; ``registry`` the names.
"""

from .base import ArchitectureModel
from .blocks import stage
from .branched import Branched
from .cross_stitch import CrossStitch, CrossStitchUnit
from .mmoe import MMoE
from .mtan import MTAN
from .registry import ARCHITECTURES, ArchitectureSpec, make_architecture

__all__ = [
    "ARCHITECTURES",
    "ArchitectureModel",
    "ArchitectureSpec",
    "Branched",
    "CrossStitch",
    "CrossStitchUnit",
    "MMoE",
    "MTAN",
    "make_architecture",
    "stage",
]
