"""Per-sample operations on a whole batch, written with torch primitives.

torchvision's transforms draw one set of random parameters per call, so a batch gets one
rotation for all its images (torchvision issue #8484). ``AugmentParams`` holds one row of
parameters per sample, and the kernels here apply them to a batch in one pass:
``affine_theta`` (the ``F.affine_grid`` matrices of the affine and flip, as torchvision's
``v2.functional.affine``), ``color_jitter`` (as ``adjust_brightness``/``contrast``/
``saturation``, one factor per sample) and ``permute_channels``; ``forward_linear`` (the map
L that the affine and flip apply to pixel coordinates, input -> output, which changes the
values of depth and normals: ``TaskKind.transform_values``). ``BatchAugment``
(``mtlaug_lib.augment.batch``) draws the parameters and calls these.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch


@dataclass(frozen=True)
class AugmentParams:
    """The random parameters of one ``BatchAugment`` call, one row per sample (B samples).

    The affine fields mean what they mean to ``torchvision.transforms.v2.functional.affine``
    (about the image centre; the flip is applied after the affine):

    - ``angle``: float B, degrees, clockwise (as ``v2.functional.affine``);
    - ``translate``: float B x 2, pixels (x to the right, y down);
    - ``scale``: float B;
    - ``shear``: float B x 2, degrees (x, y);
    - ``flip``: bool B, mirrored left-right;
    - ``brightness``, ``contrast``, ``saturation``: float B, factors (1 leaves the image as is);
    - ``channels``: int64 B x C, the order of the colour channels.
    """

    angle: torch.Tensor
    translate: torch.Tensor
    scale: torch.Tensor
    shear: torch.Tensor
    flip: torch.Tensor
    brightness: torch.Tensor
    contrast: torch.Tensor
    saturation: torch.Tensor
    channels: torch.Tensor

    def __len__(self) -> int:
        return len(self.angle)

    def to(self, device: torch.device | str) -> AugmentParams:
        return AugmentParams(**{f.name: getattr(self, f.name).to(device, non_blocking=True)
                                for f in fields(self)})

    @classmethod
    def identity(cls, batch_size: int, channels: int = 3) -> AugmentParams:
        """Parameters that leave every sample as it is."""
        b = batch_size
        return cls(angle=torch.zeros(b), translate=torch.zeros(b, 2), scale=torch.ones(b),
                   shear=torch.zeros(b, 2), flip=torch.zeros(b, dtype=torch.bool),
                   brightness=torch.ones(b), contrast=torch.ones(b), saturation=torch.ones(b),
                   channels=torch.arange(channels).repeat(b, 1))



def affine_theta(params: AugmentParams, height: int, width: int) -> torch.Tensor:
    """The ``F.affine_grid`` matrices (B x 2 x 3) of ``params``' affine and flip.

    The same inverse matrix as torchvision's ``v2.functional.affine`` (centre of the image,
    rotation, scale, shear, translation), mapped from pixel to normalised coordinates, with the
    horizontal flip of the output folded in (one resampling for both).
    """
    # torchvision's rotation-scale-shear matrix RSS = [[a, b], [c, d]] (scale aside, so its
    # determinant is 1), inverted by its adjugate.
    rss = rotation_scale_shear(params.angle, torch.ones_like(params.scale), params.shear)
    a, b, c, d = rss[:, 0, 0], rss[:, 0, 1], rss[:, 1, 0], rss[:, 1, 1]
    inv = torch.stack([torch.stack([d, -b], -1), torch.stack([-c, a], -1)], -2)
    inv = inv / params.scale[:, None, None]  # B x 2 x 2, output pixel -> input pixel
    shift = -(inv @ params.translate[:, :, None])  # B x 2 x 1
    # Mirroring the output is x -> -x before the inverse map (pixel centres map onto each other).
    sign = 1.0 - 2.0 * params.flip.to(inv.dtype)
    inv = inv * torch.stack([sign, torch.ones_like(sign)], -1)[:, None, :]
    # Pixel coordinates about the centre -> affine_grid's [-1, 1] (align_corners=False).
    to_norm = inv.new_tensor([2.0 / width, 2.0 / height])
    linear = inv * to_norm[:, None] / to_norm[None, :]
    return torch.cat([linear, shift * to_norm[:, None]], dim=2)


def rotation_scale_shear(angle: torch.Tensor, scale: torch.Tensor, shear: torch.Tensor
                         ) -> torch.Tensor:
    """torchvision's forward rotation-scale-shear matrix (B x 2 x 2), input pixel -> output
    pixel about the centre, x right, y down: the linear part of ``v2.functional.affine`` with
    ``angle`` (B, degrees: clockwise on screen), ``scale`` (B) and ``shear`` (B x 2, degrees).
    Its inverse is what ``affine_theta`` resamples with (its determinant is ``scale**2``)."""
    rot = torch.deg2rad(angle)
    sx, sy = torch.deg2rad(shear).unbind(-1)
    a = torch.cos(rot - sy) / torch.cos(sy)
    b = -(a * torch.tan(sx) + torch.sin(rot))
    c = torch.sin(rot - sy) / torch.cos(sy)
    d = torch.cos(rot) - c * torch.tan(sx)
    rss = torch.stack([torch.stack([a, b], -1), torch.stack([c, d], -1)], -2)
    return rss * scale[:, None, None]


def forward_linear(params: AugmentParams) -> torch.Tensor:
    """The linear map L (float B x 2 x 2) that ``params``' affine and flip apply to pixel
    coordinates about the image centre: output = L @ input, x right, y down.

    The flip comes after the affine (as in ``affine_theta``): L = diag(-1, 1) @ RSS for a
    flipped sample. The translation is left out: a shift changes no label value (it is a shift
    of the principal point). The linear part of ``affine_theta`` (in pixels) is L's inverse.
    """
    rss = rotation_scale_shear(params.angle, params.scale, params.shear)
    sign = 1.0 - 2.0 * params.flip.to(rss.dtype)
    return rss * torch.stack([sign, torch.ones_like(sign)], -1)[:, :, None]


_GREY = (0.2989, 0.587, 0.114)  # torchvision's rgb_to_grayscale weights


def _grey(image: torch.Tensor) -> torch.Tensor:
    """B x 3 x H x W -> B x 1 x H x W, as ``v2.functional.rgb_to_grayscale``."""
    r, g, b = image.unbind(1)
    return (r * _GREY[0] + g * _GREY[1] + b * _GREY[2]).unsqueeze(1)


def color_jitter(image: torch.Tensor, params: AugmentParams) -> torch.Tensor:
    """Per-sample brightness, contrast and saturation, in that order.

    Each step is torchvision's ``adjust_brightness``/``adjust_contrast``/``adjust_saturation``
    on a float image in [0, 1], with one factor per sample (``params.brightness`` etc., B)
    instead of one per call; torchvision's functions take a single factor.

    image: float B x C x H x W in [0, 1] -> the same shape.
    """
    def view(x: torch.Tensor) -> torch.Tensor:
        return x.to(image.dtype).view(-1, 1, 1, 1)

    x = (image * view(params.brightness)).clamp_(0, 1)
    if image.shape[1] == 3:
        mean = _grey(x).mean(dim=(1, 2, 3), keepdim=True)
        c = view(params.contrast)
        x = (c * x + (1 - c) * mean).clamp_(0, 1)
        s = view(params.saturation)
        x = (s * x + (1 - s) * _grey(x)).clamp_(0, 1)
    else:  # one channel: contrast only (saturation has no meaning)
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        c = view(params.contrast)
        x = (c * x + (1 - c) * mean).clamp_(0, 1)
    return x


def permute_channels(image: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
    """Each sample's channels in its own order. image: B x C x H x W; order: int64 B x C."""
    return image.gather(1, order[:, :, None, None].expand(-1, -1, *image.shape[2:]))
