# SPDX-License-Identifier: Apache-2.0
"""Ego-Exo4D preparation on a generated stand-in with the real layout: poses, frame alignment, bad input."""

import csv
import json

import numpy as np
import pytest
from script_loading import load_script

from diffusers_syn2seq.data import Syn2SeqClipDataset, load_metadata, write_video

prep = load_script("training/prepare_egoexo4d.py")

NUM_SOURCE_FRAMES = 20
EXO_HW = (18, 32)  # 16:9 like the 3840x2160 calibration
CALIB_HW = (2160, 3840)
HEADER = (
    "cam_uid,graph_uid,tx_world_cam,ty_world_cam,tz_world_cam,qx_world_cam,qy_world_cam,qz_world_cam,qw_world_cam,"
    "image_width,image_height,intrinsics_type,intrinsics_0,intrinsics_1,intrinsics_2,intrinsics_3,intrinsics_4,"
    "intrinsics_5,intrinsics_6,intrinsics_7,start_frame_idx,end_frame_idx,quality"
)
# camera-to-world of cam02: rotation of 0.7 rad about (1, 2, 3)/|.|, centre (1.5, -0.5, 2.0)
AXIS = np.array([1.0, 2.0, 3.0]) / np.linalg.norm([1.0, 2.0, 3.0])
ANGLE, CENTRE = 0.7, np.array([1.5, -0.5, 2.0])
K_EXO = (1746.8, 1745.2, 1910.0, 1085.0)  # fx, fy, cx, cy in 3840x2160 pixels


def rodrigues(axis, angle):
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k


def index_video(path, num, hw, green):
    """Frame i is a constant colour with red = 10 * i: frame alignment survives any resize or crop."""
    frames = np.zeros((num, *hw, 3), np.uint8)
    frames[..., 0] = (10 * np.arange(num))[:, None, None]
    frames[..., 1] = green
    write_video(path, frames, fps=30, lossless=True)


def make_take(root, name, uid, split="val", drop_frame=None, corrupt_exo=False, nan_calib=False):
    take_dir = root / "takes" / name
    (take_dir / "frame_aligned_videos").mkdir(parents=True)
    (take_dir / "trajectory").mkdir()
    index_video(take_dir / "frame_aligned_videos" / "cam01.mp4", NUM_SOURCE_FRAMES, EXO_HW, 50)
    index_video(take_dir / "frame_aligned_videos" / "cam02.mp4", NUM_SOURCE_FRAMES, EXO_HW, 100)
    index_video(take_dir / "frame_aligned_videos" / "aria01_214-1.mp4", NUM_SOURCE_FRAMES, (24, 24), 200)
    if corrupt_exo:
        (take_dir / "frame_aligned_videos" / "cam02.mp4").write_bytes(b"\x00" * 64)
    q_xyz = AXIS * np.sin(ANGLE / 2)
    q = [*q_xyz, np.cos(ANGLE / 2)]
    rows = [
        [
            "cam01",
            "g",
            0,
            0,
            3,
            0,
            0,
            0,
            1,
            3840,
            2160,
            "KANNALABRANDTK3",
            1700,
            1700,
            1920,
            1080,
            0.1,
            0,
            0,
            0,
            0,
            -1,
            1,
        ],
        ["cam02", "g", *CENTRE, *q, 3840, 2160, "KANNALABRANDTK3", *K_EXO, 0.1, 0.01, 0, 0, 0, -1, 1],
    ]
    if nan_calib:
        rows[1][2] = "nan"
    with open(take_dir / "trajectory" / "gopro_calibs.csv", "w", newline="") as f:
        f.write(HEADER + "\n")
        csv.writer(f).writerows(rows)
    extrinsics = {}
    for frame in range(NUM_SOURCE_FRAMES):
        if frame == drop_frame:
            continue
        r = rodrigues(np.array([0.0, 0.0, 1.0]), 0.05 * frame)
        extrinsics[str(frame)] = np.concatenate([r, [[frame], [0.5], [1.0]]], axis=1).tolist()  # T_x = frame index
    annotation = root / "annotations" / "ego_pose" / split / "camera_pose"
    annotation.mkdir(parents=True, exist_ok=True)
    (annotation / f"{uid}.json").write_text(
        json.dumps(
            {
                "metadata": {"take_name": name, "take_uid": uid},
                "aria01": {
                    "camera_intrinsics": [[150.0, 0, 255.5], [0, 150.0, 255.5], [0, 0, 1]],
                    "camera_extrinsics": extrinsics,
                },
            }
        )
    )
    return {
        "take_uid": uid,
        "take_name": name,
        "root_dir": f"takes/{name}",
        "best_exo": "cam02",
        "parent_task_name": "Cooking",
        "frame_aligned_videos": {
            "aria01": {"rgb": {"relative_path": "frame_aligned_videos/aria01_214-1.mp4"}},
            "cam01": {"0": {"relative_path": "frame_aligned_videos/cam01.mp4"}},
            "cam02": {"0": {"relative_path": "frame_aligned_videos/cam02.mp4"}},
        },
    }


