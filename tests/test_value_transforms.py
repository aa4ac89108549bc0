"""Augmentation that transforms label values (depth, normals), checked against physics.

The physics (``DenseRegressionKind``): an image warped by the linear map L about the principal
point is the image of the scene moved by A = diag(L / s, 1 / s), s = sqrt(|det L|). So the
checks here never restate the formulas; they recompute what the camera would see:

- normals recomputed from the augmented depth (back-projection and finite differences,
  ``data.geometry.normals_from_depth``) must agree with the augmented normals as well as they
  agree on the rendered scenes, and a flip or rotation without the normals' fix must not;
- the augmented depth back-projects to the moved scene: under a zoom the seen points keep
  their metric position across the image (an object looks bigger because it is closer), which
  a zoom that keeps depth violates by the zoom factor;
- the semantic map lies on the augmented surfaces: every pixel labelled floor carries the one
  normal of the floor plane (a floor pixel's label and normal come from the same source pixel);
  a semantic map that did not move with the image puts walls and objects under the floor label.

Finite differences on a nearest-resampled depth map are noisy where the resampling duplicates
or skips pixels, so the exact comparisons use transforms that map pixel centres onto pixel
centres (flips, quarter turns, a zoom out by 1/3); general angles and zooms are checked by the
margin between the right and the wrong variant. Tiny data: 6 scenes of 48 x 48.
"""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F
from torchvision import tv_tensors
from torchvision.transforms import v2

from mtlaug_lib.augment.audit import LabelSafetyError, audit, declare_kind
from mtlaug_lib.augment.batch import BatchAugment
from mtlaug_lib.augment.flip import RandomFlip
from mtlaug_lib.augment.functional import AugmentParams, affine_theta, forward_linear
from mtlaug_lib.augment.mixing import CutMix, MixUp
from mtlaug_lib.augment.sample import SampleTransform
from mtlaug_lib.augment.values import DepthMap, NormalMap
from mtlaug_lib.core.task_kinds import TASK_KINDS, angles
from mtlaug_lib.core.tasks import DEPTH, IGNORE_INDEX, NORMALS, SEGMENTATION, LabelEffect, Task
from mtlaug_lib.data.geometry import backproject, normals_from_depth
from mtlaug_lib.data.multidigits import multidigits_tasks
from mtlaug_lib.data.scenes import Scenes, scenes_tasks

pytestmark = pytest.mark.usefixtures("one_thread")

N, SIZE = 6, 48
FLOOR = 0  # SCENE_CLASSES[0]
THIRD = (1 / 3, 1 / 3)  # a zoom out whose output pixel centres fall on input pixel centres
# Transforms that map pixel centres onto pixel centres, so nearest resampling is exact.
EXACT = {
    "hflip": {"hflip": 1.0},
    "quarter turn": {"degrees": (90.0, 90.0)},
    "quarter turn back": {"degrees": (-90.0, -90.0)},
    "zoom out by 1/3": {"scale": THIRD},
    "all three": {"degrees": (90.0, 90.0), "scale": THIRD, "hflip": 1.0},
}
# Labels moved with the image but their values left as they were: the flip without the
# normals' fix, the rotation without rotating them, the zoom without its depth and normals.
MOVED_ONLY = {"geometric": "moves", "horizontal_flip": "moves"}


@pytest.fixture(scope="module")
def scenes() -> Scenes:
    return Scenes("train", size=N, image_size=SIZE)


@pytest.fixture(scope="module")
def batch(scenes: Scenes) -> dict[str, torch.Tensor]:
    return scenes.batch(torch.arange(N))


def agreement(depth: torch.Tensor, normals: torch.Tensor, focal: float) -> tuple[float, int]:
    """Mean angle (degrees) between the normals and those recomputed from the depth, over the
    pixels where both exist (off depth edges and holes); and how many pixels that is."""
    estimate = normals_from_depth(depth, focal)
    valid = estimate.ne(0).any(1) & normals.ne(0).any(1)
    return float(angles(estimate, normals)[valid].mean()), int(valid.sum())


