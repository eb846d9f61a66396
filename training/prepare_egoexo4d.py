# SPDX-License-Identifier: Apache-2.0
"""Convert a local Ego-Exo4D download into the Syn2Seq dataset format (exo/ego clip pairs with poses).

Ego-Exo4D is licence-gated; download it yourself with the official `egoexo` CLI. This script reads::

    ROOT/takes.json                                            take list (take_uid, take_name, root_dir,
                                                               best_exo, parent_task_name, frame_aligned_videos)
    ROOT/<root_dir>/frame_aligned_videos/<cam>.mp4             exo GoPro videos (frame-aligned, 30 fps)
    ROOT/<root_dir>/frame_aligned_videos/aria01_214-1.mp4      ego Aria RGB video (frame-aligned)
    ROOT/<root_dir>/trajectory/gopro_calibs.csv                exo calibration: T_world_cam as
                                                               (tx,ty,tz)_world_cam + (qx,qy,qz,qw)_world_cam,
                                                               KB3 intrinsics_0..3 = fx, fy, cx, cy at
                                                               image_width x image_height (3840x2160)
    ROOT/annotations/ego_pose/<split>/camera_pose/<take_uid>.json    (--ego_poses annotations, default)
        {"<aria cam>": {"camera_intrinsics": 3x3, "camera_extrinsics": {"<frame>": 3x4 world-to-camera}}}
    ROOT/<root_dir>/trajectory/closed_loop_trajectory.csv     (--ego_poses mps) device poses T_world_device
    ROOT/captures/<capture>/timesync.csv                      (--ego_poses mps) aria RGB capture timestamps

Exo poses: T_world_cam is inverted into world-to-camera [R|T]; intrinsics are normalised by the
calibration resolution (so they hold for any downscale of the same aspect ratio, e.g. the 448p videos),
then adjusted for the centre crop to the output aspect ratio. The fisheye (KB3) distortion is *not*
removed: frames are the original fisheye images with the pinhole part of the calibration.

Ego poses: the ego-pose annotations already give per-frame world-to-camera extrinsics of the (undistorted)
RGB camera, with intrinsics for `--ego_intrinsics_size`; the MPS route composes the closed-loop *device*
pose with the device-to-RGB-camera calibration (`--device_to_rgb`, a JSON 4x4 T_device_rgb, e.g. from
`projectaria_tools` `get_transform_device_camera()`): T_world_rgb = T_world_device @ T_device_rgb. Using
the device pose directly is the classic mistake; the two differ by the RGB camera's mounting.

Clips: `--clips_per_take` non-overlapping clips of `--num_frames` frames taken every `--stride` source
frames (30 fps / stride) from `--start_frame`; the exo and ego frames of a clip have the same
frame-aligned indices. Bad takes (missing files, corrupt videos, missing pose rows, NaN poses) raise a
`ValueError` naming the file and row, or with `--skip_bad` are skipped and listed at the end.

Safety: takes.json is read as untrusted input. Every file it leads to (`root_dir`, the videos' `relative_path`, the
calibration, annotation, trajectory and timesync files) is resolved, symlinks included, and refused unless it stays
under `--root`; take names, take uids and camera names must be plain names. Bad input prints one line
`prepare_egoexo4d.py: error: ...` and exits with status 2 (`--debug`: traceback); a run that writes no clip at all
is an error.

Example::

    python training/prepare_egoexo4d.py --root /data/egoexo4d --output data/egoexo64 \
        --num_frames 16 --stride 3 --resolution 64 --clips_per_take 4
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from diffusers_syn2seq.cli_support import ToolArgumentParser, add_debug_flag, run_tool
from diffusers_syn2seq.data.dataset import validate_poses_array, write_clip, write_metadata
from diffusers_syn2seq.data.video_io import read_frames, video_info
from diffusers_syn2seq.safe_io import check_output_dir, check_safe_name, resolve_inside

SPLIT_NAMES = {"train": "train", "val": "validation", "validation": "validation", "test": "test"}


# ------------------------------------------------------------------------------------------ geometry
def quaternion_xyzw_to_rotation(q: np.ndarray) -> np.ndarray:
    """Unit quaternion (x, y, z, w) -> 3x3 rotation matrix (float64)."""
    x, y, z, w = np.asarray(q, dtype=np.float64) / np.linalg.norm(q)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def pose_vector(intrinsics: np.ndarray, world_to_camera: np.ndarray) -> np.ndarray:
    """(4,) normalised fx, fy, px, py + (3, 4) or (4, 4) world-to-camera -> (16,) pose."""
    return np.concatenate(
        [np.asarray(intrinsics, dtype=np.float64), np.asarray(world_to_camera, dtype=np.float64)[:3].reshape(12)]
    )


def crop_intrinsics(
    intr: np.ndarray, src_hw: tuple[int, int], out_hw: tuple[int, int]
) -> tuple[np.ndarray, tuple[int, int], tuple[int, int]]:
    """Normalised intrinsics after resizing a `src_hw` frame to cover `out_hw` (aspect kept) and cropping
    the centre. Returns (new intrinsics, resized (h, w), crop offset (y0, x0))."""
    (h0, w0), (h, w) = src_hw, out_hw
    scale = max(h / h0, w / w0)
    h1, w1 = max(h, round(h0 * scale)), max(w, round(w0 * scale))
    y0, x0 = (h1 - h) // 2, (w1 - w) // 2
    fx, fy, px, py = intr
    new = np.array([fx * w1 / w, fy * h1 / h, (px * w1 - x0) / w, (py * h1 - y0) / h])
    return new, (h1, w1), (y0, x0)


def rotate_clockwise(frames: np.ndarray, poses: np.ndarray, quarter_turns: int) -> tuple[np.ndarray, np.ndarray]:
    """Rotate frames `(T, H, W, 3)` clockwise by `quarter_turns` x 90 degrees and rewrite their poses
    `(T, 16)` so that every world point still projects onto the same image content.

    One clockwise turn maps pixel (u, v) of a W x H image to (H - v, u): the new camera axes are
    x' = -y, y' = x, z' = z (R' = Rz R, T' = Rz T) and the normalised intrinsics become
    (fy, fx, 1 - py, px). Used for Aria RGB videos stored rotated by 90 degrees in some releases.
    """
    turns = int(quarter_turns) % 4
    frames, poses = np.asarray(frames), np.asarray(poses, dtype=np.float64).copy()
    rz = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    for _ in range(turns):
        frames = np.rot90(frames, k=-1, axes=(1, 2))
        fx, fy, px, py = poses[:, 0].copy(), poses[:, 1].copy(), poses[:, 2].copy(), poses[:, 3].copy()
        poses[:, :4] = np.stack([fy, fx, 1.0 - py, px], axis=-1)
        rt = poses[:, 4:].reshape(-1, 3, 4)
        poses[:, 4:] = np.einsum("ij,tjk->tik", rz, rt).reshape(-1, 12)
    return np.ascontiguousarray(frames), poses


def read_exo_calibration(csv_path: Path, camera: str) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """Exo camera `camera` from gopro_calibs.csv: normalised intrinsics (4,), world-to-camera (3, 4),
    calibration (height, width)."""
    if not csv_path.is_file():
        raise ValueError(f"exo calibration {str(csv_path)!r} does not exist")
    with open(csv_path, newline="") as f:
        rows = [
            {k.strip(): (v.strip() if isinstance(v, str) else v) for k, v in row.items()} for row in csv.DictReader(f)
        ]
    for index, row in enumerate(rows):
        if row.get("cam_uid") != camera:
            continue
        where = f"{csv_path} row {index} (cam_uid {camera!r})"
        try:
            q = np.array([float(row[f"q{a}_world_cam"]) for a in "xyzw"])
            t = np.array([float(row[f"t{a}_world_cam"]) for a in "xyz"])
            fx, fy, cx, cy = (float(row[f"intrinsics_{i}"]) for i in range(4))
            width, height = int(float(row["image_width"])), int(float(row["image_height"]))
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"{where}: missing or non-numeric calibration value ({error})") from error
        values = np.concatenate([q, t, [fx, fy, cx, cy]])
        if not np.isfinite(values).all() or np.linalg.norm(q) == 0 or width <= 0 or height <= 0:
            raise ValueError(f"{where}: NaN, zero quaternion or bad image size in the calibration")
        r_wc = quaternion_xyzw_to_rotation(q)
        world_to_camera = np.concatenate([r_wc.T, (-r_wc.T @ t)[:, None]], axis=1)
        # intrinsics are in pixels of the calibration resolution; pixel centres at +0.5 as in our convention
        return np.array([fx / width, fy / height, cx / width, cy / height]), world_to_camera, (height, width)
    raise ValueError(f"exo calibration {str(csv_path)!r} has no row for camera {camera!r}")


def read_ego_pose_annotation(json_path: Path, frames: np.ndarray, size: int) -> np.ndarray:
    """(len(frames), 16) ego poses from an Ego-Exo4D camera_pose annotation (aria camera entry)."""
    if not json_path.is_file():
        raise ValueError(f"ego pose annotation {str(json_path)!r} does not exist")
    try:
        data = json.loads(json_path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"ego pose annotation {str(json_path)!r} is not valid JSON: {error}") from error
    aria = [k for k in data if k.startswith("aria")]
    if not aria:
        raise ValueError(f"ego pose annotation {str(json_path)!r} has no aria camera entry")
    entry = data[aria[0]]
    k = np.asarray(entry["camera_intrinsics"], dtype=np.float64)
    intr = np.array([k[0, 0] / size, k[1, 1] / size, k[0, 2] / size, k[1, 2] / size])
    extr = entry["camera_extrinsics"]
    poses = []
    for frame in frames:
        key = str(int(frame))
        matrix = extr.get(key) if isinstance(extr, dict) else (extr[int(frame)] if int(frame) < len(extr) else None)
        if matrix is None:
            raise ValueError(f"{json_path}: missing ego pose row for frame {int(frame)} (camera {aria[0]!r})")
        m = np.asarray(matrix, dtype=np.float64).reshape(-1)
        if m.size not in (12, 16):
            raise ValueError(
                f"{json_path}: ego pose row for frame {int(frame)} has {m.size} numbers, expected 12 (3x4)"
            )
        poses.append(pose_vector(intr, m[:12].reshape(3, 4)))
    poses = np.stack(poses)
    bad = ~np.isfinite(poses).all(axis=1)
    if bad.any():
        raise ValueError(f"{json_path}: ego pose row for frame {int(frames[int(np.argmax(bad))])} contains NaN or inf")
    return poses


def ego_poses_from_mps(
    trajectory_csv: Path, frame_timestamps_us: np.ndarray, t_device_rgb: np.ndarray, intrinsics: np.ndarray
) -> np.ndarray:
    """(T, 16) world-to-RGB-camera poses from the MPS closed-loop trajectory: the device pose nearest in
    time to each frame (the trajectory is ~1 kHz), composed with the device-to-RGB calibration:
    T_world_rgb = T_world_device @ T_device_rgb, then inverted."""
    if not trajectory_csv.is_file():
        raise ValueError(f"MPS trajectory {str(trajectory_csv)!r} does not exist")
    with open(trajectory_csv, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise ValueError(f"MPS trajectory {str(trajectory_csv)!r} has no rows")
    stamps = np.array([float(r["tracking_timestamp_us"]) for r in rows])
    poses = []
    for ts in np.asarray(frame_timestamps_us, dtype=np.float64):
        i = int(np.argmin(np.abs(stamps - ts)))
        if abs(stamps[i] - ts) > 5_000:  # 5 ms: no trajectory sample near this frame
            raise ValueError(
                f"{trajectory_csv}: no device pose within 5 ms of frame timestamp {ts:.0f} us (nearest row {i})"
            )
        row = rows[i]
        r_wd = quaternion_xyzw_to_rotation([float(row[f"q{a}_world_device"]) for a in "xyzw"])
        t_wd = np.array([float(row[f"t{a}_world_device"]) for a in "xyz"])
        t_world_device = np.eye(4)
        t_world_device[:3, :3], t_world_device[:3, 3] = r_wd, t_wd
        world_to_rgb = np.linalg.inv(t_world_device @ np.asarray(t_device_rgb, dtype=np.float64))
        poses.append(pose_vector(intrinsics, world_to_rgb))
    return validate_poses_array(np.stack(poses), len(poses), f"{trajectory_csv} (composed ego poses)")


# ------------------------------------------------------------------------------------------ takes
def _take_file(root: Path, take: dict[str, Any], relative: str, what: str) -> Path:
    """`root / take["root_dir"] / relative`, refused unless it stays under `root` (symlinks resolved)."""
    root_dir = take.get("root_dir")
    if not isinstance(root_dir, str):
        raise ValueError(f"takes.json take {take.get('take_name')!r}: expected a root_dir string, got {root_dir!r}")
    return resolve_inside(root, f"{root_dir}/{relative}", f"takes.json take {take.get('take_name')!r} {what}")


def _find_annotation(root: Path, take_uid: str) -> tuple[Path, str | None]:
    check_safe_name(take_uid, "takes.json take_uid")
    for split in ("train", "val", "test"):
        path = root / "annotations" / "ego_pose" / split / "camera_pose" / f"{take_uid}.json"
        if path.is_file():
            return resolve_inside(root, str(path.relative_to(root)), f"ego pose annotation of take {take_uid!r}"), \
                SPLIT_NAMES[split]
    return root / "annotations" / "ego_pose" / "train" / "camera_pose" / f"{take_uid}.json", None


def _video_path(root: Path, take: dict[str, Any], camera: str, stream: str) -> Path:
    check_safe_name(camera, "camera name")
    videos = take.get("frame_aligned_videos") or {}
    try:
        relative = videos[camera][stream]["relative_path"]
    except (KeyError, TypeError):
        relative = (
            f"frame_aligned_videos/{camera}.mp4" if stream == "0" else f"frame_aligned_videos/{camera}_214-1.mp4"
        )
    return _take_file(root, take, relative, f"{camera} video")


def _aria_timestamps_us(root: Path, take: dict[str, Any], camera: str, frames: np.ndarray) -> np.ndarray:
    capture = check_safe_name(re.sub(r"_\d+$", "", take["take_name"]), "takes.json take_name (capture)")
    path = resolve_inside(root, f"captures/{capture}/timesync.csv", f"timesync file of capture {capture!r}")
    if not path.is_file():
        raise ValueError(f"timesync file {str(path)!r} does not exist (needed by --ego_poses mps)")
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    column = f"{camera}_214-1_capture_timestamp_ns"
    start = int(take["timesync_start_idx"]) + 1
    out = []
    for frame in frames:
        index = start + int(frame)
        if index >= len(rows) or not rows[index].get(column):
            raise ValueError(f"{path}: missing row {index} / column {column!r} for frame {int(frame)}")
        out.append(float(rows[index][column]) / 1000.0)
    return np.array(out)


def prepare_take(
    root: Path, output: Path, take: dict[str, Any], args: argparse.Namespace, splits: dict[str, str]
) -> list[dict]:
    """Write the clips of one take; returns their metadata rows. Raises ValueError naming file and row."""
    name, uid = check_safe_name(take.get("take_name"), "takes.json take_name"), take.get("take_uid")
    exo_cam = args.exo_camera or take.get("best_exo")
    if not exo_cam:
        raise ValueError(f"takes.json take {name!r} has no best_exo; pass --exo_camera")
    ego_cam = args.ego_camera
    exo_video = _video_path(root, take, exo_cam, "0")
    ego_video = _video_path(root, take, ego_cam, "rgb")
    calib = _take_file(root, take, "trajectory/gopro_calibs.csv", "exo calibration")
    exo_intr, exo_w2c, calib_hw = read_exo_calibration(calib, exo_cam)
    exo_info, ego_info = video_info(exo_video), video_info(ego_video)
    if abs(exo_info.width / exo_info.height - calib_hw[1] / calib_hw[0]) > 0.01:
        raise ValueError(
            f"exo video {str(exo_video)!r} is {exo_info.width}x{exo_info.height}, not the aspect ratio of its "
            f"calibration ({calib_hw[1]}x{calib_hw[0]}) in {calib}"
        )
    size = (args.resolution, args.resolution)
    exo_intr_out, exo_resized, (y0, x0) = crop_intrinsics(exo_intr, (exo_info.height, exo_info.width), size)
    span = args.num_frames * args.stride
    available = min(exo_info.num_frames or 10**9, ego_info.num_frames or 10**9)
    starts = [args.start_frame + k * span for k in range(args.clips_per_take)]
    starts = [s for s in starts if s + (args.num_frames - 1) * args.stride < available]
    if not starts:
        raise ValueError(
            f"take {name!r} is shorter than requested: exo {str(exo_video)!r} / ego {str(ego_video)!r} have "
            f"{exo_info.num_frames} / {ego_info.num_frames} frames, a clip needs frames up to "
            f"{args.start_frame + (args.num_frames - 1) * args.stride}"
        )
    if args.ego_poses == "mps":
        t_device_rgb = read_device_to_rgb(args.device_to_rgb)
        ego_intr = np.asarray(args.ego_intrinsics, dtype=np.float64)
    split = splits.get(uid)
    rows = []
    for start in starts:
        frames = start + args.stride * np.arange(args.num_frames)
        if args.ego_poses == "annotations":
            annotation, folder_split = _find_annotation(root, uid)
            split = split or folder_split
            ego_poses = read_ego_pose_annotation(annotation, frames, args.ego_intrinsics_size)
        else:
            stamps = _aria_timestamps_us(root, take, ego_cam, frames)
            traj = _take_file(root, take, "trajectory/closed_loop_trajectory.csv", "MPS trajectory")
            ego_poses = ego_poses_from_mps(traj, stamps, t_device_rgb, ego_intr)
        exo = read_frames(exo_video, frames, size=exo_resized)[:, y0 : y0 + size[0], x0 : x0 + size[1]]
        ego = read_frames(ego_video, frames, size=size)
        if args.rotate_ego:
            ego, ego_poses = rotate_clockwise(ego, ego_poses, args.rotate_ego // 90)
        exo_poses = np.repeat(pose_vector(exo_intr_out, exo_w2c)[None], len(frames), axis=0)
        rows.append(
            write_clip(
                output,
                f"{name}-{exo_cam}-{start:06d}",
                exo,
                ego,
                exo_poses,
                ego_poses,
                fps=exo_info.fps / args.stride,
                category=str(take.get("parent_task_name") or "unknown"),
                split=split or "train",
                source="egoexo4d",
                exo_camera=exo_cam,
                lossless=args.lossless,
            )
        )
    return rows


def read_device_to_rgb(path: str) -> np.ndarray:
    """The 4x4 `T_device_rgb` of `--device_to_rgb` (JSON), with errors naming the flag and the file."""
    try:
        matrix = np.asarray(json.loads(Path(path).read_text()), dtype=np.float64)
    except (OSError, ValueError, TypeError) as error:
        raise ValueError(f"--device_to_rgb: expected a JSON 4x4 matrix file, got {path!r}: {error}") from None
    if matrix.size != 16 or not np.isfinite(matrix).all():
        raise ValueError(f"--device_to_rgb: expected 16 finite numbers (a 4x4 matrix) in {path!r}, got shape "
                         f"{matrix.shape}")
    return matrix.reshape(4, 4)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = ToolArgumentParser(prog="prepare_egoexo4d.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, required=True, help="local Ego-Exo4D download (holds takes.json)")
    parser.add_argument("--output", type=Path, required=True, help="Syn2Seq dataset folder to write")
    parser.add_argument("--num_frames", "--num-frames", type=int, default=16, help="frames per clip (exo and ego each)")
    parser.add_argument("--stride", type=int, default=3, help="source frames between clip frames (30 fps / stride)")
    parser.add_argument("--start_frame", "--start-frame", type=int, default=0)
    parser.add_argument("--clips_per_take", "--clips-per-take", type=int, default=1)
    parser.add_argument("--resolution", type=int, default=64, help="square output size (centre crop)")
    parser.add_argument("--exo_camera", "--exo-camera", help="exo camera id (default: each take's best_exo)")
    parser.add_argument("--ego_camera", "--ego-camera", default="aria01")
    parser.add_argument("--ego_poses", "--ego-poses", choices=["annotations", "mps"], default="annotations")
    parser.add_argument(
        "--ego_intrinsics_size",
        "--ego-intrinsics-size",
        type=int,
        default=512,
        help="image size (pixels) the annotation camera_intrinsics refer to",
    )
    parser.add_argument("--device_to_rgb", "--device-to-rgb",
                        help="mps: JSON 4x4 T_device_rgb (Aria device to RGB camera)")
    parser.add_argument(
        "--ego_intrinsics",
        "--ego-intrinsics",
        type=float,
        nargs=4,
        default=[0.3, 0.3, 0.5, 0.5],
        help="mps: normalised fx fy px py of the ego frames",
    )
    parser.add_argument(
        "--rotate_ego",
        "--rotate-ego",
        type=int,
        default=0,
        choices=[0, 90, 180, 270],
        help="rotate ego frames clockwise by this many degrees (poses rewritten to match); Aria RGB videos of "
        "some releases are stored turned by 90 degrees",
    )
    parser.add_argument("--take", action="append", help="only these take names (repeatable)")
    parser.add_argument("--lossless", action="store_true")
    parser.add_argument("--skip_bad", "--skip-bad", action="store_true",
                        help="skip takes with bad input and report them")
    add_debug_flag(parser)
    args = parser.parse_args(argv)
    if args.ego_poses == "mps" and not args.device_to_rgb:
        parser.error("--ego_poses mps needs --device_to_rgb (the device-to-RGB-camera calibration)")
    for name in ("num_frames", "stride", "clips_per_take", "resolution", "ego_intrinsics_size"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1, got {getattr(args, name)}")
    if args.start_frame < 0:
        parser.error(f"--start_frame must be >= 0, got {args.start_frame}")
    if not (np.isfinite(args.ego_intrinsics).all() and min(args.ego_intrinsics[:2]) > 0):
        parser.error(f"--ego_intrinsics: expected finite fx fy px py with fx, fy > 0, got {args.ego_intrinsics}")
    return args


def read_takes(root: Path) -> list[dict[str, Any]]:
    """The take list of `root/takes.json`; errors name the file."""
    path = root / "takes.json"
    if not path.is_file():
        raise ValueError(f"{str(path)!r} does not exist: --root must be an Ego-Exo4D download")
    try:
        takes = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise ValueError(f"{str(path)!r} is not readable JSON: {error}") from None
    if not isinstance(takes, list) or not all(isinstance(t, dict) for t in takes):
        raise ValueError(f"{str(path)!r}: expected a JSON list of take objects, got {type(takes).__name__}")
    return takes


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    takes = read_takes(args.root)
    check_output_dir(args.output, "--output")
    if args.take:
        takes = [t for t in takes if t.get("take_name") in set(args.take)]
        if not takes:
            raise ValueError(f"--take: expected names of takes in {str(args.root / 'takes.json')!r}, got {args.take} "
                             "(none found)")
    splits: dict[str, str] = {}
    split_file = args.root / "annotations" / "splits.json"
    if split_file.is_file():
        for split, uids in json.loads(split_file.read_text()).get("split_to_take_uids", {}).items():
            splits.update({uid: SPLIT_NAMES.get(split, "train") for uid in uids})
    rows, bad = [], []
    for take in tqdm(takes, desc="preparing takes", unit="take"):
        try:
            rows.extend(prepare_take(args.root, args.output, take, args, splits))
        except ValueError as error:
            if not args.skip_bad:
                raise
            bad.append(f"{take.get('take_name')}: {error}")
    for message in bad:
        print(f"  skipped {message}")
    if not rows:
        raise ValueError(f"no clip written ({len(bad)} of {len(takes)} takes skipped as bad, listed above); a "
                         "dataset of zero takes is not written")
    write_metadata(args.output, rows)
    print(f"wrote {len(rows)} clips from {len(takes) - len(bad)} takes to {args.output}; {len(bad)} takes skipped")
    return 0


if __name__ == "__main__":
    sys.exit(run_tool("prepare_egoexo4d.py", main))
