"""A backbone cut into blocks, so that an architecture can share some blocks and copy, mix or
attend to others.

A block maps a *state* to a state. The state is a list of tensors: the last one is the current
feature map (N x C x h x w), the ones before it are the skip features that later blocks still
need (the encoder-decoder's U-Net skips; the article's backbone has none, so its state is
always one tensor). Running every block of a backbone in order computes exactly what the
backbone's ``forward`` computes, operation for operation (``tests/test_architectures.py``
checks ``torch.equal``), so a model built from blocks can equal ``make_model``'s bit for bit.

The blocks, in order:

- the article's ``FeatureExtractor`` (``"article"``): ``conv1`` (3x3 conv, ReLU, 2x2 pool:
  3 -> 32 channels, 28 -> 14), ``conv2`` (32 -> 64, 14 -> 7). The state is ``[h]``.
- ``EncoderDecoder`` (``"encoder_decoder"``), depth D: ``stem`` ([x] -> [s0]), ``down1`` ..
  ``downD`` (each pushes a coarser map: [.., h] -> [.., h, down(h)], so h becomes a skip),
  ``context`` if it has one ([.., h] -> [.., context(h)]), ``upD`` .. ``up1`` (each merges the
  current map with the newest skip: [.., skip, h] -> [.., up(h, skip)]). The state ends as
  ``[features]``. 2 D + 2 blocks with the context branch (8 for the default D = 3).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..encoder_decoder import EncoderDecoder, check_input
from ..models import FeatureExtractor, _check_images

State = list[torch.Tensor]


class Block(nn.Module):
    """One block: ``body`` applied to the state. Subclasses say how the state changes;
    ``out_channels`` is the channel count of the feature map the block leaves last."""

    def __init__(self, body: nn.Module, out_channels: int) -> None:
        super().__init__()
        self.body = body
        self.out_channels = out_channels


class Replace(Block):
    """[.., h] -> [.., body(h)] (the article's stages, the stem, the context branch)."""

    def forward(self, state: State) -> State:
        return [*state[:-1], self.body(state[-1])]


class Push(Block):
    """[.., h] -> [.., h, body(h)]: h stays as a skip for a later ``Merge`` (encoder stages)."""

    def forward(self, state: State) -> State:
        return [*state, self.body(state[-1])]


class Merge(Block):
    """[.., skip, h] -> [.., body(h, skip)] (decoder stages)."""

    def forward(self, state: State) -> State:
        return [*state[:-2], self.body(state[-1], state[-2])]


class ArticleStage(nn.Module):
    """conv, ReLU, 2x2 max-pool, as in ``FeatureExtractor.forward``:
    N x C_in x H x W -> N x C_out x H/2 x W/2."""

    def __init__(self, conv: nn.Conv2d, pool: nn.Module) -> None:
        super().__init__()
        self.conv, self.pool = conv, pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(F.relu(self.conv(x)))


class ArticleInput(nn.Module):
    """The article's input check (N x 3 x 28 x 28); x -> the state [x]."""

    def forward(self, x: torch.Tensor) -> State:
        _check_images(x, FeatureExtractor.in_channels, FeatureExtractor.input_size,
                      "FeatureExtractor")
        return [x]


class EncoderDecoderInput(nn.Module):
    """The encoder-decoder's input check (H, W multiples of 2^depth) and its channels-last
    layout, as in ``EncoderDecoder.forward``; x -> the state [x]."""

    def __init__(self, depth: int) -> None:
        super().__init__()
        self.depth = depth

    def forward(self, x: torch.Tensor) -> State:
        check_input(x, self.depth)
        return [x.contiguous(memory_format=torch.channels_last)]


@dataclass
class Staged:
    """A backbone as blocks: ``prepare`` (no parameters) turns images into the first state,
    then ``blocks`` run in order; ``names[i]`` names ``blocks[i]``."""

    prepare: nn.Module
    names: tuple[str, ...]
    blocks: list[Block]


def stage(backbone: nn.Module) -> Staged:
    """The blocks of ``backbone`` (a ``FeatureExtractor`` or an ``EncoderDecoder``), holding
    its own modules (not copies)."""
    if type(backbone) is FeatureExtractor:
        names = ("conv1", "conv2")
        blocks: list[Block] = [Replace(ArticleStage(backbone.conv1, backbone.pool), 32),
                               Replace(ArticleStage(backbone.conv2, backbone.pool), 64)]
        return Staged(ArticleInput(), names, blocks)
    if isinstance(backbone, EncoderDecoder):
        depth, width = backbone.depth, backbone.width
        named: list[tuple[str, Block]] = [("stem", Replace(backbone.stem, width))]
        named += [(f"down{i}", Push(getattr(backbone, f"down{i}"), width * 2**i))
                  for i in range(1, depth + 1)]
        if backbone.context is not None:
            named.append(("context", Replace(backbone.context, width * 2**depth)))
        named += [(f"up{i}", Merge(getattr(backbone, f"up{i}"), width * 2 ** (i - 1)))
                  for i in range(depth, 0, -1)]
        return Staged(EncoderDecoderInput(depth), tuple(n for n, _ in named),
                      [b for _, b in named])
    raise TypeError(
        f"argument 'backbone' is a {type(backbone).__name__}, expected the article's "
        "FeatureExtractor or an EncoderDecoder (the backbones cut into blocks)"
    )


def run(blocks: nn.ModuleList | list[Block], state: State) -> State:
    """Run ``blocks`` in order on ``state``."""
    for block in blocks:
        state = block(state)
    return state
