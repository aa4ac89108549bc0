"""Contract tests of the architecture registry: every entry of ``ARCHITECTURES``, both backbones.

The cases are read from ``ARCHITECTURES``, so a new entry gets these tests at once; it is built
with its ``example`` options (``test_every_entry_has_an_example_configuration`` fails if it
cannot be). Tiny sizes: the encoder-decoder at width 2 and depth 2 on 16 x 16 scenes, the
article's backbone on 28 x 28 MultiDigits, 8 images in batches of 4.

- forward: one output per task, the shapes ``make_model``'s heads give;
- parameter accounting: shared and per-task parameters partition the model, a task's own
  parameters change its output only, a shared parameter reaches two tasks or more; hard sharing
  shares the whole backbone, branch point 0 nothing;
- training: one epoch with joint training, alternating updates with per-task optimizers and
  MGDA on the shared parameters changes the parameters; representation gradients where the
  architecture has one shared representation (and then they are exact: the combined direction
  put back through it gives the parameters the same gradient as a backward pass), the clear
  error where not;
- checkpoints: save, load, resume equal to an uninterrupted run; a checkpoint of another
  architecture is refused naming what differs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from state_checks import equal_states
from torch import nn

from mtlaug_lib.core.architectures import ARCHITECTURES, make_architecture
from mtlaug_lib.core.architectures.registry import REQUIRED
from mtlaug_lib.core.checkpoint import load_checkpoint, save_checkpoint
from mtlaug_lib.core.losses import MultiTaskLoss
from mtlaug_lib.core.models import MultiTaskModel, make_model
from mtlaug_lib.core.tasks import Task
from mtlaug_lib.data.loaders import TensorLoader
from mtlaug_lib.data.multidigits import MultiDigits, multidigits_tasks
from mtlaug_lib.data.scenes import Scenes, scenes_tasks
from mtlaug_lib.training.gradient_source import RepresentationSource
from mtlaug_lib.training.loop import train
from mtlaug_lib.training.strategies import Alternating
from mtlaug_lib.training.strategy import forward_task
from mtlaug_lib.training.weighting import Weighted

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: one thread is faster

NAMES = list(ARCHITECTURES)
BACKBONES = ["encoder_decoder", "article"]
TINY = {"encoder_decoder": {"width": 2, "depth": 2}, "article": {}}
# The architectures with one shared representation every task reads, with the example options.
REPRESENTATION = {"hard", "branched", "mmoe"}


class Setting:
    """A backbone's tasks, a few images and a loader of them."""

    def __init__(self, tasks: dict[str, Task], data: Any) -> None:
        self.tasks, self.data = tasks, data
        self.batch = data.batch(torch.arange(len(data)))
        self.loader = TensorLoader(data, 4)


@pytest.fixture(scope="module")
def settings() -> dict[str, Setting]:
    return {"encoder_decoder": Setting(scenes_tasks(), Scenes("train", size=8, image_size=16)),
            "article": Setting(multidigits_tasks(), MultiDigits("train", size=8, seed=0))}


def build(name: str, backbone: str, tasks: dict[str, Task], seed: int = 0,
          **options: Any) -> nn.Module:
    return make_architecture(name, tasks, backbone, seed=seed,
                             **{**TINY[backbone], **ARCHITECTURES[name].example, **options})


def snapshot(params: list[nn.Parameter]) -> list[torch.Tensor]:
    return [p.detach().clone() for p in params]


def changed(params: list[nn.Parameter], before: list[torch.Tensor]) -> bool:
    return any(not torch.equal(p, b) for p, b in zip(params, before, strict=True))


def test_every_entry_has_an_example_configuration() -> None:
    for name, spec in ARCHITECTURES.items():
        missing = [k for k, v in spec.options.items() if v is REQUIRED and k not in spec.example]
        assert not missing, f"ARCHITECTURES[{name!r}].example lacks required option(s) {missing}"
        assert set(spec.example) <= set(spec.options), (
            f"ARCHITECTURES[{name!r}].example has options the entry does not take")
        assert spec.shares, f"ARCHITECTURES[{name!r}] does not say what it shares"


@pytest.mark.parametrize("backbone", BACKBONES)
@pytest.mark.parametrize("name", NAMES)
def test_forward_gives_make_models_output_shapes(name, backbone, settings) -> None:
    s = settings[backbone]
    model = build(name, backbone, s.tasks)
    images = s.batch["image"][:3]
    reference = make_model(s.tasks, backbone, **TINY[backbone])(images)
    out = model(images)
    assert tuple(model.tasks) == tuple(s.tasks) == tuple(out)
    assert {t: o.shape for t, o in out.items()} == {t: o.shape for t, o in reference.items()}
    assert model.architecture["name"] == name and model.architecture["backbone"] == backbone


