# SPDX-License-Identifier: Apache-2.0
"""Camera geometry for pose-conditioned video diffusion (DFoT RealEstate10K convention).

Pose convention (the "16-number vector", as in the DFoT RealEstate10K data):

    pose = [fx, fy, px, py, r00, r01, r02, t0, r10, r11, r12, t1, r20, r21, r22, t2]

* ``fx, fy, px, py``: pinhole intrinsics **normalised by image size** (``fx = focal_x_pixels / W``,
  ``px = principal_x_pixels / W``, and likewise with ``H`` for y). A normalised pose therefore builds rays at
  any resolution.
* ``[R | T]``: row-major 3x4 **world-to-camera** extrinsics, ``x_cam = R @ x_world + T``. Camera axes follow
  the OpenCV convention (x right, y down, z forward): the optical axis of a camera is ``R^T @ [0, 0, 1]``
  in world coordinates and its centre is ``-R^T @ T``.

Everything here is pure torch, batched over any leading dimensions (frames are the second-to-last axis of
``(..., T, 16)`` tensors where a frame axis matters), differentiable and works in float32 or float64 (all
constants take the dtype and device of the input). Quaternions are scalar-first ``(w, x, y, z)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from .validation import (
    InvalidTypeError,
    check_choice,
    check_positive_int,
    check_positive_number,
    describe,
    non_finite_summary,
)

__all__ = [
    "CameraPoses",
    "RayMapKind",
    "RAY_MAP_CHANNELS",
    "validate_poses",
    "split_poses",
    "join_poses",
    "poses_to_world_to_camera",
    "poses_from_world_to_camera",
    "poses_to_camera_to_world",
    "poses_from_camera_to_world",
    "rotation_to_quaternion",
    "quaternion_to_rotation",
    "poses_to_quaternions",
    "poses_from_quaternions",
    "normalize_by_first",
    "camera_rays",
    "plucker_coordinates",
    "nerf_encoding",
    "ray_map",
    "slerp_quaternions",
    "slerp_poses",
    "interpolate_camera_path",
    "interpolate_masked_poses",
]

RayMapKind = Literal["ray_encoding", "plucker", "ray"]

#: Number of channels of each ray-map kind, also read by the models: NeRF encoding of origin and direction with 15
#: frequencies, sin and cos (3 * 15 * 2 * 2 = 180); Plücker ``[d_hat, o x d_hat]`` (6); raw ``[origin, direction]`` (6).
RAY_MAP_CHANNELS = {"ray_encoding": 180, "plucker": 6, "ray": 6}

# Number of NeRF frequencies used by DFoT for both origins and directions (180 channels in total).
NERF_FREQUENCIES = 15


# ----------------------------------------------------------------------------------------------------------
# Reproducible small products
# ----------------------------------------------------------------------------------------------------------
# The 180-channel ray encoding multiplies ray coordinates by up to 2^14 * pi, so a single float32 rounding
# difference in a ray (1 ulp ~ 1e-7) becomes ~1e-2 in the encoding. Batched-matmul kernels sum 3-term dot
# products in a hardware-dependent order (with or without fused multiply-add), so we spell the sums out in a
# fixed order instead. The orders below are the ones that reproduce DFoT's released float32 reference tensors
# bit for bit: products rounded then summed left to right for the relative-pose composition, and a fused
# multiply-add chain ``fma(a2, b2, fma(a1, b1, a0 * b0))`` for rotating ray directions (emulated exactly for
# float32 by accumulating in float64, where a product of two float32 numbers is exact).
def _dot3(a: Tensor, b: Tensor, fused: bool = False) -> Tensor:
    """Sum over the last axis (length 3) of ``a * b`` in a fixed rounding order."""
    if fused and a.dtype == torch.float32 and b.dtype == torch.float32:
        wide_a, wide_b = a.double(), b.double()
        acc = (a[..., 0] * b[..., 0]).double()
        acc = (wide_a[..., 1] * wide_b[..., 1] + acc).float().double()
        return (wide_a[..., 2] * wide_b[..., 2] + acc).float()
    return a[..., 0] * b[..., 0] + a[..., 1] * b[..., 1] + a[..., 2] * b[..., 2]


def _matmul3(a: Tensor, b: Tensor, fused: bool = False) -> Tensor:
    """``a @ b`` for ``(..., 3, 3)`` / ``(..., 3, 3 or 1)`` operands with the fixed order of :func:`_dot3`."""
    return _dot3(a.unsqueeze(-2), b.transpose(-1, -2).unsqueeze(-3), fused)


# ----------------------------------------------------------------------------------------------------------
# Validation
# ----------------------------------------------------------------------------------------------------------
def _check_tensor(name: str, value: object, trailing: tuple[int, ...], layout: str) -> Tensor:
    """A floating-point tensor whose last dimensions are ``trailing``, with only finite values."""
    if not isinstance(value, Tensor):
        raise InvalidTypeError(f"`{name}` must be a torch.Tensor of shape {layout}, got {describe(value)}.")
    if value.ndim < len(trailing) or tuple(value.shape[value.ndim - len(trailing) :]) != trailing:
        raise ValueError(f"`{name}` must have shape {layout}, got shape {tuple(value.shape)}.")
    if not value.is_floating_point():
        raise ValueError(f"`{name}` must be a floating point tensor, got dtype {value.dtype}.")
    if value.numel() and not bool(torch.isfinite(value.detach()).all()):
        raise ValueError(f"`{name}` must contain only finite values, got {non_finite_summary(value.detach())}.")
    return value


def _check_rotations(name: str, rotation: Tensor, atol: float = 1e-3) -> None:
    """``(..., 3, 3)`` finite matrices must be proper rotations: ``|R R^T - I| <= atol`` and ``det(R) > 0``."""
    rotation = rotation.detach()
    if rotation.numel() == 0:
        return
    eye = torch.eye(3, dtype=rotation.dtype, device=rotation.device)
    ortho_error = float((rotation @ rotation.transpose(-1, -2) - eye).abs().max())
    if ortho_error > atol:
        raise ValueError(
            f"`{name}` must hold orthonormal rotations (|R R^T - I| <= {atol:g}), got max deviation {ortho_error:.3g}."
        )
    min_det = float(torch.linalg.det(rotation).min())
    if min_det <= 0:
        raise ValueError(f"`{name}` must hold proper rotations with det(R) = +1, got det(R) = {min_det:.3g}.")


def _check_focal(name: str, intrinsics: Tensor) -> None:
    focal = intrinsics.detach()[..., :2].abs()
    if focal.numel() and bool((focal <= torch.finfo(focal.dtype).tiny).any()):
        raise ValueError(
            f"`{name}` must have non-zero focal lengths fx, fy (entries 0 and 1), got min |f| = "
            f"{float(focal.min()):.3g}."
        )


def validate_poses(poses: Tensor, name: str = "poses", rotation_atol: float = 1e-3) -> Tensor:
    """Check camera poses and raise a ``ValueError`` that names ``name``, the expectation and what was received.

    Args:
        poses: ``(..., 16)`` pose vectors (module docstring) or ``(..., 4, 4)`` homogeneous world-to-camera
            matrices (last row ``[0, 0, 0, 1]``).
        name: argument name used in error messages.
        rotation_atol: largest allowed ``|R R^T - I|`` entry; ``det(R)`` must also be positive (a reflection
            is not a camera rotation).

    Returns:
        ``poses`` unchanged, so the call can be chained.
    """
    rotation_atol = check_positive_number("rotation_atol", rotation_atol)
    layout = "(..., 16) (fx, fy, px, py + row-major 3x4 world-to-camera [R|T]) or (..., 4, 4) (world-to-camera matrix)"
    is_matrix = isinstance(poses, Tensor) and poses.ndim >= 2 and tuple(poses.shape[-2:]) == (4, 4)
    _check_tensor(name, poses, (4, 4) if is_matrix else (16,), layout)
    values = poses.detach()
    if is_matrix:
        rotation = values[..., :3, :3]
        expected_row = torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=values.dtype, device=values.device)
        row_error = float((values[..., 3, :] - expected_row).abs().max()) if values.numel() else 0.0
        if row_error > rotation_atol:
            raise ValueError(
                f"`{name}` as (..., 4, 4) matrices must have last row [0, 0, 0, 1], got max deviation {row_error:.3g}."
            )
    else:
        intrinsics, rotation, _ = split_poses(values)
        _check_focal(name, intrinsics)
    _check_rotations(name, rotation, rotation_atol)
    return poses


def _validate_vectors(poses: Tensor, name: str = "poses", min_ndim: int = 1) -> Tensor:
    """:func:`validate_poses` for functions that need ``(..., 16)`` vectors (with ``min_ndim`` dimensions)."""
    if not isinstance(poses, Tensor) or poses.ndim < max(min_ndim, 1) or poses.shape[-1] != 16:
        layout = "(..., 16)" if min_ndim == 1 else "(..., T, 16) (with a frame axis)"
        raise ValueError(f"`{name}` must be pose vectors of shape {layout}, got {_shape_of(poses)}.")
    return validate_poses(poses, name)


# ----------------------------------------------------------------------------------------------------------
# Conversions between pose forms
# ----------------------------------------------------------------------------------------------------------
def _shape_of(value: object) -> str:
    return f"shape {tuple(value.shape)}" if isinstance(value, Tensor) else describe(value)


def _check_extrinsics(name: str, matrices: Tensor, intrinsics: Tensor) -> None:
    """``(..., 4, 4)`` or ``(..., 3, 4)`` rigid transforms with a proper rotation, and ``(..., 4)`` intrinsics."""
    is_square = isinstance(matrices, Tensor) and matrices.ndim >= 2 and matrices.shape[-2] == 4
    _check_tensor(name, matrices, (4, 4) if is_square else (3, 4), "(..., 4, 4) or (..., 3, 4)")
    _check_rotations(name, matrices[..., :3, :3])
    _check_tensor("intrinsics", intrinsics, (4,), "(..., 4) (fx, fy, px, py normalised by image size)")
    _check_focal("intrinsics", intrinsics)


def _check_quaternions(name: str, quaternion: Tensor) -> None:
    _check_tensor(name, quaternion, (4,), "(..., 4) (w, x, y, z)")
    norm = quaternion.detach().norm(dim=-1)
    if norm.numel() and bool((norm <= torch.finfo(norm.dtype).eps).any()):
        raise ValueError(
            f"`{name}` must have a non-zero norm to describe a rotation, got min norm {float(norm.min()):.3g}."
        )


def split_poses(poses: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``(..., 16)`` pose vectors -> intrinsics ``(..., 4)``, rotation ``(..., 3, 3)``, translation ``(..., 3)``."""
    if not isinstance(poses, Tensor) or poses.ndim < 1 or poses.shape[-1] != 16:
        raise ValueError(f"`poses` must be a tensor of shape (..., 16), got {_shape_of(poses)}.")
    intrinsics, extrinsics = poses.split([4, 12], dim=-1)
    extrinsics = extrinsics.unflatten(-1, (3, 4))
    return intrinsics, extrinsics[..., :3], extrinsics[..., 3]