def moved_only(batch: dict[str, torch.Tensor], **settings) -> dict[str, torch.Tensor]:
    """The wrong variant: depth and normals moved with the image, values unchanged."""
    tasks = {k: Task(k, kind, label_effects=MOVED_ONLY) for k, kind in
             (("depth", DEPTH), ("normals", NORMALS))}
    return BatchAugment(tasks, generator=0, **settings)(
        {k: batch[k] for k in ("image", "depth", "normals")})


def floor_spread(semantic: torch.Tensor, normals: torch.Tensor) -> float:
    """The largest angle (degrees) between a floor-labelled pixel's normal and the mean floor
    normal of its image, over all images: ~0 when the label lies on the floor plane."""
    worst = 0.0
    for labels, n in zip(semantic, normals, strict=True):
        floor = n[:, labels == FLOOR]
        floor = floor[:, floor.ne(0).any(0)]  # holes brought in from outside carry no normal
        if floor.shape[1]:
            floor = F.normalize(floor.double(), dim=0)  # stored in float16: |n| = 1 +- 1e-3
            mean = F.normalize(floor.mean(1), dim=0)
            cosine = (floor * mean[:, None]).sum(0).clamp(-1, 1)
            worst = max(worst, float(torch.rad2deg(torch.acos(cosine)).max()))
    return worst


