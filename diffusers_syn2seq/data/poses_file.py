# SPDX-License-Identifier: Apache-2.0
"""Camera-pose files for `syn2seq generate`: exo poses (one per exo frame) and the wanted ego poses.

Each pose is a 16-vector in the DFoT convention (`fx, fy, px, py` normalised by the image size, then the row-major
world-to-camera `[R|T]`, OpenCV axes). Formats:

- `.json`: `{"exo_poses": [[16 floats], ...], "ego_poses": [[16 floats], ...]}`;
- `.npz`: arrays `exo_poses` `(Ne, 16)` and `ego_poses` `(Ng, 16)`;
- `.npy`: one `(Ne + Ng, 16)` array, the Ne exo poses first (Ne = frames of the exo video), then the ego poses;
- `.csv`: one row per camera, `view,v0,...,v15` with `view` = `exo` or `ego` (a header row is optional), rows of
  each view in time order.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from .dataset import check_pose_rotations

__all__ = ["load_poses_file"]


def _pose_array(value, path: Path, key: str) -> np.ndarray:
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(f"poses file {str(path)!r}: {key} must be numbers, ({error})") from None
    if array.ndim != 2 or array.shape[1] != 16:
        raise ValueError(f"poses file {str(path)!r}: {key} must have shape (N, 16), got {tuple(array.shape)}")
    if not np.isfinite(array).all():
        raise ValueError(f"poses file {str(path)!r}: {key} contains NaN or infinite values")
    check_pose_rotations(array, f"poses file {str(path)!r}: {key}")
    return array


def _csv_numbers(cells: list[str], path: Path, number: int) -> list[float]:
    """The 16 numbers of one CSV row; a cell that is not one is named by line and column."""
    try:
        return [float(c) for c in cells]
    except ValueError:
        column, cell = next((i, c) for i, c in enumerate(cells, start=2) if not _is_float(c))
        raise ValueError(f"poses file {str(path)!r} line {number} column {column}: expected a number, received "
                         f"{cell!r}") from None


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def load_poses_file(path: str | os.PathLike, num_exo_frames: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Read `(exo_poses (Ne, 16), ego_poses (Ng, 16))` from a .json, .npz, .npy or .csv file (module docstring).

    `num_exo_frames` (the exo video's length) is required for `.npy` (to split the array) and checked for every
    format: a mismatch raises a `ValueError` naming the file, the expected and the received count.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"poses file {str(path)!r} does not exist")
    suffix = path.suffix.lower()
    try:
        if suffix == ".json":
            data = json.loads(path.read_text())
            if not isinstance(data, dict) or "exo_poses" not in data or "ego_poses" not in data:
                raise ValueError(f"poses file {str(path)!r}: expected a JSON object with keys 'exo_poses' and "
                                 f"'ego_poses'")
            exo, ego = data["exo_poses"], data["ego_poses"]
        elif suffix == ".npz":
            with np.load(path) as data:
                missing = {"exo_poses", "ego_poses"} - set(data.files)
                if missing:
                    raise ValueError(f"poses file {str(path)!r}: missing arrays {sorted(missing)} (found {data.files})")
                exo, ego = data["exo_poses"], data["ego_poses"]
        elif suffix == ".npy":
            if num_exo_frames is None:
                raise ValueError(f"poses file {str(path)!r}: a .npy file needs the exo frame count to be split")
            both = _pose_array(np.load(path, allow_pickle=False), path, "poses")
            if len(both) <= num_exo_frames:
                raise ValueError(f"poses file {str(path)!r}: expected {num_exo_frames} exo poses followed by at least "
                                 f"one ego pose, received {len(both)} rows in total")
            exo, ego = both[:num_exo_frames], both[num_exo_frames:]
        elif suffix == ".csv":
            exo, ego = [], []
            for number, line in enumerate(path.read_text().splitlines(), start=1):
                cells = [c.strip() for c in line.split(",")]
                if not line.strip() or (number == 1 and cells[0].lower() == "view"):
                    continue
                if cells[0].lower() not in ("exo", "ego") or len(cells) != 17:
                    raise ValueError(f"poses file {str(path)!r} line {number}: expected 'exo' or 'ego' followed by 16 "
                                     f"numbers, received {len(cells)} cells starting with {cells[0]!r}")
                (exo if cells[0].lower() == "exo" else ego).append(_csv_numbers(cells[1:], path, number))
        else:
            raise ValueError(f"poses file {str(path)!r}: unsupported extension {suffix!r} (use .json, .npz, .npy or "
                             f".csv)")
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"poses file {str(path)!r} could not be read: {error}") from None
    exo, ego = _pose_array(exo, path, "exo_poses"), _pose_array(ego, path, "ego_poses")
    if num_exo_frames is not None and len(exo) != num_exo_frames:
        raise ValueError(f"poses file {str(path)!r}: expected {num_exo_frames} exo poses (one per frame of the exo "
                         f"video), received {len(exo)}")
    if len(ego) < 1:
        raise ValueError(f"poses file {str(path)!r}: expected at least 1 ego pose, received 0")
    return exo, ego