def join_poses(intrinsics: Tensor, rotation: Tensor, translation: Tensor) -> Tensor:
    """Inverse of :func:`split_poses`: ``(..., 4)``, ``(..., 3, 3)``, ``(..., 3)`` -> ``(..., 16)``."""
    for name, value, trailing in (("intrinsics", intrinsics, (4,)), ("rotation", rotation, (3, 3)),
                                  ("translation", translation, (3,))):
        _check_tensor(name, value, trailing, f"(..., {', '.join(map(str, trailing))})")
    extrinsics = torch.cat([rotation, translation.unsqueeze(-1)], dim=-1)  # (..., 3, 4)
    intrinsics = intrinsics.expand(*extrinsics.shape[:-2], 4)
    return torch.cat([intrinsics, extrinsics.flatten(-2)], dim=-1)


def _homogeneous(rotation: Tensor, translation: Tensor) -> Tensor:
    top = torch.cat([rotation, translation.unsqueeze(-1)], dim=-1)  # (..., 3, 4)
    bottom = torch.zeros_like(top[..., :1, :])
    bottom[..., 0, 3] = 1.0
    return torch.cat([top, bottom], dim=-2)


def poses_to_world_to_camera(poses: Tensor) -> Tensor:
    """``(..., 16)`` pose vectors -> ``(..., 4, 4)`` homogeneous world-to-camera matrices."""
    _validate_vectors(poses)
    _, rotation, translation = split_poses(poses)
    return _homogeneous(rotation, translation)


