# SPDX-License-Identifier: Apache-2.0
"""Camera geometry: parity with the official DFoT `CameraPose` / `Ray` tensors, properties and input checks."""

import math

import pytest
import torch
from safetensors.torch import load_file

from diffusers_syn2seq.camera import (
    RAY_MAP_CHANNELS,
    CameraPoses,
    camera_rays,
    interpolate_camera_path,
    interpolate_masked_poses,
    normalize_by_first,
    poses_from_camera_to_world,
    poses_from_quaternions,
    poses_from_world_to_camera,
    poses_to_camera_to_world,
    poses_to_quaternions,
    poses_to_world_to_camera,
    quaternion_to_rotation,
    ray_map,
    rotation_to_quaternion,
    slerp_poses,
    split_poses,
    validate_poses,
)


def random_rotations(n: int, dtype=torch.float64, generator=None) -> torch.Tensor:
    """(n, 3, 3) rotations from random unit quaternions (uniform on SO(3))."""
    q = torch.randn(n, 4, dtype=dtype, generator=generator)
    return quaternion_to_rotation(q)


def random_poses(*shape: int, dtype=torch.float64) -> torch.Tensor:
    """(*shape, 16) valid pose vectors with varied intrinsics."""
    n = math.prod(shape)
    rotation = random_rotations(n, dtype)
    translation = torch.randn(n, 3, dtype=dtype)
    intrinsics = torch.stack(
        [
            torch.empty(n, dtype=dtype).uniform_(0.5, 1.5),
            torch.empty(n, dtype=dtype).uniform_(0.5, 1.5),
            torch.empty(n, dtype=dtype).uniform_(0.4, 0.6),
            torch.empty(n, dtype=dtype).uniform_(0.4, 0.6),
        ],
        dim=-1,
    )
    extrinsics = torch.cat([rotation, translation[:, :, None]], dim=-1).flatten(1)
    return torch.cat([intrinsics, extrinsics], dim=-1).reshape(*shape, 16)


def rotation_angle(rotation_a: torch.Tensor, rotation_b: torch.Tensor) -> torch.Tensor:
    relative = rotation_a.transpose(-1, -2) @ rotation_b
    cos = ((relative.diagonal(dim1=-2, dim2=-1).sum(-1) - 1) / 2).clamp(-1, 1)
    return torch.arccos(cos)


# ---------------------------------------------------------------------------------------------------------
# Parity with the official reference tensors
# ---------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def rays_fixture(dfot_fixtures_dir):
    return load_file(dfot_fixtures_dir / "camera_rays.safetensors")


def test_rays_match_reference(rays_fixture):
    poses = normalize_by_first(rays_fixture["raw_camera_poses"])
    height, width = rays_fixture["ray_origin"].shape[2:4]
    origins, directions = camera_rays(poses, height, width)
    torch.testing.assert_close(origins, rays_fixture["ray_origin"], atol=1e-5, rtol=0)
    torch.testing.assert_close(directions, rays_fixture["ray_direction"], atol=1e-5, rtol=0)


@pytest.mark.parametrize("kind", ["ray_encoding", "plucker"])
def test_ray_maps_match_reference(rays_fixture, kind):
    height, width = rays_fixture["ray_origin"].shape[2:4]
    # ray_map normalises by the first frame itself, as the reference pipeline does.
    maps = ray_map(rays_fixture["raw_camera_poses"], height, width, kind=kind)
    assert maps.shape[1] == RAY_MAP_CHANNELS[kind]
    torch.testing.assert_close(maps.permute(0, 2, 3, 4, 1), rays_fixture[kind], atol=1e-5, rtol=0)


def test_raw_ray_map_is_origin_and_direction(rays_fixture):
    maps = ray_map(rays_fixture["raw_camera_poses"], 32, 32, kind="ray").permute(0, 2, 3, 4, 1)
    expected = torch.cat([rays_fixture["ray_origin"], rays_fixture["ray_direction"]], dim=-1)
    torch.testing.assert_close(maps, expected, atol=1e-5, rtol=0)


def test_interpolation_matches_reference(dfot_fixtures_dir):
    ref = load_file(dfot_fixtures_dir / "pose_interpolation.safetensors")
    out = interpolate_masked_poses(ref["raw_camera_poses"], ref["mask"].bool())
    _, rotation, translation = split_poses(out)
    torch.testing.assert_close(rotation, ref["R"], atol=1e-5, rtol=0)
    torch.testing.assert_close(translation, ref["T"], atol=1e-5, rtol=0)


