# SPDX-License-Identifier: Apache-2.0
"""A causal video VAE (`AutoencoderKLWan`, 4x temporal compression) in the sequence layer, the latent cache, the
pipeline and train.py: joint encoding, decoding after the source, pixel-space Ego2Exo reversal, latent boundaries,
windows in latent frames, with diffusers' tiny Wan VAE configuration and a tiny DFoT transformer (16 channels)."""

import json
import math

import numpy as np
import pytest
import torch
from diffusers import AutoencoderKL, AutoencoderKLWan, DiffusionPipeline
from script_loading import load_script

from diffusers_syn2seq.data import Syn2SeqTrainingWindows, build_syn2seq_sequence, collate_syn2seq, plan_windows
from diffusers_syn2seq.data.sequence import LatentLayout, SequenceLayout, trim_to_latent_boundaries
from diffusers_syn2seq.data.windows import window_camera_rays
from diffusers_syn2seq.latents import decode_video, encode_take_latents, encode_video, vae_scale_factors
from diffusers_syn2seq.models import DFoTTransformer3DModel
from diffusers_syn2seq.pipelines import Syn2SeqPipeline
from diffusers_syn2seq.schedulers import DiffusionForcingScheduler
from diffusers_syn2seq.training_utils import model_inputs

PIXELS = 32  # 32 px -> 4x4 latents (spatial factor 8)
ATOL = 1e-5  # the causal VAE's prefix equalities hold to float rounding (~1e-7)


def tiny_wan() -> AutoencoderKLWan:
    torch.manual_seed(0)
    return AutoencoderKLWan(base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
                            temperal_downsample=[False, True, True]).eval()


def tiny_transformer(max_frames: int = 8) -> DFoTTransformer3DModel:
    torch.manual_seed(0)
    model = DFoTTransformer3DModel(in_channels=16, sample_size=PIXELS // 8, max_frames=max_frames, patch_size=2,
                                   num_layers=1, num_attention_heads=2, attention_head_dim=16, noise_embedding_dim=32,
                                   camera_ray_type="plucker")
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():  # AdaLN-zero init would make the output exactly 0
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=generator) * 0.1)
    return model.eval()


def make_pipeline(max_frames: int = 8, **settings) -> Syn2SeqPipeline:
    pipe = Syn2SeqPipeline(transformer=tiny_transformer(max_frames), scheduler=DiffusionForcingScheduler(),
                           vae=tiny_wan(), **settings)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def poses(num: int, offset: float) -> torch.Tensor:
    """`(num, 16)` valid poses (identity rotation, moving camera)."""
    out = torch.zeros(num, 16, dtype=torch.float64)
    out[:, :4] = torch.tensor([1.0, 1.0, 0.5, 0.5])
    out[:, [4, 9, 14]] = 1.0
    out[:, 7] = offset + 0.1 * torch.arange(num)
    out[:, 15] = 0.05 * torch.arange(num)
    return out


def video(num: int = 9, seed: int = 1) -> torch.Tensor:
    """`(F, 3, H, W)` float in [0, 1]."""
    return torch.rand(num, 3, PIXELS, PIXELS, generator=torch.Generator().manual_seed(seed))


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def in_model_space(pixels_unit: torch.Tensor) -> torch.Tensor:
    """`(F, 3, H, W)` in [0, 1] -> `(1, 3, F, H, W)` in [-1, 1], the layout `encode_video` takes."""
    return (pixels_unit * 2 - 1).transpose(0, 1)[None]


def call(pipe, direction="exo2ego", reversal=None, output_type="pt", **kwargs):
    defaults = dict(source_poses=poses(9, 0.0), target_poses=poses(8, 1.0), num_inference_steps=2,
                    generator=gen(0), return_transition=True)
    return pipe(video(), direction=direction, reversal=reversal, output_type=output_type, **{**defaults, **kwargs})