def poses_from_world_to_camera(world_to_camera: Tensor, intrinsics: Tensor) -> Tensor:
    """``(..., 4, 4)`` (or ``(..., 3, 4)``) world-to-camera matrices + normalised intrinsics ``(..., 4)``
    -> ``(..., 16)`` pose vectors."""
    _check_extrinsics("world_to_camera", world_to_camera, intrinsics)
    return join_poses(intrinsics, world_to_camera[..., :3, :3], world_to_camera[..., :3, 3])


def poses_to_camera_to_world(poses: Tensor) -> Tensor:
    """``(..., 16)`` pose vectors -> ``(..., 4, 4)`` camera-to-world matrices ``[R^T | -R^T T]``.

    Uses the closed-form rigid inverse rather than a general matrix inverse, so it is exact for orthonormal R.
    """
    _validate_vectors(poses)
    _, rotation, translation = split_poses(poses)
    rotation_t = rotation.transpose(-1, -2)
    return _homogeneous(rotation_t, -(rotation_t @ translation.unsqueeze(-1)).squeeze(-1))


def poses_from_camera_to_world(camera_to_world: Tensor, intrinsics: Tensor) -> Tensor:
    """``(..., 4, 4)`` (or ``(..., 3, 4)``) camera-to-world matrices + intrinsics ``(..., 4)`` -> ``(..., 16)``."""
    _check_extrinsics("camera_to_world", camera_to_world, intrinsics)
    rotation = camera_to_world[..., :3, :3].transpose(-1, -2)
    translation = -(rotation @ camera_to_world[..., :3, 3:4]).squeeze(-1)
    return join_poses(intrinsics, rotation, translation)


