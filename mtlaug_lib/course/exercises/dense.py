"""Checks of notebook 06 (dense scenes): what a flip, a zoom and a rotation do to label VALUES.

The three exercises: ``flip_normals`` (a horizontal flip of a normals map), ``zoom_depth``
(the depth values after a zoom), ``rotate_normals`` (the normals' values after an in-plane
rotation). Conventions are the course's: normals 3 x H x W (or B x 3 x H x W) unit vectors in
the camera frame, x right, y down, z forward, (0, 0, 0) for a hole; depth H x W (or B x H x W)
metres along z, 0 for a hole; pinhole camera with focal ``f`` pixels and the principal point at
the image centre; pixel (u, v) has its centre at offset (u + 0.5 - W/2, v + 0.5 - H/2).

Each check runs two kinds of cases:

- random maps with holes (several sizes, odd widths, float32 and float64, a batch), compared
  with the formula, so that each typical mistake can be told apart and named in the hint;
- one physical case, whose expected answer comes from geometry, not from the formula: the depth
  of a tilted plane is rendered (ray casting), the image operation is applied to the pixels
  (mirror, zoom, rotation about the centre), and the truth is read back from the transformed
  depth by back-projection (normals by finite differences; metric positions for the zoom).

This module is self-contained (torch only) on purpose: it is a second reference, independent of
the label transforms of ``mtlaug_lib.augment``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from itertools import product

import torch

from .common import ExerciseError, call_answer, correct

_ATOL = 1e-5  # float32 arithmetic in an answer (e.g. a float32 cos) stays far below this

# --------------------------------------------------------------------------- camera geometry


def _offsets(h: int, w: int, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel-centre offsets from the image centre in pixels, x right and y down (each H x W)."""
    y = torch.arange(h, dtype=dtype) + 0.5 - h / 2
    x = torch.arange(w, dtype=dtype) + 0.5 - w / 2
    return x.expand(h, w), y[:, None].expand(h, w)


def _plane_depth(
    normal: torch.Tensor, dist: float, f: float, ox: torch.Tensor, oy: torch.Tensor
) -> torch.Tensor:
    """Depth (z, metres) where the rays through pixel offsets ``ox``, ``oy`` (H x W) meet the
    plane {P : normal . P = -dist} (``normal`` 3, facing the camera; ``dist`` > 0 metres)."""
    ray_dot = normal[0] * ox / f + normal[1] * oy / f + normal[2]  # normal . (x/f, y/f, 1)
    return -dist / ray_dot


def _normals_from_depth(depth: torch.Tensor, f: float) -> torch.Tensor:
    """Unit normals (3 x (H-1) x (W-1)) recomputed from a depth map (H x W) by back-projecting
    every pixel and crossing the finite differences along x and y; oriented to face the camera
    (n . P < 0). Exact, up to rounding, on a plane."""
    h, w = depth.shape
    ox, oy = _offsets(h, w, depth.dtype)
    points = torch.stack([ox / f * depth, oy / f * depth, depth])  # 3 x H x W
    along_x = points[:, :-1, 1:] - points[:, :-1, :-1]
    along_y = points[:, 1:, :-1] - points[:, :-1, :-1]
    n = torch.linalg.cross(along_x, along_y, dim=0)
    n = n / n.norm(dim=0, keepdim=True)
    facing = torch.where((n * points[:, :-1, :-1]).sum(0) > 0, -1.0, 1.0).to(n.dtype)
    return n * facing


def _random_plane(g: torch.Generator) -> tuple[torch.Tensor, float]:
    """A plane facing the camera, tilted in x and y (its normal has no zero component), between
    about 1.5 and 3 metres away: (unit normal 3, distance)."""
    tilt = (0.2 + 0.3 * torch.rand(2, generator=g, dtype=torch.float64)) * torch.tensor(
        [1.0, -1.0], dtype=torch.float64)
    normal = torch.cat([tilt, torch.tensor([-1.0], dtype=torch.float64)])
    dist = 1.5 + 1.5 * float(torch.rand(1, generator=g, dtype=torch.float64))
    return normal / normal.norm(), dist