# ------------------------------------------------------------------------------------------------- the VAE itself
def test_scale_factors_and_model_space_normalisation():
    vae = tiny_wan()
    assert vae_scale_factors(vae) == (4, 8) and vae_scale_factors(None) == (1, 1)
    per_frame = AutoencoderKL(block_out_channels=(8, 8), down_block_types=("DownEncoderBlock2D",) * 2,
                              up_block_types=("UpDecoderBlock2D",) * 2, norm_num_groups=4, latent_channels=4)
    assert vae_scale_factors(per_frame) == (1, 2)
    pipe = make_pipeline()
    assert (pipe.vae_scale_factor, pipe.vae_scale_factor_temporal) == (8, 4)
    x = in_model_space(video())
    z = vae.encode(x).latent_dist.mode()
    mean = torch.tensor(vae.config.latents_mean).view(1, 16, 1, 1, 1)
    std = torch.tensor(vae.config.latents_std).view(1, 16, 1, 1, 1)
    torch.testing.assert_close(encode_video(vae, x), (z - mean) / std)
    torch.testing.assert_close(decode_video(vae, encode_video(vae, x)), vae.decode(z).sample)


def test_causal_vae_facts_the_design_relies_on():
    """Prefixes encode and decode exactly; a segment encoded alone and a flipped clip do not (hence joint encoding
    and pixel-space reversal)."""
    vae, x = tiny_wan(), in_model_space(video(13))
    joint = encode_video(vae, x)
    assert joint.shape == (1, 16, 4, 4, 4)
    torch.testing.assert_close(encode_video(vae, x[:, :, :5]), joint[:, :, :2], atol=ATOL, rtol=0)
    decoded = decode_video(vae, joint)
    torch.testing.assert_close(decode_video(vae, joint[:, :, :3]), decoded[:, :, :9], atol=ATOL, rtol=0)
    alone = encode_video(vae, x[:, :, 4:9])  # frames 5-8 preceded by frame 4 as their "image" frame
    assert (alone[:, :, 1] - joint[:, :, 2]).abs().max() > 1e-2
    assert (encode_video(vae, x.flip(2)) - joint.flip(2)).abs().max() > 1e-2


def test_encode_video_refuses_incomplete_chunks():
    with pytest.raises(ValueError, match=r"^`video` must have 1 \+ 4 \* a frames for a VAE compressing time 4x, "
                                         r"got 8\.$"):
        encode_video(tiny_wan(), in_model_space(video(8)))


# ------------------------------------------------------------------------------------------------- the pipeline
def pixel_layout(direction: str, reversal: str) -> SequenceLayout:
    lengths = (9, 4, 8) if direction == "exo2ego" else (8, 4, 9)
    return SequenceLayout(*lengths, "video+pose", direction, reversal)


@pytest.mark.parametrize("direction, reversal", [("exo2ego", "full"), ("ego2exo", "full"), ("ego2exo", "segments")])
def test_decoded_target_is_the_target_of_the_decoded_joint_sequence(direction, reversal):
    pipe = make_pipeline()
    latent = call(pipe, direction, reversal, output_type="latent")
    pixels = call(pipe, direction, reversal)
    layout = pixel_layout(direction, reversal)
    source = video() if not layout.segments[0][2] else video().flip(0)
    joint = torch.cat([encode_video(pipe.vae, in_model_space(source)), latent.transition_frames, latent.frames], 2)
    assert joint.shape[2] == 1 + 2 + 1 + 2  # 9 source, 4 transition, 8 target pixel frames
    expected = layout.split(decode_video(pipe.vae, joint), dim=2)
    for got, name in ((pixels.frames, layout.target), (pixels.transition_frames, "transition")):
        want = (expected[name] / 2 + 0.5).clamp(0, 1).transpose(1, 2)  # (B, F, 3, H, W) in [0, 1]
        torch.testing.assert_close(got, want, atol=ATOL, rtol=0)
    # Decoding the target latents on their own (no source context) gives other frames.
    alone = decode_video(pipe.vae, latent.frames)
    assert alone.shape[2] == 5 and pixels.frames.shape[1] == 8