def rotation_to_quaternion(rotation: Tensor) -> Tensor:
    """``(..., 3, 3)`` rotation matrices -> ``(..., 4)`` unit quaternions ``(w, x, y, z)`` with ``w >= 0``.

    Shepperd's method: of the four algebraically equivalent formulas, each element uses the one with the
    largest denominator, which keeps it accurate (and differentiable) for every rotation, including 180 deg.
    """
    _check_rotations("rotation", _check_tensor("rotation", rotation, (3, 3), "(..., 3, 3)"))
    m = rotation
    m00, m01, m02 = m[..., 0, 0], m[..., 0, 1], m[..., 0, 2]
    m10, m11, m12 = m[..., 1, 0], m[..., 1, 1], m[..., 1, 2]
    m20, m21, m22 = m[..., 2, 0], m[..., 2, 1], m[..., 2, 2]
    # 4 * q_i^2 for i = w, x, y, z.
    squares = torch.stack([1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22], dim=-1)
    # Clamp before sqrt: only the largest candidate is used, but the others must not produce NaN gradients.
    roots = torch.sqrt(squares.clamp(min=0.1))
    # Candidate i scaled by 4 * q_i: every row is q * 4 q_i.
    candidates = torch.stack(
        [
            torch.stack([squares[..., 0], m21 - m12, m02 - m20, m10 - m01], dim=-1),
            torch.stack([m21 - m12, squares[..., 1], m10 + m01, m02 + m20], dim=-1),
            torch.stack([m02 - m20, m10 + m01, squares[..., 2], m12 + m21], dim=-1),
            torch.stack([m10 - m01, m20 + m02, m21 + m12, squares[..., 3]], dim=-1),
        ],
        dim=-2,
    ) / (2 * roots.unsqueeze(-1))
    best = squares.argmax(dim=-1)
    quaternion = torch.gather(candidates, -2, best[..., None, None].expand(*best.shape, 1, 4)).squeeze(-2)
    quaternion = quaternion / quaternion.norm(dim=-1, keepdim=True)
    # Canonical sign (q and -q are the same rotation).
    return torch.where(quaternion[..., :1] < 0, -quaternion, quaternion)


def quaternion_to_rotation(quaternion: Tensor) -> Tensor:
    """``(..., 4)`` quaternions ``(w, x, y, z)`` (normalised here) -> ``(..., 3, 3)`` rotation matrices."""
    _check_quaternions("quaternion", quaternion)
    w, x, y, z = (quaternion / quaternion.norm(dim=-1, keepdim=True)).unbind(-1)
    rows = [
        torch.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], dim=-1),
        torch.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], dim=-1),
        torch.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], dim=-1),
    ]
    return torch.stack(rows, dim=-2)