# --------------------------------------------------------------------------- inputs


def _random_normals(shape: tuple[int, ...], dtype: torch.dtype, g: torch.Generator) -> torch.Tensor:
    """Unit normals (shape ... x 3 x H x W) facing the camera (z < 0), with no component near 0
    (so that a forgotten sign always shows), about 1 pixel in 5 a hole."""
    n = torch.randn(shape, generator=g, dtype=torch.float64)
    n = n.sign() * (n.abs() + 0.1)
    n[..., 2, :, :] = -n[..., 2, :, :].abs()
    n = n / n.norm(dim=-3, keepdim=True)
    holes = torch.rand(shape[:-3] + shape[-2:], generator=g) < 0.2
    return (n * ~holes.unsqueeze(-3)).to(dtype)


def _holes_of(normals: torch.Tensor) -> torch.Tensor:
    """Where a normals map (... x 3 x H x W) has a hole: ... x H x W bool."""
    return (normals == 0).all(dim=-3)


def _with_holes(normals: torch.Tensor, holes: torch.Tensor) -> torch.Tensor:
    """A normals map of shape ... x 3 x H x W with (0, 0, 0) where ``holes`` (... x H x W)."""
    return normals * ~holes.unsqueeze(-3)


def _describe(x: object) -> str:
    """How a message names a returned value: its type, and its shape and dtype if a tensor."""
    if isinstance(x, torch.Tensor):
        return f"a tensor of shape {tuple(x.shape)} and dtype {x.dtype}"
    return f"a {type(x).__name__}"


def _answer(
    fn: Callable, name: str, where: str, value: torch.Tensor, *args: object, hint: str
) -> torch.Tensor:
    """Call a student's ``fn(value, *args)`` on a copy of ``value`` and check what the call
    may not do whatever the values: change its input in place, return something that is not a
    tensor of ``value``'s shape and dtype. Returns the answer, detached, on the CPU."""
    given = value.clone()
    if not callable(fn):
        call_answer(fn)  # raises the course's "expected a function" error
    # Called here, not through call_answer, whose message would print the whole input map.
    try:
        got = fn(given, *args)
    except NotImplementedError:  # an exercise left as given
        raise
    except Exception as err:  # a student's bug: a wrong answer, with the cause
        raise ExerciseError(f"{where}: {name} raised {type(err).__name__}: {err}. {hint}") from err
    if not torch.equal(given, value):
        raise ExerciseError(
            f"{where}: {name} changed its input in place (the caller's tensor is no longer the "
            "map it passed in). Hint: compute a new tensor (torch.flip, *, / and torch.where "
            "all return one) instead of writing into the argument (x[...] = ..., *=, /=, "
            ".div_(...))"
        )
    if not isinstance(got, torch.Tensor):
        raise ExerciseError(
            f"{where}: {name} returned {_describe(got)}; expected a tensor of shape "
            f"{tuple(value.shape)} (did you forget the return?)"
        )
    if got.shape != value.shape:
        raise ExerciseError(
            f"{where}: {name} returned a tensor of shape {tuple(got.shape)}; expected the "
            f"input's shape {tuple(value.shape)}. {hint}"
        )
    if got.dtype != value.dtype:
        raise ExerciseError(
            f"{where}: {name} returned dtype {got.dtype}; expected the input's dtype "
            f"{value.dtype} (build your constants with dtype=x.dtype, or let torch promote)"
        )
    return got.detach().cpu()


