"""A small encoder-decoder backbone for dense tasks (segmentation, depth, surface normals).

The article's extractor ends in a 7 x 7 bottleneck, so a dense head must re-invent every detail
finer than 4 x 4 pixels (notebook 02 measures that limit). Dense scene tasks need
full-resolution features, and depth needs context from the whole image (where the floor meets
the walls, how big the floor's texture looks). ``EncoderDecoder`` gives both, U-Net style
(Ronneberger et al., 2015), at a size this CPU trains in seconds:

    stem      conv-BN-ReLU                         3 -> w        at H x W        (skip 0)
    down<i>   2x2 max-pool, conv-BN-ReLU           c_{i-1} -> c_i at H/2^i x W/2^i (skip i)
    context   global mean, 1x1 conv, ReLU, added   c_D -> c_D    (the whole image, everywhere)
    up<i>     1x1 conv, x2 nearest upsampling,
              add skip i-1, conv-BN-ReLU           c_i -> c_{i-1}
    out       w x H x W features for the heads

with ``c_i = width * 2^i`` for ``i = 0 .. depth``. One 3x3 convolution per stage keeps the step
cheap; the skips carry the fine detail, the bottleneck and the context branch carry the
layout. Each stage is a top-level child, so ``count_parameters`` and ``count_macs`` report the
cost per stage (``count_macs(backbone, x)``: ``{"stem": ..., "down1": ..., ...}``).

The receptive field: without the context branch, an output pixel sees only the input pixels
within ``receptive_field`` (a square of that many pixels); the context branch (on by default)
makes it the whole image. In training mode batch normalisation also mixes every pixel of the
batch into every output through its statistics; in evaluation mode it is per pixel.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .checks import check_int

IN_CHANNELS = 3


class ConvBNReLU(nn.Sequential):
    """3x3 convolution (no bias: the batch norm has one), batch norm, ReLU; size kept.

    Shapes: N x in_channels x H x W -> N x out_channels x H x W.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