def poses_to_quaternions(poses: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``(..., 16)`` -> intrinsics ``(..., 4)``, quaternion ``(..., 4)`` (w, x, y, z), translation ``(..., 3)``."""
    _validate_vectors(poses)
    intrinsics, rotation, translation = split_poses(poses)
    return intrinsics, rotation_to_quaternion(rotation), translation


def poses_from_quaternions(intrinsics: Tensor, quaternion: Tensor, translation: Tensor) -> Tensor:
    """Inverse of :func:`poses_to_quaternions`."""
    return join_poses(intrinsics, quaternion_to_rotation(quaternion), translation)


@dataclass
class CameraPoses:
    """Batched pinhole cameras: a typed view of ``(..., 16)`` pose vectors.

    Attributes:
        intrinsics: ``(..., 4)`` fx, fy, px, py normalised by image width (x) and height (y).
        rotation: ``(..., 3, 3)`` world-to-camera rotation R.
        translation: ``(..., 3)`` world-to-camera translation T (``x_cam = R x_world + T``), world units.
    """

    intrinsics: Tensor
    rotation: Tensor
    translation: Tensor

    @classmethod
    def from_vectors(cls, poses: Tensor, validate: bool = True) -> CameraPoses:
        """Build from ``(..., 16)`` pose vectors (checked with :func:`validate_poses` unless ``validate=False``)."""
        if validate:
            validate_poses(poses)
        return cls(*split_poses(poses))

    def to_vectors(self) -> Tensor:
        """``(..., 16)`` pose vectors."""
        return join_poses(self.intrinsics, self.rotation, self.translation)

    def world_to_camera(self) -> Tensor:
        """``(..., 4, 4)`` world-to-camera matrices."""
        return _homogeneous(self.rotation, self.translation)

    def camera_to_world(self) -> Tensor:
        """``(..., 4, 4)`` camera-to-world matrices."""
        return poses_to_camera_to_world(self.to_vectors())

    def quaternions(self) -> Tensor:
        """``(..., 4)`` world-to-camera rotations as unit quaternions (w, x, y, z)."""
        return rotation_to_quaternion(self.rotation)

    def centers(self) -> Tensor:
        """``(..., 3)`` camera centres in world coordinates, ``-R^T T``."""
        return -(self.rotation.transpose(-1, -2) @ self.translation.unsqueeze(-1)).squeeze(-1)


# ----------------------------------------------------------------------------------------------------------
# Normalisation and rays
# ----------------------------------------------------------------------------------------------------------
def normalize_by_first(poses: Tensor) -> Tensor:
    """Express ``(..., T, 16)`` poses relative to each sequence's first frame, which becomes the world frame.

    ``R_t' = R_t R_0^T`` and ``T_t' = T_t - R_t' T_0``, so frame 0 gets ``R = I, T = 0`` and relative camera
    motion (hence every ray map) does not depend on the arbitrary world frame of the data. Intrinsics are
    unchanged.
    """
    _validate_vectors(poses, min_ndim=2)
    intrinsics, rotation, translation = split_poses(poses)
    rotation_ref = rotation[..., :1, :, :]
    translation_ref = translation[..., :1, :]
    rotation = _matmul3(rotation, rotation_ref.transpose(-1, -2))
    translation = translation - _matmul3(rotation, translation_ref.unsqueeze(-1)).squeeze(-1)
    return join_poses(intrinsics, rotation, translation)


def camera_rays(poses: Tensor, height: int, width: int) -> tuple[Tensor, Tensor]:
    """Per-pixel rays in world coordinates for ``(..., 16)`` poses on a ``height x width`` pixel grid.

    Pixel ``(v, u)`` (row, column) looks through its centre ``(u + 0.5, v + 0.5)``; the camera-frame
    direction is ``[(u + 0.5 - px W) / (fx W), (v + 0.5 - py H) / (fy H), 1]`` (z = 1, *not* unit length) and is
    rotated to the world by ``R^T``; the origin is the camera centre ``-R^T T``.

    Returns:
        origins, directions: ``(..., H, W, 3)`` each (``(B, T, H, W, 3)`` for ``(B, T, 16)`` poses).
    """
    _validate_vectors(poses)
    height, width = check_positive_int("height", height), check_positive_int("width", width)
    intrinsics, rotation, translation = split_poses(poses)
    dtype, device = poses.dtype, poses.device
    u = torch.arange(width, dtype=dtype, device=device) + 0.5  # (W,) pixel centres
    v = torch.arange(height, dtype=dtype, device=device) + 0.5  # (H,)
    fx, fy, px, py = (c[..., None, None] for c in intrinsics.unbind(-1))  # (..., 1, 1)
    x = (u - px * width) / (fx * width)  # (..., 1, W)
    y = (v[:, None] - py * height) / (fy * height)  # (..., H, 1)
    x, y = torch.broadcast_tensors(x, y)
    camera_dirs = torch.stack([x, y, torch.ones_like(x)], dim=-1)  # (..., H, W, 3)
    rotation_t = rotation.transpose(-1, -2)  # camera-to-world rotation
    # directions_i = sum_j R^T_ij d_j, in the fixed order of `_dot3` (see there for why).
    directions = _dot3(rotation_t[..., None, None, :, :], camera_dirs.unsqueeze(-2), fused=True)
    centers = -_matmul3(rotation_t, translation.unsqueeze(-1)).squeeze(-1)  # (..., 3)
    origins = centers[..., None, None, :].expand_as(directions)
    return origins, directions


def plucker_coordinates(origins: Tensor, directions: Tensor) -> Tensor:
    """Plücker ray coordinates ``[d_hat, o x d_hat]`` (``(..., 6)``) from origins and directions ``(..., 3)``."""
    unit = directions / directions.norm(dim=-1, keepdim=True)
    return torch.cat([unit, torch.cross(origins, unit, dim=-1)], dim=-1)


def nerf_encoding(x: Tensor, num_frequencies: int = NERF_FREQUENCIES) -> Tensor:
    """NeRF positional encoding ``(..., D) -> (..., 2 * D * num_frequencies)``.

    Channel layout (as DFoT): first all sines, then all cosines; within each, coordinate-major then frequency
    ``2^k * pi`` for ``k = 0..num_frequencies-1``. The cosine is computed as ``sin(a + pi/2)`` like the
    reference so the two agree to the last bit.
    """
    num_frequencies = check_positive_int("num_frequencies", num_frequencies)
    _check_tensor("x", x, (), "(..., D)")
    scale = math.pi * 2.0 ** torch.arange(num_frequencies, dtype=x.dtype, device=x.device)
    angles = (x.unsqueeze(-1) * scale).flatten(-2)  # (..., D * F) coordinate-major
    return torch.sin(torch.cat([angles, angles + 0.5 * math.pi], dim=-1))


def ray_map(
    poses: Tensor,
    height: int,
    width: int,
    kind: RayMapKind = "ray_encoding",
    normalize: bool = True,
) -> Tensor:
    """Camera-ray map of ``(B, T, 16)`` poses, channel-first, as the ``camera_rays`` input of the models.

    Args:
        poses: ``(B, T, 16)`` pose vectors (module docstring).
        height, width: pixel resolution of the map (the model's sample size).
        kind: ``"ray_encoding"`` (180 channels: NeRF encoding of origin then direction, 15 frequencies),
            ``"plucker"`` (6: unit direction, moment) or ``"ray"`` (6: origin, unnormalised direction).
        normalize: first express the poses relative to frame 0 (:func:`normalize_by_first`), which is what DFoT
            does for every window. Idempotent, so already-normalised poses may be passed either way.

    Returns:
        ``(B, C, T, H, W)`` with ``C = RAY_MAP_CHANNELS[kind]``, dtype of ``poses``.
    """
    check_choice("kind", kind, sorted(RAY_MAP_CHANNELS))
    if not isinstance(poses, Tensor) or poses.ndim != 3 or poses.shape[-1] != 16:
        raise ValueError(f"`poses` must be a tensor of shape (B, T, 16), got {_shape_of(poses)}.")
    if normalize:
        poses = normalize_by_first(poses)
    origins, directions = camera_rays(poses, height, width)  # (B, T, H, W, 3)
    if kind == "ray_encoding":
        rays = torch.cat([nerf_encoding(origins), nerf_encoding(directions)], dim=-1)
    elif kind == "plucker":
        rays = plucker_coordinates(origins, directions)
    else:
        rays = torch.cat([origins, directions], dim=-1)
    return rays.permute(0, 4, 1, 2, 3)  # (B, C, T, H, W)


# ----------------------------------------------------------------------------------------------------------
# Interpolation
# ----------------------------------------------------------------------------------------------------------
def slerp_quaternions(q0: Tensor, q1: Tensor, t: Tensor) -> Tensor:
    """Spherical linear interpolation of unit quaternions ``(..., 4)`` at fractions ``t`` (broadcast with ``...``).

    Takes the shortest arc (``q1`` is flipped when ``q0 . q1 < 0``, since ``q`` and ``-q`` are the same rotation).
    Falls back to normalised linear interpolation for nearly identical rotations, where SLERP's ``1/sin``
    weights are ill-conditioned (their limit is the linear weights).
    """
    _check_quaternions("q0", q0)
    _check_quaternions("q1", q1)
    _check_tensor("t", t, (), "a broadcastable tensor of fractions")
    t = t.unsqueeze(-1)
    dot = (q0 * q1).sum(dim=-1, keepdim=True)
    q1 = torch.where(dot < 0, -q1, q1)
    # Angle via atan2 of the chord lengths: accurate near 0 unlike acos(dot).
    theta = 2 * torch.atan2((q1 - q0).norm(dim=-1, keepdim=True), (q1 + q0).norm(dim=-1, keepdim=True))
    sin_theta = torch.sin(theta)
    small = sin_theta < 1e-6
    safe_sin = torch.where(small, torch.ones_like(sin_theta), sin_theta)
    w0 = torch.where(small, 1 - t, torch.sin((1 - t) * theta) / safe_sin)
    w1 = torch.where(small, t, torch.sin(t * theta) / safe_sin)
    out = w0 * q0 + w1 * q1
    return out / out.norm(dim=-1, keepdim=True)


def _as_fractions(t: Tensor | float | list, like: Tensor) -> Tensor:
    if isinstance(t, bool) or (isinstance(t, Tensor) and (t.dtype == torch.bool or t.is_complex())):
        raise InvalidTypeError(f"`t` must be a number or a 1-D tensor of fractions, got {describe(t)}.")
    try:
        t = torch.as_tensor(t, dtype=like.dtype, device=like.device)
    except (TypeError, ValueError, RuntimeError):
        raise InvalidTypeError(f"`t` must be a number or a 1-D tensor of fractions, got {describe(t)}.") from None
    if t.ndim > 1:
        raise ValueError(f"`t` must be a scalar or a 1-D tensor (N,), got shape {tuple(t.shape)}.")
    if not torch.isfinite(t).all():
        raise ValueError(f"`t` must contain only finite values, got {non_finite_summary(t)}.")
    return t


def slerp_poses(pose_a: Tensor, pose_b: Tensor, t: Tensor | float) -> Tensor:
    """Poses on the path from ``pose_a`` (t = 0) to ``pose_b`` (t = 1).

    Rotation by SLERP (constant angular velocity, shortest arc), world-to-camera translation and intrinsics
    linearly, as DFoT's pose interpolation.

    Args:
        pose_a, pose_b: ``(..., 16)`` pose vectors with broadcastable leading dimensions.
        t: scalar or ``(N,)`` fractions (values outside [0, 1] extrapolate).

    Returns:
        ``(..., 16)`` for a scalar ``t``, ``(..., N, 16)`` for ``(N,)``.
    """
    validate_poses(pose_a, "pose_a")
    validate_poses(pose_b, "pose_b")
    if pose_a.shape[-1] != 16 or pose_b.shape[-1] != 16:
        raise ValueError(
            "`pose_a` and `pose_b` must be (..., 16) pose vectors, got "
            f"{tuple(pose_a.shape)} and {tuple(pose_b.shape)}."
        )
    t = _as_fractions(t, pose_a)
    if t.ndim == 1:
        pose_a, pose_b = pose_a.unsqueeze(-2), pose_b.unsqueeze(-2)  # (..., 1, 16) broadcast against (N,)
    k_a, q_a, tr_a = poses_to_quaternions(pose_a)
    k_b, q_b, tr_b = poses_to_quaternions(pose_b)
    batch_shape = torch.broadcast_shapes(q_a.shape[:-1], q_b.shape[:-1], t.shape)
    t = t.expand(batch_shape)
    q = slerp_quaternions(q_a.expand(*batch_shape, 4), q_b.expand(*batch_shape, 4), t)
    t_lin = t.unsqueeze(-1)
    return poses_from_quaternions(torch.lerp(k_a, k_b, t_lin), q, torch.lerp(tr_a, tr_b, t_lin))


def interpolate_camera_path(start_pose: Tensor, end_pose: Tensor, num_frames: int) -> Tensor:
    """``num_frames`` poses strictly between ``start_pose`` and ``end_pose`` (both excluded).

    Frame ``i`` sits at ``t = (i + 1) / (num_frames + 1)``, i.e. the frames that fill the gap when the two
    endpoints are the known frames before and after it (like :func:`interpolate_masked_poses`).

    Args:
        start_pose, end_pose: ``(..., 16)`` pose vectors.
        num_frames: number of in-between frames (>= 1).

    Returns:
        ``(..., num_frames, 16)``.
    """
    num_frames = check_positive_int("num_frames", num_frames)
    _validate_vectors(start_pose, "start_pose")
    _validate_vectors(end_pose, "end_pose")
    t = torch.arange(1, num_frames + 1, dtype=start_pose.dtype, device=start_pose.device) / (num_frames + 1)
    return slerp_poses(start_pose, end_pose, t)


def interpolate_masked_poses(poses: Tensor, mask: Tensor) -> Tensor:
    """Replace masked frames of ``(B, T, 16)`` poses by interpolation between the nearest known frames.

    Same result as DFoT's ``CameraPose.replace_with_interpolation``: a masked frame between known frames ``l`` and
    ``r`` gets SLERP rotation and linear translation at ``(t - l) / (r - l)``; masked frames before the first
    (after the last) known frame copy it; sequences with no or only masked frames are returned unchanged. The
    intrinsics of masked frames are interpolated the same way (DFoT keeps whatever was stored there, which is
    meaningless for an unknown frame). Vectorised over the batch, differentiable with respect to the known poses;
    values of masked frames are never read (they may be NaN).

    Args:
        poses: ``(B, T, 16)`` pose vectors.
        mask: ``(B, T)`` bool, ``True`` for frames to replace.

    Returns:
        ``(B, T, 16)``; unmasked frames are returned bit-exactly.
    """
    if not isinstance(poses, Tensor) or poses.ndim != 3 or poses.shape[-1] != 16:
        raise ValueError(f"`poses` must be a tensor of shape (B, T, 16), got {_shape_of(poses)}.")
    if not isinstance(mask, Tensor) or mask.shape != poses.shape[:2]:
        raise ValueError(f"`mask` must be a tensor of shape (B, T) = {tuple(poses.shape[:2])}, got {_shape_of(mask)}.")
    if mask.dtype != torch.bool:
        raise ValueError(f"`mask` must be a bool tensor (True = replace that frame), got dtype {mask.dtype}.")
    mask = mask.to(device=poses.device)
    known = ~mask
    validate_poses(poses[known], "poses (unmasked frames)")
    num_frames = poses.shape[1]
    index = torch.arange(num_frames, device=poses.device).expand_as(mask)
    # Nearest known frame at or before / at or after each frame (-1 / T when there is none).
    left = torch.where(known, index, torch.full_like(index, -1)).cummax(dim=1).values
    right = torch.where(known, index, torch.full_like(index, num_frames))
    right = right.flip(1).cummin(dim=1).values.flip(1)
    left = torch.where(left < 0, right, left)  # before the first known frame: copy it
    right = torch.where(right >= num_frames, left, right)  # after the last known frame: copy it
    usable = (left >= 0) & (left < num_frames)  # False only for sequences without a known frame
    left = left.clamp(0, num_frames - 1)
    right = right.clamp(0, num_frames - 1)
    span = (right - left).clamp(min=1)
    frac = ((index - left) / span).to(poses.dtype)

    # Read masked frames nowhere: substitute a known frame (or identity) before any arithmetic so NaNs in
    # masked slots cannot leak into values or gradients.
    identity = torch.zeros(16, dtype=poses.dtype, device=poses.device)
    identity[[0, 1, 4, 9, 14]] = 1.0
    safe = torch.where(known.unsqueeze(-1), poses, identity)
    pose_l = torch.gather(safe, 1, left.unsqueeze(-1).expand_as(poses))
    pose_r = torch.gather(safe, 1, right.unsqueeze(-1).expand_as(poses))
    k_l, q_l, tr_l = poses_to_quaternions(pose_l)
    k_r, q_r, tr_r = poses_to_quaternions(pose_r)
    q = slerp_quaternions(q_l, q_r, frac)
    f = frac.unsqueeze(-1)
    interpolated = poses_from_quaternions(torch.lerp(k_l, k_r, f), q, torch.lerp(tr_l, tr_r, f))
    replace = (mask & usable).unsqueeze(-1)
    return torch.where(replace, interpolated, poses)