@pytest.mark.parametrize("reversal", ["full", "segments"])
def test_ego2exo_reverses_the_source_in_pixel_space(reversal):
    pipe, history = make_pipeline(), []

    def record(pipe_, i, t, kwargs):
        history.append(kwargs["latents"][:, :, :3].clone())  # the window's 3 source latents (clean history)
        return {}

    call(pipe, "ego2exo", reversal, output_type="latent", callback_on_step_end=record)
    x = in_model_space(video())
    if reversal == "full":  # [ego reversed | ...]: the reversed pixels, encoded
        torch.testing.assert_close(history[0], encode_video(pipe.vae, x.flip(2)), atol=ATOL, rtol=0)
        assert (history[0] - encode_video(pipe.vae, x).flip(2)).abs().max() > 1e-2  # not flipped latents
    else:  # [ego | reversed transition | exo]: the source keeps its time order
        torch.testing.assert_close(history[0], encode_video(pipe.vae, x), atol=ATOL, rtol=0)


@pytest.mark.parametrize("direction", ["exo2ego", "ego2exo"])
@pytest.mark.parametrize("schedule", ["full_sequence", "pyramid", "autoregressive"])
def test_every_schedule_runs_with_the_causal_vae(schedule, direction):
    pipe, frames = make_pipeline(), []
    hook = pipe.transformer.register_forward_hook(lambda m, a, kw, out: frames.append(kw["hidden_states"].shape[2]),
                                                  with_kwargs=True)
    out = call(pipe, direction, schedule=schedule, history_guidance="fractional", guidance_scale=1.5)
    hook.remove()
    assert out.frames.shape == (1, 8, 3, PIXELS, PIXELS) and out.transition_frames.shape == (1, 4, 3, PIXELS, PIXELS)
    assert torch.isfinite(out.frames).all() and set(frames) == {6}  # 3 + 1 + 2 latent frames per forward


@pytest.mark.parametrize("direction", ["exo2ego", "ego2exo"])
def test_sliding_windows_count_latent_frames(direction):
    pipe, windows = make_pipeline(max_frames=4), []

    def record(pipe_, i, t, kwargs):
        windows.append((kwargs["latents"].shape[2], len(t)))
        return {}

    kwargs = dict(context_frames=2, num_inference_steps=1, callback_on_step_end=record)
    latent = call(pipe, direction, "full", output_type="latent", **kwargs)
    pixels = call(pipe, direction, "full", **kwargs)
    planned = plan_windows(3, 3, 4, context_frames=2)  # 3 source latents, 1 + 2 generated, windows of 4 latents
    assert windows[: len(planned)] == [(h + g, g) for _, h, g in planned] and len(planned) > 1
    layout = pixel_layout(direction, "full")
    source = video() if direction == "exo2ego" else video().flip(0)
    joint = torch.cat([encode_video(pipe.vae, in_model_space(source)), latent.transition_frames, latent.frames], 2)
    want = (layout.split(decode_video(pipe.vae, joint), dim=2)[layout.target] / 2 + 0.5).clamp(0, 1)
    torch.testing.assert_close(pixels.frames, want.transpose(1, 2), atol=ATOL, rtol=0)


def test_each_latent_frame_carries_the_pose_of_its_last_pixel_frame():
    pipe, rays = make_pipeline(), []
    hook = pipe.transformer.register_forward_hook(lambda m, a, kw, out: rays.append(kw["camera_rays"]),
                                                  with_kwargs=True)
    call(pipe, "ego2exo", "full", num_inference_steps=1)
    hook.remove()
    layout = pixel_layout("ego2exo", "full")
    pixel_poses = layout.poses(poses(8, 1.0), poses(9, 0.0))[None]  # exo = target, ego = source
    index = torch.tensor([0, 4, 8, 12, 16, 20])
    assert LatentLayout(layout, 4).pixel_index.tolist() == index.tolist()
    expected, _ = window_camera_rays(pixel_poses[:, index], layout.pose_mask[None, index], 4, 4, "plucker")
    torch.testing.assert_close(rays[0], expected)


