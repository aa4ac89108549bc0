"""The dense-scene figures of ``course.plots``: what they draw, not how they look."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # no display in tests

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from mtlaug_lib.course import plots  # noqa: E402


def test_normals_colours_follow_the_axes_and_holes_are_black() -> None:
    normals = torch.zeros(3, 1, 4)
    normals[:, 0, 0] = torch.tensor([1.0, 0.0, 0.0])  # right
    normals[:, 0, 1] = torch.tensor([0.0, 1.0, 0.0])  # down
    normals[:, 0, 2] = torch.tensor([0.0, 0.0, -1.0])  # towards the camera
    rgb = plots.normals_to_rgb(normals)  # the fourth pixel is a hole
    assert rgb.shape == (1, 4, 3)
    np.testing.assert_allclose(rgb[0, 0], [1.0, 0.5, 0.5])
    np.testing.assert_allclose(rgb[0, 1], [0.5, 1.0, 0.5])
    np.testing.assert_allclose(rgb[0, 2], [0.5, 0.5, 0.0])
    np.testing.assert_allclose(rgb[0, 3], [0.0, 0.0, 0.0])


def _scenes_batch(b: int = 3, size: int = 8) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    normals = torch.nn.functional.normalize(torch.randn(b, 3, size, size, generator=g), dim=1)
    semantic = torch.randint(-1, 5, (b, size, size), generator=g)
    return {"image": torch.rand(b, 3, size, size, generator=g), "semantic": semantic,
            "depth": torch.rand(b, size, size, generator=g) + 1, "normals": normals}


def test_show_scenes_draws_one_row_per_sample_and_four_columns() -> None:
    fig = plots.show_scenes(_scenes_batch(3), n=2, title="t")
    images = [ax for ax in fig.axes if ax.images]
    assert len(images) == 2 * 4  # colour bars have no image of their own
    assert fig._suptitle.get_text() == "t"
    plt.close(fig)


def test_show_scenes_refuses_an_empty_batch() -> None:
    with pytest.raises(ValueError, match="no samples"):
        plots.show_scenes(_scenes_batch(3), n=0)


def test_task_panels_one_axis_per_task_with_the_means_marked() -> None:
    results = {"a": {"x": [1.0, 3.0], "y": [10.0, 10.0]}, "b": {"x": [2.0, 2.0], "y": [5.0, 7.0]}}
    fig = plots.plot_task_panels(results, {"x": "x metric", "y": "y metric"}, "title")
    assert [ax.get_ylabel() for ax in fig.axes] == ["x metric", "y metric"]
    means = [[float(line.get_ydata()[0]) for line in ax.lines if line.get_marker() == "D"]
             for ax in fig.axes]
    assert means == [[2.0, 2.0], [10.0, 6.0]]
    plt.close(fig)


# Notebook 07: what each architecture shares, the cross-stitch units, the MTAN attention masks.

from collections import Counter  # noqa: E402

from mtlaug_lib import multidigits_tasks, scenes_tasks  # noqa: E402
from mtlaug_lib.core.architectures import make_architecture, stage  # noqa: E402

# backbone -> (tasks, options, the branch points to draw); width 4 keeps the scenes' models small.
ZOO = {"encoder_decoder": (scenes_tasks, {"width": 4}, (0, 3, 8)),
       "article": (multidigits_tasks, {}, (0, 1, 2))}


@pytest.fixture(scope="module", params=list(ZOO))
def zoo(request: pytest.FixtureRequest) -> dict[str, torch.nn.Module]:
    """One model of each architecture (branched at three branch points) for one backbone."""
    tasks, options, points = ZOO[request.param]
    t = tasks()

    def build(name: str, **extra: int) -> torch.nn.Module:
        return make_architecture(name, t, request.param, seed=0, **options, **extra)

    models = {"hard": build("hard")}
    models.update({f"branched k={k}": build("branched", branch_point=k) for k in points})
    models.update({name: build(name) for name in ("cross_stitch", "mtan", "mmoe")})
    return models


def _counts(ax: plt.Axes) -> Counter:
    """How many patches and lines of each gid the panel draws."""
    return Counter([p.get_gid() for p in ax.patches] + [line.get_gid() for line in ax.lines])


def test_plot_sharing_draws_what_each_architecture_shares_and_owns(zoo) -> None:
    fig = plots.plot_sharing(zoo, title="t")
    assert fig._suptitle.get_text() == "t"
    assert [ax.get_title() for ax in fig.axes] == list(zoo)
    tasks = next(iter(zoo.values())).tasks
    blocks = stage(zoo["hard"].backbone).names
    n = len(blocks)
    for ax, (entry, model) in zip(fig.axes, zoo.items(), strict=True):
        counts = _counts(ax)
        assert all(counts[f"head:{t}"] == 1 for t in tasks), entry
        if entry == "mmoe":
            experts = len(model.experts)
            assert sum(v for k, v in counts.items() if k.startswith("expert:")) == experts * n
            assert all(counts[f"gate:{t}"] == 1 for t in tasks)
            assert counts["mix"] == experts * len(tasks)  # every gate reads every expert
            assert [label.get_text() for label in ax.get_xticklabels()] == [
                f"expert {e + 1}" for e in range(experts)]
            continue
        shared = {"hard": n, "cross_stitch": 0, "mtan": n}.get(entry, getattr(model,
                                                                               "branch_point", 0))
        assert counts["block:shared"] == shared, entry
        assert all(counts[f"block:{t}"] == n - shared for t in tasks), entry
        assert counts["stitch"] == (n if entry == "cross_stitch" else 0)
        assert all(counts[f"attention:{t}"] == (n if entry == "mtan" else 0) for t in tasks)
    # Rows: the blocks from the input up, then the heads; a repeat of the left panel's is left out.
    assert [label.get_text() for label in fig.axes[0].get_yticklabels()] == [*blocks, "head"]
    assert fig.axes[1].get_yticklabels() == []
    assert [label.get_text() for label in fig.axes[-1].get_yticklabels()] == [*blocks, "gate",
                                                                             "head"]
    legend = [text.get_text() for text in fig.legends[0].get_texts()]
    assert legend == ["shared", *tasks, "cross-stitch unit"]
    plt.close(fig)


def test_plot_sharing_colours_a_task_the_same_in_every_panel(zoo) -> None:
    fig = plots.plot_sharing({k: zoo[k] for k in ("branched k=0", "cross_stitch")})
    for ax in fig.axes:
        for c, task in enumerate(zoo["hard"].tasks):
            faces = {p.get_facecolor()[:3] for p in ax.patches if p.get_gid() == f"block:{task}"}
            assert faces == {tuple(plots.task_colour(c))}
    plt.close(fig)


def test_plot_sharing_refuses_what_it_cannot_draw() -> None:
    with pytest.raises(TypeError, match=r"entry 'mlp' of argument 'models' is a Linear"):
        plots.plot_sharing({"mlp": torch.nn.Linear(2, 2)})
    with pytest.raises(ValueError, match="argument 'models' is empty"):
        plots.plot_sharing({})
    with pytest.raises(TypeError, match="argument 'models' is a list"):
        plots.plot_sharing([make_architecture("hard", multidigits_tasks(), "article")])


@pytest.fixture(scope="module")
def stitched() -> torch.nn.Module:
    return make_architecture("cross_stitch", scenes_tasks(), seed=0, width=4)


def test_cross_stitch_weights_are_the_channel_mean_of_alpha(stitched) -> None:
    model = stitched
    weights = plots.cross_stitch_weights(model)
    assert list(weights) == list(model.blocks)
    n_tasks = len(model.tasks)
    for name, unit in zip(model.blocks, model.stitches, strict=True):
        w = weights[name]
        assert w.shape == (n_tasks, n_tasks) and w.device.type == "cpu" and not w.requires_grad
        for t in range(n_tasks):
            torch.testing.assert_close(w[t], unit.alpha[t].detach().mean(dim=1))
    alpha = model.stitches[2].alpha[1]  # block down2, the row of task 1
    saved = alpha.detach().clone()
    try:
        with torch.no_grad():
            alpha[0] = torch.arange(alpha.shape[1], dtype=alpha.dtype)  # task 1 from column 0
        moved = plots.cross_stitch_weights(model)
    finally:
        with torch.no_grad():
            alpha.copy_(saved)
    assert float(moved["down2"][1, 0]) == pytest.approx((alpha.shape[1] - 1) / 2)
    changed = [(b, t, s) for b in weights for t in range(n_tasks) for s in range(n_tasks)
               if not torch.equal(weights[b][t, s], moved[b][t, s])]
    assert changed == [("down2", 1, 0)]


def test_plot_cross_stitch_draws_one_annotated_heatmap_per_unit(stitched) -> None:
    fig = plots.plot_cross_stitch(stitched, title="t")
    heatmaps = [ax for ax in fig.axes if ax.get_title()]
    assert len(fig.axes) == len(stitched.blocks) + 1  # and one colour bar
    assert [ax.get_title() for ax in heatmaps] == list(stitched.blocks)
    weights = plots.cross_stitch_weights(stitched)
    tasks = list(stitched.tasks)
    for ax in heatmaps:
        assert len(ax.images) == 1
        w = weights[ax.get_title()]
        assert [text.get_text() for text in ax.texts] == [f"{float(v):.2f}" for v in w.flatten()]
        assert [label.get_text() for label in ax.get_yticklabels()] == tasks
        assert (ax.get_ylabel(), ax.get_xlabel()) == ("to", "from")
    assert len({ax.images[0].get_clim() for ax in heatmaps}) == 1  # one colour scale
    plt.close(fig)
    with pytest.raises(TypeError, match="argument 'model' is a MTAN, expected a CrossStitch"):
        plots.plot_cross_stitch(make_architecture("mtan", multidigits_tasks(), "article"))


@pytest.fixture(scope="module")
def attending() -> torch.nn.Module:
    return make_architecture("mtan", scenes_tasks(), seed=0, width=4)


def test_plot_attention_draws_each_tasks_mask_and_restores_the_modes(attending) -> None:
    model = attending
    model.train()
    model.attention[model.tasks[0]][0].eval()  # a mixed state must come back as it was
    before = [m.training for m in model.modules()]
    image = torch.rand(3, 16, 24)
    fig = plots.plot_attention(model, image, title="t")
    assert [m.training for m in model.modules()] == before
    assert fig._suptitle.get_text() == "t"
    grid = [ax for ax in fig.axes if ax.images]
    assert len(grid) == len(model.tasks) * 4 and len(fig.axes) == len(grid) + 1  # a colour bar
    assert [ax.get_title() for ax in grid[:4]] == ["image", "stem", "context", "up1"]
    assert [ax.get_ylabel() for ax in grid[::4]] == list(model.tasks)
    for i, task in enumerate(model.tasks):
        for j, block in enumerate(("stem", "context", "up1"), start=1):
            shown = grid[4 * i + j].images[0]
            assert shown.get_clim() == (0, 1)
            drawn = np.asarray(shown.get_array())
            assert drawn.shape == (16, 24)
            mask = model.last_attention[task][block].mean(dim=1)[0]  # h x w
            step = 16 // mask.shape[0]  # nearest upsampling repeats each value step x step
            expected = mask.repeat_interleave(step, 0).repeat_interleave(step, 1)
            np.testing.assert_allclose(drawn, expected.numpy(), rtol=1e-6)
    plt.close(fig)
    model.eval()
    fig = plots.plot_attention(model, image, blocks=["down1"])
    assert not model.training
    assert [ax.get_title() for ax in fig.axes if ax.images][:2] == ["image", "down1"]
    plt.close(fig)


def test_plot_attention_refuses_bad_input_with_the_argument_named(attending) -> None:
    model = attending
    model.train()
    with pytest.raises(ValueError, match=r"argument 'image' has shape \(1, 3, 16, 16\), "
                                         r"expected 3 x H x W"):
        plots.plot_attention(model, torch.rand(1, 3, 16, 16))
    with pytest.raises(ValueError, match=r"argument 'blocks' names \['conv9'\].*'stem', 'down1'"):
        plots.plot_attention(model, torch.rand(3, 16, 16), blocks=["stem", "conv9"])
    with pytest.raises(TypeError, match="argument 'blocks' is the string 'stem'"):
        plots.plot_attention(model, torch.rand(3, 16, 16), blocks="stem")
    with pytest.raises(TypeError, match="argument 'model' is a MultiTaskModel, expected a MTAN"):
        plots.plot_attention(make_architecture("hard", multidigits_tasks(), "article"),
                             torch.rand(3, 28, 28))
    with pytest.raises(ValueError, match="multiples of 2"):  # the model's own check
        plots.plot_attention(model, torch.rand(3, 30, 30))
    assert all(m.training for m in model.modules())  # an error leaves the modes as they were


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_plot_attention_takes_a_model_and_an_image_on_the_gpu() -> None:
    model = make_architecture("mtan", multidigits_tasks(), "article", seed=0).cuda()
    fig = plots.plot_attention(model, torch.rand(3, 28, 28, device="cuda"))
    assert len([ax for ax in fig.axes if ax.images]) == 3 * 3  # image, conv1, conv2
    plt.close(fig)