@pytest.mark.parametrize("backbone", BACKBONES)
@pytest.mark.parametrize("name", NAMES)
def test_one_tasks_forward_equals_its_part_of_the_whole_and_runs_no_other_head(
        name, backbone, settings) -> None:
    s = settings[backbone]
    model = build(name, backbone, s.tasks).eval()
    images = s.batch["image"][:3]
    with torch.no_grad():
        whole = model(images)
    calls: dict[str, int] = {t: 0 for t in s.tasks}
    hooks = [model.heads[t].register_forward_hook(
        lambda *_, t=t: calls.__setitem__(t, calls[t] + 1)) for t in s.tasks]
    try:
        for t in s.tasks:
            with torch.no_grad():
                alone = forward_task(model, images, t)
            torch.testing.assert_close(alone, whole[t], rtol=0, atol=0)
    finally:
        for hook in hooks:
            hook.remove()
    assert calls == {t: 1 for t in s.tasks}  # each head ran once: for its own task only


def test_one_tasks_forward_skips_the_other_branches(settings) -> None:
    s = settings["encoder_decoder"]
    model = build("branched", "encoder_decoder", s.tasks, branch_point=0)
    ran = []
    for t in s.tasks:
        model.branches[t][0].register_forward_pre_hook(lambda *_, t=t: ran.append(t))
    forward_task(model, s.batch["image"][:2], "depth")
    assert ran == ["depth"]


@pytest.mark.parametrize("backbone", BACKBONES)
@pytest.mark.parametrize("name", NAMES)
def test_shared_and_task_parameters_partition_the_model(name, backbone, settings) -> None:
    s = settings[backbone]
    model = build(name, backbone, s.tasks)
    report = model.parameter_report()
    assert report["shared"] + sum(report[t] for t in s.tasks) == report["total"]
    assert set(report) == {"shared", *s.tasks, "total"}
    groups = [model.shared_parameters()] + [model.task_parameters(t) for t in s.tasks]
    ids = [id(p) for group in groups for p in group]
    assert len(ids) == len(set(ids)) and set(ids) == {id(p) for p in model.parameters()}

    # A shared parameter reaches two tasks' outputs or more, a task's own parameter only its.
    model.train()
    outputs = model(s.batch["image"][:3])
    shared = model.shared_parameters()
    reached = {t: torch.autograd.grad(o.float().square().mean(), list(model.parameters()),
                                      allow_unused=True, retain_graph=True)
               for t, o in outputs.items()}
    index = {id(p): i for i, p in enumerate(model.parameters())}
    for p in shared:
        users = [t for t in s.tasks if reached[t][index[id(p)]] is not None]
        assert len(users) >= 2, f"a shared parameter of shape {tuple(p.shape)} reaches {users}"
    for t in s.tasks:
        for p in model.task_parameters(t):
            users = [u for u in s.tasks if reached[u][index[id(p)]] is not None]
            assert users == [t], f"a parameter of task {t!r} reaches {users}"


@pytest.mark.parametrize("backbone", BACKBONES)
def test_hard_shares_the_whole_backbone_and_branch_point_0_nothing(backbone, settings) -> None:
    s = settings[backbone]
    hard = build("hard", backbone, s.tasks)
    assert [id(p) for p in hard.shared_parameters()] == [id(p) for p in
                                                         hard.backbone.parameters()]
    separate = build("branched", backbone, s.tasks, branch_point=0)
    report = separate.parameter_report()
    assert report["shared"] == 0 and not separate.shared_parameters()
    # each task owns a whole backbone and its head: as many parameters as hard sharing's model
    backbone_size = hard.parameter_report()["shared"]
    assert all(report[t] == backbone_size + hard.parameter_report()[t] for t in s.tasks)


STRATEGIES = {
    "joint": lambda: "joint",
    "alternating-per-task": lambda: Alternating(optimizers="per_task"),
    "mgda@parameters": lambda: Weighted("mgda", source="parameters"),
}


@pytest.mark.parametrize("strategy", list(STRATEGIES))
@pytest.mark.parametrize("backbone", BACKBONES)
@pytest.mark.parametrize("name", NAMES)
def test_a_training_epoch_changes_the_parameters(name, backbone, strategy, settings) -> None:
    s = settings[backbone]
    model = build(name, backbone, s.tasks)
    shared = model.shared_parameters()
    before = {t: snapshot(model.task_parameters(t)) for t in s.tasks}
    shared_before = snapshot(shared)
    history = train(model, s.tasks, s.loader, epochs=1, strategy=STRATEGIES[strategy](),
                    schedule=None, progress=False)
    assert history.steps == 2
    assert not shared or changed(shared, shared_before)
    # joint and MGDA update every task's own parameters each step; alternating one task a step
    stepped = list(s.tasks)[:2] if strategy.startswith("alternating") else list(s.tasks)
    for t in stepped:
        assert changed(model.task_parameters(t), before[t]), f"task {t!r} did not change"
    assert all(torch.isfinite(p).all() for p in model.parameters())


