"""The encoder-decoder backbone for dense tasks: shapes, refusals, receptive field, cost per
part, and training with the course's loop, strategies and gradient sources."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mtlaug_lib.core.encoder_decoder import EncoderDecoder
from mtlaug_lib.core.models import (
    ConvHead,
    MultiTaskModel,
    PooledClassifier,
    count_macs,
    count_parameters,
    make_model,
)
from mtlaug_lib.core.tasks import Task
from mtlaug_lib.training.loop import train
from mtlaug_lib.training.weighting import Weighted

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize(
    ("width", "depth", "size"),
    [(4, 3, (8, 8)), (4, 3, (16, 40)), (3, 3, (48, 48)), (5, 2, (12, 20)), (2, 1, (2, 6))],
)
def test_full_resolution_features_for_any_multiple_of_two_to_the_depth(
    width: int, depth: int, size: tuple[int, int]
) -> None:
    net = EncoderDecoder(width=width, depth=depth)
    assert net(torch.rand(2, 3, *size)).shape == (2, width, *size)
    assert net.out_channels == width and net.multiple == 2**depth


@pytest.mark.parametrize(
    ("shape", "pattern"),
    [
        ((2, 3, 30, 32),
         r"multiples of 2\^depth = 8 .* got 30 x 32 \(input shape \(2, 3, 30, 32\)\)"),
        ((2, 3, 32, 36), r"multiples of 2\^depth = 8 .* got 32 x 36"),
        ((2, 3, 4, 4), r"multiples of 2\^depth = 8 .* got 4 x 4"),  # too small for 3 halvings
        ((2, 3, 0, 8), r"multiples of 2\^depth = 8 .* got 0 x 8"),
        ((2, 1, 32, 32), r"expects 3 input channels \(N x 3 x H x W\), got 1 .*\(2, 1, 32, 32\)"),
        ((2, 4, 31, 32), r"expects 3 input channels"),  # channels are checked first
        ((3, 32, 32), r"expects a batch of images N x 3 x H x W, got shape \(3, 32, 32\)"),
    ],
)
def test_sizes_and_channels_it_cannot_take_are_refused_before_any_computation(
    shape: tuple[int, ...], pattern: str
) -> None:
    net = EncoderDecoder(width=4, depth=3)
    calls = []
    net.stem.register_forward_hook(lambda *args: calls.append(1))
    with pytest.raises(ValueError, match=pattern):
        net(torch.zeros(shape))
    assert not calls  # refused before the first layer ran
    net(torch.zeros(2, 3, 8, 8))
    assert calls  # the hook itself works


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [({"width": 0}, "argument 'width' is 0"), ({"depth": 0}, "argument 'depth' is 0"),
     ({"context": 1}, "argument 'context' is 1, expected True or False")],
)
def test_bad_options_are_refused(kwargs: dict, pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        EncoderDecoder(**kwargs)


def corner_change(net: nn.Module, size: int) -> torch.Tensor:
    """|f(x') - f(x)| summed over channels (H x W) where x' changes only pixel (0, 0)."""
    x = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0))
    changed = x.clone()
    changed[0, :, 0, 0] += 1.0
    with torch.no_grad():
        return (net(changed) - net(x)).abs().sum(dim=(0, 1))


def test_without_context_a_pixel_reaches_only_its_receptive_field() -> None:
    """Locality: convolutions, poolings and nearest upsampling only combine pixels within
    the receptive field computed from the layers, so a change at one corner must leave every
    output further away than that exactly as it was (in evaluation mode: in training mode
    batch normalisation spreads a change everywhere through its statistics)."""
    torch.manual_seed(0)
    net = EncoderDecoder(width=4, depth=2, context=False).eval()
    rf = net.receptive_field  # 3 + (1 + 4) + (2 + 8) + 4 + 2 = 24 pixels
    assert rf == 24
    diff = corner_change(net, 32)
    rows, cols = torch.meshgrid(torch.arange(32), torch.arange(32), indexing="ij")
    far = torch.maximum(rows, cols) >= rf
    assert diff[far].max() == 0  # exactly: nothing reaches beyond the receptive field
    assert diff[0, 0] > 0
    near = torch.maximum(rows, cols)
    assert near[diff > 0].max() >= 8  # the deep path reaches further than the stem's 3 x 3


def test_the_context_branch_makes_the_receptive_field_the_whole_image() -> None:
    """With the global-context branch (the default) the opposite corner also sees the change:
    depth needs the whole image's layout (where the floor meets the walls)."""
    torch.manual_seed(0)
    net = EncoderDecoder(width=4, depth=2).eval()
    diff = corner_change(net, 32)
    rows, cols = torch.meshgrid(torch.arange(32), torch.arange(32), indexing="ij")
    far = torch.maximum(rows, cols) >= net.receptive_field
    assert far.sum() > 100 and diff[31, 31] > 0
    # Most of the far pixels change (a pixel can stay put where every channel's ReLU is off).
    assert (diff[far] > 0).float().mean() > 0.8


def test_parameters_and_macs_per_part_add_up_to_the_total() -> None:
    w, size = 4, 16
    tasks = {"sem": Task("sem", "segmentation", 5), "cls": Task("cls", "classification", 3)}
    model = make_model(tasks, backbone="encoder_decoder", width=w, depth=2, seed=0)
    net = model.backbone
    stages = {name: count_parameters(m) for name, m in net.named_children()}
    assert list(stages) == ["stem", "down1", "down2", "context", "up2", "up1"]
    assert sum(stages.values()) == count_parameters(net)
    assert stages["stem"] == 3 * 9 * w + 2 * w  # conv without bias, batch norm's scale and shift
    report = model.parameter_report()
    assert report["shared"] + report["sem"] + report["cls"] == report["total"]
    assert report["sem"] == (9 * w * w + w) + (w * 5 + 5)  # 3x3 hidden layer, then 1x1
    assert report["cls"] == w * 3 + 3

    x = torch.zeros(1, 3, size, size)
    macs = count_macs(model, x)
    assert set(macs) == {"backbone", "heads.sem", "heads.cls"}
    per_stage = count_macs(net, x)
    assert set(per_stage) == set(stages)
    assert sum(per_stage.values()) == macs["backbone"]
    assert per_stage["stem"] == size * size * w * 3 * 9
    # 1x1 convolution at the coarse size, then 3x3 at full size
    assert per_stage["up1"] == (size // 2) ** 2 * 2 * w * w + size * size * w * w * 9
    assert macs["heads.sem"] == size * size * (w * 9 * w + w * 5)
    assert macs["heads.cls"] == w * 3
    # Every stage's cost grows with the pixels, except the context branch's (one mean).
    double = count_macs(net, torch.zeros(1, 3, 2 * size, size))
    assert double["context"] == per_stage["context"] == (4 * w) ** 2
    assert all(double[k] == 2 * per_stage[k] for k in stages if k != "context")


DENSE_TASKS = {"semantic": Task("semantic", "segmentation", 3), "depth": Task("depth", "depth"),
               "normals": Task("normals", "normals")}


def learnable_batch(n: int = 8, size: int = 16) -> dict[str, torch.Tensor]:
    """A fixed batch whose labels follow from the image's colours, for the three dense tasks:
    3 classes, depths in [0.5, 2.5] metres, unit normals."""
    g = torch.Generator().manual_seed(0)
    image = torch.rand(n, 3, size, size, generator=g)
    semantic = (image[:, 0] > 0.5).long() + (image[:, 1] > 0.5).long()
    depth = 0.5 + 2 * image[:, 2]
    normals = torch.nn.functional.normalize(image - 0.5 + torch.tensor([0, 0, -0.6]).view(3, 1, 1),
                                            dim=1)
    return {"image": image, "semantic": semantic, "depth": depth, "normals": normals}


def test_training_with_the_course_loop_lowers_every_dense_loss_on_a_fixed_batch() -> None:
    model = make_model(DENSE_TASKS, backbone="encoder_decoder", width=8, depth=2, seed=0)
    history = train(model, DENSE_TASKS, [learnable_batch()], epochs=20, lr=3e-2, schedule=None,
                    progress=False)
    assert history.steps == 20 and history.images == 20 * 8
    for name, losses in history.train_loss.items():
        assert len(losses) == 20
        assert losses[-1] < 0.75 * losses[0], (name, losses[0], losses[-1])


@pytest.mark.parametrize("source", ["representation", "parameters"])
def test_mgda_runs_a_step_with_either_gradient_source(source: str) -> None:
    tasks = DENSE_TASKS
    batch = learnable_batch(4, 8)
    model = make_model(tasks, backbone="encoder_decoder", width=4, depth=2, seed=0)
    before = [p.detach().clone() for p in model.shared_parameters()]
    history = train(model, tasks, [batch], epochs=1, schedule=None, progress=False,
                    strategy=Weighted("mgda", source=source))
    assert history.steps == 1 and len(history.weights) == 1
    weights = history.weights[0]["weights"]
    assert set(weights) == set(tasks) and all(w >= 0 for w in weights.values())
    after = model.shared_parameters()
    assert any(not torch.equal(a, b) for a, b in zip(before, after, strict=True))
    # The representation source took its gradients on the full-resolution features.
    assert history.backward == (1 if source == "representation" else len(tasks))


def test_make_model_builds_dense_heads_on_the_encoder_decoder() -> None:
    tasks = {"sem": Task("sem", "segmentation", 5), "cls": Task("cls", "classification", 3)}
    model = make_model(tasks, backbone="encoder_decoder", width=6, depth=2)
    assert isinstance(model, MultiTaskModel) and isinstance(model.backbone, EncoderDecoder)
    assert isinstance(model.heads["sem"], ConvHead)
    assert isinstance(model.heads["cls"], PooledClassifier)
    out, features = model(torch.rand(2, 3, 12, 20), return_features=True)
    assert features.shape == (2, 6, 12, 20)
    assert out["sem"].shape == (2, 5, 12, 20) and out["cls"].shape == (2, 3)
    # A configured instance gets the dense heads too; 1x1 heads on request.
    net = EncoderDecoder(width=3, depth=1, context=False)
    model = make_model(tasks, backbone=net, head_hidden=0)
    assert model.backbone is net and model.heads["sem"].hidden is None
    assert count_parameters(model.heads["sem"]) == 3 * 5 + 5


def test_make_model_with_the_encoder_decoder_is_seeded() -> None:
    tasks = {"sem": Task("sem", "segmentation", 4)}
    a = make_model(tasks, backbone="encoder_decoder", width=4, seed=3)
    b = make_model(tasks, backbone="encoder_decoder", width=4, seed=3)
    c = make_model(tasks, backbone="encoder_decoder", width=4, seed=4)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)


def test_make_model_gives_each_dense_task_its_output_channels() -> None:
    model = make_model(DENSE_TASKS, backbone="encoder_decoder", width=4, depth=2)
    out = model(torch.rand(2, 3, 8, 12))
    assert out["semantic"].shape == (2, 3, 8, 12)
    assert out["depth"].shape == (2, 1, 8, 12) and out["normals"].shape == (2, 3, 8, 12)
    for name, task in DENSE_TASKS.items():
        assert model.heads[name].out.out_channels == task.out_channels


@pytest.mark.parametrize("name", ["depth", "normals"])
def test_the_articles_backbone_refuses_regression_tasks(name: str) -> None:
    with pytest.raises(ValueError, match=rf"task\(s\) '{name}' \({name}\) need full-resolution "
                                         r"features.*backbone='encoder_decoder'"):
        make_model({name: DENSE_TASKS[name]})
