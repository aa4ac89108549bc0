"""Training: the loop, the update strategies, and the multi-task weighting methods.

Imports the core only (never the augmentation or the course). Each module imports only those
listed before it:

- ``gradients``: the gradient-combination maths on a T x D matrix, pure functions;
- ``precision``: fp32, bf16 autocast, fp16 with loss scaling (``backward``, ``optimizer_step``);
- ``distributed``: data parallelism over ``torch.distributed`` (no-ops in one process);
- ``strategy``: the ``Strategy`` protocol, ``StepStats`` and the strategies' shared helpers;
- ``optimizers``: one optimizer for all tasks, or one per task;
- ``strategies``: joint, alternating and sequential training, and ``STRATEGIES``;
- ``gradient_source``: where task gradients are taken (shared features or shared parameters);
- ``conflict``: the gradient conflict between tasks, measured during training;
- ``weighting/``: the weighting methods, ``WEIGHTING_METHODS``, and the strategy ``Weighted``;
- ``registry``: ``make_strategy``, a strategy from any name of either registry;
- ``loop``: ``train``, ``evaluate`` and ``History``.
"""
