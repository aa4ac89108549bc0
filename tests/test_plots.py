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
