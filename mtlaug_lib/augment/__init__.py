"""Augmentation that keeps every task's labels right, and the audit that checks it.

- ``audit``: what a pipeline's transforms do to each task's labels, measured on probes
  (``probe``), and ``LabelSafetyError`` for a pipeline that would corrupt them;
- ``sample``: ``SampleTransform`` applies a torchvision v2 pipeline to a sample's image and
  masks together; ``RandomFlip`` flips and remaps classes;
- ``repair``: ``check_pipeline`` audits a pipeline and repairs its flips with label maps;
- ``batch``: ``BatchAugment``, per-sample random transforms of a whole batch on its device;
- ``mixing``: ``MixUp`` and ``CutMix`` for a batch with several heads.

Imports the core and the data sets; the training loop never imports this package (batches
arrive augmented, through ``data.map_batches`` or a data set's transform).
"""
