"""The core: what every other part of the library builds on, and which imports none of them.

Tasks (``tasks``) declare what each task predicts and how augmentation treats its labels;
models (``models``) are a shared backbone and one head per task, and ``architectures`` the
other answers to what the tasks share (branch points, cross-stitch, MTAN, MMoE); the loss
(``losses``) turns outputs and a batch into one loss per task; ``batch_format`` names the keys
a batch may hold; ``checkpoint`` saves and resumes; ``checks`` and ``files`` hold the argument
checks and the atomic write that the rest reuses; ``utils`` picks devices, seeds and times.
"""
