"""Scenes: small procedurally rendered indoor-like scenes with exact dense labels, no download.

Each scene is a box-shaped room (a floor, four walls and a ceiling, of varied size) with a few
objects standing on the floor (spheres, boxes turned about the vertical, vertical cylinders),
seen by a pinhole camera of varied position, height, pitch (looking down) and yaw. Rays are
cast through every pixel's centre, all scenes of a chunk at once, in float32 torch on the CPU;
every label is exact from the geometry:

- ``image``: float32, 3 x H x W in [0, 1]: Lambertian shading from a point light plus ambient
  light, a solid checker texture on the floor (and on some walls and objects) of varied tile
  size and contrast, and uniform pixel noise of varied strength. Every surface's colour
  (floor, walls, objects) is drawn from the SAME distribution, so colour does not decide the
  class; no shadows;
- ``semantic``: int64, H x W, classes ``SCENE_CLASSES``: 0 floor, 1 wall (the walls and the
  ceiling), 2 sphere, 3 box, 4 cylinder. The room is closed, so every pixel has a class;
- ``depth``: float32, H x W: the hit point's z in the camera frame, in metres (> 0 everywhere);
- ``normals``: float32, 3 x H x W: the hit surface's unit normal in the camera frame, facing
  the camera.

Conventions (shared by all dense data of the course; ``geometry`` has the camera): camera frame
x right, y down, z forward; focal length ``focal * image_size`` pixels; principal point at the
image centre. The world frame has the floor at y = 0 with y up, the room spanning
x in [-width/2, width/2] and z in [0, depth]; the camera stands 0.5 to 1.5 m from the wall at
z = 0, looking towards z = depth.

Storage is compact (uint8 image and semantic, float16 depth and normals: 12 bytes per pixel,
about 26 MiB per 1,000 samples at 48 x 48); ``__getitem__`` and ``batch`` return float32 and
int64. Sample i depends only on (seed, split, i): its scene is one fixed-width row of draws from
the split's random stream and its noise a hash of (seed, split, i, pixel), so a smaller set is
a prefix of a larger one, and train and test never share draws. Generating 10,000 samples at
48 x 48 takes a few seconds on one CPU thread (``benchmarks/bench_scenes.py``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, fields

import torch
from torch.utils.data import Dataset

from ..core.checks import check_choice, check_int, check_positive_int, check_seed
from ..core.task_kinds import IGNORE_INDEX
from ..core.tasks import DEPTH, NORMALS, SEGMENTATION, Task
from .geometry import ray_directions
from .loaders import Sample, TensorLoader, tensors_checksum

SCENE_CLASSES = ("floor", "wall", "sphere", "box", "cylinder")
FLOOR, WALL, SPHERE, BOX, CYLINDER = range(len(SCENE_CLASSES))
OBJECT_KINDS = (SPHERE, BOX, CYLINDER)
SPLITS = ("train", "test")
DEFAULT_SIZES = {"train": 10_000, "test": 2_000}
DEFAULT_IMAGE_SIZE = 48
MAX_OBJECTS = 6
IGNORE_STORED = 255  # IGNORE_INDEX in the uint8 storage (the renderer never writes it)

ROOM_COLUMNS = ("width", "depth", "height", "tile")  # tile: the checker's cell size
CAMERA_COLUMNS = ("x", "z", "height", "pitch", "yaw")  # metres; degrees (pitch > 0 looks down)
LIGHT_COLUMNS = ("x", "y", "z", "ambient", "noise")
OBJECT_COLUMNS = ("kind", "x", "z", "half_x", "half_z", "height", "angle")
"""One row per object slot: ``kind`` its class (2 sphere, 3 box, 4 cylinder; -1 an empty
slot), ``x``, ``z`` its centre on the floor, ``half_x``/``half_z`` its half-extents (a box's,
before its turn by ``angle`` degrees about the vertical; a sphere's or cylinder's radius twice),
``height`` its top above the floor."""
SURFACE_COLUMNS = ("red", "green", "blue", "contrast")
"""One row per surface group (the floor, the walls and ceiling, then each object slot): its
colour (albedo, 0-1) and its checker's contrast (0: no texture)."""

CAMERA_WALL_DISTANCE = (0.5, 1.5)  # metres between the camera and the wall behind it
CAMERA_SIDE_MARGIN = 1.0  # metres at least between the camera and a side wall
SPREAD = 1.1  # objects are spread over this multiple of the horizontal field of view
HUE_SATURATION_VALUE = ((0.0, 1.0), (0.15, 0.75), (0.35, 0.95))  # every surface's colour


# --------------------------------------------------------------------------------------------
# Settings


