# SPDX-License-Identifier: Apache-2.0
"""The sequence layer: layouts, masks, orders and poses of every mode and of the Ego2Exo reversal; gather and split;
windows; collate; the training windows dataset."""

import numpy as np
import pytest
import torch

from diffusers_syn2seq import camera
from diffusers_syn2seq.data import (
    SEGMENT_EGO,
    SEGMENT_EXO,
    SEGMENT_TRANSITION,
    SequenceLayout,
    Syn2SeqTrainingWindows,
    build_syn2seq_sequence,
    collate_syn2seq,
    frames_to_tensor,
    render_synthetic_clip,
    sample_window,
)

T, N, RES = 4, 3, 8


@pytest.fixture(scope="module")
def sample():
    clip = render_synthetic_clip(2, num_frames=T, resolution=RES, num_transition_frames=N)
    clip["take_id"] = "synth-0000002"
    return clip


def _ids(*parts):
    return torch.tensor([sid for sid, n in parts for _ in range(n)])


def test_frames_to_tensor_range_and_layout():
    x = np.zeros((2, 3, 5, 3), np.uint8)
    x[0, 0, 0] = 255
    t = frames_to_tensor(x)
    assert t.shape == (2, 3, 3, 5) and t.dtype == torch.float32
    assert t.min() == -1.0 and t[0, :, 0, 0].tolist() == [1.0, 1.0, 1.0]


def test_jump_mode(sample):
    seq = build_syn2seq_sequence(sample, "jump")
    assert seq["frames"].shape == (2 * T, 3, RES, RES)
    torch.testing.assert_close(seq["frames"], frames_to_tensor(np.concatenate([sample["exo"], sample["ego"]])))
    assert torch.equal(seq["segment_ids"], _ids((SEGMENT_EXO, T), (SEGMENT_EGO, T)))
    assert seq["pose_mask"].all() and seq["num_frames"] == (T, 0, T)
    np.testing.assert_array_equal(seq["poses"].numpy(), np.concatenate([sample["exo_poses"], sample["ego_poses"]]))


def test_video_mode_masks_transition_poses(sample):
    seq = build_syn2seq_sequence(sample, "video")
    assert seq["frames"].shape[0] == 2 * T + N
    torch.testing.assert_close(seq["frames"][T : T + N], frames_to_tensor(sample["transition"]))
    assert torch.equal(seq["segment_ids"], _ids((SEGMENT_EXO, T), (SEGMENT_TRANSITION, N), (SEGMENT_EGO, T)))
    assert torch.equal(seq["pose_mask"], seq["segment_ids"] != SEGMENT_TRANSITION)
    # placeholders (their embedding is dropped): the interpolated camera path, finite, whatever poses are cached
    path = camera.interpolate_camera_path(
        torch.from_numpy(sample["exo_poses"][-1]), torch.from_numpy(sample["ego_poses"][0]), N
    )
    assert torch.equal(seq["poses"][T : T + N], path)
    assert torch.equal(seq["frame_index"], torch.tensor([0, 1, 2, 3, 0, 1, 2, 0, 1, 2, 3]))


def test_video_pose_mode_uses_interpolated_path(sample):
    seq = build_syn2seq_sequence(sample, "video+pose")
    assert seq["pose_mask"].all()
    np.testing.assert_array_equal(seq["poses"][T : T + N].numpy(), sample["transition_poses"])
    # without cached poses the path is interpolated from the last exo to the first ego pose
    no_poses = {k: v for k, v in sample.items() if k != "transition_poses"}
    seq2 = build_syn2seq_sequence(no_poses, "video+pose")
    path = camera.interpolate_camera_path(
        torch.from_numpy(sample["exo_poses"][-1]), torch.from_numpy(sample["ego_poses"][0]), N
    )
    torch.testing.assert_close(seq2["poses"][T : T + N], path, rtol=0, atol=1e-12)
    torch.testing.assert_close(seq2["poses"][T : T + N], seq["poses"][T : T + N], rtol=0, atol=1e-9)


def test_on_the_fly_transition(sample):
    no_tr = {k: v for k, v in sample.items() if not k.startswith("transition")}
    calls = []

    def fake(first, last, n):
        calls.append((first, last, n))
        return np.repeat(first[None], n, axis=0)

    seq = build_syn2seq_sequence(no_tr, "video", transition_fn=fake, num_transition_frames=5)
    assert seq["num_frames"] == (T, 5, T)
    np.testing.assert_array_equal(calls[0][0], sample["exo"][-1])
    np.testing.assert_array_equal(calls[0][1], sample["ego"][0])
    with pytest.raises(ValueError, match="needs a transition: sample 'synth-0000002' has none"):
        build_syn2seq_sequence(no_tr, "video+pose")