def write_takes(root, takes):
    (root / "takes.json").write_text(json.dumps(takes))


ARGS = ["--num-frames", "4", "--stride", "2", "--clips-per-take", "2", "--resolution", "16", "--lossless"]


def test_poses_and_frame_alignment(tmp_path):
    root, out = tmp_path / "egoexo", tmp_path / "out"
    write_takes(root, [make_take(root, "iiith_cooking_01_1", "uid-1")])
    assert prep.main(["--root", str(root), "--output", str(out), *ARGS]) == 0
    table = load_metadata(out)
    assert table["take_id"] == ["iiith_cooking_01_1-cam02-000000", "iiith_cooking_01_1-cam02-000008"]
    assert set(table["split"]) == {"validation"} and set(table["category"]) == {"Cooking"}
    assert set(table["exo_camera"]) == {"cam02"} and table["fps"] == [15.0, 15.0]
    ds = Syn2SeqClipDataset(out)
    for item, start in zip(ds, (0, 8), strict=True):
        frames = start + 2 * np.arange(4)
        # frame alignment: both videos show the same source frame indices
        np.testing.assert_array_equal(item["exo"][:, 0, 0, 0], 10 * frames)
        np.testing.assert_array_equal(item["ego"][:, 0, 0, 0], 10 * frames)
        assert (item["exo"][..., 1] == 100).all() and (item["ego"][..., 1] == 200).all()  # best_exo, aria
        # ego poses: the annotation rows of exactly those frames
        np.testing.assert_array_equal(item["ego_poses"][:, 4 + 3], frames)
        np.testing.assert_allclose(
            item["ego_poses"][:, :4], np.tile([150 / 512, 150 / 512, 255.5 / 512, 255.5 / 512], (4, 1))
        )
        # exo pose: a world point projects where the calibration's pinhole model puts it, after resize and crop
        world = np.array([0.3, 0.2, -1.0])
        r_wc = rodrigues(AXIS, ANGLE)
        x_cam = r_wc.T @ (world - CENTRE)
        u0 = K_EXO[0] * x_cam[0] / x_cam[2] + K_EXO[2]  # calibration pixels (3840 x 2160)
        v0 = K_EXO[1] * x_cam[1] / x_cam[2] + K_EXO[3]
        s = 16 / 2160  # the 16:9 frame is scaled to height 16 (width 28.44 -> 28), then the centre 16 columns kept
        w1 = round(3840 * s)
        expected_u, expected_v = u0 * w1 / 3840 - (w1 - 16) // 2, v0 * s
        pose = item["exo_poses"][0]
        rt = pose[4:].reshape(3, 4)
        xc = rt[:, :3] @ world + rt[:, 3]
        u = pose[0] * 16 * xc[0] / xc[2] + pose[2] * 16
        v = pose[1] * 16 * xc[1] / xc[2] + pose[3] * 16
        np.testing.assert_allclose([u, v], [expected_u, expected_v], atol=1e-9)
        np.testing.assert_allclose(-rt[:, :3].T @ rt[:, 3], CENTRE, atol=1e-12)  # camera centre = t_world_cam