@dataclass(frozen=True)
class SceneSettings:
    """What varies between scenes, as (low, high) ranges drawn uniformly (lengths in metres,
    angles in degrees), and the data set's focal length.

    Attributes:
        focal: focal length as a multiple of the image side (fixed per data set; 1.0 gives a
            field of view of 53 degrees).
        room_width, room_depth, room_height: the room's size.
        camera_height: the camera's height above the floor.
        camera_pitch: how far the camera looks down from the horizontal.
        camera_yaw: how far it turns from the room's axis (positive to the right).
        objects: how many objects stand in a scene (whole numbers, both ends included).
        object_distance: how far ahead of the camera (on the floor) each object stands.
        object_size: an object's footprint radius, before the cap that keeps the objects of a
            scene apart (each object stays in its own wedge of the view).
        light_height: the point light's height (its x and z are anywhere in the room).
        ambient: the ambient share of the light (the rest is Lambertian from the point light).
        noise: the standard deviation of the pixel noise (uniform noise, per channel).
        texture_tile: the checker's tile size.
        texture_contrast: how much darker the checker's dark tiles are (0 none, 1 black).
        texture_probability: the chance that a wall or an object is textured too (the floor
            always is).
    """

    focal: float = 1.0
    room_width: tuple[float, float] = (4.0, 7.0)
    room_depth: tuple[float, float] = (5.0, 8.0)
    room_height: tuple[float, float] = (2.6, 3.2)
    camera_height: tuple[float, float] = (1.0, 1.8)
    camera_pitch: tuple[float, float] = (10.0, 35.0)
    camera_yaw: tuple[float, float] = (-30.0, 30.0)
    objects: tuple[int, int] = (2, 4)
    object_distance: tuple[float, float] = (1.5, 4.0)
    object_size: tuple[float, float] = (0.25, 0.6)
    light_height: tuple[float, float] = (1.0, 2.5)
    ambient: tuple[float, float] = (0.15, 0.45)
    noise: tuple[float, float] = (0.0, 0.03)
    texture_tile: tuple[float, float] = (0.25, 1.0)
    texture_contrast: tuple[float, float] = (0.15, 0.5)
    texture_probability: float = 0.3

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            lo, hi = _BOUNDS[f.name]
            if f.name in ("focal", "texture_probability"):
                ok = _is_number(value) and lo <= value <= hi
                if not ok:
                    raise ValueError(
                        f"scene setting {f.name!r} is {value!r}, expected a number in "
                        f"[{lo:g}, {hi:g}]"
                    )
                object.__setattr__(self, f.name, float(value))
                continue
            integral = f.name == "objects"
            kind = "whole numbers" if integral else "numbers"
            ok = (isinstance(value, (tuple, list)) and len(value) == 2
                  and all(_is_number(v) and (not integral or float(v).is_integer())
                          for v in value)
                  and lo <= value[0] <= value[1] <= hi)
            if not ok:
                raise ValueError(
                    f"scene setting {f.name!r} is {value!r}, expected a range (low, high) of "
                    f"two {kind} with {lo:g} <= low <= high <= {hi:g}"
                )
            cast = int if integral else float
            object.__setattr__(self, f.name, (cast(value[0]), cast(value[1])))
        for name, margin in (("camera_height", 0.2), ("light_height", 0.05)):
            if getattr(self, name)[1] + margin > self.room_height[0]:
                raise ValueError(
                    f"scene setting {name!r} is {getattr(self, name)!r}, expected its high end "
                    f"at least {margin:g} m below the lowest room height ({self.room_height[0]:g},"
                    " setting 'room_height')"
                )


_BOUNDS: dict[str, tuple[float, float]] = {
    "focal": (0.3, 5.0),
    "room_width": (2 * CAMERA_SIDE_MARGIN + 1.0, 50.0),
    "room_depth": (4.0, 50.0),
    "room_height": (1.0, 20.0),
    "camera_height": (0.2, 19.0),
    "camera_pitch": (-60.0, 80.0),
    "camera_yaw": (-45.0, 45.0),
    "objects": (0, MAX_OBJECTS),
    "object_distance": (1.0, 20.0),
    "object_size": (0.05, 2.0),
    "light_height": (0.1, 19.0),
    "ambient": (0.0, 1.0),
    "noise": (0.0, 0.2),
    "texture_tile": (0.05, 10.0),
    "texture_contrast": (0.0, 1.0),
    "texture_probability": (0.0, 1.0),
}


def _is_number(value: object) -> bool:
    return (not isinstance(value, bool) and isinstance(value, (int, float))
            and math.isfinite(value))


def scene_settings(**settings: object) -> SceneSettings:
    """``SceneSettings`` with the given fields changed; an unknown name is a ``ValueError``
    that lists the known ones (as is a value out of range)."""
    known = tuple(f.name for f in fields(SceneSettings))
    for name in settings:
        if name not in known:
            raise ValueError(f"unknown scene setting {name!r}, expected one of {known}")
    return SceneSettings(**settings)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# Drawing the scenes


class _Draws:
    """Hands out the columns of one row of uniform draws per scene, in a fixed order."""

    def __init__(self, draws: torch.Tensor) -> None:
        self.draws, self.used = draws, 0

    def __call__(self, low: float | torch.Tensor = 0.0, high: float | torch.Tensor = 1.0,
                 shape: tuple[int, ...] = ()) -> torch.Tensor:
        width = math.prod(shape)
        u = self.draws[:, self.used:self.used + width].reshape(len(self.draws), *shape)
        self.used += width
        return low + (high - low) * u


def _columns_per_scene(max_objects: int) -> int:
    """Room 4, camera 5, light 5, object count 1; 5 per surface group; 7 per object slot."""
    return 15 + 5 * (2 + max_objects) + 7 * max_objects