def _close(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor | None = None) -> bool:
    """Whether ``a`` and ``b`` agree (where ``mask``, broadcast over the channels, is True)."""
    a, b = a.to(torch.float64), b.to(torch.float64)
    if mask is not None:  # torch.where, not a product: nan * 0 is still nan
        a, b = torch.where(mask, a, 0.0), torch.where(mask, b, 0.0)
    return bool(torch.allclose(a, b, atol=_ATOL, rtol=1e-5))


def _components(signs: tuple[int, ...]) -> str:
    """'x', 'x and y', ... for the components whose sign is -1."""
    names = [c for c, s in zip("xyz", signs, strict=True) if s < 0]
    return " and ".join(names) if names else "none"


# --------------------------------------------------------------------------- exercise 06.1

_FLIP_HINT = ("Hint: mirror the map left-right, torch.flip(normals, dims=[-1]) (the last dim "
              "is the width, for a map and for a batch), then negate its x component "
              "normals[..., 0, :, :] (channel -3), and nothing else")

# how a student's answer may have moved the pixels, for the diagnosis
_MOVES: list[tuple[str | None, Callable[[torch.Tensor], torch.Tensor]]] = [
    (None, lambda n: n.flip(-1)),  # the right move
    ("you did not mirror the map: the pixels must move too", lambda n: n),
    ("you mirrored the map up-down (dim -2)", lambda n: n.flip(-2)),
    ("you turned the map by 180 degrees (mirrored both ways)", lambda n: n.flip(-2, -1)),
    ("you mirrored the map off by one column", lambda n: n.flip(-1).roll(1, -1)),
    ("you mirrored the map off by one column", lambda n: n.flip(-1).roll(-1, -1)),
]


def _signed(n: torch.Tensor, signs: tuple[int, ...]) -> torch.Tensor:
    return n * torch.tensor(signs, dtype=n.dtype).view(3, 1, 1)


def _expected_flip(n: torch.Tensor) -> torch.Tensor:
    return _signed(n.flip(-1), (-1, 1, 1))


def _holes_message(got: torch.Tensor) -> str:
    nan = " (you got nan there: don't renormalise, 0 / |0| is 0 / 0)" if got.isnan().any() else ""
    return f"the holes changed: a pixel without a normal must stay (0, 0, 0){nan}"


def _flip_mistake(got: torch.Tensor, n: torch.Tensor) -> str:
    """What a wrong ``flip_normals`` answer ``got`` did to ``n`` (both ... x 3 x H x W)."""
    expected = _expected_flip(n)
    if _close(got, expected, ~_holes_of(expected).unsqueeze(-3)):
        return _holes_message(got)
    for (move, moved), signs in product(_MOVES, product((1, -1), repeat=3)):
        candidate = _signed(moved(n), signs)
        if not _close(got, candidate, ~_holes_of(candidate).unsqueeze(-3)):
            continue
        problems = []
        if move is not None:
            problems.append(move + ("" if move.endswith("too") else
                                    "; a horizontal flip mirrors it left-right (the last dim): "
                                    "output column j takes input column W - 1 - j"))
        negated = _components(signs)
        if negated == "none":
            problems.append("you did not negate x: in the mirror image a surface that faced "
                            "right faces left, so its normal's x changes sign")
        elif negated == "x and y and z":
            problems.append("you negated all three components: that turns every surface away "
                            "from the camera (n . ray > 0); only x changes sign")
        elif negated != "x":
            problems.append(f"you negated {negated}; a left-right mirror changes the sign of x "
                            "only (y points down the image and z into the scene: neither "
                            "changes)")
        if not _close(got, candidate):
            problems.append(f"and {_holes_message(got)}")
        return "; ".join(problems)
    if n.dim() == 4:
        return ("your answer does not work on a batch B x 3 x H x W: count dims from the end "
                "(dims=[-1] for the width) and take x as normals[..., 0, :, :]; normals[0] is "
                "the first sample of a batch")
    return "some values are wrong (not a mirror with some signs changed)"


