# SPDX-License-Identifier: Apache-2.0
"""The Syn2Seq dataset format: a folder of MP4 clips plus one metadata table.

Layout (paths in the table are relative to the root)::

    root/
      metadata.parquet            one row per take (the index; written last, atomically)
      clips/<take_id>/exo.mp4     exo video, RGB, `num_frames` frames
      clips/<take_id>/ego.mp4     ego video, synchronised with exo (frame i = same instant)
      clips/<take_id>/transition_<source>.mp4   optional cached transition (exo -> ego)
      clips/<take_id>/meta.json   the take's row, so the table can be rebuilt from the clip folders

Table columns (`METADATA_FEATURES`):

=================== =========================== =================================================
column              type                        meaning
=================== =========================== =================================================
take_id             string                      unique id, also the clip folder name
category            string                      scenario (e.g. "synthetic", "Cooking", "Bike")
split               string                      "train", "validation" or "test"
source              string                      "synthetic" or "egoexo4d"
fps                 float64                     frames per second of all videos of the take
num_frames          int64                       frames of exo and of ego (equal)
height, width       int64                       frame size in pixels
exo_video           string                      relative path of the exo MP4
ego_video           string                      relative path of the ego MP4
exo_poses           list of 16-float64 lists    (num_frames, 16) exo camera poses
ego_poses           list of 16-float64 lists    (num_frames, 16) ego camera poses
exo_camera          string                      name of the exo camera (e.g. "cam01")
seed                int64                       scene seed (synthetic), -1 otherwise
style               string or null              SynthEgoExo scene style (`SCENE_STYLES`); null otherwise
transition_video    string or null              relative path of the cached transition MP4
transition_poses    list or null                (N, 16) poses of the transition frames
transition_source   string or null              "render", "crossfade", "flf", ...
=================== =========================== =================================================

`style` was added after the first version of the format: a table without the column reads as all null, and
a synthetic take with a null style is `"textured"` (the only style before the option existed).

Poses are the 16 numbers of `shared/design/dfot.md`: fx, fy, px, py normalised by image width/height,
then the row-major world-to-camera [R | T] (OpenCV camera axes, metres). They are stored in float64
and round trip exactly.

The table is a plain Parquet file with Hugging Face `datasets` features:
`datasets.load_dataset("parquet", data_files="root/metadata.parquet")` reads it too; here
:func:`load_metadata` reads it into an in-memory `datasets.Dataset` (no cache files written) and
validates it. Videos are decoded with PyAV (:mod:`.video_io`).

Atomicity: a clip folder is written under a temporary name and renamed when complete; the table is
written to a temporary file and renamed over the old one. An interrupted writer therefore never lists
a half-written clip, and a rerun can keep the complete clip folders (see `collect_clip_rows`);
`remove_writer_leftovers` deletes what a killed writer left (`clips/.tmp-*`, `.metadata.parquet.<pid>.tmp`).

Containment: a table is untrusted input. Every file path in it (`exo_video`, `ego_video`, `transition_video`) is
resolved, symlinks included, and refused unless it stays under the dataset root; `take_id` must be a plain folder
name (letters, digits, `_ - . +`, no leading dot). Pose rows must hold a rotation (orthonormal within 1e-3,
determinant +1) and positive focal lengths.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..safe_io import check_safe_name, remove_stale_temporaries, resolve_inside
from ..validation import check_choice
from .video_io import read_video, write_video

__all__ = [
    "METADATA_FEATURES",
    "METADATA_FILENAME",
    "Syn2SeqClipDataset",
    "check_pose_rotations",
    "collect_clip_rows",
    "load_metadata",
    "remove_writer_leftovers",
    "resolve_dataset_file",
    "validate_poses_array",
    "write_clip",
    "write_metadata",
]

METADATA_FILENAME = "metadata.parquet"
CLIPS_DIRNAME = "clips"
_POSES = datasets.Sequence(datasets.Sequence(datasets.Value("float64"), length=16))
METADATA_FEATURES = datasets.Features(
    {
        "take_id": datasets.Value("string"),
        "category": datasets.Value("string"),
        "split": datasets.Value("string"),
        "source": datasets.Value("string"),
        "fps": datasets.Value("float64"),
        "num_frames": datasets.Value("int64"),
        "height": datasets.Value("int64"),
        "width": datasets.Value("int64"),
        "exo_video": datasets.Value("string"),
        "ego_video": datasets.Value("string"),
        "exo_poses": _POSES,
        "ego_poses": _POSES,
        "exo_camera": datasets.Value("string"),
        "seed": datasets.Value("int64"),
        "style": datasets.Value("string"),
        "transition_video": datasets.Value("string"),
        "transition_poses": _POSES,
        "transition_source": datasets.Value("string"),
    }
)
SPLITS = ("train", "validation", "test")
# Columns added after the format's first version: older tables without them read as all null.
_LATER_STRING_COLUMNS = ("style",)
FILE_COLUMNS = ("exo_video", "ego_video", "transition_video")
ROTATION_TOLERANCE = 1e-3  # max |R R^T - I| of a stored pose (float64 poses from JSON or CSV are far closer)


def validate_poses_array(poses: Any, num_frames: int | None, where: str) -> np.ndarray:
    """Check a pose table and return it as float64 `(T, 16)`.

    `where` names the source (file, row, column) in the error. Raises `ValueError` for a wrong shape,
    a wrong number of rows (missing pose rows), or non-finite values (with the first bad row index).
    """
    try:
        arr = np.asarray(poses, dtype=np.float64)
    except (TypeError, ValueError) as error:  # ragged rows
        raise ValueError(f"{where}: poses are not a (T, 16) table of numbers ({error})") from error
    if arr.ndim != 2 or arr.shape[1] != 16:
        raise ValueError(f"{where}: poses must have shape (T, 16), got {tuple(arr.shape)}")
    if num_frames is not None and arr.shape[0] != num_frames:
        raise ValueError(f"{where}: expected {num_frames} pose rows (one per frame), got {arr.shape[0]}")
    bad = ~np.isfinite(arr).all(axis=1)
    if bad.any():
        raise ValueError(f"{where}: pose row {int(np.argmax(bad))} contains NaN or inf ({int(bad.sum())} bad rows)")
    check_pose_rotations(arr, where)
    return arr


def check_pose_rotations(poses: np.ndarray, where: str) -> None:
    """Each pose's `R` (of `[R | T]`) is a rotation and its focal lengths are positive."""
    if not len(poses):
        return
    rotation = poses[:, 4:].reshape(-1, 3, 4)[:, :, :3]
    error = np.abs(rotation @ rotation.transpose(0, 2, 1) - np.eye(3)).max(axis=(1, 2))
    bad = (error > ROTATION_TOLERANCE) | (np.linalg.det(rotation) <= 0)
    if bad.any():
        row = int(np.argmax(bad))
        raise ValueError(f"{where}: pose row {row} does not hold a rotation: expected R R^T = I within "
                         f"{ROTATION_TOLERANCE} and det R = +1, got max |R R^T - I| = {error[row]:.3g} and det R = "
                         f"{np.linalg.det(rotation[row]):.3g} ({int(bad.sum())} bad rows)")
    focal = poses[:, :2]
    if (focal <= 0).any():
        row = int(np.argmax((focal <= 0).any(axis=1)))
        raise ValueError(f"{where}: pose row {row}: expected positive focal lengths fx, fy, got {focal[row].tolist()}")


