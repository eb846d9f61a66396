# SPDX-License-Identifier: Apache-2.0
"""The continuous-camera pretraining corpus: determinism, poses that match the rendered camera, seed ranges,
smoothness, and the dataset script's `--continuous` takes."""

import numpy as np
import pytest
from script_loading import load_script

from diffusers_syn2seq.data import (
    CONTINUOUS_CATEGORY,
    CONTINUOUS_SEED_RANGES,
    SPLIT_SEED_RANGES,
    load_metadata,
    read_video,
    render_continuous_clip,
    seeds_for_split,
)
from diffusers_syn2seq.data.synthetic import SynthEgoExo
from diffusers_syn2seq.data.synthetic_paths import (
    ANCHOR_KINDS,
    MAX_FRAME_ROTATION_DEG,
    MAX_FRAME_TRANSLATION,
    continuous_camera_path,
)

SEEDS = seeds_for_split("train", 60, continuous=True)


def _centres_and_axes(poses: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    extrinsics = poses[:, 4:].reshape(-1, 3, 4)
    rot, trans = extrinsics[:, :, :3], extrinsics[:, :, 3]
    return -np.einsum("tji,tj->ti", rot, trans), rot[:, 2]  # camera centre -R^T T, optical axis (row 3 of R)


def test_a_clip_is_a_pure_function_of_its_seed():
    a = render_continuous_clip(SEEDS[0], 12, 24, style="flat_uniform")
    b = render_continuous_clip(SEEDS[0], 12, 24, style="flat_uniform")
    other = render_continuous_clip(SEEDS[1], 12, 24, style="flat_uniform")
    np.testing.assert_array_equal(a["frames"], b["frames"])
    np.testing.assert_array_equal(a["poses"], b["poses"])
    assert not np.array_equal(a["poses"], other["poses"])
    assert a["frames"].shape == (12, 24, 24, 3) and a["frames"].dtype == np.uint8
    np.testing.assert_allclose(np.diff(a["times"]), 0.1)  # scene time runs forward one frame at a time


def test_poses_match_the_rendered_camera():
    """Each frame is what `SynthEgoExo.render` draws from that frame's pose at that frame's time."""
    clip = render_continuous_clip(SEEDS[2], 8, 20, style="flat")
    scene = SynthEgoExo(SEEDS[2], style="flat")
    np.testing.assert_array_equal(scene.render(clip["poses"], clip["times"], 20), clip["frames"])
    centres, axes = _centres_and_axes(clip["poses"])
    positions, forwards, focals, times, _ = continuous_camera_path(scene, 8, SEEDS[2])
    np.testing.assert_allclose(centres, positions, atol=1e-9)
    np.testing.assert_allclose(axes, forwards, atol=1e-9)
    np.testing.assert_allclose(clip["poses"][:, 0], focals)
    rot = clip["poses"][:, 4:].reshape(-1, 3, 4)[:, :, :3]
    np.testing.assert_allclose(rot @ rot.transpose(0, 2, 1), np.broadcast_to(np.eye(3), rot.shape), atol=1e-12)


def test_seed_ranges_are_disjoint_from_every_pair_split():
    for lo, hi in CONTINUOUS_SEED_RANGES.values():
        for plo, phi in SPLIT_SEED_RANGES.values():
            assert hi <= plo or phi <= lo
    ranges = sorted(CONTINUOUS_SEED_RANGES.values())
    assert all(a[1] <= b[0] for a, b in zip(ranges, ranges[1:]))
    assert seeds_for_split("validation", 2, continuous=True) == [3_900_000, 3_900_001]
    with pytest.raises(ValueError, match="split 'train' holds 900000 seeds"):
        seeds_for_split("train", 900_001, continuous=True)


def test_camera_motion_between_adjacent_frames_is_bounded_and_clips_move():
    kinds, moved = set(), 0
    for seed in SEEDS:
        scene = SynthEgoExo(seed)
        positions, forwards, _, _, kind = continuous_camera_path(scene, 12, seed)
        kinds.update(kind.split("->"))
        step = np.linalg.norm(np.diff(positions, axis=0), axis=-1)
        turn = np.degrees(np.arccos(np.clip((forwards[1:] * forwards[:-1]).sum(-1), -1, 1)))
        assert step.max() <= MAX_FRAME_TRANSLATION, (seed, kind, step.max())
        assert turn.max() <= MAX_FRAME_ROTATION_DEG, (seed, kind, turn.max())
        moved += (step.sum() > 0.3) or (turn.sum() > 10)
        lo = np.array([-scene.room_half[0], -scene.room_half[1], 0.0])
        hi = np.array([scene.room_half[0], scene.room_half[1], scene.room_height])
        assert (positions > lo).all() and (positions < hi).all()
    assert kinds == set(ANCHOR_KINDS)  # every kind of motion occurs in 60 clips
    assert moved >= 50  # a continuous-camera corpus, not still shots


def test_dataset_script_writes_continuous_takes(tmp_path):
    make = load_script("training/make_synthetic_dataset.py")
    root = tmp_path / "cont"
    args = ["--continuous", "--output", str(root), "--num-train", "2", "--num-validation", "1", "--num-test", "0",
            "--num-frames", "3", "--transition-frames", "2", "--resolution", "16", "--lossless", "--style", "flat"]
    assert make.main(args) == 0
    table = load_metadata(root)
    assert table["category"] == [CONTINUOUS_CATEGORY] * 3
    assert table["seed"] == [*seeds_for_split("train", 2, continuous=True),
                             *seeds_for_split("validation", 1, continuous=True)]
    for row in table:
        clip = render_continuous_clip(row["seed"], 8, 16, style="flat")  # exo 3 + transition 2 + ego 3
        pieces = [read_video(root / row[name]) for name in ("exo_video", "transition_video", "ego_video")]
        np.testing.assert_array_equal(np.concatenate(pieces), clip["frames"])
        poses = np.concatenate([row["exo_poses"], row["transition_poses"], row["ego_poses"]])
        np.testing.assert_array_equal(poses, clip["poses"])
    # --resume keeps continuous takes, and re-renders them as pairs when --continuous is dropped
    assert make.main(args + ["--resume"]) == 0
    assert make.main([a for a in args if a != "--continuous"] + ["--resume"]) == 0
    assert load_metadata(root)["category"] == ["synthetic"] * 3
