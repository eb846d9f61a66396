# SPDX-License-Identifier: Apache-2.0
"""Dataset format: video I/O, writer (atomic, resumable), loader round trip, bad input errors."""

import shutil
from pathlib import Path

import av
import numpy as np
import pytest
from script_loading import load_script

from diffusers_syn2seq.data import dataset as dataset_module
from diffusers_syn2seq.data import read_video, render_synthetic_clip, write_video
from diffusers_syn2seq.data.dataset import (
    METADATA_FILENAME,
    Syn2SeqClipDataset,
    collect_clip_rows,
    load_metadata,
    write_clip,
    write_metadata,
)


def _load_script(name: str):
    return load_script(f"training/{name}.py")


make_synthetic_dataset = _load_script("make_synthetic_dataset")
FRAMES, RES, TRANS = 6, 32, 3


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synth")
    args = ["--output", str(root), "--num-train", "2", "--num-validation", "1", "--num-test", "1"]
    args += ["--num-frames", str(FRAMES), "--resolution", str(RES), "--transition-frames", str(TRANS), "--lossless"]
    assert make_synthetic_dataset.main(args) == 0
    return root


def _copy(root: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "copy"
    shutil.copytree(root, dst)
    return dst


# ------------------------------------------------------------------------------------------ video io
def test_video_round_trip_lossless_and_lossy(tmp_path):
    frames = render_synthetic_clip(5, num_frames=8, resolution=(32, 48), num_transition_frames=0)["exo"]
    write_video(tmp_path / "a.mp4", frames, fps=10, lossless=True)
    np.testing.assert_array_equal(read_video(tmp_path / "a.mp4"), frames)
    write_video(tmp_path / "b.mp4", frames, fps=10)
    lossy = read_video(tmp_path / "b.mp4")
    assert lossy.shape == frames.shape and lossy.dtype == np.uint8
    assert np.abs(lossy.astype(int) - frames).mean() < 4.0  # codec tolerance (H.264 CRF 18, 4:4:4)
    write_video(tmp_path / "c.mp4", frames, fps=10, chroma="420")
    assert np.abs(read_video(tmp_path / "c.mp4").astype(int) - frames).mean() < 10.0  # half-resolution colour
    assert not any(p.name.endswith(".tmp") for p in tmp_path.iterdir())  # no leftover temporary files


def test_video_errors_name_the_file(tmp_path):
    frames = np.random.default_rng(0).integers(0, 255, (20, 16, 16, 3), dtype=np.uint8)
    missing = tmp_path / "missing.mp4"
    with pytest.raises(ValueError, match="missing.mp4.*does not exist"):
        read_video(missing)
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"\x00\x00\x00\x18ftypisom" + b"garbage" * 50)
    with pytest.raises(ValueError, match="corrupt.mp4"):
        read_video(corrupt)
    # truncated, moov atom at the end (the default): the container cannot be opened
    write_video(tmp_path / "full.mp4", frames, fps=10, lossless=True)
    data = (tmp_path / "full.mp4").read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="cut.mp4.*(corrupt or truncated)"):
        read_video(tmp_path / "cut.mp4")
    # truncated, moov atom first ("faststart"): the header promises 20 frames, only part of them decode
    with av.open(str(tmp_path / "fast.mp4"), "w", options={"movflags": "faststart"}) as container:
        stream = container.add_stream("libx264rgb", rate=10)
        stream.width = stream.height = 16
        stream.pix_fmt, stream.options = "rgb24", {"qp": "0"}
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    data = (tmp_path / "fast.mp4").read_bytes()
    (tmp_path / "fastcut.mp4").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="fastcut.mp4.*truncated"):
        read_video(tmp_path / "fastcut.mp4")
    with pytest.raises(ValueError, match=r"full.mp4.*too short: expected at least 30 frames, got 20"):
        read_video(tmp_path / "full.mp4", num_frames=30)
    with pytest.raises(ValueError, match="frames must be uint8"):
        write_video(tmp_path / "x.mp4", frames.astype(np.float32), fps=10)


# ------------------------------------------------------------------------------------------ round trip
def test_write_then_load_round_trip(synth_root):
    table = load_metadata(synth_root)
    assert len(table) == 4 and sorted(set(table["split"])) == ["test", "train", "validation"]
    assert len(load_metadata(synth_root, split="train")) == 2
    ds = Syn2SeqClipDataset(synth_root)
    for item in ds:
        seed = int(item["take_id"].split("-")[1])
        clip = render_synthetic_clip(seed, FRAMES, RES, TRANS)
        for key in ("exo", "ego", "transition"):
            np.testing.assert_array_equal(item[key], clip[key])  # lossless
            np.testing.assert_array_equal(item[f"{key}_poses"], clip[f"{key}_poses"])  # float64, exact
        assert item["transition_source"] == "render" and item["fps"] == 10.0
    first = Syn2SeqClipDataset(synth_root, split="test", num_frames=4, load_transition=False)[0]
    assert first["exo"].shape == (4, RES, RES, 3) and first["exo_poses"].shape == (4, 16)
    assert first["transition"] is None