def draw_scenes(size: int, generator: torch.Generator, settings: SceneSettings
                ) -> dict[str, torch.Tensor]:
    """Draw ``size`` scenes' parameters: one row of float64 uniform draws per scene.

    Every scene takes the same number of draws, in row order, so scene i is the same whatever
    ``size`` is (a smaller set is a prefix of a larger one).

    Returns:
        float32 tensors: ``room`` N x 4 (``ROOM_COLUMNS``), ``camera`` N x 5
        (``CAMERA_COLUMNS``), ``light`` N x 5 (``LIGHT_COLUMNS``), ``objects`` N x K x 7
        (``OBJECT_COLUMNS``, K = the most objects the settings allow) and ``surfaces``
        N x (2 + K) x 4 (``SURFACE_COLUMNS``: the floor, the walls, then each object slot).
    """
    s, k_max = settings, settings.objects[1]
    draw = _Draws(torch.rand(size, _columns_per_scene(k_max), generator=generator,
                             dtype=torch.float64))
    width, depth, height = draw(*s.room_width), draw(*s.room_depth), draw(*s.room_height)
    tile = draw(*s.texture_tile)
    cam_x = draw(-1, 1) * (width / 2 - CAMERA_SIDE_MARGIN)
    cam_z = draw(*CAMERA_WALL_DISTANCE)
    cam_h = draw(*s.camera_height)
    pitch, yaw = draw(*s.camera_pitch), draw(*s.camera_yaw)
    light_x = draw(-0.95, 0.95) * width / 2
    light_z = draw(0.05, 0.95) * depth
    light_y = draw(*s.light_height)
    ambient, noise = draw(*s.ambient), draw(*s.noise)
    lo, hi = s.objects
    count = (lo + draw() * (hi - lo + 1)).floor().clamp_max(hi)  # N, whole numbers

    # Slot k of a scene with n objects stands in wedge k of n across the view (jittered), at a
    # random distance, its footprint no wider than what is left of its wedge: no two objects
    # overlap (unless the walls push them together, which is rare).
    spread = SPREAD * 2 * math.atan(0.5 / s.focal)  # radians
    wedge = spread / count.clamp_min(1)[:, None]  # N x 1
    slot = torch.arange(k_max, dtype=torch.float64)[None, :]
    kind_draw, jitter = draw(shape=(k_max,)), draw(-0.15, 0.15, shape=(k_max,))
    distance, radius = draw(*s.object_distance, (k_max,)), draw(*s.object_size, (k_max,))
    aspect = draw(math.radians(25), math.radians(65), (k_max,))
    rise, angle = draw(shape=(k_max,)), draw(0, 180, (k_max,))
    bearing = torch.deg2rad(yaw)[:, None] + (slot + 0.5 + jitter) * wedge - spread / 2
    radius = torch.minimum(radius, distance * torch.sin((0.5 - jitter.abs()) * wedge))
    kind = torch.tensor(OBJECT_KINDS, dtype=torch.float64)[(kind_draw * 3).long().clamp_max(2)]
    kind = torch.where(slot < count[:, None], kind, -1.0)
    box = kind == BOX
    half_x = torch.where(box, radius * torch.cos(aspect), radius)
    half_z = torch.where(box, radius * torch.sin(aspect), radius)
    top = torch.where(kind == SPHERE, 2 * radius, torch.where(box, 0.3 + 0.9 * rise,
                                                                0.4 + 1.0 * rise))
    margin = radius + 0.05  # inside the room
    half_width = (width / 2)[:, None]
    x = (cam_x[:, None] + distance * torch.sin(bearing)).clamp(-half_width + margin,
                                                               half_width - margin)
    z = (cam_z[:, None] + distance * torch.cos(bearing)).clamp(margin, depth[:, None] - margin)
    objects = torch.stack([kind, x, z, half_x, half_z, top, angle], dim=-1)

    # Every surface group's colour from one distribution (uniform hue, saturation, value), so
    # no class owns a colour; the floor always has the checker, the others by chance.
    groups = 2 + k_max
    (h_lo, h_hi), (s_lo, s_hi), (v_lo, v_hi) = HUE_SATURATION_VALUE
    hue, sat, val = draw(h_lo, h_hi, (groups,)), draw(s_lo, s_hi, (groups,)), draw(
        v_lo, v_hi, (groups,))
    contrast, chance = draw(*s.texture_contrast, (groups,)), draw(shape=(groups,))
    textured = chance < s.texture_probability
    textured[:, 0] = True
    surfaces = torch.cat([_hsv_to_rgb(hue, sat, val),
                          torch.where(textured, contrast, 0.0)[..., None]], dim=-1)
    assert draw.used == draw.draws.shape[1], "every scene takes the same number of draws"
    return {
        "room": torch.stack([width, depth, height, tile], dim=-1).float(),
        "camera": torch.stack([cam_x, cam_z, cam_h, pitch, yaw], dim=-1).float(),
        "light": torch.stack([light_x, light_y, light_z, ambient, noise], dim=-1).float(),
        "objects": objects.float(),
        "surfaces": surfaces.float(),
    }