@pytest.mark.parametrize("mode", ["jump", "video", "video+pose"])
def test_full_reversal_is_the_backwards_sequence(sample, mode):
    fwd = build_syn2seq_sequence(sample, mode)
    rev = build_syn2seq_sequence(sample, mode, reverse=True)
    for key in ("frames", "segment_ids", "pose_mask", "frame_index", "poses"):
        assert torch.equal(rev[key], fwd[key].flip(0)), key
    assert rev["reversed"] and rev["segment_ids"][0] == SEGMENT_EGO and rev["segment_ids"][-1] == SEGMENT_EXO
    # continuity: the sequence starts with the last ego frame and the reversed transition starts at the first ego frame
    torch.testing.assert_close(rev["frames"][0], frames_to_tensor(sample["ego"][-1:])[0])


def test_segment_reversal_keeps_clip_order(sample):
    rev = build_syn2seq_sequence(sample, "video+pose", reverse=True, reversal="segments")
    expected = np.concatenate([sample["ego"], sample["transition"][::-1], sample["exo"]])
    torch.testing.assert_close(rev["frames"], frames_to_tensor(expected))
    np.testing.assert_array_equal(
        rev["poses"].numpy(),
        np.concatenate([sample["ego_poses"], sample["transition_poses"][::-1], sample["exo_poses"]]),
    )
    assert torch.equal(rev["segment_ids"], _ids((SEGMENT_EGO, T), (SEGMENT_TRANSITION, N), (SEGMENT_EXO, T)))


def test_windows_slice_and_keep_world_poses(sample):
    seq = build_syn2seq_sequence(sample, "video")
    total = 2 * T + N
    win = sample_window(seq, max_frames=5, start=T - 2)  # straddles exo | transition | ...
    assert win["frames"].shape == (5, 3, RES, RES) and win["window_start"] == T - 2
    for key in ("segment_ids", "pose_mask", "frame_index", "poses"):
        assert torch.equal(win[key], seq[key][T - 2 : T + 3]), key
    assert win["poses"].dtype == torch.float64  # normalised by the conditioning (`window_camera_rays`), not here
    # random windows cover every start; a window longer than the sequence is the whole sequence
    rng = np.random.default_rng(0)
    starts = {sample_window(seq, 6, rng=rng)["window_start"] for _ in range(200)}
    assert starts == set(range(total - 6 + 1))
    assert len(sample_window(seq, 100, rng=rng)["frames"]) == total
    with pytest.raises(ValueError, match=r"start must be in \[0, 6\]"):
        sample_window(seq, 5, start=7)


@pytest.mark.parametrize("direction,reversal", [("exo2ego", "full"), ("ego2exo", "full"), ("ego2exo", "segments")])
@pytest.mark.parametrize("mode", ["jump", "video", "video+pose"])
def test_layout_gather_and_split_are_inverse(mode, direction, reversal):
    n = 0 if mode == "jump" else 2
    layout = SequenceLayout(3, n, 4, mode, direction, reversal)
    exo, transition, ego = torch.arange(3.0), torch.arange(10.0, 10 + n), torch.arange(20.0, 24.0)
    sequence = layout.gather(exo, transition if n else None, ego)
    assert len(sequence) == layout.num_frames == 7 + n
    parts = layout.split(sequence)
    assert torch.equal(parts["exo"], exo) and torch.equal(parts["ego"], ego)
    assert torch.equal(parts["transition"], transition)
    # the gather lays every frame where segment_ids / frame_index say it is
    offsets = {SEGMENT_EXO: 0.0, SEGMENT_TRANSITION: 10.0, SEGMENT_EGO: 20.0}
    expected = torch.tensor([offsets[int(s)] for s in layout.segment_ids]) + layout.frame_index
    assert torch.equal(sequence, expected)
    source = layout.source_in_sequence_order(exo if direction == "exo2ego" else ego)
    assert torch.equal(sequence[: len(source)], source)
    assert (layout.source, layout.target) == (("exo", "ego") if direction == "exo2ego" else ("ego", "exo"))
    # works along any dimension, e.g. the frame axis of (B, C, F, h, w) latents
    latents = layout.gather(exo.view(1, 1, 3, 1, 1), transition.view(1, 1, n, 1, 1) if n else None,
                            ego.view(1, 1, 4, 1, 1), dim=2)
    assert torch.equal(latents.flatten(), sequence)


