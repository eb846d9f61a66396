# SPDX-License-Identifier: Apache-2.0
"""Training and sampling see the same sequence: the same clip, mode and window built through the training path
(`build_syn2seq_sequence` -> `sample_window` -> `collate_syn2seq` -> `model_inputs`) and through `Syn2SeqPipeline`
give identical `camera_rays`, `camera_rays_mask` and frame layout, for every mode, both directions, windows starting
on each segment, in pixel and in latent space."""

import numpy as np
import pytest
import torch
from diffusers import AutoencoderKL

from diffusers_syn2seq.data import (
    SEGMENT_TRANSITION,
    build_syn2seq_sequence,
    collate_syn2seq,
    plan_windows,
    render_synthetic_clip,
    sample_window,
)
from diffusers_syn2seq.latents import encode_take_latents
from diffusers_syn2seq.models import DFoTTransformer3DModel
from diffusers_syn2seq.pipelines import Syn2SeqPipeline, pipeline_syn2seq
from diffusers_syn2seq.schedulers import DiffusionForcingScheduler
from diffusers_syn2seq.training_utils import model_inputs

RES, FRAMES, TRANSITION = 16, 4, 4  # the case: render seed 7, 16 px, 4 + 4 + 4 frames


@pytest.fixture(scope="module")
def clip():
    return render_synthetic_clip(7, num_frames=FRAMES, resolution=RES, num_transition_frames=TRANSITION)


def tiny_vae() -> AutoencoderKL:
    torch.manual_seed(0)
    return AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 2,
                         up_block_types=("UpDecoderBlock2D",) * 2, block_out_channels=(8, 8), latent_channels=4,
                         norm_num_groups=4, sample_size=RES).eval()


def tiny_pipeline(max_frames: int, latent: bool) -> Syn2SeqPipeline:
    vae = tiny_vae() if latent else None
    torch.manual_seed(0)
    transformer = DFoTTransformer3DModel(
        in_channels=4 if latent else 3, sample_size=RES // 2 if latent else RES, max_frames=max_frames, patch_size=2,
        num_layers=1, num_attention_heads=2, attention_head_dim=8, noise_embedding_dim=16, camera_ray_type="plucker",
    ).eval()
    pipe = Syn2SeqPipeline(transformer=transformer, scheduler=DiffusionForcingScheduler(), vae=vae)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def run_pipeline(pipe, clip, mode, direction, context_frames, monkeypatch):
    """Sample once (one step per window) and record every transformer call and the layout the pipeline used."""
    calls, layouts = [], []
    hook = pipe.transformer.register_forward_hook(lambda m, a, kw, out: calls.append(kw), with_kwargs=True)

    class RecordedLayout(pipeline_syn2seq.SequenceLayout):  # the real layout, recorded
        def __post_init__(self):
            super().__post_init__()
            layouts.append(self)

    monkeypatch.setattr(pipeline_syn2seq, "SequenceLayout", RecordedLayout)
    source, target = ("exo", "ego") if direction == "exo2ego" else ("ego", "exo")
    num_transition = 0 if mode == "jump" else TRANSITION
    try:
        pipe(clip[source], source_poses=torch.from_numpy(clip[f"{source}_poses"]),
             target_poses=torch.from_numpy(clip[f"{target}_poses"]), num_frames=FRAMES,
             num_transition_frames=num_transition, mode=mode, direction=direction,
             transition_poses=torch.from_numpy(clip["transition_poses"]) if mode == "video+pose" else None,
             num_inference_steps=1, context_frames=context_frames, generator=torch.Generator().manual_seed(0),
             output_type="latent")
    finally:
        hook.remove()
    return calls, layouts[-1]