def test_bad_takes_raise_or_are_skipped(tmp_path, capsys):
    root, out = tmp_path / "egoexo", tmp_path / "out"
    takes = [
        make_take(root, "good_1", "uid-good"),
        make_take(root, "nopose_1", "uid-nopose", drop_frame=10),
        make_take(root, "corrupt_1", "uid-corrupt", corrupt_exo=True),
        make_take(root, "nancalib_1", "uid-nan", nan_calib=True),
    ]
    write_takes(root, takes)
    expected = {
        "nopose_1": r"uid-nopose.json: missing ego pose row for frame 10",
        "corrupt_1": r"corrupt_1/frame_aligned_videos/cam02.mp4",
        "nancalib_1": r"nancalib_1/trajectory/gopro_calibs.csv row 1 \(cam_uid 'cam02'\)",
    }
    for name, message in expected.items():
        with pytest.raises(ValueError, match=message):
            prep.main(["--root", str(root), "--output", str(out), "--take", name, *ARGS])
    with pytest.raises(ValueError, match="shorter than requested"):
        prep.main(["--root", str(root), "--output", str(out), "--take", "good_1", "--start-frame", "15", *ARGS])
    assert prep.main(["--root", str(root), "--output", str(out), "--skip-bad", *ARGS]) == 0
    report = capsys.readouterr().out
    assert "3 takes skipped" in report and all(name in report for name in expected)
    assert [t.split("-")[0] for t in load_metadata(out)["take_id"]] == ["good_1", "good_1"]


def test_mps_route_composes_device_and_rgb_calibration(tmp_path):
    r_wd = rodrigues(np.array([0.0, 1.0, 0.0]), 0.3)
    t_wd = np.array([1.0, 2.0, 0.5])
    q = [*(np.array([0.0, 1.0, 0.0]) * np.sin(0.15)), np.cos(0.15)]
    traj = tmp_path / "closed_loop_trajectory.csv"
    with open(traj, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(
            [
                "graph_uid",
                "tracking_timestamp_us",
                "tx_world_device",
                "ty_world_device",
                "tz_world_device",
                "qx_world_device",
                "qy_world_device",
                "qz_world_device",
                "qw_world_device",
            ]
        )
        w.writerow(["g", 1000, *t_wd, *q])
        w.writerow(["g", 2000, 9, 9, 9, 0, 0, 0, 1])
    t_device_rgb = np.eye(4)
    t_device_rgb[:3, :3] = rodrigues(np.array([1.0, 0.0, 0.0]), -0.4)
    t_device_rgb[:3, 3] = [0.05, -0.01, 0.0]
    intr = np.array([0.3, 0.3, 0.5, 0.5])
    poses = prep.ego_poses_from_mps(traj, np.array([1200.0]), t_device_rgb, intr)
    t_world_device = np.eye(4)
    t_world_device[:3, :3], t_world_device[:3, 3] = r_wd, t_wd
    expected = np.linalg.inv(t_world_device @ t_device_rgb)[:3]
    np.testing.assert_allclose(poses[0, 4:].reshape(3, 4), expected, atol=1e-12)
    assert not np.allclose(poses[0, 4:].reshape(3, 4), np.linalg.inv(t_world_device)[:3], atol=1e-3)
    with pytest.raises(ValueError, match="no device pose within 5 ms"):
        prep.ego_poses_from_mps(traj, np.array([50_000.0]), t_device_rgb, intr)


@pytest.mark.parametrize("quarter_turns", [1, 2, 3])
def test_rotating_ego_frames_keeps_poses_consistent(quarter_turns):
    """Rendering with the rotated pose gives the rotated image (the renderer is the independent referee)."""
    from diffusers_syn2seq.data import SynthEgoExo

    scene = SynthEgoExo(4)
    times = scene.frame_times(2)
    poses = scene.ego_poses(times, (12, 20))
    frames = scene.render(poses, times, (12, 20))
    rot_frames, rot_poses = prep.rotate_clockwise(frames, poses, quarter_turns)
    size = (12, 20) if quarter_turns % 2 == 0 else (20, 12)
    assert rot_frames.shape == (2, *size, 3)
    rendered = scene.render(rot_poses, times, size)
    assert (rendered == rot_frames).all(axis=-1).mean() > 0.995  # a few edge pixels may flip (float32 rays)
    back_frames, back_poses = prep.rotate_clockwise(rot_frames, rot_poses, 4 - quarter_turns)
    np.testing.assert_array_equal(back_frames, frames)
    np.testing.assert_allclose(back_poses, poses, atol=1e-12)