def test_layout_rejects_bad_settings():
    with pytest.raises(ValueError, match="`mode` must be one of"):
        SequenceLayout(2, 0, 2, "pose")
    with pytest.raises(ValueError, match="`direction` must be one of"):
        SequenceLayout(2, 0, 2, "jump", "sideways")
    with pytest.raises(ValueError, match="`reversal` must be one of"):
        SequenceLayout(2, 0, 2, "jump", "ego2exo", "partial")
    with pytest.raises(ValueError, match="`num_transition` must be 0 in 'jump' mode"):
        SequenceLayout(2, 3, 2, "jump")
    with pytest.raises(ValueError, match="`num_ego` must be a non-negative integer, got -1"):
        SequenceLayout(2, 0, -1, "jump")
    layout = SequenceLayout(2, 1, 2, "video")
    with pytest.raises(ValueError, match="`transition` is None but the layout has 1 such frames"):
        layout.gather(torch.zeros(2), None, torch.zeros(2))
    with pytest.raises(ValueError, match="`ego` must have 2 frames along dim 0, got 3"):
        layout.gather(torch.zeros(2), torch.zeros(1), torch.zeros(3))


def test_training_windows_are_deterministic_and_reverse_with_their_probability(sample):
    windows = Syn2SeqTrainingWindows([sample] * 200, "video+pose", max_frames=6, reverse_prob=0.5, seed=3)
    flags = [windows[i]["reversed"] for i in range(200)]
    assert 70 < sum(flags) < 130
    again = Syn2SeqTrainingWindows([sample] * 200, "video+pose", max_frames=6, reverse_prob=0.5, seed=3)
    for i in range(5):
        x, y = windows[i], again[i]
        assert x["window_start"] == y["window_start"] and x["reversed"] == y["reversed"]
        assert torch.equal(x["frames"], y["frames"])
    windows.select_epoch(1)
    assert [windows[i]["window_start"] for i in range(20)] != [again[i]["window_start"] for i in range(20)]
    never = Syn2SeqTrainingWindows([sample] * 10, "jump", 4, reverse_prob=0.0)
    assert not any(never[i]["reversed"] for i in range(10))


def test_collate_pads_and_stacks(sample):
    items = [
        sample_window(build_syn2seq_sequence(sample, "jump"), 16),  # 8 frames
        sample_window(build_syn2seq_sequence(sample, "video", reverse=True), 16),  # 11 frames
    ]
    batch = collate_syn2seq(items)
    assert batch["frames"].shape == (2, 2 * T + N, 3, RES, RES)
    assert batch["poses"].shape == (2, 2 * T + N, 16)
    assert batch["frame_mask"][0].tolist() == [True] * 8 + [False] * 3
    assert batch["frame_mask"][1].all()
    assert (batch["segment_ids"][0, 8:] == -1).all() and not batch["pose_mask"][0, 8:].any()
    assert (batch["frames"][0, 8:] == 0).all() and torch.isfinite(batch["poses"]).all()
    assert batch["reversed"].tolist() == [False, True] and batch["take_id"] == ["synth-0000002"] * 2
    assert collate_syn2seq(items, pad_to=12)["frames"].shape[1] == 12
    # through a DataLoader
    ds = Syn2SeqTrainingWindows([sample] * 3, "video+pose", 5, 0.5, seed=0)
    loaded = next(iter(torch.utils.data.DataLoader(ds, batch_size=3, collate_fn=collate_syn2seq)))
    assert loaded["frames"].shape == (3, 5, 3, RES, RES) and loaded["pose_mask"].all()


def test_bad_samples_raise(sample):
    with pytest.raises(ValueError, match="`mode` must be one of"):
        build_syn2seq_sequence(sample, "pose")
    bad = dict(sample, ego_poses=sample["ego_poses"][:-1])
    with pytest.raises(ValueError, match=rf"ego_poses must have shape \({T}, 16\)"):
        build_syn2seq_sequence(bad, "jump")
    nan = dict(sample, exo_poses=sample["exo_poses"].copy())
    nan["exo_poses"][2, 5] = np.nan
    with pytest.raises(ValueError, match="exo_poses row 2 contains NaN"):
        build_syn2seq_sequence(nan, "jump")
    with pytest.raises(ValueError, match="reverse_prob must be in"):
        Syn2SeqTrainingWindows([sample], "jump", 4, reverse_prob=1.5)
    with pytest.raises(ValueError, match="empty batch"):
        collate_syn2seq([])