def _flip_cases() -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    """(what, normals, the expected flip) for each case; the expected answer of the last case
    comes from geometry alone."""
    g = torch.Generator().manual_seed(6)
    cases = []
    for shape, dtype in [((3, 4, 5), torch.float32), ((3, 5, 7), torch.float64),
                         ((3, 6, 3), torch.float32), ((2, 3, 4, 5), torch.float64),
                         ((3, 3, 4, 3), torch.float32)]:
        n = _random_normals(shape, dtype, g)
        what = f"a {'batch' if len(shape) == 4 else 'map'} {' x '.join(map(str, shape))} {dtype}"
        cases.append((what, n, _expected_flip(n)))
    # A tilted plane: its normal map, and the truth for the flip read from the mirrored depth map
    # (a left-right mirror of the pixels is the mirror X -> -X of the scene, since the principal
    # point is the image centre), not from the formula.
    h, w, f = 5, 7, 7.0
    normal, dist = _random_plane(g)
    depth = _plane_depth(normal, dist, f, *_offsets(h, w, torch.float64))
    truth = _normals_from_depth(depth.flip(-1), f).mean(dim=(1, 2))
    truth = truth / truth.norm()
    holes = torch.rand(h, w, generator=g) < 0.2
    n = _with_holes(normal.view(3, 1, 1).expand(3, h, w), holes)
    expected = _with_holes(truth.view(3, 1, 1).expand(3, h, w), holes.flip(-1))
    cases.append(("a tilted plane's normals 3 x 5 x 7 (truth from its mirrored depth map)",
                  n, expected))
    return cases


def check_flip_normals(flip_normals: Callable) -> None:
    """Exercise 06.1: ``flip_normals(normals)`` -> the normals map of the horizontally flipped
    image: ``normals`` 3 x H x W or B x 3 x H x W (float32 or float64, unit vectors in the camera
    frame, (0, 0, 0) for a hole); the answer has the same shape and dtype: the map mirrored
    left-right and the x component negated; holes stay (0, 0, 0); the input is not changed.

    Cases: random maps with holes of several sizes (odd widths, H != W), float32 and float64, two
    batches; and a tilted plane, whose expected normals are recomputed from its mirrored depth
    map (back-projection and finite differences), so the check rests on geometry, not only on
    the formula. Mistakes named: mirror only, negate x only, a sign on y or on all three
    components, an up-down mirror or a 180-degree turn, a mirror off by one column, changed
    holes (e.g. nan from renormalising), a map-only answer that breaks on a batch, changing the
    input in place, a wrong type, shape or dtype.
    """
    for what, n, expected in _flip_cases():
        where = f"for {what}"
        got = _answer(flip_normals, "flip_normals", where, n, hint=_FLIP_HINT)
        if not _close(got, expected):
            raise ExerciseError(f"{where}: {_flip_mistake(got, n)}. {_FLIP_HINT}.")
    correct("a horizontal flip mirrors the map and negates x; y, z and the holes stay.")


# --------------------------------------------------------------------------- exercise 06.2

_ZOOM_HINT = ("Hint: an object s times bigger on screen, with its size in metres unchanged, is s "
              "times closer: return depth / s, and 0 where depth is 0 (0 / s is 0 already)")


def _random_depth(shape: tuple[int, ...], dtype: torch.dtype, g: torch.Generator) -> torch.Tensor:
    """Depths between 0.5 and 8 metres (shape ... x H x W), about 1 pixel in 5 a hole (0)."""
    depth = 0.5 + 7.5 * torch.rand(shape, generator=g, dtype=torch.float64)
    return (depth * (torch.rand(shape, generator=g) >= 0.2)).to(dtype)