def resolve_dataset_file(root: str | os.PathLike, relative: Any, where: str) -> Path:
    """A file path of a table row (`exo_video`, ...) joined to the dataset `root` and resolved; a `ValueError`
    naming `where` unless it stays under the root (`..`, absolute paths and symlinks out are refused)."""
    return resolve_inside(root, relative, where)


def _row_name(path: Path, index: int, take_id: Any) -> str:
    return f"{path} row {index} (take {take_id!r})"


def write_clip(
    root: str | os.PathLike,
    take_id: str,
    exo: np.ndarray,
    ego: np.ndarray,
    exo_poses: np.ndarray,
    ego_poses: np.ndarray,
    fps: float,
    *,
    category: str = "synthetic",
    split: str = "train",
    source: str = "synthetic",
    exo_camera: str = "exo",
    seed: int = -1,
    style: str | None = None,
    transition: np.ndarray | None = None,
    transition_poses: np.ndarray | None = None,
    transition_source: str | None = None,
    lossless: bool = False,
) -> dict[str, Any]:
    """Write one take atomically to `root/clips/<take_id>/` and return its metadata row.

    Args:
        exo, ego: uint8 RGB `(T, H, W, 3)` frames, same T, H, W.
        exo_poses, ego_poses: `(T, 16)` poses (see module docstring).
        seed, style: scene seed and SynthEgoExo style of a synthetic take (-1 and None otherwise).
        transition, transition_poses, transition_source: optional cached transition `(N, H, W, 3)` and
            its `(N, 16)` poses.
        lossless: encode losslessly (bit-exact frames, larger files).

    The folder is built under a temporary name and renamed into place, replacing an older version.
    """
    root = Path(root)
    check_safe_name(take_id, "take_id")
    check_choice("split", split, SPLITS)
    exo, ego = np.asarray(exo), np.asarray(ego)
    if exo.shape != ego.shape or exo.ndim != 4:
        raise ValueError(
            f"take {take_id!r}: exo and ego frames must have the same (T, H, W, 3) shape, "
            f"got {exo.shape} and {ego.shape}"
        )
    num_frames, height, width = exo.shape[:3]
    exo_poses = validate_poses_array(exo_poses, num_frames, f"take {take_id!r} exo_poses")
    ego_poses = validate_poses_array(ego_poses, num_frames, f"take {take_id!r} ego_poses")
    row: dict[str, Any] = {
        "take_id": take_id,
        "category": category,
        "split": split,
        "source": source,
        "fps": float(fps),
        "num_frames": int(num_frames),
        "height": int(height),
        "width": int(width),
        "exo_video": f"{CLIPS_DIRNAME}/{take_id}/exo.mp4",
        "ego_video": f"{CLIPS_DIRNAME}/{take_id}/ego.mp4",
        "exo_poses": exo_poses.tolist(),
        "ego_poses": ego_poses.tolist(),
        "exo_camera": exo_camera,
        "seed": int(seed),
        "style": style,
        "transition_video": None,
        "transition_poses": None,
        "transition_source": None,
    }
    final = root / CLIPS_DIRNAME / take_id
    tmp = root / CLIPS_DIRNAME / f".tmp-{take_id}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    try:
        write_video(tmp / "exo.mp4", exo, fps, lossless=lossless)
        write_video(tmp / "ego.mp4", ego, fps, lossless=lossless)
        if transition is not None:
            name = f"transition_{transition_source or 'unknown'}.mp4"
            transition = np.asarray(transition)
            if transition.ndim != 4 or transition.shape[1:] != exo.shape[1:]:
                raise ValueError(
                    f"take {take_id!r}: transition frames must be (N, {height}, {width}, 3), got {transition.shape}"
                )
            write_video(tmp / name, transition, fps, lossless=lossless)
            row["transition_video"] = f"{CLIPS_DIRNAME}/{take_id}/{name}"
            row["transition_poses"] = validate_poses_array(
                transition_poses, len(transition), f"take {take_id!r} transition_poses"
            ).tolist()
            row["transition_source"] = transition_source
        (tmp / "meta.json").write_text(json.dumps(row))
        if final.exists():
            old = final.with_name(f".old-{take_id}-{os.getpid()}")
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old)
        else:
            os.replace(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return row


def collect_clip_rows(root: str | os.PathLike) -> list[dict[str, Any]]:
    """Rows of every complete clip folder under `root/clips` (from their `meta.json`), sorted by take id.
    Temporary folders of interrupted writes are ignored."""
    clips = Path(root) / CLIPS_DIRNAME
    rows = []
    if clips.is_dir():
        for folder in sorted(clips.iterdir()):
            meta = folder / "meta.json"
            if folder.name.startswith(".") or not meta.is_file():
                continue
            try:
                rows.append(json.loads(meta.read_text()))
            except json.JSONDecodeError as error:
                raise ValueError(f"clip metadata {str(meta)!r} is not valid JSON: {error}") from error
    return rows


def remove_writer_leftovers(root: str | os.PathLike) -> list[Path]:
    """Remove what killed writers of the dataset at `root` left: temporary clip folders (`clips/.tmp-<take>-<pid>`,
    `clips/.old-<take>-<pid>`), temporary tables (`.metadata.parquet.<pid>.tmp`) and temporary files inside clip
    folders, of processes no longer running. Returns what was removed."""
    root = Path(root)
    clips = root / CLIPS_DIRNAME
    folders = [root, clips]
    if clips.is_dir():
        folders += [p for p in sorted(clips.iterdir()) if p.is_dir() and not p.name.startswith(".")]
    return remove_stale_temporaries(folders)


def write_metadata(root: str | os.PathLike, rows: Sequence[dict[str, Any]]) -> Path:
    """Write the table atomically (temporary file, then rename) and return its path."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    take_ids = [row["take_id"] for row in rows]
    if len(set(take_ids)) != len(take_ids):
        raise ValueError(
            f"duplicate take ids in the metadata rows: {sorted({t for t in take_ids if take_ids.count(t) > 1})}"
        )
    # column-wise, so that an empty table still gets every column and type
    columns = {k: [row.get(k) for row in rows] for k in METADATA_FEATURES}
    table = datasets.Dataset.from_dict(columns, features=METADATA_FEATURES)
    path = root / METADATA_FILENAME
    tmp = root / f".{METADATA_FILENAME}.{os.getpid()}.tmp"
    try:
        pq.write_table(table.data.table, str(tmp))  # keeps the `datasets` features in the schema metadata
        os.replace(tmp, path)
    except (OSError, pa.ArrowException) as error:  # disk full, read-only: name the table, leave the old one
        raise OSError(getattr(error, "errno", None), f"could not write the metadata table {str(path)!r}: "
                      f"{' '.join(str(error).split())}", str(path)) from error
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def load_metadata(root: str | os.PathLike, split: str | None = None, validate: bool = True) -> datasets.Dataset:
    """Read `root/metadata.parquet` into an in-memory `datasets.Dataset`, optionally one split.

    With `validate=True` every row is checked (pose shapes and row counts against `num_frames`, finite
    poses, referenced files present); errors name the table file, the row and the take.
    """
    root = Path(root)
    path = root / METADATA_FILENAME
    if not path.is_file():
        raise ValueError(
            f"dataset root {str(root)!r} has no {METADATA_FILENAME} (not a Syn2Seq dataset, or never completed)"
        )
    try:
        table = pq.read_table(path)
    except Exception as error:  # pyarrow raises several types for damaged files
        raise ValueError(f"cannot read the metadata table {str(path)!r}: {error}") from error
    for column in _LATER_STRING_COLUMNS:
        if column not in table.column_names:
            table = table.append_column(column, pa.nulls(len(table), pa.string()))
    missing = [c for c in METADATA_FEATURES if c not in table.column_names]
    if missing:
        raise ValueError(f"metadata table {str(path)!r} lacks columns {missing}")
    ds = datasets.Dataset(table)
    if check_choice("split", split, SPLITS, allow_none=True) is not None:
        ds = ds.select([i for i, s in enumerate(ds["split"]) if s == split])
    if validate:
        for index, row in enumerate(ds):
            _validate_row(root, path, index, row)
    return ds


def _validate_row(root: Path, path: Path, index: int, row: dict[str, Any]) -> None:
    name = _row_name(path, index, row["take_id"])
    check_safe_name(row["take_id"], f"{path} row {index} column take_id")
    n = row["num_frames"]
    if n is None or n < 1:
        raise ValueError(f"{name}: num_frames must be >= 1, got {n}")
    for column in ("exo", "ego"):
        validate_poses_array(row[f"{column}_poses"], n, f"{name} column {column}_poses")
        file = resolve_dataset_file(root, row[f"{column}_video"], f"{name} column {column}_video")
        if not file.is_file():
            raise ValueError(f"{name}: {column}_video file {str(file)!r} does not exist")
    if row["transition_video"] is not None:
        if row["transition_poses"] is None:
            raise ValueError(f"{name}: transition_video is set but transition_poses is null")
        resolve_dataset_file(root, row["transition_video"], f"{name} column transition_video")
        validate_poses_array(row["transition_poses"], None, f"{name} column transition_poses")


class Syn2SeqClipDataset:
    """Map-style dataset over a Syn2Seq folder: decoded frames and poses of each take.

    Args:
        root: dataset folder (see module docstring).
        split: keep only this split (None: all rows).
        num_frames: if given, the first `num_frames` frames of exo and ego (a take with fewer frames raises
            a `ValueError` naming it); None: all frames.
        load_transition: also decode the cached transition (rows without one give `transition=None`).
            A transition bridges the *last* exo frame of the whole take, so it cannot be combined with a
            `num_frames` shorter than a take (that raises).
        validate: check every table row up front (`load_metadata`); items are checked when read anyway.

    Item: dict with `take_id`, `category`, `split`, `fps`; `exo`, `ego` (and `transition`): uint8 RGB
    `(T, H, W, 3)` in [0, 255]; `exo_poses`, `ego_poses` (and `transition_poses`): float64 `(T, 16)`.
    Frame counts are checked against the pose rows; mismatches name the video file and the table row.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        split: str | None = None,
        num_frames: int | None = None,
        load_transition: bool = True,
        validate: bool = True,
    ):
        self.root = Path(root)
        self.table = load_metadata(self.root, split=split, validate=validate)
        self.num_frames = num_frames
        self.load_transition = load_transition
        self._table_path = self.root / METADATA_FILENAME
        if num_frames is not None:
            if num_frames < 1:
                raise ValueError(f"num_frames must be >= 1 or None, got {num_frames}")
            for index, n in enumerate(self.table["num_frames"]):
                if n < num_frames:
                    take = self.table[index]["take_id"]
                    raise ValueError(
                        f"{_row_name(self._table_path, index, take)}: clip is shorter than requested: "
                        f"{n} frames, num_frames={num_frames}"
                    )
                if load_transition and n > num_frames and self.table[index]["transition_video"] is not None:
                    take = self.table[index]["take_id"]
                    raise ValueError(
                        f"{_row_name(self._table_path, index, take)}: its cached transition starts at exo "
                        f"frame {n - 1}; "
                        f"truncating to num_frames={num_frames} would break it (use load_transition=False)"
                    )

    def __len__(self) -> int:
        return len(self.table)

    def _decode(self, row: dict[str, Any], index: int, column: str, poses: np.ndarray) -> np.ndarray:
        name = _row_name(self._table_path, index, row["take_id"])
        file = resolve_dataset_file(self.root, row[f"{column}_video"], f"{name} column {column}_video")
        frames = read_video(file)
        if len(frames) != len(poses):
            raise ValueError(
                f"{name}: {column} video {str(file)!r} has {len(frames)} frames but the table has {len(poses)} "
                f"{column}_poses rows"
            )
        if frames.shape[1:3] != (row["height"], row["width"]):
            raise ValueError(
                f"{name}: {column} video {str(file)!r} is {frames.shape[2]}x{frames.shape[1]}, "
                f"the table says {row['width']}x{row['height']}"
            )
        return frames

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} takes")
        index %= len(self)
        row = self.table[index]
        name = _row_name(self._table_path, index, row["take_id"])
        n = row["num_frames"]
        exo_poses = validate_poses_array(row["exo_poses"], n, f"{name} column exo_poses")
        ego_poses = validate_poses_array(row["ego_poses"], n, f"{name} column ego_poses")
        exo = self._decode(row, index, "exo", exo_poses)
        ego = self._decode(row, index, "ego", ego_poses)
        if len(exo) != len(ego):  # (already implied by the pose counts; kept for clarity)
            raise ValueError(f"{name}: exo has {len(exo)} frames but ego has {len(ego)}")
        keep = slice(None) if self.num_frames is None else slice(0, self.num_frames)
        item: dict[str, Any] = {
            "take_id": row["take_id"],
            "category": row["category"],
            "split": row["split"],
            "fps": row["fps"],
            "exo": exo[keep],
            "ego": ego[keep],
            "exo_poses": exo_poses[keep],
            "ego_poses": ego_poses[keep],
            "transition": None,
            "transition_poses": None,
            "transition_source": row["transition_source"],
        }
        if self.load_transition and row["transition_video"] is not None:
            tr_poses = validate_poses_array(row["transition_poses"], None, f"{name} column transition_poses")
            item["transition"] = self._decode(row, index, "transition", tr_poses)
            item["transition_poses"] = tr_poses
        return item

    def __iter__(self) -> Iterable[dict[str, Any]]:
        for index in range(len(self)):
            yield self[index]