@pytest.mark.parametrize("kwargs, match", [
    (dict(source=8), r"^`source_video` must have 1 \+ 4 \* a frames with a >= 1 \(5, 9, 13, \.\.\.: the VAE encodes "
                     r"frame 0 alone, then chunks of 4\), got 8\.$"),
    (dict(source=3), r"^`source_video` must have 1 \+ 4 \* a frames with a >= 1 .*, got 3\.$"),
    (dict(num_transition_frames=3), r"^`num_transition_frames` must be a multiple of 4 \(transition frames; whole "
                                    r"latent frames of a VAE compressing time 4x\), got 3\.$"),
    (dict(num_frames=6), r"^`num_frames` must be a multiple of 4 \(target frames; whole latent frames of a VAE "
                         r"compressing time 4x\), got 6\.$"),
    (dict(target=6), r"^`target_poses` must hold a multiple of 4 poses \(one per target frame; whole latent frames of "
                     r"a VAE compressing time 4x\), got 6\.$"),
    (dict(latents=True, direction="ego2exo"),
     r"^`source_latents` cannot be used with direction='ego2exo' and reversal='full' with a causal video VAE"),
])
def test_frame_counts_off_latent_boundaries_raise(kwargs, match):
    pipe = make_pipeline()
    source = video(kwargs.pop("source", 9))
    args = dict(source_poses=poses(len(source), 0.0), target_poses=poses(kwargs.pop("target", 8), 1.0),
                num_inference_steps=1, direction=kwargs.pop("direction", "exo2ego"), output_type="latent")
    if kwargs.pop("latents", False):
        args["source_latents"] = encode_video(pipe.vae, in_model_space(source))
    else:
        args["source_video"] = source
    with pytest.raises(ValueError, match=match):
        pipe(**args, **kwargs)


def test_a_configured_transition_off_latent_boundaries_fails_at_construction():
    with pytest.raises(ValueError, match=r"^`num_transition_frames` must be a multiple of 4 \(transition frames; whole "
                                         r"latent frames of a VAE compressing time 4x\), got 6\.$"):
        make_pipeline(num_transition_frames=6)


def test_a_batch_equals_single_calls_with_the_causal_vae():
    pipe = make_pipeline()
    videos = [video(seed=1), video(seed=2)]
    kwargs = dict(source_poses=poses(9, 0.0), target_poses=poses(8, 1.0), num_inference_steps=2, output_type="pt")
    batch = pipe(videos, generator=[gen(0), gen(1)], **kwargs).frames
    for i, single in enumerate(videos):
        torch.testing.assert_close(batch[i : i + 1], pipe(single, generator=gen(i), **kwargs).frames, atol=ATOL,
                                   rtol=0)


def test_source_latents_of_a_causal_vae_sample_like_the_video():
    pipe = make_pipeline()
    from_video = call(pipe, output_type="latent")
    latents = encode_video(pipe.vae, in_model_space(video()))
    from_latents = pipe(source_latents=latents, source_poses=poses(9, 0.0), target_poses=poses(8, 1.0),
                        num_inference_steps=2, generator=gen(0), output_type="latent")
    torch.testing.assert_close(from_latents.frames, from_video.frames)


def test_pipeline_with_a_causal_vae_saves_and_loads(tmp_path):
    pipe = make_pipeline(num_transition_frames=8)
    pipe.save_pretrained(tmp_path / "p")
    index = json.loads((tmp_path / "p" / "model_index.json").read_text())
    assert index["vae"] == ["diffusers", "AutoencoderKLWan"]
    loaded = DiffusionPipeline.from_pretrained(tmp_path / "p")
    loaded.set_progress_bar_config(disable=True)
    assert isinstance(loaded.vae, AutoencoderKLWan) and loaded.config.num_transition_frames == 8
    out = call(loaded, output_type="latent", num_inference_steps=1)
    torch.testing.assert_close(out.frames, call(pipe, output_type="latent", num_inference_steps=1).frames)
    assert out.transition_frames.shape[2] == 2  # 8 transition pixel frames = 2 latent frames