def _zoomed_plane(s: float, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, float]:
    """A tilted plane seen through a zoom by ``s`` about the image centre, rendered exactly (the
    zoomed pixel at offset o shows what the camera saw at o / s): (zoomed depth H x W, the
    scene's metric x and y of each pixel's point 2 x H x W, focal f); about 1 pixel in 5 a
    hole."""
    h, w, f = 6, 8, 8.0
    normal, dist = _random_plane(g)
    ox, oy = _offsets(h, w, torch.float64)
    depth = _plane_depth(normal, dist, f, ox / s, oy / s)
    lateral = torch.stack([ox / s / f * depth, oy / s / f * depth])  # the points, in metres
    return depth * (torch.rand(h, w, generator=g) >= 0.2), lateral, f


def _zoom_mistake(got: torch.Tensor, depth: torch.Tensor, s: float) -> str:
    """What a wrong ``zoom_depth`` answer ``got`` did to ``depth`` (same shapes)."""
    valid = depth != 0
    expected = depth / s
    if _close(got, expected, valid):
        nan = bool(got.isnan().any())
        return ("the holes changed: a pixel without depth must stay 0"
                + (" (you got nan there)" if nan else "")
                + "; dividing 0 by s gives 0 already: don't add, clamp or invert")
    d, y = depth[valid].to(torch.float64), got[valid].to(torch.float64)
    ratio = y / d
    holes = "" if _close(got, torch.zeros_like(got), ~valid) else "; and the holes changed"
    if torch.allclose(ratio, ratio.mean().expand_as(ratio), rtol=1e-4):
        c = float(ratio.mean())
        named = {s: "multiplied the depths by s", 1.0: "left the depths unchanged",
                 1 / s**2: "divided the depths by s**2"}
        what = next((v for k, v in named.items() if abs(c - k) < 1e-4 * k),
                    f"scaled the depths by {c:.4g}")
        # Back-projected with the same focal f, a pixel's lateral position in metres is
        # offset * depth / f: zoomed by s on screen and scaled by c in depth, it moves s * c times.
        k = s * c
        return (f"you {what} (expected 1/s = {1 / s:.4g}). Back-projected with the camera's "
                f"focal f, your depths put every point {k:.4g} times as far from the optical "
                f"axis as it is: the objects would be {k:.4g} times their size in metres, but a "
                "zoom changes only where we stand, not the world" + holes)
    added = y - d / s
    if torch.allclose(added, added.mean().expand_as(added), atol=1e-4):
        return (f"you divided by s, then added {float(added.mean()):.4g} m: every depth is off "
                "by that much, and the holes (0) become it; divide only")
    shift = y - d
    if torch.allclose(shift, shift.mean().expand_as(shift), atol=1e-4):
        return (f"you shifted the depths by {float(shift.mean()):.4g} m; a zoom scales every "
                "distance by the same factor" + holes)
    return "some depths are wrong (not a scaling of the input)" + holes