# ---------------------------------------------------------------------------------------------------------
# Properties
# ---------------------------------------------------------------------------------------------------------
def test_slerp_endpoints_and_orthonormality():
    pose_a, pose_b = random_poses(5), random_poses(5)
    path = slerp_poses(pose_a, pose_b, torch.tensor([0.0, 0.25, 0.5, 1.0], dtype=torch.float64))
    assert path.shape == (5, 4, 16)
    torch.testing.assert_close(path[:, 0], pose_a, atol=1e-6, rtol=0)
    torch.testing.assert_close(path[:, -1], pose_b, atol=1e-6, rtol=0)
    _, rotation, _ = split_poses(path)
    eye = torch.eye(3, dtype=torch.float64)
    torch.testing.assert_close(rotation @ rotation.transpose(-1, -2), eye.expand_as(rotation), atol=1e-9, rtol=0)
    torch.testing.assert_close(torch.linalg.det(rotation), torch.ones(5, 4, dtype=torch.float64))


def test_slerp_has_constant_angular_speed_on_shortest_arc():
    pose_a, pose_b = random_poses(3), random_poses(3)
    t = torch.linspace(0, 1, 9, dtype=torch.float64)
    _, rotation, translation = split_poses(slerp_poses(pose_a, pose_b, t))
    steps = rotation_angle(rotation[:, :-1], rotation[:, 1:])  # (3, 8)
    total = rotation_angle(split_poses(pose_a)[1], split_poses(pose_b)[1])  # geodesic distance, <= pi
    torch.testing.assert_close(steps, (total / 8)[:, None].expand_as(steps), atol=1e-9, rtol=0)
    # Translation is linear in t.
    expected = torch.lerp(split_poses(pose_a)[2][:, None], split_poses(pose_b)[2][:, None], t[:, None])
    torch.testing.assert_close(translation, expected)


def test_interpolate_camera_path_interior_points():
    start, end = random_poses(16), random_poses(16)
    path = interpolate_camera_path(start[0], end[0], 3)
    assert path.shape == (3, 16)
    expected = slerp_poses(start[0], end[0], torch.tensor([0.25, 0.5, 0.75], dtype=torch.float64))
    torch.testing.assert_close(path, expected)
    # Filling the gap between two known frames gives the same path as masking the interior frames.
    sequence = torch.cat([start[:1], path * float("nan"), end[:1]])[None]
    mask = torch.tensor([[False, True, True, True, False]])
    torch.testing.assert_close(interpolate_masked_poses(sequence, mask)[0, 1:4], path)


def test_interpolate_masked_poses_edges_batch_and_nan():
    poses = random_poses(3, 6)
    mask = torch.tensor(
        [
            [True, False, True, True, False, True],  # leading and trailing masked frames copy the nearest known
            [True] * 6,  # nothing known: unchanged
            [False] * 6,  # nothing masked: unchanged
        ]
    )
    corrupted = poses.clone()
    corrupted[0, mask[0]] = float("nan")  # values of masked frames must never be read
    out = interpolate_masked_poses(corrupted, mask)
    assert torch.isfinite(out[0]).all() and torch.isfinite(out[2]).all()
    torch.testing.assert_close(out[0, 0, 4:], poses[0, 1, 4:])
    torch.testing.assert_close(out[0, 5, 4:], poses[0, 4, 4:])
    assert torch.equal(out[0, [1, 4]], poses[0, [1, 4]])  # known frames untouched, bit for bit
    torch.testing.assert_close(out[0, 2:4], slerp_poses(poses[0, 1], poses[0, 4], torch.tensor([1 / 3, 2 / 3])))
    assert torch.equal(out[1], corrupted[1]) and torch.equal(out[2], poses[2])


def test_normalize_by_first_gives_identity_and_is_world_invariant():
    poses = random_poses(2, 4)
    normalized = normalize_by_first(poses)
    _, rotation, translation = split_poses(normalized)
    torch.testing.assert_close(rotation[:, 0], torch.eye(3, dtype=torch.float64).expand(2, 3, 3), atol=1e-12, rtol=0)
    torch.testing.assert_close(translation[:, 0], torch.zeros(2, 3, dtype=torch.float64), atol=1e-12, rtol=0)
    # Moving the whole scene by a rigid transform does not change the normalised poses or the ray maps.
    world = torch.eye(4, dtype=torch.float64)
    world[:3, :3] = random_rotations(1)[0]
    world[:3, 3] = torch.randn(3, dtype=torch.float64)
    moved_w2c = poses_to_world_to_camera(poses) @ torch.linalg.inv(world)
    moved = poses_from_world_to_camera(moved_w2c, poses[..., :4])
    torch.testing.assert_close(normalize_by_first(moved), normalized)
    torch.testing.assert_close(ray_map(moved, 4, 5, kind="plucker"), ray_map(poses, 4, 5, kind="plucker"))