# ------------------------------------------------------------------------------------------------- sequence + cache
def take(num_exo: int = 9, num_ego: int = 10) -> dict:
    rng = np.random.default_rng(0)
    return {"take_id": "t0", "exo": rng.integers(0, 256, (num_exo, PIXELS, PIXELS, 3), dtype=np.uint8),
            "ego": rng.integers(0, 256, (num_ego, PIXELS, PIXELS, 3), dtype=np.uint8),
            "transition": rng.integers(0, 256, (4, PIXELS, PIXELS, 3), dtype=np.uint8),
            "exo_poses": poses(num_exo, 0.0).numpy(), "ego_poses": poses(num_ego, 1.0).numpy()}


@pytest.mark.parametrize("layout, match", [
    (SequenceLayout(8, 4, 8), r"^`num_exo` \(the source, first in sequence order\) must be 1 \+ 4 \* a pixel frames "
                              r"\(1, 5, 9, \.\.\.\) for a VAE compressing time 4x, got 8\.$"),
    (SequenceLayout(9, 4, 8, direction="ego2exo"), r"^`num_ego` \(the source, first in sequence order\) must be "
                                                   r"1 \+ 4 \* a .*got 8\.$"),
    (SequenceLayout(9, 2, 8), r"^`num_transition` must be a multiple of 4 pixel frames .*got 2\.$"),
    (SequenceLayout(9, 4, 7), r"^`num_ego` must be a multiple of 4 pixel frames .*got 7\.$"),
])
def test_latent_layout_refuses_segments_off_latent_boundaries(layout, match):
    with pytest.raises(ValueError, match=match):
        LatentLayout(layout, 4)


def test_latent_layout_counts_latent_frames():
    layout = LatentLayout(SequenceLayout(8, 4, 9, "video", "ego2exo"), 4)
    assert [n for _, n, _ in layout.segments] == [3, 1, 2] and layout.num_frames == 6
    assert layout.segment_ids.tolist() == [2, 2, 2, 1, 0, 0]  # ego (source) | transition | exo
    assert layout.pose_mask.tolist() == [True, True, True, False, True, True]
    assert layout.frame_index.tolist() == [8, 4, 0, 0, 4, 0]  # clip index of pixel frames 0, 4, ..., 20


@pytest.mark.parametrize("reverse", [False, True])
def test_sequences_are_trimmed_to_latent_boundaries_next_to_the_transition(reverse):
    sample = take()
    full = build_syn2seq_sequence(sample, "video+pose", reverse)
    trimmed = build_syn2seq_sequence(sample, "video+pose", reverse, temporal_compression=4)
    # exo2ego: exo (9) kept, ego 10 -> its first 8; ego2exo: ego 10 -> the 9 next to the transition, exo 9 -> 8.
    assert trimmed["num_frames"] == (9, 4, 8)
    start = 0 if not reverse else 1
    for key in ("frames", "poses", "segment_ids", "pose_mask", "frame_index"):
        torch.testing.assert_close(trimmed[key], full[key][start : start + 21])
    parts = trimmed["layout"].split(trimmed["frames"])
    assert torch.equal(trimmed["layout"].gather(parts["exo"], parts["transition"], parts["ego"]), trimmed["frames"])
    with pytest.raises(ValueError, match=r"^the transition must be a multiple of 4 frames .*got 3\.$"):
        trim_to_latent_boundaries(build_syn2seq_sequence({**sample, "transition": sample["transition"][:3]}), 4)