def check_zoom_depth(zoom_depth: Callable) -> None:
    """Exercise 06.2: ``zoom_depth(depth, s)`` -> the depth VALUES after a zoom by ``s`` about
    the image centre (the pixels were already resampled): ``depth`` H x W or B x H x W (float32
    or float64, metres, 0 for a hole), ``s`` a float > 0; the answer has the same shape and
    dtype: ``depth / s``, 0 where depth is 0; the input is not changed.

    Why depth / s (the monocular-depth convention, Eigen et al. 2014): zoomed by s, an object
    looks s times bigger; a network that reads depth from apparent size (f * size / depth, with
    the camera's fixed focal f) must see it s times closer, with its size in metres unchanged.
    The physical case checks exactly that: a tilted plane is rendered through a zoom (the
    zoomed pixel at offset o shows what the camera saw at o / s), and the student's depths,
    back-projected with the same focal f, must give back every point's metric x and y. What
    the convention does not keep: depth differences shrink by s too, so a tilted surface's
    orientation changes; the exact zoom is a longer focal length s * f with the depths unchanged.

    Cases: random depth maps with holes (odd widths, float32 and float64, a batch, zooms in and
    out: s = 2, 1.25, 1.5, 0.8) and the zoomed plane (s = 1.5). Mistakes named: depth * s,
    unchanged, depth / s**2, depth - s (any scale or shift), changed holes (a constant added,
    a clamp, nan), changing the input in place, a wrong type, shape or dtype.
    """
    g = torch.Generator().manual_seed(62)
    cases = [(f"a depth map {' x '.join(map(str, shape))} {dtype} zoomed by s = {s}",
              _random_depth(shape, dtype, g), s, None, None)
             for shape, dtype, s in [((5, 7), torch.float32, 2.0), ((4, 6), torch.float64, 1.25),
                                     ((2, 5, 3), torch.float32, 1.5), ((3, 4), torch.float64, 0.8)]]
    depth, lateral, f = _zoomed_plane(1.5, g)
    cases.append(("a tilted plane 6 x 8 float64 seen through a zoom by s = 1.5", depth, 1.5,
                  lateral, f))
    for what, depth, s, lateral, f in cases:
        where = f"for {what}"
        got = _answer(zoom_depth, "zoom_depth", where, depth, s, hint=_ZOOM_HINT)
        if lateral is not None:  # geometry: back-projected, the points keep their x and y
            ox, oy = _offsets(*depth.shape, torch.float64)
            back = torch.stack([ox / f * got, oy / f * got])
            right = (_close(back, lateral, depth != 0)
                     and _close(got, torch.zeros_like(got), depth == 0))
        else:
            right = _close(got, depth / s)
        if not right:
            raise ExerciseError(f"{where}: {_zoom_mistake(got, depth, s)}. {_ZOOM_HINT}.")
    correct("divided by s, the depths keep every object's size in metres: a zoom by s looks like "
            "coming s times closer.")


# --------------------------------------------------------------------------- exercise 06.3

_ROTATE_HINT = ("Hint: with t = the angle in radians (math.radians), counter-clockwise on screen "
                "with y pointing down is x' = x cos t + y sin t, y' = -x sin t + y cos t; z stays")


def _rotated(n: torch.Tensor, degrees: float, plane: tuple[int, int] = (0, 1)) -> torch.Tensor:
    """``n`` (... x 3 x H x W) with components ``plane`` turned by ``degrees`` the way an image
    turned counter-clockwise on screen turns x and y (y down): (x, y) -> (x c + y s, -x s + y c).
    """
    t = math.radians(degrees)
    c, s = math.cos(t), math.sin(t)
    a, b = n[..., plane[0], :, :], n[..., plane[1], :, :]
    out = n.clone()
    out[..., plane[0], :, :] = a * c + b * s
    out[..., plane[1], :, :] = -a * s + b * c
    return out


