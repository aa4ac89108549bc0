"""Checks shared by the augmentation tests: is a mask still on its image's digits?"""

from __future__ import annotations

import torch
from torchvision.transforms import v2

from mtlaug_lib.augment.alignment import mask_alignment

BILINEAR = v2.InterpolationMode.BILINEAR
SWAP = {1: 2, 2: 1}  # the mask's left and right digit classes
# A correct mask labels ink (nearly) only, and covers (nearly) all strong ink; a mask left
# behind scores about 0.84 and 0.71 on these data (see test_a_mask_left_behind_fails_...).
LABELLED_WITH_INK, STRONG_INK_LABELLED = 0.99, 0.9


def left_of_right(mask: torch.Tensor) -> torch.Tensor:
    """Per sample (B x H x W): is the mean column of class-1 pixels left of class-2 pixels?"""
    cols = torch.arange(mask.shape[-1], dtype=torch.float32)

    def centre(c: int) -> torch.Tensor:
        on = (mask == c).float()
        return (on * cols).sum((-2, -1)) / on.sum((-2, -1)).clamp_min(1)

    return centre(1) < centre(2)


def assert_aligned(image: torch.Tensor, mask: torch.Tensor) -> None:
    with_ink, labelled = mask_alignment(image, mask)
    assert with_ink >= LABELLED_WITH_INK, f"labelled pixels without ink: {1 - with_ink:.3f}"
    assert labelled >= STRONG_INK_LABELLED, f"strong ink not labelled: {1 - labelled:.3f}"
