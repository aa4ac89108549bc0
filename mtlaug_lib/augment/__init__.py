"""Augmentation that keeps every task's labels right, and the audit that checks it.

From the bottom layer up (each module imports only those above it in this list):

- ``common``: the arguments every augmenter takes (``check_tasks``, ``make_generator``,
  ``check_batch``);
- ``functional``: per-sample kernels of a whole batch (``affine_theta``, ``forward_linear``,
  ``color_jitter``), torch only;
- ``values``: ``DepthMap`` and ``NormalMap``, the ``tv_tensors`` whose values torchvision v2's
  geometric transforms change (a flip negates the normals' x, a zoom divides depth);
- ``label_maps``: the class exchanges that repair a flip, and their checks;
- ``probe``: what a geometric transform does to the data, measured on probes;
- ``kinds``: what the audit knows of a transform (``TransformInfo``, ``declare_kind``,
  ``transform_kinds``) and the two hooks through which it sees the augmenters
  (``audit_parts``; ``audit_inner``/``with_inner``): it names no augmenter class;
- ``measured``: the audit's judgement of geometric transforms and label maps on the data;
- ``audit``: the table transform x task (``audit``, ``Audit``, ``LabelSafetyError``);
- ``flip``: ``RandomFlip``, a flip that applies label maps when it fires;
- ``repair``: ``check_pipeline`` audits a pipeline and repairs its flips with label maps;
- ``sample``: ``SampleTransform`` applies a torchvision v2 pipeline to a sample's image and
  masks together;
- ``batch``: ``BatchAugment``, per-sample random transforms of a whole batch on its device;
- ``mixing``: ``MixUp`` and ``CutMix`` for a batch with several heads;
- ``alignment``: ``mask_alignment``, whether a mask still lies on its image's digits;
- ``registry``: ``AUGMENTERS``, every augmenter by name (the contract tests run on each).

Imports the core and the data sets; the training loop never imports this package (batches
arrive augmented, through ``data.map_batches`` or a data set's transform).
"""