def stack(samples: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    return {k: torch.stack([s[k] for s in samples]) for k in samples[0]}


def sample_path(scenes: Scenes, transform) -> dict[str, torch.Tensor]:
    st = SampleTransform(transform, scenes_tasks())
    return stack([st(scenes[i]) for i in range(N)])


# ---- the linear map -----------------------------------------------------------------------


def test_forward_linear_inverts_the_resampling_matrix() -> None:
    g = torch.Generator().manual_seed(0)
    b, h, w = 16, 12, 20
    params = replace(
        AugmentParams.identity(b), angle=torch.rand(b, generator=g) * 360 - 180,
        scale=torch.rand(b, generator=g) + 0.5, shear=torch.rand(b, 2, generator=g) * 60 - 30,
        translate=torch.rand(b, 2, generator=g) * 6, flip=torch.rand(b, generator=g) < 0.5)
    theta = affine_theta(params, h, w)
    to_norm = torch.tensor([2.0 / w, 2.0 / h])
    inverse = theta[:, :, :2] * to_norm[None, :] / to_norm[:, None]  # pixels, output -> input
    assert torch.allclose(forward_linear(params) @ inverse, torch.eye(2).expand(b, 2, 2),
                          atol=1e-5)
    # A flip reverses orientation; a zoom by s scales areas by s**2.
    det = torch.linalg.det(forward_linear(params))
    assert torch.allclose(det, torch.where(params.flip, -1.0, 1.0) * params.scale**2, atol=1e-4)


# ---- BatchAugment against physics -----------------------------------------------------------


@pytest.mark.parametrize("settings", EXACT.values(), ids=EXACT.keys())
def test_batch_normals_agree_with_the_augmented_depth(scenes, batch, settings) -> None:
    base, _ = agreement(batch["depth"], batch["normals"], scenes.focal)
    out = BatchAugment(scenes_tasks(), generator=0, **settings)(batch)
    right, pixels = agreement(out["depth"], out["normals"], scenes.focal)
    assert pixels > 500
    assert right < base + 0.5, (right, base)  # as good as on the rendered scenes
    wrong, _ = agreement(**{k: v for k, v in moved_only(batch, **settings).items()
                            if k != "image"}, focal=scenes.focal)
    assert wrong > right + 10, (wrong, right)  # values left unchanged are clearly wrong


@pytest.mark.parametrize("settings", [
    {"degrees": (30.0, 30.0)}, {"degrees": (-50.0, -50.0)}, {"scale": (0.7, 0.7)},
    {"degrees": 40.0, "scale": (0.6, 0.9), "hflip": 0.5, "translate": (0.1, 0.1), "shear": 10},
], ids=["rotate 30", "rotate -50", "zoom 0.7", "random"])
def test_batch_normals_at_any_angle_beat_the_unfixed_labels_by_far(scenes, batch,
                                                                   settings) -> None:
    out = BatchAugment(scenes_tasks(), generator=0, **settings)(batch)
    right, _ = agreement(out["depth"], out["normals"], scenes.focal)
    wrong = moved_only(batch, **settings)
    wrong, _ = agreement(wrong["depth"], wrong["normals"], scenes.focal)
    assert wrong > 1.5 * right and wrong > right + 5, (wrong, right)


@pytest.mark.parametrize("settings", [{"scale": THIRD}, {"degrees": (90.0, 90.0)},
                                      {"scale": THIRD, "degrees": (-90.0, -90.0)}],
                         ids=["zoom", "turn", "both"])
def test_batch_depth_back_projects_to_the_moved_scene(scenes, batch, settings) -> None:
    """A seen point's position across the image (x, y in metres) goes through L / s: a zoom
    keeps it (the object is closer, not bigger), a turn rotates it."""
    aug = BatchAugment(scenes_tasks(), generator=0, **settings)
    out = aug(batch)
    p = aug.last_params
    grid = F.affine_grid(affine_theta(p, SIZE, SIZE), [N, 2, SIZE, SIZE], align_corners=False)
    source = F.grid_sample(backproject(batch["depth"], scenes.focal)[:, :2], grid,
                           mode="nearest", align_corners=False)  # each pixel's seen point
    linear = forward_linear(p)
    s = torch.linalg.det(linear).abs().sqrt()
    expected = torch.einsum("bij,bjhw->bihw", linear / s[:, None, None], source)
    seen = out["depth"] > 0
    got = backproject(out["depth"], scenes.focal)[:, :2]
    assert seen.float().mean() > 0.1
    assert torch.allclose(got.permute(0, 2, 3, 1)[seen], expected.permute(0, 2, 3, 1)[seen],
                          atol=1e-4, rtol=1e-4)
    kept = backproject(moved_only(batch, **settings)["depth"], scenes.focal)[:, :2]
    if "scale" in settings:  # a zoom that keeps depth makes everything 3 times too wide
        error = (kept - expected).abs().permute(0, 2, 3, 1)[seen].max()
        assert error > 0.5 * expected.abs().max()


def test_batch_semantic_lies_on_the_augmented_floor(batch) -> None:
    settings = {"degrees": 40.0, "scale": (0.6, 1.4), "hflip": 0.5, "translate": (0.1, 0.1)}
    out = BatchAugment(scenes_tasks(), generator=0, **settings)(batch)
    assert floor_spread(batch["semantic"], batch["normals"]) < 0.5  # the rendered reference
    assert floor_spread(out["semantic"], out["normals"]) < 0.5
    # The semantic map left behind while the normals move: walls and objects under "floor".
    assert floor_spread(batch["semantic"], out["normals"]) > 20


# ---- the sample path (torchvision v2) against physics ---------------------------------------


@pytest.mark.parametrize("transform", [
    v2.RandomHorizontalFlip(p=1), v2.RandomVerticalFlip(p=1), RandomFlip("horizontal", p=1),
    v2.RandomRotation((90, 90)), v2.RandomRotation((-90, -90)),
    v2.RandomAffine(degrees=(90, 90)), v2.RandomAffine(degrees=0, scale=THIRD),
    v2.Compose([v2.RandomHorizontalFlip(p=1), v2.RandomRotation((90, 90)),
                v2.RandomAffine(degrees=0, scale=THIRD)]),
], ids=["hflip", "vflip", "RandomFlip", "rotate 90", "rotate -90", "affine 90", "zoom",
        "all"])
def test_sample_normals_agree_with_the_augmented_depth(scenes, batch, transform) -> None:
    base, _ = agreement(batch["depth"], batch["normals"], scenes.focal)
    out = sample_path(scenes, transform)
    right, pixels = agreement(out["depth"], out["normals"], scenes.focal)
    assert pixels > 500
    assert right < base + 0.5, (right, base)
    assert floor_spread(out["semantic"], out["normals"]) < 0.5
    assert not torch.equal(out["normals"], batch["normals"])  # it did transform them


@pytest.mark.parametrize(("transform", "settings"), [
    (v2.RandomHorizontalFlip(p=1), {"hflip": 1.0}),
    (v2.RandomRotation((90, 90)), {"degrees": (-90.0, -90.0)}),  # rotate: counter-clockwise
    (v2.RandomAffine(degrees=(90, 90)), {"degrees": (90.0, 90.0)}),  # affine: clockwise
    (v2.RandomAffine(degrees=0, scale=THIRD), {"scale": THIRD}),
], ids=["hflip", "rotate", "affine", "zoom"])
def test_sample_path_and_batch_path_agree(scenes, batch, transform, settings) -> None:
    one = sample_path(scenes, transform)
    other = BatchAugment(scenes_tasks(), generator=0, **settings)(batch)
    for key in ("semantic", "depth", "normals"):
        assert torch.allclose(one[key].float(), other[key].float(), atol=1e-5), key


def test_resizing_crops_transform_values_and_other_crops_do_not(scenes) -> None:
    sample = scenes[0]
    half = SampleTransform(v2.Resize(SIZE // 2), scenes_tasks())(sample)
    # Half the pixels across: everything looks half as big, so it is twice as far.
    assert torch.allclose(half["depth"], 2 * sample["depth"][::2, ::2], rtol=1e-6)
    crop = SampleTransform(v2.CenterCrop(SIZE // 2), scenes_tasks())(sample)
    q = SIZE // 4
    assert torch.equal(crop["depth"], sample["depth"][q:-q, q:-q])  # a shift: values unchanged
    assert torch.equal(crop["normals"], sample["normals"][:, q:-q, q:-q])


# ---- identities, holes and fills -------------------------------------------------------------


def with_holes(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    holes = torch.zeros(N, SIZE, SIZE, dtype=torch.bool)
    holes[:, 5:9, 3:20] = True
    out = dict(batch)
    out["depth"] = batch["depth"].masked_fill(holes, 0)
    out["normals"] = batch["normals"].masked_fill(holes[:, None], 0)
    out["semantic"] = batch["semantic"].masked_fill(holes, IGNORE_INDEX)
    return out


def test_a_flip_twice_is_the_identity_on_every_label(scenes, batch) -> None:
    data = with_holes(batch)
    aug = BatchAugment(scenes_tasks(), hflip=1.0, generator=0)
    twice = aug(aug(data))
    st = SampleTransform(v2.RandomHorizontalFlip(p=1), scenes_tasks())
    for key in ("semantic", "depth", "normals"):
        assert torch.equal(twice[key], data[key]), key
        sample = {k: v[0] for k, v in data.items()}
        assert torch.equal(st(st(sample))[key], sample[key]), key


def test_no_rotation_and_no_zoom_leave_values_unchanged(scenes, batch) -> None:
    aug = BatchAugment(scenes_tasks(), translate=(0.2, 0.2), generator=0)  # shifts only
    out = aug(batch)
    seen = out["depth"] > 0
    assert seen.float().mean() > 0.5
    for key in ("depth", "normals"):  # every value is one of the original pixels' values
        values = batch[key].unsqueeze(1) if key == "depth" else batch[key]
        got = out[key].unsqueeze(1) if key == "depth" else out[key]
        flat = values.permute(0, 2, 3, 1).flatten(1, 2)  # B x HW x C
        for b in range(N):
            picked = got[b].permute(1, 2, 0)[seen[b]]
            assert (picked[:, None] == flat[b][None]).all(-1).any(1).all(), key
    same = SampleTransform(v2.RandomAffine(degrees=0, scale=(1, 1)), scenes_tasks())
    sample = scenes[1]
    assert all(torch.equal(same(sample)[k], sample[k]) for k in sample)


def test_holes_stay_holes(batch) -> None:
    data = with_holes(batch)
    out = BatchAugment(scenes_tasks(), degrees=(90.0, 90.0), generator=0)(data)
    flipped = BatchAugment(scenes_tasks(), hflip=1.0, generator=0)(data)
    for got in (out, flipped):
        assert int((got["depth"] == 0).sum()) == int((data["depth"] == 0).sum())
        assert torch.equal(got["depth"] == 0, ~got["normals"].ne(0).any(1))
        assert torch.equal(got["depth"] == 0, got["semantic"] == IGNORE_INDEX)
    assert torch.equal(flipped["depth"] == 0, (data["depth"] == 0).flip(-1))


def test_pixels_from_outside_the_image_get_each_tasks_fill(scenes, batch) -> None:
    border = torch.ones(SIZE, SIZE, dtype=torch.bool)
    border[16:32, 16:32] = False  # a zoom out by 1/3 keeps only the middle third
    for out in (BatchAugment(scenes_tasks(), scale=THIRD, generator=0)(batch),
                sample_path(scenes, v2.RandomAffine(degrees=0, scale=THIRD))):
        assert (out["semantic"][:, border] == IGNORE_INDEX).all()  # no label: class 0 is floor
        assert (out["depth"][:, border] == 0).all()
        assert (out["normals"][:, :, border] == 0).all()
        assert (out["depth"][:, ~border] > 0).all()
        assert (out["semantic"][:, ~border] >= 0).all()
    # MultiDigits' mask: its fill is background (0), as before.
    assert multidigits_tasks()["mask"].label_fill == 0


def test_a_mask_fill_given_to_the_transform_is_refused(scenes) -> None:
    st = SampleTransform(v2.RandomAffine(degrees=0, scale=THIRD,
                                         fill={tv_tensors.Mask: 200}), scenes_tasks())
    with pytest.raises(ValueError, match=r"sample\['semantic'\] holds classes in .* give the "
                                         r"transform no fill for tv_tensors.Mask"):
        st(scenes[0])


# ---- the audit ---------------------------------------------------------------------------------


def test_the_audit_shows_and_allows_transforms_for_flips_and_geometry() -> None:
    tasks = scenes_tasks()
    for pipeline in (v2.RandomHorizontalFlip(), v2.RandomRotation(30), RandomFlip("vertical"),
                     BatchAugment(tasks, degrees=30, scale=(0.8, 1.2), hflip=0.5)):
        result = audit(pipeline, tasks)
        assert result.ok, str(result)
        assert "transforms ✓" in str(result)
        cells = {r.task: r.effect for r in result if r.kind != "photometric"}
        assert cells == {"semantic": LabelEffect.MOVES, "depth": LabelEffect.TRANSFORMS,
                         "normals": LabelEffect.TRANSFORMS}


@pytest.mark.parametrize("transform", [v2.ElasticTransform(), v2.RandomPerspective()])
def test_the_audit_refuses_a_transform_without_value_kernels(transform) -> None:
    name = type(transform).__name__
    result = audit(transform, scenes_tasks())
    refused = {r.task for r in result.problems()}
    assert refused == {"depth", "normals"}
    with pytest.raises(LabelSafetyError, match=rf"{name} .* task 'depth': no value transform is "
                                               rf"declared for {name}"):
        SampleTransform(transform, scenes_tasks())
    # Vouching for it (a user who registered kernels) lets it through.
    declared = declare_kind(type(transform)(), "geometric", handles_masks=True,
                            transforms_values=True)
    assert audit(declared, scenes_tasks()).ok


def test_mixup_is_refused_and_cutmix_pastes_depth_and_normals(batch) -> None:
    with pytest.raises(LabelSafetyError, match="task 'depth'.*breaks"):
        MixUp(scenes_tasks())
    cutmix = CutMix(scenes_tasks(), generator=0)
    out = cutmix(batch)
    p = cutmix.last_params
    rows = torch.arange(SIZE).view(1, SIZE, 1)
    cols = torch.arange(SIZE).view(1, 1, SIZE)
    top, left, bottom, right = (v.view(-1, 1, 1) for v in p.box.unbind(1))
    inside = (rows >= top) & (rows < bottom) & (cols >= left) & (cols < right)
    assert inside.any() and (~inside).any()
    for key in ("semantic", "depth", "normals"):
        pasted = batch[key][p.perm]
        box = inside if batch[key].ndim == 3 else inside[:, None].expand_as(batch[key])
        assert torch.equal(out[key][box], pasted[box]), key
        assert torch.equal(out[key][~box], batch[key][~box]), key


@pytest.mark.parametrize(("args", "kwargs", "pattern"), [
    (("s", SEGMENTATION, 3), {"label_effects": {"geometric": "transforms"}},
     r"task 's': a segmentation task's label values have no transform, so geometric cannot "
     r"declare 'transforms'"),
    (("d", DEPTH), {"label_effects": {"occlusion": "transforms"}},
     r"task 'd': a transform of kind 'occlusion' cannot transform label values"),
    (("d", DEPTH), {"fill": 1.5}, r"task 'd': fill is 1.5, expected 0 or None"),
    (("s", SEGMENTATION, 3), {"fill": 3}, r"task 's': fill is 3, expected a class index in "
                                          r"\[0, 2\] or -1 \(IGNORE_INDEX\)"),
    (("c", "classification", 3), {"fill": 0}, r"task 'c': fill is 0, but a classification"),
])
def test_a_task_that_cannot_carry_out_its_declaration_is_refused(args, kwargs,
                                                                 pattern) -> None:
    with pytest.raises(ValueError, match=pattern):
        Task(*args, **kwargs)


# ---- bad input ---------------------------------------------------------------------------------


def test_batch_augment_names_dense_labels_of_the_wrong_layout(batch) -> None:
    aug = BatchAugment(scenes_tasks(), hflip=1.0)
    bad_depth = {**batch, "depth": batch["depth"].long()}
    with pytest.raises(ValueError, match=r"batch\['depth'\] .* expected float labels B x H x W "
                                         r"\(depth\) = \(6, 48, 48\)"):
        aug(bad_depth)
    bad_normals = {**batch, "normals": batch["normals"][:, :2]}
    with pytest.raises(ValueError, match=r"batch\['normals'\] .* expected float labels "
                                         r"B x 3 x H x W \(normals\)"):
        aug(bad_normals)


def test_transform_values_refuses_a_bad_map(batch) -> None:
    depth = TASK_KINDS[DEPTH]
    with pytest.raises(ValueError, match=r"argument 'linear' is .*, expected float B x 2 x 2 "
                                         r"with B = 6"):
        depth.transform_values(batch["depth"], torch.eye(2))
    with pytest.raises(ValueError, match="singular"):
        depth.transform_values(batch["depth"], torch.zeros(N, 2, 2))
    with pytest.raises(NotImplementedError, match="segmentation task's labels have no value"):
        TASK_KINDS[SEGMENTATION].transform_values(batch["semantic"], torch.eye(2).repeat(N, 1, 1))


def test_value_maps_keep_their_type_and_refuse_reflected_padding(scenes) -> None:
    depth = DepthMap(scenes[0]["depth"])
    normals = NormalMap(scenes[0]["normals"])
    assert type(v2.functional.horizontal_flip(depth)) is DepthMap
    assert type(v2.functional.rotate(normals, 90)) is NormalMap
    assert math.isclose(float(v2.functional.horizontal_flip(normals)[0].sum()),
                        -float(normals[0].sum()), rel_tol=1e-5, abs_tol=1e-4)
    with pytest.raises(ValueError, match="padding_mode is 'reflect'.*expected 'constant'"):
        v2.functional.pad(depth, [2], padding_mode="reflect")