def test_interrupted_writer_never_lists_half_written_clips(tmp_path, monkeypatch):
    root = tmp_path / "ds"
    calls = {"n": 0}
    real_write_video = dataset_module.write_video

    def failing_write_video(path, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 8:  # third take, second video: dies mid-clip
            raise KeyboardInterrupt("simulated interruption")
        return real_write_video(path, *args, **kwargs)

    monkeypatch.setattr(dataset_module, "write_video", failing_write_video)
    args = ["--output", str(root), "--num-train", "4", "--num-validation", "0", "--num-test", "0"]
    args += ["--num-frames", "4", "--resolution", "16", "--transition-frames", "2", "--checkpoint-every", "1"]
    with pytest.raises(KeyboardInterrupt):
        make_synthetic_dataset.main(args)
    listed = load_metadata(root)["take_id"]  # validates that every listed file exists
    assert listed == ["synth-0000000", "synth-0000001"]
    assert sorted(p.name for p in (root / "clips").iterdir()) == listed  # no temporary folder left behind
    assert not any(p.name.endswith(".tmp") for p in root.iterdir())
    monkeypatch.setattr(dataset_module, "write_video", real_write_video)
    assert make_synthetic_dataset.main(args + ["--resume"]) == 0
    assert load_metadata(root)["take_id"] == [f"synth-000000{i}" for i in range(4)]
    assert len(collect_clip_rows(root)) == 4


# ------------------------------------------------------------------------------------------ bad input
def _rewrite_rows(root: Path, change) -> None:
    rows = collect_clip_rows(root)
    change(rows)
    write_metadata(root, rows)


def test_missing_pose_rows_and_nan_poses_name_file_and_row(synth_root, tmp_path):
    root = _copy(synth_root, tmp_path)
    table = root / METADATA_FILENAME

    def drop_row(rows):
        rows[1]["ego_poses"] = rows[1]["ego_poses"][:-1]

    _rewrite_rows(root, drop_row)
    take = collect_clip_rows(root)[1]["take_id"]
    with pytest.raises(
        ValueError, match=rf"{table}.* row 1 \(take '{take}'\) column ego_poses: expected {FRAMES} pose rows"
    ):
        load_metadata(root)

    def nan_row(rows):
        rows[2]["exo_poses"][3][7] = float("nan")

    _rewrite_rows(root, nan_row)
    with pytest.raises(ValueError, match=r"row 2 .* column exo_poses: pose row 3 contains NaN"):
        load_metadata(root)


def test_corrupt_truncated_and_mismatched_videos(synth_root, tmp_path):
    root = _copy(synth_root, tmp_path)
    rows = collect_clip_rows(root)
    # corrupt ego video of take 0
    ego0 = root / rows[0]["ego_video"]
    ego0.write_bytes(b"not a video at all" * 10)
    ds = Syn2SeqClipDataset(root)
    with pytest.raises(ValueError, match=str(ego0)):
        ds[0]
    # truncated exo video of take 1
    exo1 = root / rows[1]["exo_video"]
    exo1.write_bytes(exo1.read_bytes()[:300])
    with pytest.raises(ValueError, match=str(exo1)):
        ds[1]
    # ego video with fewer frames than exo (mismatched counts): names the file and the table row
    ego2 = root / rows[2]["ego_video"]
    write_video(ego2, read_video(ego2)[:-2], fps=10, lossless=True)
    with pytest.raises(
        ValueError, match=rf"row 2 .*ego video '{ego2}' has {FRAMES - 2} frames but the table has {FRAMES}"
    ):
        ds[2]
    # a clip shorter than requested
    with pytest.raises(ValueError, match=rf"row 0 .*shorter than requested: {FRAMES} frames, num_frames={FRAMES + 1}"):
        Syn2SeqClipDataset(root, num_frames=FRAMES + 1)
    # a transition cannot survive truncation of its take
    with pytest.raises(ValueError, match="would break it"):
        Syn2SeqClipDataset(root, num_frames=FRAMES - 1)


def test_writer_rejects_mismatched_inputs(tmp_path):
    clip = render_synthetic_clip(0, num_frames=4, resolution=16, num_transition_frames=0)
    with pytest.raises(ValueError, match="same .* shape"):
        write_clip(tmp_path, "t", clip["exo"], clip["ego"][:3], clip["exo_poses"], clip["ego_poses"][:3], 10)
    with pytest.raises(ValueError, match="take 't' ego_poses: expected 4 pose rows"):
        write_clip(tmp_path, "t", clip["exo"], clip["ego"], clip["exo_poses"], clip["ego_poses"][:3], 10)
    with pytest.raises(ValueError, match="has no metadata.parquet"):
        load_metadata(tmp_path)
    write_metadata(tmp_path, [])  # an empty table keeps its columns (e.g. every take skipped as bad)
    assert len(load_metadata(tmp_path)) == 0 and "exo_poses" in load_metadata(tmp_path).column_names
