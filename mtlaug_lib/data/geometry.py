"""The pinhole camera of the dense-scene data: rays, back-projection and normals from depth.

One camera model serves the rendered ``Scenes`` and real data (NYUv2) alike. Camera frame
(OpenCV): x to the right of the image, y down the image, z forward into the scene. The focal
length ``f`` is in pixels (fx = fy = f), the principal point at the image centre, and pixel
(u, v) (column u, row v) is seen along the ray

    ((u + 0.5 - W/2) / f, (v + 0.5 - H/2) / f, 1),

whose z component is 1, so the point at depth z on it is z times the ray. Depth is metric
depth along the optical axis (z), with 0 marking a hole (no valid depth); a non-finite or
negative depth is an error, not a hole.

``normals_from_depth`` is how tests and augmentation checks verify normals against depth by
physics: back-project the depth, take central differences, and cross them.
"""

from __future__ import annotations

import torch

from ..core.checks import check_number, check_positive_int, describe_value

DEPTH_EDGE = 0.05
"""Default relative jump of inverse depth at which ``normals_from_depth`` sees a depth edge.

On a plane, inverse depth is an affine function of the pixel position, so its second
difference across a pixel is 0 whatever the plane's slant; across an occlusion edge it is of
the order of the inverse depth itself. 5% separates the two with room on both sides; a curved
surface (a sphere or cylinder a few pixels wide) can exceed it near its silhouette, where a
finite difference is wrong anyway."""


def ray_directions(
    height: int, width: int, focal: float, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """The ray through each pixel's centre, in the camera frame, with z component 1.

    Args:
        height, width: the image's size in pixels.
        focal: the focal length in pixels (> 0).

    Returns:
        ``dtype``, 3 x H x W: ``(x, y, 1)`` with x = (u + 0.5 - W/2) / f, y = (v + 0.5 - H/2) / f.
    """
    height = check_positive_int("height", height)
    width = check_positive_int("width", width)
    focal = check_number("focal", focal, strict=True)
    # float64 then one rounding, so the rays are the nearest float32 to the exact values.
    x = (torch.arange(width, dtype=torch.float64) + 0.5 - width / 2) / focal
    y = (torch.arange(height, dtype=torch.float64) + 0.5 - height / 2) / focal
    rays = torch.stack([
        x.expand(height, width),
        y[:, None].expand(height, width),
        torch.ones(height, width, dtype=torch.float64),
    ])
    return rays.to(dtype)


def _check_depth(depth: torch.Tensor) -> torch.Tensor:
    """``depth`` (H x W or B x H x W, floating) checked: finite and >= 0, else a ValueError."""
    if not isinstance(depth, torch.Tensor) or not depth.is_floating_point() or depth.ndim not in (
        2, 3
    ):
        raise ValueError(
            f"argument 'depth' is {describe_value(depth)}, expected a floating tensor "
            "H x W or B x H x W (metres; 0 for a hole)"
        )
    if not bool(torch.isfinite(depth).all()):
        raise ValueError(
            "argument 'depth' holds NaN or infinite values, expected finite depths (0 marks a "
            "hole; a non-finite depth is an error, not a hole)"
        )
    if bool((depth < 0).any()):
        raise ValueError(
            f"argument 'depth' holds negative values (min {float(depth.min()):g}), expected "
            "depths >= 0 (0 marks a hole)"
        )
    return depth


def backproject(depth: torch.Tensor, focal: float) -> torch.Tensor:
    """The 3-D point seen by each pixel, in the camera frame: depth times the pixel's ray.

    Args:
        depth: H x W or B x H x W, metres along the optical axis; 0 for a hole.
        focal: the focal length in pixels.

    Returns:
        3 x H x W (or B x 3 x H x W), in depth's dtype: (x, y, z) with z = depth; a hole gives
        (0, 0, 0).
    """
    depth = _check_depth(depth)
    focal = check_number("focal", focal, strict=True)
    rays = ray_directions(depth.shape[-2], depth.shape[-1], focal, dtype=depth.dtype)
    return depth.unsqueeze(-3) * rays.to(depth.device)


def normals_from_depth(
    depth: torch.Tensor, focal: float, edge: float = DEPTH_EDGE
) -> torch.Tensor:
    """Unit surface normals estimated from depth by finite differences, facing the camera.

    Each pixel's back-projected point P has central differences Pu = P(u+1) - P(u-1) (along the
    row) and Pv = P(v+1) - P(v-1) (down the column); the normal is their cross product,
    normalised, and turned to face the camera (n . P < 0, P being along the pixel's ray).

    The rule for pixels without a normal (left at (0, 0, 0)):
    - the image's border (a central difference needs both neighbours);
    - a hole at the pixel or at any of its four neighbours;
    - a depth edge: ``|1/z(left) + 1/z(right) - 2/z| > edge / z`` or the same down the column.
      Inverse depth is affine in the pixel position on any plane, so this second difference
      is 0 on a plane, however slanted, and large across an occlusion edge;
    - a degenerate cross product (zero length).

    Args:
        depth: H x W or B x H x W, metres along the optical axis; 0 for a hole.
        focal: the focal length in pixels.
        edge: the relative jump of inverse depth that marks a depth edge (> 0).

    Returns:
        3 x H x W (or B x 3 x H x W), in depth's dtype.
    """
    points = backproject(depth, focal)
    edge = check_number("edge", edge, strict=True)
    batched = depth.ndim == 3
    if not batched:
        depth, points = depth[None], points[None]
    normals = torch.zeros_like(points)
    if depth.shape[-1] < 3 or depth.shape[-2] < 3:
        return normals if batched else normals[0]

    # The interior pixels (B x (H-2) x (W-2)) and their four neighbours.
    centre = depth[:, 1:-1, 1:-1]
    left, right = depth[:, 1:-1, :-2], depth[:, 1:-1, 2:]
    up, down = depth[:, :-2, 1:-1], depth[:, 2:, 1:-1]
    valid = (centre > 0) & (left > 0) & (right > 0) & (up > 0) & (down > 0)

    def inverse(z: torch.Tensor) -> torch.Tensor:  # 1/z where all five depths are valid, else 0
        return torch.where(valid, 1 / torch.where(valid, z, 1), 0)

    inv = inverse(centre)
    jump_u = (inverse(left) + inverse(right) - 2 * inv).abs()
    jump_v = (inverse(up) + inverse(down) - 2 * inv).abs()
    valid &= (jump_u <= edge * inv) & (jump_v <= edge * inv)

    pu = points[:, :, 1:-1, 2:] - points[:, :, 1:-1, :-2]  # B x 3 x (H-2) x (W-2)
    pv = points[:, :, 2:, 1:-1] - points[:, :, :-2, 1:-1]
    n = torch.linalg.cross(pu, pv, dim=1)
    length = n.norm(dim=1, keepdim=True)
    valid &= length[:, 0] > 0
    n = n / length.clamp_min(torch.finfo(n.dtype).tiny)
    # Turn to face the camera: the point's ray is its position, so a facing normal has n.P < 0.
    facing = (n * points[:, :, 1:-1, 1:-1]).sum(dim=1, keepdim=True)
    n = torch.where(facing > 0, -n, n)
    normals[:, :, 1:-1, 1:-1] = torch.where(valid[:, None], n, 0)
    return normals if batched else normals[0]