def test_principal_point_ray_is_optical_axis():
    poses = random_poses(2, 3)
    poses[..., 2:4] = 0.5  # principal point at the image centre = centre of the middle pixel of a 5x7 grid
    origins, directions = camera_rays(poses, 5, 7)
    _, rotation, translation = split_poses(poses)
    optical_axis = rotation.transpose(-1, -2)[..., :, 2]  # R^T [0, 0, 1]
    torch.testing.assert_close(directions[..., 2, 3, :], optical_axis)
    centers = -(rotation.transpose(-1, -2) @ translation[..., None])[..., 0]
    torch.testing.assert_close(origins[..., 0, 0, :], centers)
    # Pixel units: one pixel to the right moves the camera-frame direction by 1 / (fx W) along x.
    fx = poses[..., 0]
    step = (rotation @ (directions[..., 2, 4, :] - directions[..., 2, 3, :])[..., None])[..., 0]
    torch.testing.assert_close(step[..., 0], 1 / (fx * 7))


def test_round_trips_between_pose_forms():
    for dtype in (torch.float32, torch.float64):
        poses = random_poses(2, 5).to(dtype)
        intrinsics = poses[..., :4]
        torch.testing.assert_close(
            poses_from_world_to_camera(poses_to_world_to_camera(poses), intrinsics), poses, atol=1e-6, rtol=0
        )
        torch.testing.assert_close(
            poses_from_camera_to_world(poses_to_camera_to_world(poses), intrinsics), poses, atol=1e-6, rtol=0
        )
        torch.testing.assert_close(poses_from_quaternions(*poses_to_quaternions(poses)), poses, atol=1e-6, rtol=0)
        torch.testing.assert_close(CameraPoses.from_vectors(poses).to_vectors(), poses, atol=0, rtol=0)
        c2w = poses_to_camera_to_world(poses)
        torch.testing.assert_close(
            c2w @ poses_to_world_to_camera(poses), torch.eye(4, dtype=dtype).expand_as(c2w), atol=1e-6, rtol=0
        )
    # Quaternions near 180 degrees (where the trace formula breaks down) still round-trip.
    half_turns = torch.diag_embed(
        torch.tensor([[1.0, -1.0, -1.0], [-1.0, 1.0, -1.0], [-1.0, -1.0, 1.0]], dtype=torch.float64)
    )
    torch.testing.assert_close(
        quaternion_to_rotation(rotation_to_quaternion(half_turns)), half_turns, atol=1e-12, rtol=0
    )


def test_geometry_is_differentiable_in_float64():
    poses = random_poses(1, 2)
    rotation_part = poses[..., 4:].clone()
    intrinsics = poses[..., :4].clone().requires_grad_(True)

    def plucker(k):
        return ray_map(torch.cat([k, rotation_part], -1), 3, 2, kind="plucker")

    assert torch.autograd.gradcheck(plucker, (intrinsics,))
    t = torch.tensor([0.3, 0.7], dtype=torch.float64, requires_grad=True)
    a, b = random_poses(1)[0], random_poses(1)[0]
    assert torch.autograd.gradcheck(lambda s: slerp_poses(a, b, s), (t,))


def test_float64_is_kept():
    poses = random_poses(1, 2)
    assert ray_map(poses, 4, 4).dtype == torch.float64
    assert interpolate_camera_path(poses[0, 0], poses[0, 1], 2).dtype == torch.float64


# ---------------------------------------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: p[..., :12], r"\(\.\.\., 16\).*got shape \(2, 3, 12\)"),
        (lambda p: p.index_fill(-1, torch.tensor([7]), float("nan")), "finite"),
        (lambda p: p.index_fill(-1, torch.tensor([7]), float("inf")), "finite"),
        (lambda p: p.index_fill(-1, torch.tensor([4]), 3.0), "orthonormal"),
        (lambda p: p.index_fill(-1, torch.tensor([1]), 0.0), "focal"),
        (lambda p: torch.cat([p[..., :4], -p[..., 4:]], -1), r"det\(R\)"),  # -R is a reflection
    ],
)
def test_bad_poses_raise(make, message):
    bad = make(random_poses(2, 3))
    with pytest.raises(ValueError, match=message):
        validate_poses(bad, name="camera_poses")
    with pytest.raises(ValueError, match="poses"):
        ray_map(bad, 8, 8)


def test_validate_accepts_matrices_and_names_argument():
    poses = random_poses(2, 3)
    validate_poses(poses_to_world_to_camera(poses))
    bad = poses_to_world_to_camera(poses)
    bad[..., 0, 0] += 0.1
    with pytest.raises(ValueError, match="`w2c`.*orthonormal"):
        validate_poses(bad, name="w2c")
    with pytest.raises(ValueError, match="`kind`"):
        ray_map(poses, 4, 4, kind="pluecker")
    with pytest.raises(ValueError, match="`mask`"):
        interpolate_masked_poses(poses, torch.zeros(2, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="`num_frames`"):
        interpolate_camera_path(poses[0, 0], poses[0, 1], 0)
