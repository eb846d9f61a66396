# SPDX-License-Identifier: Apache-2.0
"""The two halves of issue 16 together: a tiny SkyReels-V2 DF / Wan wrapper with the flow scheduler and a tiny causal
Wan VAE in one `Syn2SeqPipeline`: every schedule and guidance mode in both directions on latent boundaries, the
pipeline folder round trip, and the camera scheme (latent frame j carries the pose of pixel frame 4 j)."""

import json

import numpy as np
import pytest
import torch
from diffusers import AutoencoderKLWan, DiffusionPipeline
from test_video_vae import call, pixel_layout, poses, tiny_wan

from diffusers_syn2seq import FlowMatchDiffusionForcingScheduler, Syn2SeqPipeline, WanDFoTTransformer3DModel
from diffusers_syn2seq.data.sequence import LatentLayout
from diffusers_syn2seq.data.windows import window_camera_rays
from diffusers_syn2seq.evaluation import evaluate_baselines, generate_scene, scene_frame_counts

TINY = dict(patch_size=2, num_attention_heads=2, attention_head_dim=12, in_channels=16, out_channels=16, text_dim=16,
            freq_dim=256, ffn_dim=32, num_layers=2, rope_max_seq_len=32, sample_size=4, max_frames=6,
            prompt_length=7)


def wrapper(backbone: str = "skyreels-v2-df", camera: bool = True, trained_adapter: bool = False
            ) -> WanDFoTTransformer3DModel:
    torch.manual_seed(0)
    model = WanDFoTTransformer3DModel(backbone_type=backbone, inject_sample_info=backbone == "skyreels-v2-df",
                                      camera_ray_type="plucker" if camera else None, **TINY)
    model.set_prompt_embeds(torch.randn(5, 16, generator=torch.Generator().manual_seed(3)))
    if trained_adapter:  # as after training, so the poses reach the output
        torch.nn.init.normal_(model.camera_embedding.weight, std=0.1, generator=torch.Generator().manual_seed(4))
    return model.eval()


def make_pipeline(model: WanDFoTTransformer3DModel | None = None, **settings) -> Syn2SeqPipeline:
    pipe = Syn2SeqPipeline(transformer=model or wrapper(), scheduler=FlowMatchDiffusionForcingScheduler(),
                           vae=tiny_wan(), **{"num_transition_frames": 4, **settings})
    pipe.set_progress_bar_config(disable=True)
    return pipe


CASES = {
    "full_sequence": dict(schedule="full_sequence"),
    "pyramid": dict(schedule="pyramid", uncertainty_scale=1.0),
    "autoregressive_eta1": dict(schedule="autoregressive", eta=1.0),
    "fractional_history_guidance": dict(history_guidance="fractional", guidance_scale=1.5, fractional_level=0.5),
    "sliding_windows": dict(context_frames=2, target_poses=poses(16, 1.0)),  # 3 + 1 + 4 latents, windows of 6
}