@pytest.mark.parametrize("latent", [False, True], ids=["pixels", "latents"])
@pytest.mark.parametrize("direction", ["exo2ego", "ego2exo"])
@pytest.mark.parametrize("mode", ["jump", "video", "video+pose"])
@pytest.mark.parametrize("max_frames,context_frames", [(4, 2), (6, 3)])
def test_training_and_sampling_windows_are_conditioned_identically(clip, mode, direction, latent, max_frames,
                                                                   context_frames, monkeypatch):
    pipe = tiny_pipeline(max_frames, latent)
    calls, layout = run_pipeline(pipe, clip, mode, direction, context_frames, monkeypatch)
    num_transition = 0 if mode == "jump" else TRANSITION
    windows = plan_windows(FRAMES, num_transition + FRAMES, max_frames, context_frames)
    assert len(calls) == len(windows)  # one step per window, no guidance: one transformer call each

    sequence = build_syn2seq_sequence(clip, mode, reverse=direction == "ego2exo")
    assert torch.equal(layout.segment_ids, sequence["segment_ids"])
    assert torch.equal(layout.frame_index, sequence["frame_index"])
    assert torch.equal(layout.pose_mask, sequence["pose_mask"])
    segments_started_on = set()
    for call, (start, num_history, num_generated) in zip(calls, windows):
        window = sample_window(sequence, num_history + num_generated, start=start)
        inputs = model_inputs(collate_syn2seq([window]), pipe.transformer.config, pipe.vae)
        assert torch.equal(call["camera_rays"], inputs["camera_rays"]), f"rays of the window at {start}"
        assert torch.equal(call["camera_rays_mask"], inputs["pose_mask"]), f"pose mask of the window at {start}"
        if start + num_history <= FRAMES:  # history made of source frames only: the same frames, in the same order
            history = call["hidden_states"][:, :, :num_history]
            torch.testing.assert_close(history, inputs["x0"][:, :, :num_history], atol=1e-5, rtol=1e-5)
        segments_started_on.add(int(window["segment_ids"][0]))
    if max_frames == 4:  # windows of 4 (2 history + 2 new) start on every segment; windows of 6 on the first
        assert len(segments_started_on) == (2 if mode == "jump" else 3), "windows start on every segment"
    elif mode != "jump":  # transition frame, the case
        assert FRAMES in [start for start, _, _ in windows]


@pytest.mark.parametrize("direction", ["exo2ego", "ego2exo"])
def test_cached_latents_give_the_windows_of_encoded_pixels(clip, direction):
    vae = tiny_vae()
    cache = encode_take_latents(vae, clip)
    pixels = build_syn2seq_sequence(clip, "video+pose", reverse=direction == "ego2exo")
    latents = build_syn2seq_sequence(cache, "video+pose", reverse=direction == "ego2exo")
    for key in ("poses", "pose_mask", "segment_ids", "frame_index"):
        assert torch.equal(latents[key], pixels[key]), key
    config = tiny_pipeline(6, latent=True).transformer.config
    for start in (0, 4, 6):
        from_pixels = model_inputs(collate_syn2seq([sample_window(pixels, 6, start=start)]), config, vae)
        from_cache = model_inputs(collate_syn2seq([sample_window(latents, 6, start=start)]), config, vae)
        torch.testing.assert_close(from_cache["x0"], from_pixels["x0"], atol=1e-5, rtol=1e-5)
        assert torch.equal(from_cache["camera_rays"], from_pixels["camera_rays"])


def test_a_window_starting_without_a_pose_is_normalised_by_its_first_known_pose(clip):
    """The measured bug: a `video` window starting on a transition frame. Its rays are those of the window's first
    known (ego) camera taken as the world frame, whatever world frame the take uses."""
    from diffusers_syn2seq.camera import poses_to_world_to_camera, ray_map

    sequence = build_syn2seq_sequence(clip, "video")
    window = sample_window(sequence, 6, start=FRAMES)  # 4 transition frames (no pose), then 2 ego frames
    assert window["segment_ids"].tolist() == [SEGMENT_TRANSITION] * 4 + [2, 2]
    inputs = model_inputs(collate_syn2seq([window]), tiny_pipeline(6, latent=False).transformer.config)
    ego = window["poses"][4:].double()
    relative = ray_map(ego[None], RES, RES, kind="plucker", normalize=True).float()
    torch.testing.assert_close(inputs["camera_rays"][:, :, 4:], relative, atol=1e-6, rtol=0)
    assert inputs["pose_mask"][0].tolist() == [False] * 4 + [True, True]
    # the placeholders copy the first known pose, so every masked frame's rays equal the reference frame's
    torch.testing.assert_close(inputs["camera_rays"][:, :, :4], relative[:, :, :1].expand(-1, -1, 4, -1, -1))
    # invariance to the world frame of the take
    moved = dict(clip)
    shift = np.eye(4)
    shift[:3, 3] = [0.5, -1.0, 2.0]
    for key in ("exo_poses", "ego_poses", "transition_poses"):
        w2c = poses_to_world_to_camera(torch.from_numpy(clip[key])).numpy() @ shift
        moved[key] = np.concatenate([clip[key][:, :4], w2c[:, :3, :].reshape(len(w2c), 12)], axis=1)
    moved_window = sample_window(build_syn2seq_sequence(moved, "video"), 6, start=FRAMES)
    moved_inputs = model_inputs(collate_syn2seq([moved_window]), tiny_pipeline(6, latent=False).transformer.config)
    torch.testing.assert_close(moved_inputs["camera_rays"], inputs["camera_rays"], atol=1e-5, rtol=0)
