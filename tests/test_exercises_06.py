"""Notebook 06's exercise checks (dense scenes): the right answers pass, and each wrong answer
students give is rejected with a message that names the mistake."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
import torch
from torchvision.transforms.v2 import functional as TF

from mtlaug_lib import exercises

pytestmark = pytest.mark.usefixtures("one_thread")


def _is_plane(n: torch.Tensor) -> bool:
    """Whether a normals map is one constant normal with holes (the checks' physical case)."""
    valid = n.abs().sum(-3) > 0
    first = n[..., valid][..., :1] if n.dim() == 3 else None
    return first is not None and bool((n[..., valid] == first).all())


# ---- 06.1: the normals under a horizontal flip -------------------------------------------------


def flip_right(n: torch.Tensor) -> torch.Tensor:
    out = n.flip(-1).clone()
    out[..., 0, :, :] = -out[..., 0, :, :]
    return out


def flip_right_sign_vector(n: torch.Tensor) -> torch.Tensor:
    """Also right: torchvision's horizontal_flip and a per-component sign of shape 3 x 1 x 1."""
    return TF.horizontal_flip(n) * torch.tensor([-1.0, 1.0, 1.0], dtype=n.dtype).view(3, 1, 1)


def flip_right_stack(n: torch.Tensor) -> torch.Tensor:
    """Also right: unbind the components and stack them back."""
    x, y, z = n.flip(-1).unbind(-3)
    return torch.stack([-x, y, z], dim=-3)


def _sign(n: torch.Tensor, signs: tuple[float, float, float]) -> torch.Tensor:
    return n * torch.tensor(signs, dtype=n.dtype).view(3, 1, 1)


def _flip_in_place(n: torch.Tensor) -> torch.Tensor:
    n[..., 0, :, :] *= -1
    return n.flip(-1)


def _flip_in_place_copy(n: torch.Tensor) -> torch.Tensor:
    n.copy_(n.flip(-1))
    n[..., 0, :, :] *= -1
    return n


def _flip_map_only(n: torch.Tensor) -> torch.Tensor:
    out = n.flip(2)  # the width of a 3 x H x W map, the height of a batch
    out[0] = -out[0]  # the x component of a map, the first sample of a batch
    return out


def _flip_renormalised(n: torch.Tensor) -> torch.Tensor:
    out = flip_right(n)
    return out / out.norm(dim=-3, keepdim=True)


def _flip_z_recomputed(n: torch.Tensor) -> torch.Tensor:
    out = flip_right(n)
    out[..., 2, :, :] = -(1 - out[..., 0, :, :] ** 2 - out[..., 1, :, :] ** 2).clamp(min=0).sqrt()
    return out


def _flip_wrong_only_on_the_plane(n: torch.Tensor) -> torch.Tensor:
    return n.flip(-1) if _is_plane(n) else flip_right(n)


FLIP_RIGHT = [flip_right, flip_right_sign_vector, flip_right_stack]

FLIP_WRONG: dict[str, tuple[Callable, str]] = {
    "mirror only": (lambda n: n.flip(-1), "did not negate x"),
    "negate x only, no mirror": (lambda n: _sign(n, (-1, 1, 1)), "did not mirror"),
    "negate y instead of x": (lambda n: _sign(n.flip(-1), (1, -1, 1)), "negated y;"),
    "negate x and y": (lambda n: _sign(n.flip(-1), (-1, -1, 1)), "negated x and y"),
    "mirror up-down": (lambda n: _sign(n.flip(-2), (-1, 1, 1)), "mirrored the map up-down"),
    "mirror up-down, no sign": (lambda n: n.flip(-2), "mirrored the map up-down.*did not negate x"),
    "mirror both ways": (lambda n: _sign(n.flip(-1, -2), (-1, 1, 1)), "180 degrees"),
    "negate all three": (lambda n: -n.flip(-1), "all three"),
    "off by one column": (lambda n: flip_right(n).roll(1, -1), "off by one column"),
    "negates x in place, then mirrors": (_flip_in_place, "in place"),
    "mirrors and negates in place": (_flip_in_place_copy, "in place"),
    "returns a numpy array": (lambda n: np.flip(n.numpy(), -1) * 1, "returned a ndarray"),
    "forgets to return": (lambda n: None, "returned a NoneType.*forget the return"),
    "returns only x": (lambda n: -n.flip(-1)[..., 0, :, :], "shape"),
    "channels last": (lambda n: flip_right(n).movedim(-3, -1), "shape"),
    "float64 signs on float32 maps": (
        lambda n: n.flip(-1) * torch.tensor([-1.0, 1, 1], dtype=torch.float64).view(3, 1, 1),
        "dtype torch.float64.*float32"),
    "a sign vector broadcast along the width": (
        lambda n: n.flip(-1) * torch.tensor([-1.0, 1, 1]), "raised RuntimeError"),
    "renormalised (nan at holes)": (_flip_renormalised, "holes changed.*nan"),
    "z recomputed (holes filled)": (_flip_z_recomputed, "holes changed"),
    "right for a map, wrong for a batch": (_flip_map_only, "normals\\[0\\] is the first sample"),
    "wrong on the plane only": (_flip_wrong_only_on_the_plane, "tilted plane.*did not negate x"),
}


@pytest.mark.parametrize("answer", FLIP_RIGHT, ids=lambda f: f.__name__)
def test_flip_check_accepts_right_answers(answer: Callable, capsys) -> None:
    exercises.check_flip_normals(answer)
    assert capsys.readouterr().out.startswith("Correct!")


@pytest.mark.parametrize("wrong", list(FLIP_WRONG))
def test_flip_check_rejects_wrong_answers(wrong: str) -> None:
    answer, message = FLIP_WRONG[wrong]
    with pytest.raises(exercises.ExerciseError, match=message):
        exercises.check_flip_normals(answer)


def test_flip_sign_agrees_with_the_geometry_of_a_mirror() -> None:
    """Independent of the checks: a surface point right of the optical axis that faces right
    (its normal's x > 0, away from the axis) is, in the mirror image, left of the axis and faces
    left; the mirror of its pixel is torchvision's horizontal_flip."""
    h, w = 1, 4
    image = torch.zeros(1, h, w)
    image[0, 0, 3] = 1.0  # right of centre
    assert int(TF.horizontal_flip(image)[0, 0].argmax()) == 0  # now left of centre
    normals = torch.zeros(3, h, w)
    normals[:, 0, 3] = torch.tensor([0.6, 0.0, -0.8])  # faces right (and the camera)
    assert flip_right(normals)[0, 0, 0] == -0.6  # faces left, after the mirror


# ---- 06.2: the depth under a zoom ---------------------------------------------------------------


def zoom_right(depth: torch.Tensor, s: float) -> torch.Tensor:
    return depth / s


def zoom_right_where(depth: torch.Tensor, s: float) -> torch.Tensor:
    """Also right: holes kept explicitly, s as a tensor."""
    return torch.where(depth > 0, depth / torch.tensor(s), torch.zeros_like(depth))


def _zoom_in_place(depth: torch.Tensor, s: float) -> torch.Tensor:
    depth /= s
    return depth


def _zoom_wrong_only_on_the_plane(depth: torch.Tensor, s: float) -> torch.Tensor:
    return depth * s if depth.shape == (6, 8) else depth / s


ZOOM_RIGHT = [zoom_right, zoom_right_where]

ZOOM_WRONG: dict[str, tuple[Callable, str]] = {
    "depth * s": (lambda d, s: d * s, "multiplied the depths by s"),
    "unchanged": (lambda d, s: d.clone(), "left the depths unchanged.*2 times their size"),
    "depth / s**2": (lambda d, s: d / s**2, "divided the depths by s\\*\\*2"),
    "a hard-coded s = 1.5": (lambda d, s: d / 1.5, "scaled the depths by 0.6667 \\(expected 1/s"),
    "depth - s": (lambda d, s: d - s, "shifted the depths by -2 m"),
    "divide, then add a constant": (lambda d, s: d / s + 0.1, "then added 0.1 m.*holes"),
    "clamped to a minimum depth": (lambda d, s: (d / s).clamp(min=0.1), "holes changed"),
    "inverse depth": (lambda d, s: torch.where(d > 0, s / d, d), "not a scaling"),
    "in place /=": (_zoom_in_place, "in place"),
    "in place div_": (lambda d, s: d.div_(s), "in place"),
    "returns a float": (lambda d, s: float(d.mean()) / s, "returned a float"),
    "returns a numpy array": (lambda d, s: d.numpy() / s, "returned a ndarray"),
    "float32 for a float64 map": (lambda d, s: (d / s).float(), "dtype torch.float32"),
    "a mean depth, not a map": (lambda d, s: d.mean(-1) / s, "shape"),
    "wrong on the plane only": (_zoom_wrong_only_on_the_plane,
                                "tilted plane.*multiplied.*2.25 times their size"),
}


@pytest.mark.parametrize("answer", ZOOM_RIGHT, ids=lambda f: f.__name__)
def test_zoom_check_accepts_right_answers(answer: Callable, capsys) -> None:
    exercises.check_zoom_depth(answer)
    assert capsys.readouterr().out.startswith("Correct!")


@pytest.mark.parametrize("wrong", list(ZOOM_WRONG))
def test_zoom_check_rejects_wrong_answers(wrong: str) -> None:
    answer, message = ZOOM_WRONG[wrong]
    with pytest.raises(exercises.ExerciseError, match=message):
        exercises.check_zoom_depth(answer)


# ---- 06.3: the normals under an in-plane rotation ----------------------------------------------


def rotate_right(n: torch.Tensor, degrees: float) -> torch.Tensor:
    t = math.radians(degrees)
    x, y, z = n.unbind(-3)
    return torch.stack([x * math.cos(t) + y * math.sin(t), -x * math.sin(t) + y * math.cos(t), z],
                       dim=-3)


def rotate_right_matrix(n: torch.Tensor, degrees: float) -> torch.Tensor:
    """Also right: a 3 x 3 matrix (float32 trigonometry) applied with einsum."""
    t = torch.deg2rad(torch.tensor(degrees))
    c, s = torch.cos(t), torch.sin(t)
    r = torch.tensor([[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, 1.0]], dtype=n.dtype)
    return torch.einsum("ij,...jhw->...ihw", r, n)


def _rotate_with(n: torch.Tensor, t: float, a: int = 0, b: int = 1) -> torch.Tensor:
    out = n.clone()
    out[..., a, :, :] = n[..., a, :, :] * math.cos(t) + n[..., b, :, :] * math.sin(t)
    out[..., b, :, :] = -n[..., a, :, :] * math.sin(t) + n[..., b, :, :] * math.cos(t)
    return out


def _rotate_in_place(n: torch.Tensor, degrees: float) -> torch.Tensor:
    n.copy_(rotate_right(n, degrees))
    return n


def _rotate_z_scaled(n: torch.Tensor, degrees: float) -> torch.Tensor:
    out = rotate_right(n, degrees)
    out[..., 2, :, :] *= math.cos(math.radians(degrees))
    return out


def _rotate_renormalised(n: torch.Tensor, degrees: float) -> torch.Tensor:
    out = rotate_right(n, degrees)
    return out / out.norm(dim=-3, keepdim=True)


def _rotate_wrong_only_on_the_plane(n: torch.Tensor, degrees: float) -> torch.Tensor:
    return rotate_right(n, -degrees if _is_plane(n) else degrees)


ROTATE_RIGHT = [rotate_right, rotate_right_matrix]

ROTATE_WRONG: dict[str, tuple[Callable, str]] = {
    "the y-up formula (clockwise on screen)": (
        lambda n, d: _rotate_with(n, -math.radians(d)), "clockwise on screen"),
    "degrees as radians": (lambda n, d: _rotate_with(n, d), "degrees as radians \\("),
    "degrees as radians, y-up": (lambda n, d: _rotate_with(n, -d), "radians, and turned the wrong"),
    "turns x and z": (lambda n, d: _rotate_with(n, math.radians(d), 0, 2), "turned x and z"),
    "turns y and z": (lambda n, d: _rotate_with(n, -math.radians(d), 1, 2), "turned y and z"),
    "z scaled too": (_rotate_z_scaled, "z changed"),
    "unchanged": (lambda n, d: n.clone(), "unchanged"),
    "in place": (_rotate_in_place, "in place"),
    "returns a numpy array": (lambda n, d: rotate_right(n, d).numpy(), "returned a ndarray"),
    "renormalised (nan at holes)": (_rotate_renormalised, "holes changed"),
    "wrong on the plane only": (_rotate_wrong_only_on_the_plane, "tilted plane.*clockwise"),
}


@pytest.mark.parametrize("answer", ROTATE_RIGHT, ids=lambda f: f.__name__)
def test_rotate_check_accepts_right_answers(answer: Callable, capsys) -> None:
    exercises.check_rotate_normals(answer)
    assert capsys.readouterr().out.startswith("Correct!")


@pytest.mark.parametrize("wrong", list(ROTATE_WRONG))
def test_rotate_check_rejects_wrong_answers(wrong: str) -> None:
    answer, message = ROTATE_WRONG[wrong]
    with pytest.raises(exercises.ExerciseError, match=message):
        exercises.check_rotate_normals(answer)


def test_rotation_sense_agrees_with_torchvision() -> None:
    """Independent of the checks: torchvision's rotate by +90 degrees turns the image counter-
    clockwise on screen (a dot right of the centre goes above it, to a smaller row), and the
    right answer turns a normal that faces right into one that faces up (y < 0, y points down).
    """
    image = torch.zeros(1, 5, 5)
    image[0, 2, 4] = 1.0  # right of the centre pixel (2, 2)
    turned = TF.rotate(image, 90.0)
    row, col = divmod(int(turned[0].argmax()), 5)
    assert (row, col) == (0, 2)  # above the centre
    normal = torch.tensor([1.0, 0.0, 0.0]).view(3, 1, 1)
    assert torch.allclose(rotate_right(normal, 90.0).flatten(), torch.tensor([0.0, -1.0, 0.0]),
                          atol=1e-7)


# ---- all three -----------------------------------------------------------------------------------


@pytest.mark.parametrize("check", [exercises.check_flip_normals, exercises.check_zoom_depth,
                                   exercises.check_rotate_normals], ids=lambda c: c.__name__)
def test_unsolved_exercise_passes_through(check: Callable) -> None:
    """The student edition's placeholder raises NotImplementedError; the check lets it through."""
    def unsolved(*args: object) -> None:
        raise NotImplementedError("Exercise: replace this line with your solution")

    with pytest.raises(NotImplementedError):
        check(unsolved)


@pytest.mark.parametrize("check", [exercises.check_flip_normals, exercises.check_zoom_depth,
                                   exercises.check_rotate_normals], ids=lambda c: c.__name__)
def test_not_a_function(check: Callable) -> None:
    with pytest.raises(exercises.ExerciseError, match="expected a function"):
        check(None)
