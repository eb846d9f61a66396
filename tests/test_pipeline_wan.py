# SPDX-License-Identifier: Apache-2.0
"""The unmodified `Syn2SeqPipeline` loop driving tiny SkyReels-V2 DF / Wan wrappers with the flow scheduler, in
latent space without a VAE (per-frame latents in, latents out)."""

import pytest
import torch

from diffusers_syn2seq import FlowMatchDiffusionForcingScheduler, Syn2SeqPipeline, WanDFoTTransformer3DModel

TINY = dict(patch_size=2, num_attention_heads=2, attention_head_dim=12, in_channels=4, out_channels=4, text_dim=16,
            freq_dim=256, ffn_dim=32, num_layers=2, rope_max_seq_len=32, sample_size=8, max_frames=6,
            prompt_length=7)
SOURCE, TARGET = 3, 3


def make_pipeline(backbone: str = "skyreels-v2-df", camera: bool = False) -> Syn2SeqPipeline:
    torch.manual_seed(0)
    model = WanDFoTTransformer3DModel(backbone_type=backbone, inject_sample_info=backbone == "skyreels-v2-df",
                                      camera_ray_type="plucker" if camera else None, **TINY)
    model.set_prompt_embeds(torch.randn(5, 16))
    if camera:  # as after training, so the poses reach the output
        torch.nn.init.normal_(model.camera_embedding.weight, std=0.1)
    pipe = Syn2SeqPipeline(transformer=model.eval(), scheduler=FlowMatchDiffusionForcingScheduler(shift=5.0),
                           mode="video+pose" if camera else "video", num_transition_frames=2)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def source_latents(batch: int = 1) -> torch.Tensor:
    return torch.randn(batch, 4, SOURCE, 8, 8, generator=torch.Generator().manual_seed(1))


def poses(frames: int, offset: float) -> torch.Tensor:
    pose = torch.tensor([0.9, 0.9, 0.5, 0.5, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0.0]).repeat(frames, 1)
    pose[:, 7] = torch.linspace(0, 1, frames) + offset  # the camera moves along x
    return pose


CASES = {
    "full_sequence": dict(schedule="full_sequence"),
    "pyramid": dict(schedule="pyramid", uncertainty_scale=1.0),
    "autoregressive_eta1": dict(schedule="autoregressive", eta=1.0),
    "vanilla_history_guidance": dict(history_guidance="vanilla", guidance_scale=2.0),
    "fractional_history_guidance": dict(history_guidance="fractional", guidance_scale=1.5, fractional_level=0.5),
    "sliding_windows": dict(num_frames=7, context_frames=2),
    "ego2exo": dict(direction="ego2exo"),
}


@pytest.mark.parametrize("backbone", ["skyreels-v2-df", "wan"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_every_schedule_and_guidance_mode_runs(backbone, case):
    pipe = make_pipeline(backbone)
    settings = {"num_frames": TARGET, **CASES[case]}
    steps = 3
    out = pipe(source_latents=source_latents(2), num_inference_steps=steps, output_type="latent",
               return_transition=True, generator=torch.Generator().manual_seed(0), **settings)
    assert out.frames.shape == (2, 4, settings["num_frames"], 8, 8)
    assert out.transition_frames.shape == (2, 4, 2, 8, 8)
    assert bool(torch.isfinite(out.frames).all()) and bool(torch.isfinite(out.transition_frames).all())
    if case == "sliding_windows":  # 3 source + 2 transition + 7 target frames in windows of 6
        assert pipe.num_timesteps > steps * 2


def test_sampling_is_deterministic_and_depends_on_the_seed():
    pipe = make_pipeline()
    run = lambda seed: pipe(source_latents=source_latents(), num_frames=TARGET, num_inference_steps=3,  # noqa: E731
                            output_type="latent", eta=1.0, history_guidance="fractional", guidance_scale=1.5,
                            generator=torch.Generator().manual_seed(seed)).frames
    first = run(0)
    assert torch.equal(first, run(0))
    assert not torch.allclose(first, run(1))


def test_pose_conditioned_wrapper_receives_the_poses():
    pipe = make_pipeline("wan", camera=True)
    run = lambda offset: pipe(source_latents=source_latents(), source_poses=poses(SOURCE, 0.0),  # noqa: E731
                              target_poses=poses(TARGET, offset), num_frames=TARGET, num_inference_steps=3,
                              output_type="latent", generator=torch.Generator().manual_seed(0)).frames
    first = run(2.0)
    assert first.shape == (1, 4, TARGET, 8, 8) and bool(torch.isfinite(first).all())
    assert not torch.allclose(first, run(-2.0))


def test_exact_velocity_model_reconstructs_the_target():
    """With a model that returns the exact velocity of a known target, full-sequence sampling returns that target:
    the flow scheduler's steps land on the interpolation path at every level of the shifted grid (one window:
    3 source + 2 transition + 1 target frames)."""
    pipe = make_pipeline()
    target = torch.randn(1, 4, 2 + 1, 8, 8, generator=torch.Generator().manual_seed(7))
    noise = torch.randn(target.shape, generator=torch.Generator().manual_seed(8))
    original_forward = pipe.transformer.forward

    def exact_velocity(hidden_states, timestep, **kwargs):
        out = original_forward(hidden_states, timestep, **kwargs)[0]  # the real call, then the oracle's value
        out[:, :, SOURCE:] = (noise - target).expand(out.shape[0], -1, -1, -1, -1)
        return (out,)

    pipe.transformer.forward = exact_velocity
    out = pipe(source_latents=source_latents(), num_frames=1, num_inference_steps=4, output_type="latent",
               latents=noise, return_transition=True)
    torch.testing.assert_close(out.frames, target[:, :, 2:], atol=1e-5, rtol=0)
    torch.testing.assert_close(out.transition_frames, target[:, :, :2], atol=1e-5, rtol=0)


def test_mismatched_scheduler_is_refused():
    from diffusers_syn2seq import DiffusionForcingScheduler

    pipe = make_pipeline()
    pipe.scheduler = DiffusionForcingScheduler()
    with pytest.raises(ValueError, match=r"`scheduler` produces model timesteps for a 'sinusoidal' noise embedding "
                                         r".* but the transformer uses 'flow'"):
        pipe(source_latents=source_latents(), num_frames=TARGET, num_inference_steps=2, output_type="latent")


def test_flow_scheduler_with_a_dfot_model_is_refused():
    from diffusers_syn2seq import DFoTTransformer3DModel

    model = DFoTTransformer3DModel(in_channels=4, sample_size=8, max_frames=6, patch_size=2, num_layers=1,
                                   num_attention_heads=2, attention_head_dim=8, noise_embedding_dim=16)
    pipe = Syn2SeqPipeline(transformer=model, scheduler=FlowMatchDiffusionForcingScheduler(), mode="video")
    with pytest.raises(ValueError, match=r"`scheduler` produces model timesteps for a 'flow' noise embedding "
                                         r"\(noise_schedule='rectified_flow'\) but the transformer uses 'sinusoidal'"):
        pipe(source_latents=source_latents(), num_frames=TARGET, num_inference_steps=2, output_type="latent")
