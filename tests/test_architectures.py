"""Properties of each multi-task architecture (``core.architectures``), and its bad input.

What each architecture must be, checked as a property rather than as numbers: a backbone cut
into blocks computes what the backbone computes; a branch point at the last block is hard
sharing; cross-stitch units at identity are independent columns; MTAN with masks of ones is
hard sharing; MMoE's gates are distributions over the experts. The registry-wide contract
(shapes, training, checkpoints, accounting) is in ``tests/test_contract_architectures.py``.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mtlaug_lib import make_architecture as exported
from mtlaug_lib.core.architectures import (
    ARCHITECTURES,
    CrossStitchUnit,
    make_architecture,
    stage,
)
from mtlaug_lib.core.architectures.blocks import run
from mtlaug_lib.core.encoder_decoder import EncoderDecoder
from mtlaug_lib.core.models import FeatureExtractor, make_model
from mtlaug_lib.core.tasks import Task
from mtlaug_lib.data.multidigits import multidigits_tasks
from mtlaug_lib.data.scenes import scenes_tasks
from mtlaug_lib.training.gradient_source import RepresentationSource

pytestmark = pytest.mark.usefixtures("one_thread")

SMALL = {"width": 2, "depth": 2}
ED_BLOCKS = ("stem", "down1", "down2", "down3", "context", "up3", "up2", "up1")


@pytest.fixture(scope="module")
def scene_tasks() -> dict[str, Task]:
    return scenes_tasks()


@pytest.fixture(scope="module")
def digits() -> dict[str, Task]:
    return multidigits_tasks()


def images(size: int, n: int = 3, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def equal_outputs(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# --- blocks -------------------------------------------------------------------------------

@pytest.mark.parametrize("backbone", [
    EncoderDecoder(width=3, depth=2), EncoderDecoder(width=2, depth=3, context=False),
    EncoderDecoder(), FeatureExtractor()], ids=["ed-2", "ed-3-no-context", "ed", "article"])
def test_the_blocks_compute_what_the_backbone_computes(backbone) -> None:
    x = images(28 if isinstance(backbone, FeatureExtractor) else 16)
    staged = stage(backbone)
    for mode in ("train", "eval"):
        backbone.train(mode == "train")
        (features,) = run(staged.blocks, staged.prepare(x))
        assert torch.equal(features, backbone(x))
    own = {id(p) for b in staged.blocks for p in b.parameters()}
    assert own == {id(p) for p in backbone.parameters()}  # the backbone's modules, not copies


def test_block_names_and_channels() -> None:
    staged = stage(EncoderDecoder(width=4))
    assert staged.names == ED_BLOCKS
    assert [b.out_channels for b in staged.blocks] == [4, 8, 16, 32, 32, 16, 8, 4]
    assert stage(FeatureExtractor()).names == ("conv1", "conv2")
    assert len(stage(EncoderDecoder(depth=2, context=False)).names) == 1 + 2 + 2
    with pytest.raises(TypeError, match=r"argument 'backbone' is a Sequential, expected"):
        stage(nn.Sequential(nn.Conv2d(3, 4, 3)))


# --- branched -----------------------------------------------------------------------------

@pytest.mark.parametrize("seed", [0, 5])
def test_branch_point_at_the_last_block_is_hard_sharing(seed, scene_tasks, digits) -> None:
    for tasks, backbone, size, opts in ((scene_tasks, "encoder_decoder", 16, SMALL),
                                        (digits, "article", 28, {})):
        hard = make_model(tasks, backbone, seed=seed, **opts)
        n = len(stage(hard.backbone).blocks)
        branched = make_architecture("branched", tasks, backbone, seed=seed, branch_point=n,
                                     **opts)
        x = images(size, seed=seed)
        assert equal_outputs(branched(x), hard(x))  # train mode
        assert equal_outputs(branched.eval()(x), hard.eval()(x))
        assert branched.parameter_report() == hard.parameter_report()


def test_branch_point_0_is_one_network_per_task(scene_tasks) -> None:
    model = make_architecture("branched", scene_tasks, seed=2, branch_point=0, **SMALL).eval()
    hard = make_model(scene_tasks, "encoder_decoder", seed=2, **SMALL).eval()
    x = images(16)
    assert equal_outputs(model(x), hard(x))  # every copy starts as the same network
    with torch.no_grad():  # a change to one task's network changes that task's output only
        for p in model.branches["depth"].parameters():
            p.add_(0.1)
    after = model(x)
    assert not torch.equal(after["depth"], hard(x)["depth"])
    assert torch.equal(after["semantic"], hard(x)["semantic"])


def test_skips_made_before_the_branch_point_are_shared(scene_tasks) -> None:
    # depth 2: stem, down1, down2, context, up2, up1. After down1 the trunk's state holds the
    # stem's skip and down1's map; the branches read both.
    model = make_architecture("branched", scene_tasks, branch_point=2, **SMALL)
    z = model.shared_representation(images(16))
    assert [tuple(t.shape[1:]) for t in z] == [(2, 16, 16), (4, 8, 8)]
    assert equal_outputs(model.heads_from(z), model.heads_from(list(z)))
    assert model.blocks[:2] == ("stem", "down1")


@pytest.mark.parametrize("bad", [-1, 7, 2.0, True, None, "2"])
def test_a_branch_point_outside_the_blocks_is_refused(bad, scene_tasks) -> None:
    with pytest.raises(ValueError, match=rf"argument 'branch_point' is {bad!r}, expected an int "
                                         r"in \[0, 6\]: the number of shared blocks of stem, "
                                         r"down1, down2, context, up2, up1"):
        make_architecture("branched", scene_tasks, branch_point=bad, **SMALL)
    with pytest.raises(ValueError, match=r"in \[0, 2\]: the number of shared blocks of conv1, "
                                         r"conv2"):
        make_architecture("branched", multidigits_tasks(), "article", branch_point=3)


# --- cross-stitch -------------------------------------------------------------------------

def test_cross_stitch_units_start_near_identity() -> None:
    unit = CrossStitchUnit(num_tasks=3, channels=5)
    for t, alpha in enumerate(unit.alpha):
        assert alpha.shape == (3, 5)
        torch.testing.assert_close(alpha.sum(dim=0), torch.ones(5))  # each channel: weights
        assert torch.all(alpha[t] == 0.9) and torch.all(alpha[torch.arange(3) != t] == 0.05)
    one = CrossStitchUnit(num_tasks=1, channels=2)
    assert torch.equal(one.alpha[0], torch.ones(1, 2))


def test_a_cross_stitch_unit_mixes_per_channel() -> None:
    unit = CrossStitchUnit(num_tasks=2, channels=3)
    with torch.no_grad():
        unit.alpha[1].copy_(torch.tensor([[1.0, 0.0, 0.5], [2.0, 1.0, 0.5]]))
    a, b = torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4)
    mixed = unit.mix(1, [a, b])
    assert torch.allclose(mixed[:, 0], a[:, 0] + 2 * b[:, 0])
    assert torch.allclose(mixed[:, 1], b[:, 1])
    assert torch.allclose(mixed[:, 2], 0.5 * (a[:, 2] + b[:, 2]))


@pytest.mark.parametrize("backbone", ["encoder_decoder", "article"])
def test_cross_stitch_at_identity_is_independent_columns(backbone, scene_tasks, digits) -> None:
    tasks, size, opts = ((scene_tasks, 16, SMALL) if backbone == "encoder_decoder"
                         else (digits, 28, {}))
    model = make_architecture("cross_stitch", tasks, backbone, seed=1, **opts).eval()
    names = list(tasks)
    x = images(size)
    default = model(x)
    with torch.no_grad():
        for unit in model.stitches:
            for t, alpha in enumerate(unit.alpha):
                alpha.zero_()
                alpha[t] = 1.0
    identity = model(x)
    # each column at identity is the copied backbone alone: hard sharing's outputs at the start
    assert equal_outputs(identity, make_model(tasks, backbone, seed=1, **opts).eval()(x))
    with torch.no_grad():  # another task's column no longer reaches a task
        for p in model.columns[names[1]].parameters():
            p.mul_(1.5)
    after = model(x)
    assert torch.equal(after[names[0]], identity[names[0]])
    assert not torch.equal(after[names[1]], identity[names[1]])
    assert not torch.equal(default[names[0]], identity[names[0]])  # the 0.05s mix columns


# --- MTAN ---------------------------------------------------------------------------------

class Ones(nn.Module):
    """An attention module whose mask is all ones."""

    def __init__(self, like: nn.Module) -> None:
        super().__init__()
        self.channels = like.net[-2].out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # in the input's memory layout, as a real module's output (channels-last for the
        # encoder-decoder): the heads' convolutions then sum in the same order
        return torch.ones_like(x[:, :self.channels])


@pytest.mark.parametrize("backbone", ["encoder_decoder", "article"])
def test_mtan_with_masks_of_ones_is_hard_sharing(backbone, scene_tasks, digits) -> None:
    tasks, size, opts = ((scene_tasks, 16, SMALL) if backbone == "encoder_decoder"
                         else (digits, 28, {}))
    model = make_architecture("mtan", tasks, backbone, seed=4, **opts)
    hard = make_model(tasks, backbone, seed=4, **opts)
    x = images(size)
    assert not equal_outputs(model(x), hard(x))
    for modules in model.attention.values():
        for i, m in enumerate(modules):
            modules[i] = Ones(m)
    assert equal_outputs(model(x), hard(x))


def test_mtan_masks_are_in_0_1_per_block(scene_tasks) -> None:
    model = make_architecture("mtan", scene_tasks, **SMALL)
    model(images(16, n=2))
    assert set(model.last_attention) == set(scene_tasks)
    channels = [b.out_channels for b in model.backbone]
    for masks in model.last_attention.values():
        assert tuple(masks) == model.blocks
        for mask, c in zip(masks.values(), channels, strict=True):
            assert mask.shape[:2] == (2, c) and not mask.requires_grad
            assert bool(((mask > 0) & (mask < 1)).all())


def test_an_mtan_mask_depends_on_the_tasks_earlier_attention(scene_tasks) -> None:
    model = make_architecture("mtan", scene_tasks, seed=0, **SMALL).eval()
    x = images(16)
    model(x)
    before = {t: dict(m) for t, m in model.last_attention.items()}
    with torch.no_grad():  # the depth task's first attention module only
        model.attention["depth"][0].net[-2].bias.add_(1.0)
    model(x)
    after = model.last_attention
    assert not torch.equal(after["depth"]["down1"], before["depth"]["down1"])  # the chain
    assert all(torch.equal(after["semantic"][b], before["semantic"][b]) for b in model.blocks)


# --- MMoE ---------------------------------------------------------------------------------

def test_mmoe_gates_are_distributions_over_the_experts(scene_tasks) -> None:
    model = make_architecture("mmoe", scene_tasks, seed=0, **SMALL)
    assert len(model.experts) == 4 and all(e.width == 1 for e in model.experts)  # width / 2
    x = images(16, n=5)
    out = model(x)
    for gates in model.last_gates.values():
        assert gates.shape == (5, 4)
        torch.testing.assert_close(gates.sum(dim=1), torch.ones(5))
        torch.testing.assert_close(gates, torch.full((5, 4), 0.25))  # zero-initialised gates
    with torch.no_grad():
        model.gates["depth"].weight.normal_(generator=torch.Generator().manual_seed(0))
    model(x)
    gates = model.last_gates["depth"]
    torch.testing.assert_close(gates.sum(dim=1), torch.ones(5))
    assert bool((gates > 0).all()) and not torch.allclose(gates, torch.full((5, 4), 0.25))
    z = model.shared_representation(x)
    assert z.shape == (4, 5, 1, 16, 16)
    model.gates["depth"].weight.data.zero_()
    assert equal_outputs(model.heads_from(z), out)


def test_mmoe_with_the_articles_backbone(digits) -> None:
    model = make_architecture("mmoe", digits, "article", seed=0)
    assert len(model.experts) == 2 and all(type(e) is FeatureExtractor for e in model.experts)
    model(images(28))
    assert all(g.shape == (3, 2) for g in model.last_gates.values())
    with pytest.raises(ValueError, match=r"'expert_width' only applies to backbone="):
        make_architecture("mmoe", digits, "article", expert_width=8)
    with pytest.raises(ValueError, match=r"argument 'experts' is 0, expected an int >= 1"):
        make_architecture("mmoe", digits, "article", experts=0)


# --- representations and errors ------------------------------------------------------------

def test_representation_errors_say_why_and_what_to_use(scene_tasks) -> None:
    x = images(16)
    for name, options, why in (("cross_stitch", {}, "mix every task's column"),
                               ("mtan", {}, "shared features of every block"),
                               ("branched", {"branch_point": 0}, "its own network")):
        model = make_architecture(name, scene_tasks, **SMALL, **options)
        with pytest.raises(TypeError, match=rf"architecture '{name}' has none \(.*{why}.*\): "
                                            r"use source='parameters'"):
            RepresentationSource().forward(model, x, list(scene_tasks))


def test_bad_input_gives_clear_errors(scene_tasks, digits) -> None:
    assert exported is make_architecture
    with pytest.raises(ValueError, match=r"argument 'name' is 'cross-stitch', expected one of"):
        make_architecture("cross-stitch", scene_tasks)
    with pytest.raises(ValueError, match=r"argument 'backbone' is 'unet', expected one of"):
        make_architecture("hard", scene_tasks, "unet")
    with pytest.raises(ValueError, match=r"argument\(s\) \['alpha'\] are not options of "
                                         r"architecture 'mtan' with backbone='encoder_decoder', "
                                         r"expected some of \['depth', 'head_hidden', 'width'\]"):
        make_architecture("mtan", scene_tasks, alpha=0.5)
    with pytest.raises(ValueError, match=r"\['width'\] are not options .* backbone='article'.*"
                                         r"need backbone='encoder_decoder'"):
        make_architecture("hard", digits, "article", width=4)
    with pytest.raises(ValueError, match=r"architecture 'branched' needs argument\(s\) "
                                         r"\['branch_point'\]"):
        make_architecture("branched", scene_tasks)
    with pytest.raises(ValueError, match=r"architecture 'mtan' with backbone='article' cannot "
                                         r"serve task\(s\) 'depth' \(depth\), 'normals' "
                                         r"\(normals\).*use backbone='encoder_decoder'"):
        make_architecture("mtan", scene_tasks, "article")
    with pytest.raises(ValueError, match=r"argument 'tasks' is empty"):
        make_architecture("hard", {})
    for name, spec in ARCHITECTURES.items():  # the backbone's own input checks, before any work
        model = make_architecture(name, scene_tasks, **SMALL, **spec.example)
        with pytest.raises(ValueError, match=r"EncoderDecoder expects H and W to be positive "
                                             r"multiples of 2\^depth = 4"):
            model(images(18))
        article = make_architecture(name, digits, "article", **spec.example)
        with pytest.raises(ValueError, match=r"FeatureExtractor expects 28 x 28 images"):
            article(images(32))


def test_seeds_decide_the_weights(scene_tasks) -> None:
    for name, spec in ARCHITECTURES.items():
        a, b, c = (make_architecture(name, scene_tasks, seed=s, **SMALL, **spec.example)
                   for s in (3, 3, 4))
        same = all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(),
                                                     strict=True))
        assert same and not all(torch.equal(p, q) for p, q in zip(a.parameters(),
                                                                  c.parameters(), strict=True))


def test_the_architecture_record_fills_in_the_defaults(scene_tasks, digits) -> None:
    """The same model asked for with or without its default options has the same record (so
    its checkpoints load either way)."""
    plain = make_architecture("mmoe", scene_tasks)
    spelled = make_architecture("mmoe", scene_tasks, width=8, depth=3, experts=4, expert_width=4)
    assert plain.architecture == spelled.architecture == {
        "name": "mmoe", "backbone": "encoder_decoder",
        "options": {"width": 8, "depth": 3, "head_hidden": None, "experts": 4,
                    "expert_width": 4}}
    assert make_architecture("mmoe", digits, "article").architecture["options"] == {
        "experts": 2, "expert_width": None}
    assert make_architecture("mmoe", scene_tasks, width=6).architecture["options"][
        "expert_width"] == 3


def test_count_macs_of_some_tasks_runs_only_what_they_need(scene_tasks) -> None:
    from mtlaug_lib.core.models import count_macs

    x = torch.zeros(1, 3, 16, 16)
    hard = make_architecture("hard", scene_tasks, seed=0, **SMALL)
    whole = count_macs(hard, x)
    alone = count_macs(hard, x, ["depth"])
    assert alone == {"backbone": whole["backbone"], "heads.depth": whole["heads.depth"]}
    # Separate networks: serving each task alone adds up to serving all of them.
    separate = make_architecture("branched", scene_tasks, seed=0, branch_point=0, **SMALL)
    total = sum(count_macs(separate, x).values())
    assert sum(sum(count_macs(separate, x, [t]).values()) for t in scene_tasks) == total
    # Cross-stitch runs every column for any task: one task costs all but two heads.
    stitched = make_architecture("cross_stitch", scene_tasks, seed=0, **SMALL)
    heads = {t: v for t, v in count_macs(stitched, x).items() if t.startswith("heads.")}
    own = sum(count_macs(stitched, x, ["depth"]).values())
    assert own == sum(count_macs(stitched, x).values()) - heads["heads.semantic"] - heads[
        "heads.normals"]
    for bad, error, words in [("depth", ValueError, "argument 'tasks'"),
                              (["edges"], ValueError, "'edges'"),
                              ([], ValueError, "non-empty")]:
        with pytest.raises(error, match=words):
            count_macs(hard, x, bad)
    with pytest.raises(TypeError, match="forward_tasks"):
        count_macs(_Plain(), x, ["depth"])


class _Plain(nn.Module):
    """A model with tasks but neither MultiTaskModel's layout nor forward_tasks."""

    tasks = ("depth",)

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 1, 1)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"depth": self.conv(x)}
