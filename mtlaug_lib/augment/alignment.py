"""Is a mask still on its image's digits? The check of notebook 03 and the augmentation tests.

A geometric augmentation must move a mask with its image. ``mask_alignment`` measures how well
a mask fits the image's ink (``ink``: each pixel's distance from the flat background): a mask
that moved with its image scores near 1 on both of its fractions; one left behind, or moved
differently, scores low. It needs no reference output, so it checks any augmenter.
"""

from __future__ import annotations

import torch


def ink(image: torch.Tensor) -> torch.Tensor:
    """How far each pixel is from its image's background, in [0, 1] of the image's range.

    The background is each channel's most common value (a digit image's background is one flat
    colour, whatever colour jitter, inversion or normalisation did to it); the distance is the
    largest over channels, divided by the image's largest, so which pixels count as ink does
    not depend on the image's scale.

    image: C x H x W or B x C x H x W -> H x W or B x H x W.
    """
    x = (image if image.ndim == 4 else image[None]).float()
    top = x.flatten(1).amax(dim=1) - x.flatten(1).amin(dim=1)
    levels = (x.flatten(2) * (255 / top.clamp_min(1e-12))[:, None, None]).round()
    background = levels.mode(dim=2).values[:, :, None, None] / (255 / top[:, None, None, None])
    dist = (x - background).abs().amax(dim=1)  # B x H x W
    out = dist / dist.flatten(1).amax(dim=1).clamp_min(1e-12)[:, None, None]
    return out if image.ndim == 4 else out[0]


def mask_alignment(
    image: torch.Tensor, mask: torch.Tensor, faint: float = 0.02, strong: float = 0.5
) -> tuple[float, float]:
    """How well a mask fits an image's digit pixels: two fractions, 1.0 meaning perfectly.

    Returns ``(labelled_with_ink, strong_ink_labelled)``: the fraction of the mask's labelled
    pixels (mask > 0) whose ``ink`` is above ``faint``, and the fraction of strong-ink pixels
    (``ink`` above ``strong``) that the mask labels. A mask left behind by a geometric transform,
    or moved differently from the image, scores low on both.

    image: C x H x W or B x C x H x W; mask: H x W or B x H x W (integer).
    """
    level = ink(image)
    labelled = mask > 0
    strong_px = level > strong
    a = float((level[labelled] > faint).float().mean()) if labelled.any() else 1.0
    b = float(labelled[strong_px].float().mean()) if strong_px.any() else 1.0
    return a, b