def _hsv_to_rgb(h: torch.Tensor, s: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Colours from hue, saturation and value (each ..., in [0, 1]): ... x 3."""
    k = (torch.tensor([5.0, 3.0, 1.0], dtype=h.dtype) + h[..., None] * 6) % 6
    return v[..., None] - (v * s)[..., None] * torch.clamp(torch.minimum(k, 4 - k), 0, 1)


def camera_to_world(pitch: torch.Tensor, yaw: torch.Tensor) -> torch.Tensor:
    """The matrices that turn camera-frame vectors into world-frame vectors: float64 N x 3 x 3.

    Args:
        pitch, yaw: N, degrees; the camera looks down by ``pitch`` and turns right by ``yaw``.

    It is turn(yaw) @ tilt(pitch) @ diag(1, -1, 1): the camera's y points down and the world's
    up, so the matrix is orthogonal with determinant -1 (a mirror); its transpose is its
    inverse, which is all the renderer needs. Written out (no matrix product), so the same
    float64 products run on every machine.
    """
    p, y = torch.deg2rad(pitch.double()), torch.deg2rad(yaw.double())
    cp, sp, cy, sy = torch.cos(p), torch.sin(p), torch.cos(y), torch.sin(y)
    zero = torch.zeros_like(p)
    return torch.stack([cy, -sy * sp, sy * cp,
                        zero, -cp, -sp,
                        -sy, -cy * sp, cy * cp], dim=-1).view(-1, 3, 3)


def _to_camera(rotation: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """R^T v for world vectors v (N x ... x 3) and R (N x 3 x 3), written out elementwise."""
    r = rotation.view(rotation.shape[0], *([1] * (v.ndim - 2)), 3, 3)
    return torch.stack([v[..., 0] * r[..., 0, i] + v[..., 1] * r[..., 1, i]
                        + v[..., 2] * r[..., 2, i] for i in range(3)], dim=-1)


# --------------------------------------------------------------------------------------------
# The surfaces: what a ray that hits each one shows
#
# Each scene has 6 room surfaces (codes 0 floor, 1 ceiling, 2 and 3 the walls at x = -w/2 and
# x = w/2, 4 and 5 the walls at z = 0 and z = depth) and 8 codes per object slot k from
# 6 + 8k: a box's faces 2a + s (axis a of x, y, z in the box's frame, s = 1 for the face at the
# low end, whose normal is -axis), a cylinder's side (0) and top (1), a sphere (0). In the
# camera frame every normal is n = s p - w (p . up) up + b at the hit point p: s = w = 0 for a
# plane (n = b), s = 1/r and w = 0 for a sphere (n = (p - c) / r), s = w = 1/r for a cylinder's
# side (the horizontal part of (p - c) / r); ``up`` is the world's up in the camera frame.

CODES_PER_OBJECT = 8
TABLE_ROWS = ("s", "w", "b_x", "b_y", "b_z", "red", "green", "blue", "contrast", "class")
_ROOM_NORMALS = ((1, 1.0), (1, -1.0), (0, 1.0), (0, -1.0), (2, 1.0), (2, -1.0))  # axis, sign


def _scene_frames(params: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Per-scene constants of the renderer, derived once from the parameters.

    Returns ``rotation`` (float64 N x 3 x 3, camera to world), ``origin`` (float64 N x 3, the
    camera in the world), and float32: ``up`` N x 3 (the world's up in the camera frame),
    ``texture`` N x 3 x 4 (the checker's cell coordinates as an affine map of the camera-frame
    point), ``light`` N x 5 (the light in the camera frame, the ambient and the diffuse share)
    and ``noise`` N x 2 (the pixel noise's scale and offset on 10-bit random numbers, in 8-bit
    units, with the 0.5 that rounds).
    """
    room, cam, light = params["room"].double(), params["camera"].double(), params[
        "light"].double()
    rotation = camera_to_world(cam[:, 3], cam[:, 4])
    origin = torch.stack([cam[:, 0], cam[:, 2], cam[:, 1]], -1)
    # The checker is solid: cell (floor(x / tx + 0.5 + ...), ...) in the world. Each axis's
    # tile is the drawn tile snapped so the room spans whole cells and every room surface
    # lies mid-cell (no flicker from rounding there): x walls at +-w/2, floor 0, ceiling h.
    extent = torch.stack([room[:, 0], room[:, 2], room[:, 1]], -1)  # x, y, z
    cells = (extent / room[:, 3:4]).round().clamp_min(1)
    tile = extent / cells
    phase = torch.stack([cells[:, 0] / 2 + 0.5, torch.full_like(tile[:, 0], 0.5),
                         torch.full_like(tile[:, 0], 0.5)], -1)
    # cell_i = (o_i + (R p)_i) / tile_i + phase_i  =  c_i + sum_j M_ij p_j
    matrix = rotation / tile[:, :, None]
    offset = origin / tile + phase
    to_light = _to_camera(rotation, light[:, :3] - origin)
    ambient = light[:, 3]
    spread = light[:, 4] * math.sqrt(3) * 255  # uniform noise of standard deviation `noise`
    return {
        "rotation": rotation,
        "origin": origin,
        "up": rotation[:, 1, :].float(),  # R^T e_y is R's second row
        "texture": torch.cat([matrix, offset[..., None]], -1).float(),
        "light": torch.stack([*to_light.unbind(-1), ambient, 1 - ambient], -1).float(),
        "noise": torch.stack([2 * spread / 1024, 0.5 + spread * (1 / 1024 - 1)], -1).float(),
    }


def _surface_table(params: dict[str, torch.Tensor], frames: dict[str, torch.Tensor]
                   ) -> torch.Tensor:
    """Per scene and surface code, ``TABLE_ROWS``: float32 10 x N x S (S = 6 + 8 K).

    ``s``, ``w`` and ``b`` give the normal at a hit point (see above), then the colour in
    8-bit units, the checker's contrast and the class.
    """
    rotation, origin, up = frames["rotation"], frames["origin"], frames["up"].double()
    n, k_max = params["objects"].shape[:2]
    kind, x, z, hx, _, top, angle = params["objects"].double().unbind(-1)  # N x K each
    codes = 6 + CODES_PER_OBJECT * k_max
    s = torch.zeros(n, codes, dtype=torch.float64)
    w = torch.zeros(n, codes, dtype=torch.float64)
    b = torch.zeros(n, codes, 3, dtype=torch.float64)
    group = torch.zeros(codes, dtype=torch.long)  # each code's row of ``surfaces``
    cls = torch.zeros(n, codes, dtype=torch.float64)
    for code, (axis, sign) in enumerate(_ROOM_NORMALS):  # the room's inside faces
        b[:, code] = sign * rotation[:, axis, :]  # R^T (sign e_axis)
        group[code] = 0 if code == 0 else 1
        cls[:, code] = FLOOR if code == 0 else WALL

    ang = torch.deg2rad(angle)
    cos, sin, zero = torch.cos(ang), torch.sin(ang), torch.zeros_like(ang)
    # A box's axes in the world (x' = (cos, 0, -sin), y' = y, z' = (sin, 0, cos)), to camera.
    box_axes = [_to_camera(rotation, torch.stack(v, -1)) for v in (
        (cos, zero, -sin), (zero, zero + 1, zero), (sin, zero, cos))]  # each N x K x 3
    foot = _to_camera(rotation, torch.stack([x, zero, z], -1) - origin[:, None])  # centre
    radius = hx.clamp_min(1e-6)
    centre = foot + radius[..., None] * up[:, None]  # a sphere's centre, at height r
    axial = foot - (foot * up[:, None]).sum(-1, keepdim=True) * up[:, None]  # foot off axis
    for k in range(k_max):
        base = 6 + CODES_PER_OBJECT * k
        group[base:base + CODES_PER_OBJECT] = 2 + k
        cls[:, base:base + CODES_PER_OBJECT] = kind[:, k:k + 1].clamp_min(0)
        is_box = (kind[:, k] == BOX)[:, None]
        for face in range(6):
            normal = (1.0 - 2.0 * (face % 2)) * box_axes[face // 2][:, k]
            b[:, base + face] = torch.where(is_box, normal, 0.0)
        is_sphere, is_cylinder = kind[:, k] == SPHERE, kind[:, k] == CYLINDER
        inv_r = 1 / radius[:, k]
        s[:, base] = torch.where(is_sphere | is_cylinder, inv_r, 0.0)
        w[:, base] = torch.where(is_cylinder, inv_r, 0.0)
        b[:, base] = torch.where(is_sphere[:, None], -centre[:, k] * inv_r[:, None], b[:, base])
        b[:, base] = torch.where(is_cylinder[:, None], -axial[:, k] * inv_r[:, None],
                                 b[:, base])
        b[:, base + 1] = torch.where(is_cylinder[:, None], up, b[:, base + 1])  # the top
    surf = params["surfaces"].double()[:, group]  # N x S x 4
    table = torch.cat([s[..., None], w[..., None], b, surf[..., :3] * 255, surf[..., 3:4],
                       cls[..., None]], dim=-1)
    return table.float().permute(2, 0, 1).contiguous()


# --------------------------------------------------------------------------------------------
# Ray casting: all rays of a chunk of scenes at once; t is the distance along the ray in units
# of the ray's length, and as every ray's z is 1 in the camera frame, t is the hit's depth.


def _room_hits(d: list[torch.Tensor], origin: torch.Tensor, room: torch.Tensor
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """Where each ray (n x P) leaves the room: t and the room surface code (uint8, 0-5)."""
    half = room[:, 0] / 2
    bounds = ((1, -origin[:, 1], room[:, 2] - origin[:, 1]),  # y: floor, ceiling
              (0, -half - origin[:, 0], half - origin[:, 0]),  # x: the two side walls
              (2, -origin[:, 2], room[:, 1] - origin[:, 2]))  # z: behind, ahead
    best = code = None
    for axis, (world, low, high) in enumerate(bounds):
        # The camera is strictly inside, so low < 0 < high; choosing by the sign bit sends a
        # ray along a wall (+0 or -0) to +inf rather than -inf.
        back = torch.signbit(d[world])
        t = torch.where(back, low.float()[:, None], high.float()[:, None]) / d[world]
        c = (2 * axis + 1) - back.to(torch.uint8)  # 2 axis + (ray going up the axis)
        if best is None:
            best, code = t, c
        else:
            closer = t < best
            best, code = torch.where(closer, t, best), torch.where(closer, c, code)
    return best, code


def _sphere_hits(d: list[torch.Tensor], ray_len2: torch.Tensor, origin: torch.Tensor,
                 obj: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each ray's (m x P) first hit with its scene's sphere (obj: m x 7): t and code 0."""
    r = obj[:, 3]
    oc = origin - torch.stack([obj[:, 1], r, obj[:, 2]], -1)  # camera minus centre
    cc = ((oc * oc).sum(-1) - r * r).float()[:, None]
    ocf = oc.float()
    b = d[0] * ocf[:, 0:1] + d[1] * ocf[:, 1:2] + d[2] * ocf[:, 2:3]
    disc = b * b - ray_len2 * cc
    t = (-b - disc.clamp_min(0).sqrt()) / ray_len2
    hit = (disc >= 0) & (b < 0)  # the camera is outside: a hit ahead has b < 0
    return torch.where(hit, t, torch.inf), torch.zeros_like(t, dtype=torch.uint8)


def _cylinder_hits(d: list[torch.Tensor], origin: torch.Tensor, obj: torch.Tensor
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """First hit with a vertical cylinder on the floor: t and code (0 side, 1 top)."""
    r, top = obj[:, 3], obj[:, 5]
    ocx, ocz = origin[:, 0] - obj[:, 1], origin[:, 2] - obj[:, 2]
    cc = (ocx * ocx + ocz * ocz - r * r).float()[:, None]
    ocx, ocz = ocx.float()[:, None], ocz.float()[:, None]
    oy, top = origin[:, 1].float()[:, None], top.float()[:, None]
    a = d[0] * d[0] + d[2] * d[2]
    b = d[0] * ocx + d[2] * ocz
    disc = b * b - a * cc
    t_side = (-b - disc.clamp_min(0).sqrt()) / a
    y = oy + t_side * d[1]
    side = (disc >= 0) & (b < 0) & (y >= 0) & (y <= top)
    t_top = (top - oy) / d[1]  # the top is seen only from above it
    cx, cz = ocx + t_top * d[0], ocz + t_top * d[2]
    cap = (d[1] < 0) & (oy > top) & (cx * cx + cz * cz <= (r * r).float()[:, None])
    t = torch.where(side, t_side, torch.where(cap, t_top, torch.inf))
    return t, (~side).to(torch.uint8)


def _box_hits(d: list[torch.Tensor], origin: torch.Tensor, obj: torch.Tensor
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """First hit with a box on the floor turned about the vertical (the slab method): t and
    the entered face's code 2a + s (axis a in the box's frame; s = 1 at its low end)."""
    ang = torch.deg2rad(obj[:, 6])
    cos, sin = torch.cos(ang), torch.sin(ang)
    ox, oz = origin[:, 0] - obj[:, 1], origin[:, 2] - obj[:, 2]
    start = (cos * ox - sin * oz, origin[:, 1], sin * ox + cos * oz)  # camera, box frame
    cf, sf = cos.float()[:, None], sin.float()[:, None]
    local = (cf * d[0] - sf * d[2], d[1], sf * d[0] + cf * d[2])
    low = (-obj[:, 3], torch.zeros_like(ang), -obj[:, 4])
    high = (obj[:, 3], obj[:, 5], obj[:, 4])
    t_near = t_far = axis = entered_low = None
    for a in range(3):
        t_low = (low[a] - start[a]).float()[:, None] / local[a]
        t_high = (high[a] - start[a]).float()[:, None] / local[a]
        near, far, up = torch.minimum(t_low, t_high), torch.maximum(t_low, t_high), local[a] > 0
        if t_near is None:
            t_near, t_far, entered_low = near, far, up
            axis = torch.zeros_like(up, dtype=torch.uint8)
        else:
            later = near > t_near
            t_near = torch.where(later, near, t_near)
            axis = torch.where(later, a, axis)
            entered_low = torch.where(later, up, entered_low)
            t_far = torch.minimum(t_far, far)
    hit = (t_near <= t_far) & (t_near > 0)
    return torch.where(hit, t_near, torch.inf), 2 * axis + entered_low.to(torch.uint8)


_HIT_FUNCTIONS = {BOX: _box_hits, CYLINDER: _cylinder_hits}
_MASK32 = 0xFFFFFFFF


def _hash32(x: torch.Tensor) -> torch.Tensor:
    """An integer hash of 32-bit values held in int64 (a lowbias32-like mix). Both multipliers
    are below 2**31, so every product stays below 2**63: exact, the same on every machine."""
    x = x ^ (x >> 16)
    x = (x * 0x7FEB352D) & _MASK32
    x ^= x >> 15
    x = (x * 0x2C1B3C6D) & _MASK32
    x ^= x >> 16
    return x


def _stream(seed: int, split: str) -> int:
    """A generator seed per (seed, split): train and test never share random draws."""
    return seed * len(SPLITS) + SPLITS.index(split)


def noise_keys(seed: int, split: str, size: int) -> torch.Tensor:
    """Each sample's pixel-noise key (int64, N): a hash of (seed, split, index), never shared
    between samples of a split or the two splits of a seed."""
    stream = _hash32(torch.tensor([_stream(seed, split)]) & _MASK32)
    index = torch.arange(size, dtype=torch.int64)
    return _hash32((index * 0x9E3779B1 + stream) & _MASK32)


def render_scenes(
    params: dict[str, torch.Tensor],
    image_size: int,
    focal: float,
    keys: torch.Tensor,
    chunk_pixels: int = 1 << 17,
) -> dict[str, torch.Tensor]:
    """Ray-cast scenes (as ``draw_scenes`` returns them) into compact tensors.

    Args:
        params: the scenes' parameters.
        image_size: the images' side in pixels.
        focal: the focal length as a multiple of ``image_size``.
        keys: int64 N, each scene's pixel-noise key (``noise_keys``).
        chunk_pixels: about how many pixels to cast at once; the output does not depend on it.

    Returns:
        ``images`` uint8 N x 3 x H x W, ``semantic`` uint8 N x H x W, ``depth`` float16
        N x H x W, ``normals`` float16 N x 3 x H x W.
    """
    n, side = len(params["room"]), image_size
    pixels = side * side
    rays = ray_directions(side, side, focal * side).reshape(3, pixels)
    ray_len2 = rays[0] * rays[0] + rays[1] * rays[1] + 1  # |ray|^2, the same in every frame
    frames = _scene_frames(params)
    table = _surface_table(params, frames)  # rows x N x S
    pixel_keys = (torch.arange(pixels, dtype=torch.int64) * 0x85EBCA77) & _MASK32
    out = {
        "images": torch.empty(n, 3, pixels, dtype=torch.uint8),
        "semantic": torch.empty(n, pixels, dtype=torch.uint8),
        "depth": torch.empty(n, pixels, dtype=torch.float16),
        "normals": torch.empty(n, 3, pixels, dtype=torch.float16),
    }
    step = max(1, chunk_pixels // pixels)
    for start in range(0, n, step):
        part = slice(start, min(n, start + step))
        frame = {k: v[part] for k, v in frames.items()}
        t, code = _cast(rays, ray_len2, frame, params["room"][part], params["objects"][part])
        index = code.long()[None].expand(len(TABLE_ROWS), -1, -1)
        rows = table[:, part].gather(2, index)  # rows x n x P: each pixel's surface
        noise = _hash32(keys[part, None] ^ pixel_keys)  # n x P, 30 random bits used
        _shade(rows, t, rays, frame, noise, {k: v[part] for k, v in out.items()})
    shape = (side, side)
    return {
        "images": out["images"].view(n, 3, *shape), "semantic": out["semantic"].view(n, *shape),
        "depth": out["depth"].view(n, *shape), "normals": out["normals"].view(n, 3, *shape),
    }


def _cast(rays: torch.Tensor, ray_len2: torch.Tensor, frame: dict[str, torch.Tensor],
          room: torch.Tensor, objects: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The first hit of every ray of n scenes: t (float32 n x P, the hit's depth) and the
    surface code (uint8 n x P); ties go to the room, then to the earlier object."""
    rot, origin = frame["rotation"].float(), frame["origin"]
    # The rays in the world (their camera-frame z is 1).
    d = [rot[:, i, 0:1] * rays[0] + rot[:, i, 1:2] * rays[1] + rot[:, i, 2:3] for i in range(3)]
    best, code = _room_hits(d, origin, room.double())
    # Each object's hits go to its slot's plane, then the planes are merged in slot order.
    n, k_max = objects.shape[:2]
    t_slots = torch.full((n, k_max, rays.shape[1]), torch.inf)
    face_slots = torch.zeros(n, k_max, rays.shape[1], dtype=torch.uint8)
    objects = objects.double()
    for kind in OBJECT_KINDS:
        scene, slot = torch.nonzero(objects[..., 0] == kind, as_tuple=True)
        if len(scene) == 0:
            continue
        ds = [di[scene] for di in d]
        if kind == SPHERE:
            t, face = _sphere_hits(ds, ray_len2, origin[scene], objects[scene, slot])
        else:
            t, face = _HIT_FUNCTIONS[kind](ds, origin[scene], objects[scene, slot])
        t_slots[scene, slot] = t
        face_slots[scene, slot] = face
    for k in range(k_max):
        if not bool((objects[:, k, 0] >= 0).any()):
            continue
        closer = t_slots[:, k] < best
        best = torch.where(closer, t_slots[:, k], best)
        code = torch.where(closer, face_slots[:, k] + (6 + CODES_PER_OBJECT * k), code)
    return best, code


def _shade(rows: torch.Tensor, t: torch.Tensor, rays: torch.Tensor,
           frame: dict[str, torch.Tensor], noise: torch.Tensor, out: dict[str, torch.Tensor]
           ) -> None:
    """Normals, class and colour of each hit (n x P), written into ``out``'s tensors."""
    p = (t * rays[0], t * rays[1], t)  # the hit point in the camera frame
    up = frame["up"]
    s, w, b = rows[0], rows[1], rows[2:5]
    along = w * (p[0] * up[:, 0:1] + p[1] * up[:, 1:2] + p[2] * up[:, 2:3])
    normal = [s * p[i] - along * up[:, i:i + 1] + b[i] for i in range(3)]
    inv_len = (normal[0] * normal[0] + normal[1] * normal[1] + normal[2] * normal[2]).rsqrt()
    normal = [ni * inv_len for ni in normal]

    # The solid checker: the parity of the hit's cell.
    m = frame["texture"]
    cells = [(m[:, i, 3:4] + m[:, i, 0:1] * p[0] + m[:, i, 1:2] * p[1] + m[:, i, 2:3] * p[2]
              ).floor() for i in range(3)]
    total = cells[0] + cells[1] + cells[2]
    parity = total - 2 * (total * 0.5).floor()
    texture = 1 - rows[8] * parity

    light = frame["light"]
    to_light = [light[:, i:i + 1] - p[i] for i in range(3)]
    dist2 = to_light[0] * to_light[0] + to_light[1] * to_light[1] + to_light[2] * to_light[2]
    cosine = (normal[0] * to_light[0] + normal[1] * to_light[1] + normal[2] * to_light[2]
              ) * dist2.rsqrt()
    shade = (light[:, 3:4] + light[:, 4:5] * cosine.clamp_min(0)) * texture

    scale, offset = frame["noise"][:, 0:1], frame["noise"][:, 1:2]
    for c in range(3):  # 10 random bits per channel; the offset holds the rounding's 0.5
        bits = ((noise >> (10 * c)) & 1023).float()
        value = rows[5 + c] * shade + (bits * scale + offset)
        out["images"][:, c] = value.clamp(0, 255)  # the copy into uint8 truncates: rounding
        out["normals"][:, c] = normal[c]
    out["semantic"].copy_(rows[9])
    out["depth"].copy_(t)


# --------------------------------------------------------------------------------------------
# The data set


class Scenes(Dataset):
    """Procedurally rendered indoor-like scenes with semantic, depth and normals labels.

    Args:
        split: ``"train"`` or ``"test"`` (disjoint random streams).
        size: number of samples (default 10,000 for train, 2,000 for test).
        seed: decides the scenes; sample i depends only on (seed, split, i).
        image_size: the images' side in pixels (square images).
        transform: a callable applied to each sample dict by ``__getitem__``.
        **settings: ``SceneSettings`` fields to change (an unknown name is an error).

    Attributes: ``images`` uint8 N x 3 x H x W, ``semantic`` uint8 N x H x W, ``depth`` float16
    N x H x W, ``normals`` float16 N x 3 x H x W; ``parameters`` the scenes (``draw_scenes``);
    ``focal`` the focal length in pixels; ``settings``.
    """

    def __init__(
        self,
        split: str = "train",
        size: int | None = None,
        seed: int = 0,
        image_size: int = DEFAULT_IMAGE_SIZE,
        transform: Callable[[Sample], Sample] | None = None,
        **settings: object,
    ) -> None:
        self.split = check_choice("split", split, SPLITS)
        size = DEFAULT_SIZES[split] if size is None else check_positive_int("size", size)
        self.seed = check_seed(seed)
        if self.seed >= 1 << 30:
            # (seed, split) streams stay distinct in the 32-bit keys of the pixel noise
            raise ValueError(f"argument 'seed' is {seed!r}, expected a seed below 2**30")
        self.image_size = check_int("image_size", image_size, minimum=8)
        self.settings = scene_settings(**settings)
        self.focal = self.settings.focal * self.image_size
        self.transform = transform
        g = torch.Generator().manual_seed(_stream(self.seed, split))
        self.parameters = draw_scenes(size, g, self.settings)
        out = render_scenes(self.parameters, self.image_size, self.settings.focal,
                            noise_keys(self.seed, split, size))
        self.images, self.semantic = out["images"], out["semantic"]
        self.depth, self.normals = out["depth"], out["normals"]

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> Sample:
        """One sample: ``image`` float32 3 x H x W in [0, 1], ``semantic`` int64 H x W,
        ``depth`` float32 H x W, ``normals`` float32 3 x H x W; through ``transform`` if set."""
        if not -len(self) <= i < len(self):
            raise IndexError(f"index {i} is out of range for a data set of {len(self)} samples")
        sample = self.batch(torch.tensor([i]))
        sample = {k: v[0] for k, v in sample.items()}
        return self.transform(sample) if self.transform is not None else sample

    def batch(self, index: torch.Tensor) -> Sample:
        """The samples at ``index`` (int64, B) stacked: like ``__getitem__`` with a leading B."""
        semantic = self.semantic[index].long()
        return {
            "image": self.images[index].float() / 255,
            "semantic": semantic.masked_fill_(semantic == IGNORE_STORED, IGNORE_INDEX),
            "depth": self.depth[index].float(),
            "normals": self.normals[index].float(),
        }

    def checksum(self) -> str:
        """SHA-256 over the stored tensors (images, semantic, depth, normals)."""
        return tensors_checksum((self.images, self.semantic, self.depth, self.normals))

    @property
    def nbytes(self) -> int:
        """Bytes held by the stored images and labels (the scene parameters not counted)."""
        return sum(t.numel() * t.element_size()
                   for t in (self.images, self.semantic, self.depth, self.normals))

    def class_counts(self) -> torch.Tensor:
        """How many pixels have each class of ``SCENE_CLASSES``: int64, 5."""
        return torch.bincount(self.semantic.flatten().long(), minlength=len(SCENE_CLASSES))[
            :len(SCENE_CLASSES)]

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(split={self.split!r}, size={len(self)}, seed={self.seed},"
                f" image_size={self.image_size})")


def load_scenes(
    batch_size: int = 64,
    train_size: int | None = None,
    test_size: int | None = None,
    seed: int = 0,
    image_size: int = DEFAULT_IMAGE_SIZE,
    device: torch.device | str = "cpu",
    **settings: object,
) -> tuple[TensorLoader, TensorLoader]:
    """Train and test loaders of ``Scenes`` (the train loader reshuffles each epoch)."""
    train = Scenes("train", size=train_size, seed=seed, image_size=image_size, **settings)
    test = Scenes("test", size=test_size, seed=seed, image_size=image_size, **settings)
    return (
        TensorLoader(train, batch_size, shuffle=True, seed=seed, device=device),
        TensorLoader(test, batch_size, shuffle=False, device=device),
    )


def scenes_tasks() -> dict[str, Task]:
    """The three dense tasks on ``Scenes``: ``semantic`` (segmentation into ``SCENE_CLASSES``),
    ``depth`` (metres) and ``normals`` (unit vectors in the camera frame).

    Their label effects are their kinds' defaults: colour changes keep every label; the
    semantic map moves with a geometric transform or a flip, and pixels brought in from outside
    the image get ``IGNORE_INDEX`` (class 0 is the floor); depth and normals move and their
    *values* change (``transforms``: a flip negates the normals' x component, a zoom by s
    divides depth by s), so the audit allows flips, rotations and zooms for all three tasks.
    """
    return {
        "semantic": Task("semantic", SEGMENTATION, len(SCENE_CLASSES), SCENE_CLASSES),
        "depth": Task("depth", DEPTH),
        "normals": Task("normals", NORMALS),
    }