class Down(nn.Module):
    """One encoder stage: 2x2 max-pooling, then ``ConvBNReLU``.

    Shapes: N x in_channels x H x W -> N x out_channels x H/2 x W/2.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.pool = nn.MaxPool2d(2)
        self.conv = ConvBNReLU(in_channels, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.pool(x))


class Up(nn.Module):
    """One decoder stage: a 1x1 convolution to the skip's channels (at the coarse size, where it
    is cheap), x2 nearest upsampling, the encoder's skip added, then ``ConvBNReLU``.

    Adding the skip (as FPN and LinkNet do) instead of concatenating it (as U-Net does) keeps
    the 3x3 convolution at ``out_channels`` inputs: about a third of the decoder's cost, which
    dominates the step at full resolution.

    Shapes: coarse N x in_channels x H/2 x W/2 and skip N x out_channels x H x W ->
    N x out_channels x H x W.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.reduce = nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=False)
        self.conv = ConvBNReLU(out_channels, out_channels)

    def forward(self, coarse: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        # Nearest upsampling: cheapest, and the 3x3 convolution after it smooths the blocks.
        up = F.interpolate(self.reduce(coarse), scale_factor=2.0, mode="nearest")
        return self.conv(up + skip)


class GlobalContext(nn.Module):
    """The image's mean feature, through a 1x1 convolution and ReLU, added at every position:
    every output then depends on every input pixel (at the cost of strict translation
    equivariance). Cheap: c^2 MACs per image.

    Shapes: N x channels x h x w -> N x channels x h x w.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + F.relu(self.conv(x.mean(dim=(2, 3), keepdim=True)))


def check_input(x: object, depth: int, who: str = "EncoderDecoder") -> None:
    """Raise a ``ValueError`` naming the input's shape and what was expected, unless ``x``
    is a float batch N x 3 x H x W with H and W positive multiples of ``2^depth``. ``who``
    names the network in the message. (A function, so that a network cut into blocks,
    ``core.architectures``, checks its input as the whole ``EncoderDecoder`` does.)"""
    if not isinstance(x, torch.Tensor) or x.ndim != 4:
        got = f"shape {tuple(x.shape)}" if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{who} expects a batch of images N x 3 x H x W, got {got}")
    if x.shape[1] != IN_CHANNELS:
        raise ValueError(
            f"{who} expects {IN_CHANNELS} input channels (N x 3 x H x W), got {x.shape[1]} "
            f"(input shape {tuple(x.shape)})"
        )
    h, w, m = x.shape[2], x.shape[3], 2**depth
    if h < m or w < m or h % m or w % m:
        raise ValueError(
            f"{who} expects H and W to be positive multiples of 2^depth = {m} (depth "
            f"{depth}: {depth} halvings and back), got {h} x {w} (input shape "
            f"{tuple(x.shape)}); crop or pad the images, for example to "
            f"{max(m, h // m * m)} x {max(m, w // m * m)}"
        )
    if not x.is_floating_point():
        raise ValueError(f"{who} expects float images, got dtype {x.dtype}")


class EncoderDecoder(nn.Module):
    """A size-agnostic U-Net-like backbone: N x 3 x H x W images -> N x width x H x W features.

    Args:
        width: channels of the full-resolution stages (and of the output); stage i has
            ``width * 2^i``.
        depth: number of 2x2 poolings; H and W must be multiples of ``2^depth``.
        context: add the global-context branch at the bottleneck (the receptive field becomes
            the whole image).

    Any H and W that are positive multiples of ``2^depth`` (8 by default: 32, 48, 64, ...) are
    taken; other sizes and channel counts other than 3 are refused before any computation.

    Why width 8 (measured with ``benchmarks/bench_dense_model.py``, one thread, batch 32, three
    dense tasks with 3x3 heads, 48 x 48 images): a training step takes about 57 ms, 1.8 times
    the MultiDigits model's step; width 12 takes 1.6 times as long as width 8, width 16 twice
    as long, width 4 0.7 times (but only 4 channels at full resolution for every task).
    """

    def __init__(self, width: int = 8, depth: int = 3, context: bool = True) -> None:
        super().__init__()
        width = check_int("width", width, minimum=1)
        depth = check_int("depth", depth, minimum=1)
        if not isinstance(context, bool):
            raise ValueError(f"argument 'context' is {context!r}, expected True or False")
        self.width, self.depth, self.context_branch = width, depth, context
        channels = [width * 2**i for i in range(depth + 1)]
        self.stem = ConvBNReLU(IN_CHANNELS, width)
        for i in range(1, depth + 1):
            setattr(self, f"down{i}", Down(channels[i - 1], channels[i]))
        self.context = GlobalContext(channels[depth]) if context else None
        for i in range(depth, 0, -1):
            setattr(self, f"up{i}", Up(channels[i], channels[i - 1]))

    @property
    def out_channels(self) -> int:
        """Channels of the output features (``width``)."""
        return self.width

    @property
    def multiple(self) -> int:
        """H and W must be multiples of this (``2^depth``)."""
        return 2**self.depth

    @property
    def receptive_field(self) -> int:
        """Side, in pixels, of the square of input pixels that one output pixel of the local
        path (without the context branch) can depend on."""
        rf, jump = 3, 1  # the stem's 3x3 convolution
        for _ in range(self.depth):  # pool (adds a jump, doubles it), then a 3x3 convolution
            rf += jump
            jump *= 2
            rf += 2 * jump
        for _ in range(self.depth):  # 1x1 and nearest upsampling add nothing; then a 3x3
            jump //= 2
            rf += 2 * jump
        return rf

    def check_input(self, x: object) -> None:
        """Raise a ``ValueError`` naming the input's shape and what was expected, unless ``x``
        is a float batch N x 3 x H x W with H and W positive multiples of ``2^depth``."""
        check_input(x, self.depth, type(self).__name__)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: N x 3 x H x W (H, W multiples of ``2^depth``) -> N x width x H x W."""
        self.check_input(x)
        # Channels-last layout: oneDNN's convolutions with few channels run about twice as fast
        # on the CPU this way (forward and backward; benchmarks/bench_dense_model.py). The
        # values and shapes are the same; only the strides differ.
        x = x.contiguous(memory_format=torch.channels_last)
        skips = [self.stem(x)]
        for i in range(1, self.depth + 1):
            skips.append(getattr(self, f"down{i}")(skips[-1]))
        h = skips.pop()
        if self.context is not None:
            h = self.context(h)
        for i in range(self.depth, 0, -1):
            h = getattr(self, f"up{i}")(h, skips.pop())
        return h

    def extra_repr(self) -> str:
        return f"width={self.width}, depth={self.depth}, context={self.context_branch}"
