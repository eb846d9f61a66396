# SPDX-License-Identifier: Apache-2.0
"""`cache_transitions.py` replacing a dataset's transitions by another source says so, keeps the replaced files, and
switches back to them without recomputing."""

import json

import numpy as np
from script_loading import load_script

from diffusers_syn2seq.data import Syn2SeqClipDataset, load_metadata, render_synthetic_clip

MAKE = load_script("training/make_synthetic_dataset.py")
CACHE = load_script("training/cache_transitions.py")


def test_switching_transition_source_is_reported_and_reversible(tmp_path, capsys):
    root = tmp_path / "ds"
    MAKE.main(["--output", str(root), "--num_train", "2", "--num_validation", "0", "--num_test", "0", "--num_frames",
               "3", "--resolution", "16", "--transition_frames", "3", "--lossless"])
    assert load_metadata(root)["transition_source"] == ["render", "render"]
    capsys.readouterr()

    assert CACHE.main(["--data", str(root), "--source", "crossfade", "--num_frames", "3", "--lossless"]) == 0
    out = capsys.readouterr().out
    assert "2 transitions computed" in out
    assert "changed transition_source of 2 takes: render -> crossfade (2)" in out
    assert "--source render switches back without recomputing" in out
    assert load_metadata(root)["transition_source"] == ["crossfade", "crossfade"]
    take = Syn2SeqClipDataset(root).table[0]["take_id"]
    meta = json.loads((root / "clips" / take / "meta.json").read_text())
    kept = meta["previous_transitions"]["render"]
    assert kept["transition_video"] == f"clips/{take}/transition_render.mp4"
    assert (root / kept["transition_video"]).is_file() and len(kept["transition_poses"]) == 3

    assert CACHE.main(["--data", str(root), "--source", "render", "--num_frames", "3", "--lossless"]) == 0
    out = capsys.readouterr().out
    assert "0 transitions computed, 2 already cached" in out
    assert "changed transition_source of 2 takes: crossfade -> render (2)" in out
    assert "--source crossfade switches back" in out
    for item in Syn2SeqClipDataset(root):  # the rendered fly-through itself, bit for bit (lossless)
        expected = render_synthetic_clip(int(item["take_id"].split("-")[1]), 3, 16, 3)
        np.testing.assert_array_equal(item["transition"], expected["transition"])
        assert item["transition_source"] == "render"
    meta = json.loads((root / "clips" / take / "meta.json").read_text())
    assert set(meta["previous_transitions"]) == {"crossfade"}

    # the same source again: nothing changes, nothing is said about switching
    assert CACHE.main(["--data", str(root), "--source", "render", "--num_frames", "3", "--lossless"]) == 0
    out = capsys.readouterr().out
    assert "0 transitions computed, 2 already cached" in out and "changed transition_source" not in out
