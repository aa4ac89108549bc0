"""The pinhole camera: rays, back-projection and normals from depth, checked against planes
whose geometry is known in closed form."""

from __future__ import annotations

import math

import pytest
import torch

from mtlaug_lib.data.geometry import backproject, normals_from_depth, ray_directions

F = 20.0  # focal length in pixels


def plane_depth(normal: tuple[float, float, float], distance: float, height: int = 12,
                width: int = 16, focal: float = F) -> torch.Tensor:
    """Depth of the plane n . X = -distance (n unit, facing the camera) seen by the camera:
    along the ray r (z = 1), z = -distance / (n . r). Computed in float64."""
    n = torch.tensor(normal, dtype=torch.float64)
    n = n / n.norm()
    rays = ray_directions(height, width, focal, dtype=torch.float64)
    return -distance / torch.einsum("i,ihw->hw", n, rays)


def angle_deg(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Angle between unit vectors along dim 0 (atan2 of |cross| and dot: exact near 0)."""
    cross = torch.linalg.cross(a, b, dim=0).norm(dim=0)
    return torch.rad2deg(torch.atan2(cross, (a * b).sum(0)))


def test_rays_go_through_pixel_centres() -> None:
    rays = ray_directions(4, 6, 2.0)
    assert rays.shape == (3, 4, 6) and rays.dtype == torch.float32
    assert torch.equal(rays[2], torch.ones(4, 6))
    # pixel (u, v) = (0, 0): centre (0.5, 0.5); image centre (3, 2): ray ((0.5-3)/2, (0.5-2)/2)
    assert rays[0, 0, 0] == pytest.approx(-1.25) and rays[1, 0, 0] == pytest.approx(-0.75)
    # symmetric about the centre: the two middle columns are mirror images
    assert torch.allclose(rays[0, :, 2], -rays[0, :, 3])


def test_backprojected_points_lie_on_their_rays_at_their_depth() -> None:
    depth = torch.rand(2, 5, 7, dtype=torch.float64) + 0.5
    points = backproject(depth, F)
    assert points.shape == (2, 3, 5, 7)
    assert torch.equal(points[:, 2], depth)  # z is the depth
    u, v = 4, 1
    expected_x = (u + 0.5 - 7 / 2) / F * depth[:, v, u]
    assert torch.allclose(points[:, 0, v, u], expected_x)


@pytest.mark.parametrize("normal", [(0.0, 0.0, -1.0), (0.3, -0.8, -0.5), (-0.6, 0.2, -0.4)])
def test_a_plane_gives_its_exact_normal(normal) -> None:
    depth = plane_depth(normal, distance=2.5)
    assert bool((depth > 0).all())
    estimated = normals_from_depth(depth, F)
    expected = torch.tensor(normal, dtype=torch.float64)
    expected = (expected / expected.norm())[:, None, None].expand(3, 10, 14)
    interior = estimated[:, 1:-1, 1:-1]
    assert angle_deg(interior, expected).max() < 1e-5
    # the border has no central difference: left at zero
    assert estimated[:, 0].abs().sum() == 0 and estimated[:, :, -1].abs().sum() == 0


def test_a_tilted_planes_points_are_coplanar() -> None:
    depth = plane_depth((0.2, -0.9, -0.4), distance=1.7).float()
    points = backproject(depth, F).reshape(3, -1).double()
    centred = points - points.mean(dim=1, keepdim=True)
    singular = torch.linalg.svdvals(centred)  # a plane: the third singular value vanishes
    assert singular[2] < 1e-5 * singular[0]


def test_normals_face_the_camera_even_for_a_plane_seen_from_its_other_side() -> None:
    # the plane n . X = -d with the normal given pointing away: the result must still face us
    depth = plane_depth((0.0, -0.5, -1.0), distance=3.0)
    estimated = normals_from_depth(depth, F)[:, 1:-1, 1:-1]
    rays = ray_directions(12, 16, F, dtype=torch.float64)[:, 1:-1, 1:-1]
    assert bool(((estimated * rays).sum(0) < 0).all())


def test_holes_and_their_neighbours_give_zero_normals() -> None:
    depth = plane_depth((0.1, -0.3, -1.0), distance=2.0)
    depth[5, 7] = 0.0
    normals = normals_from_depth(depth, F)
    zero = normals.norm(dim=0) == 0
    for v, u in [(5, 7), (4, 7), (6, 7), (5, 6), (5, 8)]:  # the hole and its four neighbours
        assert zero[v, u]
    assert not zero[3, 7] and not zero[5, 10]  # farther pixels keep their normal
    points = backproject(depth, F)
    assert points[:, 5, 7].abs().sum() == 0  # a hole back-projects to the origin


def test_a_depth_edge_gives_zero_normals_and_keeps_the_planes_on_each_side() -> None:
    near = plane_depth((0.0, 0.0, -1.0), distance=1.0)
    far = plane_depth((0.0, 0.0, -1.0), distance=3.0)
    depth = torch.where(torch.arange(16) < 8, near, far)  # an occluding edge between columns
    normals = normals_from_depth(depth, F)
    assert normals[:, 3:9, 7].norm(dim=0).max() == 0  # beside the jump
    assert normals[:, 3:9, 8].norm(dim=0).max() == 0
    assert torch.allclose(normals[:, 3:9, 4], torch.tensor([0.0, 0.0, -1.0],
                                                           dtype=torch.float64)[:, None])
    assert torch.allclose(normals[:, 3:9, 12], torch.tensor([0.0, 0.0, -1.0],
                                                            dtype=torch.float64)[:, None])


def test_a_slanted_plane_is_not_mistaken_for_an_edge() -> None:
    # at 80 degrees from the view axis the depth changes fast from pixel to pixel, yet inverse
    # depth stays affine, so every interior pixel keeps its normal
    tilt = math.radians(80)
    depth = plane_depth((0.0, -math.sin(tilt), -math.cos(tilt)), distance=1.0)
    depth = depth.clamp_min(0)
    rows = depth[:, 0] > 0
    assert rows.sum() > 4
    normals = normals_from_depth(depth, F)
    inside = rows.nonzero().flatten()[1:-1]
    assert bool((normals[:, inside][:, :, 1:-1].norm(dim=0) > 0).all())


def test_batches_give_the_same_normals_as_single_maps() -> None:
    a = plane_depth((0.2, -0.4, -1.0), 2.0)
    b = plane_depth((-0.3, 0.1, -1.0), 1.0)
    both = normals_from_depth(torch.stack([a, b]), F)
    assert both.shape == (2, 3, 12, 16)
    assert torch.equal(both[0], normals_from_depth(a, F))
    assert torch.equal(both[1], normals_from_depth(b, F))


@pytest.mark.parametrize(("depth", "message"), [
    (torch.tensor([[1.0, float("nan")], [1.0, 1.0]]), "NaN or infinite"),
    (torch.tensor([[1.0, float("inf")], [1.0, 1.0]]), "NaN or infinite"),
    (torch.tensor([[1.0, -1.0], [1.0, 1.0]]), "negative"),
    (torch.ones(2, 2, dtype=torch.int64), "floating tensor"),
    (torch.ones(1, 1, 2, 2), "floating tensor"),
])
def test_bad_depth_is_refused(depth, message) -> None:
    with pytest.raises(ValueError, match=message):
        normals_from_depth(depth, F)
    with pytest.raises(ValueError, match="argument 'depth'"):
        backproject(depth, F)


def test_bad_camera_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="argument 'focal'"):
        ray_directions(4, 4, 0.0)
    with pytest.raises(ValueError, match="argument 'height'"):
        ray_directions(0, 4, 1.0)
    with pytest.raises(ValueError, match="argument 'edge'"):
        normals_from_depth(torch.ones(4, 4), F, edge=-1.0)