def test_latent_cache_holds_each_direction_encoded_jointly_and_matches_the_pipeline():
    vae, sample = tiny_wan(), take()
    cache = encode_take_latents(vae, sample, mode="video+pose", reversal="full")
    assert set(cache["sequences"]) == {"exo2ego", "ego2exo"}
    for direction, sequence in cache["sequences"].items():
        pixels = build_syn2seq_sequence(sample, "video+pose", direction == "ego2exo", temporal_compression=4)
        expected = encode_video(vae, pixels["frames"].transpose(0, 1)[None])[0].transpose(0, 1)
        torch.testing.assert_close(sequence["frames"], expected)
        assert sequence["frames"].shape[0] == 6 and sequence["num_frames"] == (3, 1, 2)
        torch.testing.assert_close(sequence["poses"], pixels["poses"][::4])
    # The cached Ego2Exo source latents are the ones the pipeline encodes from the same ego clip.
    pipe, history = make_pipeline(), []
    ego = torch.from_numpy(sample["ego"][:9]).permute(0, 3, 1, 2)
    pipe(ego, source_poses=poses(9, 1.0), target_poses=poses(8, 0.0), direction="ego2exo", num_inference_steps=1,
         output_type="latent", callback_on_step_end=lambda p, i, t, kw: history.append(kw["latents"][0, :, :3]) or {})
    torch.testing.assert_close(history[0].transpose(0, 1), cache["sequences"]["ego2exo"]["frames"][:3],
                               atol=ATOL, rtol=0)


def test_training_windows_from_the_causal_cache_are_latent_windows():
    vae, transformer = tiny_wan(), tiny_transformer(max_frames=4)
    cache = [encode_take_latents(vae, take(), reversal="full")]
    windows = Syn2SeqTrainingWindows([take()], "video+pose", 4, reverse_prob=0.5, latents=cache)
    directions = set()
    for epoch in range(6):
        windows.select_epoch(epoch)
        item = windows[0]
        source = cache[0]["sequences"]["ego2exo" if item["reversed"] else "exo2ego"]
        start = item["window_start"]
        assert torch.equal(item["frames"], source["frames"][start : start + 4])
        directions.add(item["reversed"])
    assert directions == {False, True}
    inputs = model_inputs(collate_syn2seq([item]), transformer.config, vae)
    assert inputs["x0"].shape == (1, 16, 4, 4, 4) and inputs["camera_rays"].shape[2] == 4
    with pytest.raises(ValueError, match=r"encoded for mode 'video\+pose' and reversal 'full', got mode 'video' "
                                         r"and reversal 'full'; rebuild the cache"):
        Syn2SeqTrainingWindows([take()], "video", 4, latents=cache)
    one_way = [encode_take_latents(vae, take(), directions=("exo2ego",))]
    with pytest.raises(ValueError, match=r"hold the directions \['exo2ego'\], got a draw of 'ego2exo'"):
        Syn2SeqTrainingWindows([take()], "video+pose", 4, reverse_prob=1.0, latents=one_way)[0]


def test_train_script_trains_with_a_causal_vae(tmp_path):
    load_script("training/make_synthetic_dataset.py").main([
        "--output", str(tmp_path / "data"), "--num-train", "2", "--num-validation", "0", "--num-test", "0",
        "--num-frames", "9", "--resolution", str(PIXELS), "--transition-frames", "4"])
    tiny_wan().save_pretrained(tmp_path / "wan")
    train = load_script("training/train.py", "syn2seq_train_script")
    argv = ["--dataset_dir", str(tmp_path / "data"), "--output_dir", str(tmp_path / "out"), "--model_preset",
            "dit-tiny", "--max_frames", "4", "--patch_size", "2", "--report_to", "none", "--mixed_precision", "no",
            "--vae_name_or_path", str(tmp_path / "wan"), "--reverse_prob", "0.5", "--train_batch_size", "2",
            "--max_train_steps", "2", "--checkpointing_steps", "2"]
    with pytest.raises(ValueError, match=r"^--cache_latents: expected with a causal video VAE"):
        train.main(argv)
    summary = train.main(argv + ["--cache_latents"])
    assert math.isfinite(summary["fixed_batch_loss_start"]) and math.isfinite(summary["fixed_batch_loss_end"])
    loaded = DiffusionPipeline.from_pretrained(tmp_path / "out")
    assert isinstance(loaded.vae, AutoencoderKLWan) and loaded.transformer.config.in_channels == 16