@pytest.mark.parametrize("backbone", BACKBONES)
@pytest.mark.parametrize("name", NAMES)
def test_representation_gradients_or_the_clear_error(name, backbone, settings) -> None:
    s = settings[backbone]
    model = build(name, backbone, s.tasks)
    before = snapshot(list(model.parameters()))
    strategy = Weighted("mgda", source="representation")
    if name not in REPRESENTATION:
        with pytest.raises(TypeError, match=rf"architecture '{name}' has none \(.+\): use "
                                            r"source='parameters'"):
            train(model, s.tasks, s.loader, epochs=1, strategy=strategy, progress=False)
        assert not changed(list(model.parameters()), before)
        return
    history = train(model, s.tasks, s.loader, epochs=1, strategy=strategy, schedule=None,
                    progress=False)
    assert history.backward == 2  # one backward pass through the shared part a step
    assert changed(list(model.parameters()), before)


@pytest.mark.parametrize("backbone", BACKBONES)
@pytest.mark.parametrize("name", sorted(REPRESENTATION))
def test_the_representation_carries_the_exact_gradient(name, backbone, settings) -> None:
    """Putting back the sum of the task gradients on the representation gives the shared
    parameters the gradient of the sum of the losses (the chain rule through every tensor of
    the representation, skips included, counted once)."""
    s = settings[backbone]
    options = {"branch_point": 3} if name == "branched" and backbone == "encoder_decoder" else {}
    model = build(name, backbone, s.tasks, **options).eval()  # eval: no running statistics
    loss_fn = MultiTaskLoss(s.tasks)
    shared = model.shared_parameters()
    loss_fn(model(s.batch["image"]), s.batch)["total"].backward()
    expected = [p.grad.clone() for p in shared]
    model.zero_grad(set_to_none=True)
    source = RepresentationSource()
    shared_pass = source.forward(model, s.batch["image"], list(s.tasks))
    grads = source.task_gradients(shared_pass, loss_fn.per_task(shared_pass.outputs, s.batch))
    source.apply(shared_pass, grads.matrix.sum(dim=0))
    for p, g in zip(shared, expected, strict=True):
        torch.testing.assert_close(p.grad, g, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("backbone", BACKBONES)
@pytest.mark.parametrize("name", NAMES)
def test_checkpoint_round_trip_and_resume(name, backbone, settings, tmp_path: Path) -> None:
    s = settings[backbone]

    class Interrupted(Exception):
        pass

    def stop(history: Any) -> None:
        raise Interrupted

    def run(checkpoint: Path | None, resume: bool = False, interrupt: bool = False
            ) -> nn.Module:
        model = build(name, backbone, s.tasks)
        train(model, s.tasks, s.loader, epochs=2, checkpoint=checkpoint, resume=resume,
              on_epoch_end=stop if interrupt else None, progress=False)
        return model

    whole = run(None)
    with pytest.raises(Interrupted):
        run(tmp_path / "a.pt", interrupt=True)  # stopped after the first epoch's checkpoint
    resumed = run(tmp_path / "a.pt", resume=True)
    assert equal_states(resumed.state_dict(), whole.state_dict())
    fresh = build(name, backbone, s.tasks, seed=1)
    load_checkpoint(tmp_path / "a.pt", fresh)
    assert equal_states(fresh.state_dict(), resumed.state_dict())


@pytest.mark.parametrize("backbone", BACKBONES)
def test_a_checkpoint_of_another_architecture_is_refused(backbone, settings, tmp_path) -> None:
    s = settings[backbone]
    saved = {}
    for name in NAMES:
        saved[name] = save_checkpoint(tmp_path / f"{name}.pt", build(name, backbone, s.tasks))
    for name in NAMES:
        for other in NAMES:
            model = build(other, backbone, s.tasks, seed=1)
            state = snapshot(list(model.parameters()))
            if name == other:
                load_checkpoint(saved[name], model)
                continue
            with pytest.raises(ValueError, match=rf"saved from architecture '{name}', this "
                                                 rf"model is '{other}' \(name: saved '{name}'"):
                load_checkpoint(saved[name], model)
            assert not changed(list(model.parameters()), state)  # refused before any change
    other_point = build("branched", backbone, s.tasks, branch_point=2)
    with pytest.raises(ValueError, match=r"option 'branch_point': saved 1, here 2"):
        load_checkpoint(saved["branched"], other_point)


def test_make_models_checkpoints_load_into_hard_sharing(settings, tmp_path) -> None:
    """Checkpoints without an architecture record (make_model's, older ones) still load where
    the parameters fit, and are refused by their parameters where not."""
    s = settings["encoder_decoder"]
    plain = make_model(s.tasks, "encoder_decoder", seed=3, **TINY["encoder_decoder"])
    assert isinstance(plain, MultiTaskModel) and not hasattr(plain, "architecture")
    path = save_checkpoint(tmp_path / "plain.pt", plain)
    hard = build("hard", "encoder_decoder", s.tasks)
    load_checkpoint(path, hard)
    assert equal_states(hard.state_dict(), plain.state_dict())
    with pytest.raises(ValueError, match=r"does not fit this model: it lacks \["):
        load_checkpoint(path, build("mtan", "encoder_decoder", s.tasks))