def _rotated_plane(degrees: float, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """A tilted plane's normal map (3 x 6 x 6, holes) and the truth for an image rotation by
    ``degrees`` counter-clockwise on screen, recomputed from the rotated view's depth map."""
    h = w = 6
    f = 6.0
    normal, dist = _random_plane(g)
    ox, oy = _offsets(h, w, torch.float64)
    # Turned counter-clockwise on screen, the content at offset o moves to R o; so the turned
    # pixel at o' shows what the camera saw at R^-1 o'. With y down, a turn by t counter-
    # clockwise on screen is a turn by -t in (x, y) coordinates: R^-1 o' = turn of o' by +t.
    t = math.radians(degrees)
    sx, sy = ox * math.cos(t) - oy * math.sin(t), ox * math.sin(t) + oy * math.cos(t)
    ray_dot = normal[0] * sx / f + normal[1] * sy / f + normal[2]
    depth = -dist / ray_dot  # z is unchanged by a turn about the optical axis
    truth = _normals_from_depth(depth, f).mean(dim=(1, 2))
    holes = torch.rand(h, w, generator=g) < 0.2
    n = _with_holes(normal.view(3, 1, 1).expand(3, h, w), holes)
    return n, _with_holes((truth / truth.norm()).view(3, 1, 1).expand(3, h, w), holes)


def _rotate_mistake(got: torch.Tensor, n: torch.Tensor, degrees: float) -> str:
    """What a wrong ``rotate_normals`` answer ``got`` did to ``n`` (same shapes)."""
    turned_z = "turned {} instead of x and y: z is the optical axis, the turn is about it"
    candidates = [
        ("turned x and y clockwise on screen (the y-up formula: with y pointing down, a "
         "counter-clockwise turn on screen is x' = x cos + y sin)", _rotated(n, -degrees)),
        ("used the angle in degrees as radians (cos and sin take radians: math.radians)",
         _rotated(n, math.degrees(degrees))),
        ("used the angle in degrees as radians, and turned the wrong way",
         _rotated(n, -math.degrees(degrees))),
        *((turned_z.format(f"{'xyz'[a]} and z"), _rotated(n, sense * degrees, (a, 2)))
          for a in (0, 1) for sense in (1, -1)),
        ("left the normals unchanged", n),
    ]
    for what, candidate in candidates:
        if _close(got, candidate):
            return f"you {what}"
    expected = _rotated(n, degrees)
    if _close(got, expected, ~_holes_of(expected).unsqueeze(-3)):
        return f"{_holes_message(got)}; a turn keeps unit length: no need to renormalise"
    if not _close(got[..., 2, :, :], n[..., 2, :, :]):
        return ("z changed: a turn in the image plane is a turn about the optical axis z, so z "
                "stays and only x and y mix")
    return "x and y are wrong (not the turn by that angle)"


def check_rotate_normals(rotate_normals: Callable) -> None:
    """Exercise 06.3: ``rotate_normals(normals, degrees)`` -> the normals VALUES after the
    image is turned by ``degrees`` counter-clockwise on screen about its centre (as
    torchvision's ``rotate``; the pixels were already resampled): ``normals`` 3 x H x W or
    B x 3 x H x W; the answer has the same shape and dtype. With y pointing DOWN, that turn is
    x' = x cos t + y sin t, y' = -x sin t + y cos t (t in radians); z is unchanged; holes stay
    (0, 0, 0); the input is not changed.

    Cases: random maps with holes (odd widths, float32 and float64, a batch) at 30, -45 and 100
    degrees, and a tilted plane turned by 30 degrees whose truth is recomputed from the turned
    view's depth map (ray casting, back-projection, finite differences). Mistakes named: the
    opposite sense (the y-up formula), degrees used as radians, turning z with x or y,
    unchanged values, changing the input in place, a wrong type, shape or dtype.
    """
    g = torch.Generator().manual_seed(63)
    cases = []
    for shape, dtype, degrees in [((3, 4, 5), torch.float32, 30.0),
                                  ((3, 5, 7), torch.float64, -45.0),
                                  ((2, 3, 3, 5), torch.float32, 100.0)]:
        n = _random_normals(shape, dtype, g)
        what = f"a {'batch' if len(shape) == 4 else 'map'} {' x '.join(map(str, shape))} {dtype}"
        cases.append((f"{what} turned by {degrees:g} degrees", n, degrees, _rotated(n, degrees)))
    n, truth = _rotated_plane(30.0, g)
    cases.append(("a tilted plane's normals 3 x 6 x 6 turned by 30 degrees (truth from the "
                  "turned view's depth map)", n, 30.0, truth))
    for what, n, degrees, expected in cases:
        where = f"for {what}"
        got = _answer(rotate_normals, "rotate_normals", where, n, degrees, hint=_ROTATE_HINT)
        if not _close(got, expected):
            raise ExerciseError(f"{where}: {_rotate_mistake(got, n, degrees)}. {_ROTATE_HINT}.")
    correct("an in-plane turn mixes x and y (counter-clockwise on screen with y down is "
            "x cos + y sin) and keeps z.")