@pytest.mark.parametrize("direction", ["exo2ego", "ego2exo"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_every_schedule_and_guidance_mode_runs_in_both_directions(case, direction):
    pipe = make_pipeline()
    settings = CASES[case]
    out = call(pipe, direction, output_type="latent", **settings)
    target_latents = 4 if case == "sliding_windows" else 2  # 16 or 8 target pixel frames
    assert out.frames.shape == (1, 16, target_latents, 4, 4)
    assert out.transition_frames.shape == (1, 16, 1, 4, 4)  # 4 transition pixel frames = 1 latent
    assert bool(torch.isfinite(out.frames).all())
    if case == "sliding_windows":
        assert pipe.num_timesteps == 2 * 2  # two windows of 2 steps
    if case == "full_sequence":  # the pixels: decoded after the source, in natural order
        pixels = call(pipe, direction)
        assert pixels.frames.shape == (1, 8, 3, 32, 32) and pixels.transition_frames.shape == (1, 4, 3, 32, 32)
        assert 0 <= float(pixels.frames.min()) and float(pixels.frames.max()) <= 1


@pytest.mark.parametrize("kwargs, match", [
    (dict(target_poses=poses(7, 1.0)), r"`target_poses` must hold a multiple of 4 poses .* got 7\."),
    (dict(num_frames=6, target_poses=poses(6, 1.0)), r"`num_frames` must be a multiple of 4 .* got 6\."),
    (dict(num_transition_frames=2), r"`num_transition_frames` must be a multiple of 4 .* got 2\."),
])
def test_frame_counts_off_latent_boundaries_name_the_argument(kwargs, match):
    with pytest.raises(ValueError, match=match):
        call(make_pipeline(), **kwargs)


def test_pipeline_folder_round_trip(tmp_path):
    pipe = make_pipeline(mode="video+pose", reversal="segments")
    pipe.save_pretrained(tmp_path / "p")
    index = json.loads((tmp_path / "p" / "model_index.json").read_text())
    assert index["vae"] == ["diffusers", "AutoencoderKLWan"]
    assert index["transformer"] == ["diffusers_syn2seq.models.transformer_wan_dfot", "WanDFoTTransformer3DModel"]
    assert index["scheduler"][1] == "FlowMatchDiffusionForcingScheduler"
    for loaded in (Syn2SeqPipeline.from_pretrained(tmp_path / "p"), DiffusionPipeline.from_pretrained(tmp_path / "p")):
        loaded.set_progress_bar_config(disable=True)
        assert isinstance(loaded.vae, AutoencoderKLWan) and isinstance(loaded.transformer, WanDFoTTransformer3DModel)
        assert (loaded.config.num_transition_frames, loaded.config.reversal) == (4, "segments")
        assert torch.equal(loaded.transformer.prompt_embeds, pipe.transformer.prompt_embeds)
        for direction in ("exo2ego", "ego2exo"):
            # identical weights, but the loaded ones sit unaligned in the safetensors buffer (CPU kernels round
            # ~5e-7 apart)
            torch.testing.assert_close(call(loaded, direction).frames, call(pipe, direction).frames, atol=1e-5,
                                       rtol=0)


@pytest.mark.parametrize("direction", ["exo2ego", "ego2exo"])
def test_latent_frames_carry_the_poses_of_pixel_frames_4j(direction):
    pipe, rays = make_pipeline(wrapper("wan", trained_adapter=True)), []
    hook = pipe.transformer.register_forward_hook(lambda m, a, kw, out: rays.append(kw["camera_rays"]),
                                                  with_kwargs=True)
    call(pipe, direction, num_inference_steps=1, output_type="latent")
    hook.remove()
    layout = pixel_layout(direction, "full")  # 9 | 4 | 8 pixel frames
    source, target = poses(9, 0.0), poses(8, 1.0)
    exo, ego = (source, target) if direction == "exo2ego" else (target, source)
    pixel_poses = layout.poses(exo, ego)[None]
    index = LatentLayout(layout, 4).pixel_index
    assert index.tolist() == [0, 4, 8, 12, 16, 20][: len(index)] and len(index) == 3 + 1 + 2
    expected, _ = window_camera_rays(pixel_poses[:, index], layout.pose_mask[None, index], 4, 4, "plucker")
    assert rays[0].shape == (1, 6, 6, 4, 4)  # one 6-channel Plücker map per latent frame
    torch.testing.assert_close(rays[0], expected)
    # The (trained) adapter makes the poses matter.
    moved = call(pipe, direction, target_poses=poses(8, -1.0), output_type="latent").frames
    assert not torch.allclose(moved, call(pipe, direction, output_type="latent").frames, atol=1e-4)


def test_zero_initialised_adapter_leaves_the_backbone_output_unchanged():
    posed = wrapper("skyreels-v2-df", camera=True)
    bare = wrapper("skyreels-v2-df", camera=False)
    missing, unexpected = bare.load_state_dict(posed.state_dict(), strict=False)
    assert not missing and set(unexpected) == {"camera_embedding.weight", "camera_embedding.bias"}
    with_poses = call(make_pipeline(posed), "ego2exo", output_type="latent")
    without = call(make_pipeline(bare), "ego2exo", output_type="latent", source_poses=None, target_poses=None)
    torch.testing.assert_close(with_poses.frames, without.frames, atol=0, rtol=0)
    torch.testing.assert_close(with_poses.transition_frames, without.transition_frames, atol=0, rtol=0)


# ------------------------------------------------------------------------------------------------ evaluation
def scene(num_exo: int = 10, num_ego: int = 11) -> dict:
    rng = np.random.default_rng(0)
    return {"take_id": "t0", "exo": rng.integers(0, 256, (num_exo, 32, 32, 3), dtype=np.uint8),
            "ego": rng.integers(0, 256, (num_ego, 32, 32, 3), dtype=np.uint8),
            "exo_poses": poses(num_exo, 0.0).numpy(), "ego_poses": poses(num_ego, 1.0).numpy()}


@pytest.mark.parametrize("direction, source, target", [("exo2ego", slice(1, 10), slice(0, 8)),
                                                       ("ego2exo", slice(0, 9), slice(2, 10))])
def test_generate_scene_cuts_the_clips_to_latent_boundaries(direction, source, target):
    """Default: the longest target of 4c frames and the 1 + 4a source frames, both next to the transition (10 exo,
    11 ego frames -> 9 source, 8 target; Ego2Exo's full reversal plays the exo clip backwards, so its target is the
    last 8 exo frames), exactly the pipeline call on those frames."""
    pipe, clip = make_pipeline(), scene()
    source_view, target_view = ("exo", "ego") if direction == "exo2ego" else ("ego", "exo")
    generated, truth = generate_scene(pipe, clip, direction=direction, steps=1, seed=3)
    assert generated.shape == truth.shape == (8, 3, 32, 32)
    expected = pipe(clip[source_view][source], source_poses=torch.from_numpy(clip[f"{source_view}_poses"][source]),
                    target_poses=torch.from_numpy(clip[f"{target_view}_poses"][target]), direction=direction,
                    num_inference_steps=1, output_type="pt", generator=torch.Generator().manual_seed(3)).frames[0]
    torch.testing.assert_close(generated, expected.clamp(0, 1))
    torch.testing.assert_close(truth, torch.from_numpy(clip[target_view][target]).permute(0, 3, 1, 2) / 255.0)
    assert generate_scene(pipe, clip, direction=direction, steps=1, num_frames=4)[0].shape[0] == 4


@pytest.mark.parametrize("counts, match", [
    ((10, 11, 6), r"`num_frames` \(--num_frames of `syn2seq evaluate`, --validation_num_frames of train.py\) must be "
                  r"a multiple of 4 .* got 6\."),
    ((4, 11, None), r"a scene needs at least 5 source and 4 target frames .* got 4 source and 11 target frames\."),
    ((9, 3, None), r"a scene needs at least 5 source and 4 target frames .* got 9 source and 3 target frames\."),
])
def test_scene_frame_counts_off_latent_boundaries_raise(counts, match):
    with pytest.raises(ValueError, match=match):
        scene_frame_counts(4, *counts)
    assert scene_frame_counts(1, 4, 11, 6) == (4, 6)  # per-frame models: whole clips, num_frames as asked


@pytest.mark.parametrize("temporal, frames", [(1, 11), (4, 8)])
def test_baselines_score_the_frames_a_causal_vae_model_generates(temporal, frames):
    mean = np.zeros((32, 32, 3), dtype=np.float32)
    results = evaluate_baselines([scene()], mean, "exo2ego", temporal_compression=temporal)
    assert [len(results[name]["per_frame_psnr"][0]) for name in ("mean_frame", "copy_source")] == [frames, frames]


@pytest.mark.parametrize("direction, reversal, scored", [
    ("exo2ego", "full", [0, 1, 2, 3]), ("ego2exo", "full", [6, 7, 8, 9]), ("ego2exo", "segments", [0, 1, 2, 3])])
def test_a_shorter_target_is_scored_on_the_frames_the_sequence_holds(direction, reversal, scored):
    """4 of 10 target frames: the first 4 in sequence order (`target_frames`), for models and baselines alike."""
    from diffusers_syn2seq.evaluation import target_frames

    assert [*range(10)][target_frames(direction, 10, 4, reversal)] == scored
    clip = scene(10, 10)
    view = "ego" if direction == "exo2ego" else "exo"
    clip[view] = np.stack([np.full((32, 32, 3), 20 * (i + 1), dtype=np.uint8) for i in range(10)])  # frame i: 20(i+1)
    mean = np.zeros((32, 32, 3), dtype=np.float32)
    result = evaluate_baselines([clip], mean, direction, num_frames=4, reversal=reversal)["mean_frame"]
    expected = [-10 * np.log10((20 * (i + 1) / 255.0) ** 2) for i in scored]  # PSNR of a black frame
    np.testing.assert_allclose(result["per_frame_psnr"][0], expected, rtol=1e-4)
    with pytest.raises(ValueError, match="reversal"):
        target_frames(direction, 10, 4, "backwards")


@pytest.mark.parametrize("requested, max_frames, transition, temporal, expected", [
    (None, 8, 2, 1, 3), (None, 6, 4, 4, 9), (None, 8, 4, 4, 13), (5, 6, 4, 4, 5),
    (13, 6, 4, 4, 13),  # longer than one window: sampled with a sliding window, as `generate` does
])
def test_demo_clip_length_counts_latent_frames(requested, max_frames, transition, temporal, expected):
    from diffusers_syn2seq.showcase import demo_num_frames

    n = demo_num_frames(requested, max_frames, transition, temporal)
    assert n == expected
    if temporal > 1 and requested is None:  # the clip the demo renders fills the window after generate_scene's cut
        source, target = scene_frame_counts(temporal, n, n, None)
        assert 1 + (source - 1) // temporal + transition // temporal + target // temporal <= max_frames
