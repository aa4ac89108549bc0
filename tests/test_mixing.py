"""MixUp and CutMix for several heads: the mixed images, the pasted masks, the mixed losses
(against hand computations), what each task's declaration decides, and training with them."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torchvision.transforms import v2

from mtlaug_lib.augment.alignment import mask_alignment
from mtlaug_lib.augment.audit import LabelSafetyError
from mtlaug_lib.augment.batch import BatchAugment
from mtlaug_lib.augment.mixing import CutMix, MixParams, MixUp
from mtlaug_lib.core.batch_format import MIX_KEYS, MIX_KIND, MIX_LAM, MIX_PERM, batch_mix
from mtlaug_lib.core.losses import MultiTaskLoss
from mtlaug_lib.core.models import make_model
from mtlaug_lib.core.tasks import CLASSIFICATION, SEGMENTATION, TRANSFORM_KINDS, Task
from mtlaug_lib.data.loaders import TensorLoader
from mtlaug_lib.data.multidigits import MultiDigits
from mtlaug_lib.training.loop import evaluate, train

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def data() -> MultiDigits:
    return MultiDigits("train", size=64, seed=2)


def random_outputs(batch: dict, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    b = len(batch["image"])
    return {"left": torch.randn(b, 10, generator=g), "right": torch.randn(b, 10, generator=g),
            "mask": torch.randn(b, 3, 28, 28, generator=g)}


# ---- the mixed batch ------------------------------------------------------------------------


def test_mixup_blends_each_image_with_its_partner_by_its_own_lam(data, tasks) -> None:
    batch = data.batch(torch.arange(16))
    out = MixUp(tasks, generator=0)(batch)
    lam, perm = out[MIX_LAM], out[MIX_PERM]
    assert lam.shape == (16,) and lam.dtype == torch.float32 and ((0 <= lam) & (lam <= 1)).all()
    assert lam.std() > 0  # one coefficient per sample
    assert torch.equal(perm.sort().values, torch.arange(16))  # a permutation of the batch
    assert TRANSFORM_KINDS[int(out[MIX_KIND])] == "mixing"
    for i in range(16):
        expected = lam[i] * batch["image"][i] + (1 - lam[i]) * batch["image"][perm[i]]
        torch.testing.assert_close(out["image"][i], expected)
    for t in ("left", "right", "mask"):  # labels stay: the loss mixes them
        assert torch.equal(out[t], batch[t])


def test_cutmix_pastes_the_partners_box_into_image_and_mask(data, tasks) -> None:
    batch = data.batch(torch.arange(16))
    cutmix = CutMix(tasks, generator=0)
    out = cutmix(batch)
    box, perm, lam = cutmix.last_params.box, out[MIX_PERM], out[MIX_LAM]
    assert TRANSFORM_KINDS[int(out[MIX_KIND])] == "region_mixing"
    assert ((box[:, :2] >= 0) & (box[:, 2:] <= 28) & (box[:, :2] <= box[:, 2:])).all()
    for i in range(16):
        top, left, bottom, right = box[i].tolist()
        inside = torch.zeros(28, 28, dtype=torch.bool)
        inside[top:bottom, left:right] = True
        for key in ("image", "mask"):
            src, own = batch[key][perm[i]], batch[key][i]
            assert torch.equal(out[key][i][..., inside], src[..., inside])
            assert torch.equal(out[key][i][..., ~inside], own[..., ~inside])
        # lam: the fraction of the image it keeps.
        assert lam[i] == pytest.approx(1 - inside.float().mean().item())
    assert (lam < 1).sum() > 8  # most samples were cut (p = 1)
    assert torch.equal(out["left"], batch["left"])
    # The pasted mask stays on the pasted digits.
    with_ink, labelled = mask_alignment(out["image"], out["mask"])
    assert with_ink > 0.99 and labelled > 0.9


def test_p_leaves_samples_unmixed(data, tasks) -> None:
    batch = data.batch(torch.arange(32))
    for mixer in (MixUp(tasks, p=0.0, generator=0), CutMix(tasks, p=0.0, generator=0)):
        out = mixer(batch)
        assert (out[MIX_LAM] == 1).all() and torch.equal(out["image"], batch["image"])
    out = CutMix(tasks, p=0.5, generator=0)(batch)
    assert 4 < int((out[MIX_LAM] == 1).sum()) < 28


def test_mixers_repeat_with_a_seed_and_replay(data, tasks) -> None:
    batch = data.batch(torch.arange(16))
    a, b = MixUp(tasks, generator=3), MixUp(tasks, generator=3)
    first = a(batch)
    assert torch.equal(first["image"], b(batch)["image"])
    assert torch.equal(MixUp(tasks)(batch, a.last_params)["image"], first["image"])
    assert not torch.equal(a(batch)[MIX_LAM], first[MIX_LAM])


def test_mixer_errors(data, tasks) -> None:
    batch = data.batch(torch.arange(4))
    with pytest.raises(ValueError, match="already mixed"):
        CutMix(tasks)(MixUp(tasks)(batch))
    with pytest.raises(KeyError, match="holds 'depth', which is neither 'image' nor"):
        MixUp(tasks)({**batch, "depth": torch.zeros(4)})
    with pytest.raises(ValueError, match=r"batch\['mask'\] .* expected integer labels "
                       r"B x H x W \(a mask\) = \(4, 28, 28\)"):
        CutMix(tasks)({**batch, "mask": torch.zeros(4, 28, 28)})
    with pytest.raises(ValueError, match="argument 'alpha' is 0, expected a finite number > 0"):
        MixUp(tasks, alpha=0)
    with pytest.raises(ValueError, match="argument 'p' is 2"):
        CutMix(tasks, p=2)
    with pytest.raises(ValueError, match="argument 'params' holds 2 samples, the batch 4"):
        MixUp(tasks)(batch, MixParams(lam=torch.ones(2), perm=torch.arange(2)))


def test_a_task_that_mixing_breaks_refuses_the_mixer(tasks) -> None:
    count = Task("count", CLASSIFICATION, 3, label_effects={"mixing": "breaks"})
    with pytest.raises(LabelSafetyError, match=r"MixUp \(mixing\) x task 'count'"):
        MixUp({**tasks, "count": count})
    # CutMix is another kind: the task did not declare that it breaks.
    CutMix({**tasks, "count": count})


# ---- the mixed loss -------------------------------------------------------------------------


def test_task_loss_with_mix_by_hand() -> None:
    g = torch.Generator().manual_seed(0)
    out = torch.randn(4, 5, generator=g)
    y = torch.tensor([0, 3, 4, 1])
    lam, perm = torch.tensor([1.0, 0.25, 0.5, 0.0]), torch.tensor([2, 0, 3, 1])
    logp = out.log_softmax(1)
    by_hand = -sum(lam[i] * logp[i, y[i]] + (1 - lam[i]) * logp[i, y[perm[i]]]
                   for i in range(4)) / 4
    task = Task("t", CLASSIFICATION, 5)
    torch.testing.assert_close(task.loss(out, y, mix=(lam, perm)), by_hand)
    # lam = 1 is the plain loss; an identity partner makes lam irrelevant.
    assert torch.allclose(task.loss(out, y, mix=(torch.ones(4), perm)), task.loss(out, y))
    assert torch.allclose(task.loss(out, y, mix=(lam, torch.arange(4))), task.loss(out, y))
    with pytest.raises(ValueError, match=r"task 't': argument 'mix' holds lam \(3,\)"):
        task.loss(out, y, mix=(torch.ones(3), perm))


def test_segmentation_loss_with_mix_is_per_pixel_with_the_samples_lam() -> None:
    g = torch.Generator().manual_seed(1)
    out = torch.randn(3, 3, 4, 4, generator=g)
    y = torch.randint(3, (3, 4, 4), generator=g)
    lam, perm = torch.tensor([0.9, 0.2, 0.6]), torch.tensor([1, 2, 0])
    own = F.cross_entropy(out, y, reduction="none")
    partner = F.cross_entropy(out, y[perm], reduction="none")
    by_hand = sum((lam[i] * own[i] + (1 - lam[i]) * partner[i]).mean() for i in range(3)) / 3
    torch.testing.assert_close(Task("m", SEGMENTATION, 3).loss(out, y, mix=(lam, perm)), by_hand)


def test_multitask_loss_mixes_the_heads_that_declare_it(data, tasks) -> None:
    batch = data.batch(torch.arange(8))
    loss_fn = MultiTaskLoss(tasks)
    for mixer, mask_mixed in ((CutMix(tasks, generator=0), False),
                              (MixUp(tasks, generator=0), True)):
        mixed = mixer(batch)
        outputs = random_outputs(mixed)
        losses = loss_fn(outputs, mixed)
        mix = (mixed[MIX_LAM], mixed[MIX_PERM])
        for t in ("left", "right"):  # classification: mixed under both
            torch.testing.assert_close(losses[t], tasks[t].loss(outputs[t], mixed[t], mix=mix))
            assert not torch.allclose(losses[t], tasks[t].loss(outputs[t], mixed[t]))
        # The mask: pasted under CutMix (plain loss on the pasted mask), per pixel under MixUp.
        plain = tasks["mask"].loss(outputs["mask"], mixed["mask"])
        expected = tasks["mask"].loss(outputs["mask"], mixed["mask"], mix=mix) if mask_mixed \
            else plain
        torch.testing.assert_close(losses["mask"], expected)
        assert torch.allclose(losses["mask"], plain) != mask_mixed
        torch.testing.assert_close(losses["total"], losses["left"] + losses["right"]
                                   + losses["mask"])


def test_the_loss_refuses_a_mix_that_breaks_a_task(data, tasks) -> None:
    count = Task("count", CLASSIFICATION, 10, label_effects={"mixing": "breaks"})
    both = {"left": tasks["left"], "count": count}
    batch = {"image": data.batch(torch.arange(4))["image"], "left": data.left[:4],
             "count": data.right[:4]}
    mixed = MixUp(both, check=False)(batch)  # unchecked: the loss is the last line of defence
    outputs = {"left": torch.zeros(4, 10), "count": torch.zeros(4, 10)}
    with pytest.raises(ValueError, match="task 'count' declares that mixing breaks its labels"):
        MultiTaskLoss(both)(outputs, mixed)


def test_batch_mix_reads_and_checks_the_reserved_keys(data, tasks) -> None:
    batch = data.batch(torch.arange(4))
    assert batch_mix(batch) is None
    mixed = CutMix(tasks, generator=0)(batch)
    info = batch_mix(mixed)
    assert info.kind == "region_mixing" and torch.equal(info.perm, mixed[MIX_PERM])
    assert all("." in k for k in MIX_KEYS)  # no task name (an identifier) can clash
    with pytest.raises(KeyError, match=r"holds \['mix.lam'\] but not"):
        batch_mix({**batch, MIX_LAM: torch.ones(4)})
    with pytest.raises(ValueError, match=r"batch\['mix.perm'\] .* expected int64 \(4,\)"):
        batch_mix({**mixed, MIX_PERM: torch.arange(3)})
    with pytest.raises(ValueError, match=r"batch\['mix.kind'\] is .* expected the index"):
        batch_mix({**mixed, MIX_KIND: torch.tensor(TRANSFORM_KINDS.index("geometric"))})


# ---- training -------------------------------------------------------------------------------


def test_train_with_batch_augment_and_cutmix_and_evaluate_is_unaffected(tasks) -> None:
    train_set = MultiDigits("train", size=64, seed=3)
    test_iter = TensorLoader(MultiDigits("test", size=32, seed=3), batch_size=32)
    model = make_model(tasks, seed=0)
    before = evaluate(model, test_iter, tasks)
    augment = v2.Compose([BatchAugment(tasks, degrees=15, brightness=0.2, generator=0),
                          CutMix(tasks, p=0.5, generator=1)])
    history = train(model, tasks, TensorLoader(train_set, batch_size=32, shuffle=True),
                    test_iter, epochs=1, augment=augment, progress=False)
    assert history.steps == 2 and all(len(v) == 2 for v in history.train_loss.values())
    assert all(torch.isfinite(torch.tensor(v)).all() for v in history.train_loss.values())
    # evaluate sees plain test batches: its loss is the plain cross-entropy of the model.
    after = evaluate(model, test_iter, tasks)
    assert history.final() == after and set(after["mask"]) == set(before["mask"])
    batch = next(iter(test_iter))
    model.eval()
    with torch.no_grad():
        out = model(batch["image"])
    assert after["left"]["loss"] == pytest.approx(
        float(F.cross_entropy(out["left"], batch["left"])), rel=1e-5)
