# SPDX-License-Identifier: Apache-2.0
"""Tests of `Syn2SeqPipeline`: exact-oracle sampling, history handling, batching, callbacks, outputs, loading, inputs.

Stand-in denoisers are used where the test needs the exact answer (oracle sampling, guidance formulas); everything
else runs a tiny real `DFoTTransformer3DModel`.
"""

import json

import numpy as np
import PIL.Image
import pytest
import torch
from diffusers import AutoencoderKL, DiffusionPipeline
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_outputs import Transformer2DModelOutput
from diffusers.models.modeling_utils import ModelMixin

from diffusers_syn2seq.models import DFoTTransformer3DModel
from diffusers_syn2seq.pipelines import Syn2SeqPipeline, Syn2SeqPipelineOutput, pipeline_syn2seq
from diffusers_syn2seq.schedulers import DiffusionForcingScheduler

SIZE = 8  # frame side of the tiny pixel-space models


def tiny_transformer(max_frames: int = 8, camera_ray_type=None, in_channels: int = 3, seed: int = 0,
                     num_layers: int = 1, **kwargs):
    """1-layer DFoT with random (non-zero) weights, so every input actually changes the output."""
    torch.manual_seed(seed)
    model = DFoTTransformer3DModel(
        in_channels=in_channels, sample_size=SIZE, max_frames=max_frames, patch_size=2, num_layers=num_layers,
        num_attention_heads=2, attention_head_dim=16, noise_embedding_dim=32, camera_ray_type=camera_ray_type,
        **kwargs,
    )
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():  # AdaLN-zero init would make the model output exactly 0
            p.copy_(torch.randn(p.shape, generator=generator) * 0.1)
    return model.eval()


def make_pipeline(transformer, scheduler=None, vae=None, num_transition_frames: int = 0, **settings) -> Syn2SeqPipeline:
    """A pipeline whose calls generate no transition unless they ask for one (most tests here count frames)."""
    pipe = Syn2SeqPipeline(transformer=transformer, scheduler=scheduler or DiffusionForcingScheduler(), vae=vae,
                           num_transition_frames=num_transition_frames, **settings)
    pipe.set_progress_bar_config(disable=True)
    return pipe


class StandInDenoiser(ModelMixin, ConfigMixin):
    """Base of the stand-ins: the config names the pipeline reads, and a record of every forward call."""

    @register_to_config
    def __init__(
        self, in_channels: int = 3, sample_size: int = SIZE, max_frames: int = 8, patch_size: int = 1,
        noise_embedding_type: str = "sinusoidal", camera_ray_type=None,
    ):
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(()))  # gives the module a device and dtype
        self.calls = []

    def predict(self, hidden_states, timestep):
        raise NotImplementedError

    def forward(self, hidden_states, timestep, camera_rays=None, camera_rays_mask=None, condition=None,
                condition_mask=None, return_dict=True, attention_kwargs=None):
        out = self.predict(hidden_states.float(), timestep)
        self.calls.append({"hidden_states": hidden_states.clone(), "timestep": timestep.clone(), "output": out.clone(),
                           "camera_rays_mask": None if camera_rays_mask is None else camera_rays_mask.clone()})
        return Transformer2DModelOutput(sample=out) if return_dict else (out,)


class OracleDenoiser(StandInDenoiser):
    """Returns the exact v / epsilon / x0 for a known clean sequence (model order), whatever the noisy input.

    The window's position in the sequence is found by matching its first frame (clean or barely-noised history)
    against the clean sequence, so the oracle needs no help from the pipeline.
    """

    clean: torch.Tensor  # (B, C, L, H, W) in model space and sampling order
    prediction_type: str = "v_prediction"
    scheduler: DiffusionForcingScheduler

    def alphas(self, timestep):
        if self.config.noise_embedding_type == "fourier":
            return torch.sigmoid(timestep.double() / self.scheduler.config.model_timestep_scale)
        return self.scheduler.alphas_cumprod.double()[timestep.long()]

    def predict(self, x, timestep):
        rows, _, frames = x.shape[:3]
        out = torch.empty_like(x, dtype=torch.float64)
        alphas = self.alphas(timestep.reshape(rows, frames))
        for row in range(rows):
            clean = self.clean[row % self.clean.shape[0]].double()
            distance = ((clean - x[row, :, :1].double()) ** 2).sum(dim=(0, 2, 3))[: clean.shape[1] - frames + 1]
            offset = int(distance.argmin())
            x0 = clean[:, offset : offset + frames]
            a = alphas[row][None, :, None, None]
            eps = (x[row].double() - a.sqrt() * x0) / (1 - a).sqrt()
            out[row] = {"v_prediction": a.sqrt() * eps - (1 - a).sqrt() * x0, "epsilon": eps, "sample": x0}[
                self.prediction_type
            ]
        return out.float()


class MixingDenoiser(StandInDenoiser):
    """A deterministic stand-in whose output depends on every frame and on the levels (for guidance formulas)."""

    def predict(self, x, timestep):
        t = timestep.float().reshape(x.shape[0], 1, x.shape[2], 1, 1)
        return 0.3 * x + x.mean(dim=2, keepdim=True) + 1e-3 * t


def random_video(frames: int = 3, batch=None, seed: int = 0) -> torch.Tensor:
    """Float video in [0, 1], `(F, 3, H, W)` or `(B, F, 3, H, W)`."""
    shape = (frames, 3, SIZE, SIZE) if batch is None else (batch, frames, 3, SIZE, SIZE)
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed))


def oracle_pipeline(clean, prediction_type="v_prediction", continuous=False, max_frames=8):
    schedule = {"noise_schedule": "cosine_simple_diffusion", "shift": 0.125} if continuous else {}
    scheduler = DiffusionForcingScheduler(prediction_type=prediction_type, **schedule)
    oracle = OracleDenoiser(max_frames=max_frames, noise_embedding_type="fourier" if continuous else "sinusoidal")
    oracle.clean, oracle.prediction_type, oracle.scheduler = clean, prediction_type, scheduler
    return make_pipeline(oracle, scheduler), oracle


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ------------------------------------------------------------------------------------------------ oracle sampling
ORACLE_CASES = [
    # schedule, source, transition, target, max_frames, prediction type, continuous
    ("full_sequence", 3, 2, 3, 8, "v_prediction", False),  # one window
    ("full_sequence", 3, 3, 6, 6, "v_prediction", False),  # sliding windows
    ("autoregressive", 2, 1, 3, 8, "v_prediction", False),
    ("pyramid", 3, 2, 7, 6, "epsilon", False),  # sliding + pyramid
    ("pyramid", 2, 0, 4, 8, "v_prediction", True),  # continuous schedule
    ("full_sequence", 2, 2, 5, 5, "sample", True),
]


@pytest.mark.parametrize("schedule,ns,ni,ng,max_frames,kind,continuous", ORACLE_CASES)
def test_oracle_sampling_returns_the_known_video(schedule, ns, ni, ng, max_frames, kind, continuous):
    source = random_video(ns, seed=1)
    unknown = torch.rand(1, 3, ni + ng, SIZE, SIZE, generator=gen(2)) * 2 - 1
    clean = torch.cat([source[None].transpose(1, 2) * 2 - 1, unknown], dim=2)
    pipe, oracle = oracle_pipeline(clean, kind, continuous, max_frames)
    out = pipe(source, num_frames=ng, num_transition_frames=ni, num_inference_steps=4, schedule=schedule,
               uncertainty_scale=2.0, generator=gen(0), output_type="latent", return_transition=ni > 0)
    torch.testing.assert_close(out.frames, unknown[:, :, ni:], atol=1e-4, rtol=0)
    if ni:
        torch.testing.assert_close(out.transition_frames, unknown[:, :, :ni], atol=1e-4, rtol=0)
    assert len(oracle.calls) == pipe.num_timesteps  # one forward per denoising iteration


def test_oracle_ego2exo_runs_on_the_reversed_sequence():
    source = random_video(3, seed=3)  # ego clip, natural order
    target = torch.rand(1, 3, 4, SIZE, SIZE, generator=gen(4)) * 2 - 1  # exo clip, natural order
    transition = torch.rand(1, 3, 2, SIZE, SIZE, generator=gen(5)) * 2 - 1  # exo -> ego order
    # sampling order: [ego reversed | transition reversed | exo reversed]
    clean = torch.cat([(source[None].transpose(1, 2) * 2 - 1).flip(2), transition.flip(2), target.flip(2)], dim=2)
    pipe, _ = oracle_pipeline(clean, max_frames=6)
    out = pipe(source, num_frames=4, num_transition_frames=2, direction="ego2exo", num_inference_steps=3,
               generator=gen(0), output_type="latent", return_transition=True)
    torch.testing.assert_close(out.frames, target, atol=1e-4, rtol=0)
    torch.testing.assert_close(out.transition_frames, transition, atol=1e-4, rtol=0)


def test_oracle_with_eta_stays_within_noise_bounds():
    source = random_video(2, seed=6)
    unknown = torch.rand(1, 3, 4, SIZE, SIZE, generator=gen(7)) * 2 - 1
    clean = torch.cat([source[None].transpose(1, 2) * 2 - 1, unknown], dim=2)
    pipe, _ = oracle_pipeline(clean)
    grid = pipe.scheduler.sampling_levels(10)
    residuals = []

    def record(p, i, t, kwargs):
        # level after this step: one grid entry below the level `t` the step started from
        level = int(grid[torch.searchsorted(grid, t[:1]) - 1])
        if level >= 0:  # the noise left in the generated frames must be N(0, 1 - a) around sqrt(a) x0
            a = p.scheduler.alphas_cumprod[level]
            residuals.append(((kwargs["latents"][:, :, 2:] - a.sqrt() * unknown) / (1 - a).sqrt()).flatten())
        return kwargs

    out = pipe(source, num_frames=4, num_inference_steps=10, eta=1.0, generator=gen(0), output_type="latent",
               callback_on_step_end=record)
    torch.testing.assert_close(out.frames, unknown, atol=1e-4, rtol=0)
    assert len(residuals) == 9
    stacked = torch.cat(residuals)
    assert stacked.abs().max() < 6.5
    assert abs(float(stacked.std()) - 1.0) < 0.1
    assert abs(float(stacked.mean())) < 0.1
    deterministic = pipe(source, num_frames=4, num_inference_steps=10, eta=0.0, generator=gen(0),
                         output_type="latent")
    torch.testing.assert_close(deterministic.frames, unknown, atol=1e-4, rtol=0)


# ------------------------------------------------------------------------------------------------ history frames
def test_history_frames_are_bit_identical_after_every_step_and_callback_edits_are_undone():
    source = random_video(3, seed=8)
    expected_history = source.transpose(0, 1)[None] * 2 - 1
    pipe = make_pipeline(tiny_transformer(max_frames=6))
    seen = []

    def vandal(p, i, t, kwargs):
        latents = kwargs["latents"]
        seen.append(latents[:, :, :3].clone())
        latents[:, :, :3] = 123.0  # try to corrupt the history
        return {"latents": latents}

    pipe(source, num_frames=3, num_inference_steps=3, history_guidance="fractional", guidance_scale=2.0,
         generator=gen(0), callback_on_step_end=vandal, output_type="latent")
    assert len(seen) == 3
    for history in seen:
        assert torch.equal(history, expected_history)


def test_history_levels_fed_to_the_model_clean_and_stabilized():
    """Ground-truth history enters as level -1 (clamped to 0); generated history at the stabilisation level."""
    model = MixingDenoiser(max_frames=5)
    pipe = make_pipeline(model)
    pipe(random_video(3), num_frames=4, num_inference_steps=2, context_frames=3, generator=gen(0),
         output_type="latent")
    # windows: [3 source | 2 generated], then [1 source + 2 generated | 2 generated]
    first, last = model.calls[0]["timestep"], model.calls[-1]["timestep"]
    assert first[0, :3].tolist() == [0, 0, 0] and first[0, 3:].tolist() == [999, 999]
    assert last[0, :3].tolist() == [0, 19, 19]
    # stabilised history is re-noised with fresh noise at every step, never fed clean
    assert not torch.equal(model.calls[-1]["hidden_states"][:, :, 1:3], model.calls[-2]["hidden_states"][:, :, 1:3])


# ------------------------------------------------------------------------------------------------ determinism, batching
def test_same_seed_same_frames_and_different_seed_different_frames():
    pipe = make_pipeline(tiny_transformer())
    kwargs = dict(num_frames=3, num_transition_frames=1, num_inference_steps=3, history_guidance="vanilla",
                  guidance_scale=1.5, eta=0.5, output_type="pt")
    a = pipe(random_video(3), generator=gen(0), **kwargs).frames
    b = pipe(random_video(3), generator=gen(0), **kwargs).frames
    c = pipe(random_video(3), generator=gen(1), **kwargs).frames
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)


def test_batch_of_two_equals_two_single_runs():
    pipe = make_pipeline(tiny_transformer(max_frames=6))
    videos = random_video(3, batch=2, seed=9)
    kwargs = dict(num_frames=4, num_transition_frames=1, num_inference_steps=3, history_guidance="fractional",
                  guidance_scale=1.5, eta=0.3, output_type="latent", return_transition=True)
    both = pipe(videos, generator=[gen(10), gen(11)], **kwargs)
    for b, seed in enumerate((10, 11)):
        single = pipe(videos[b], generator=gen(seed), **kwargs)
        torch.testing.assert_close(both.frames[b : b + 1], single.frames, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(both.transition_frames[b : b + 1], single.transition_frames, atol=1e-5, rtol=1e-5)


def test_callback_can_modify_latents_and_sees_every_step():
    pipe = make_pipeline(tiny_transformer())
    calls = []

    def overwrite(p, i, t, kwargs):
        calls.append((i, t.clone()))
        if i == p.num_timesteps - 1:  # after the last step: set the generated frames to a known value
            kwargs["latents"][:, :, 2:] = 0.25
        return kwargs

    out = pipe(random_video(2), num_frames=3, num_inference_steps=4, generator=gen(0), output_type="latent",
               callback_on_step_end=overwrite)
    assert [i for i, _ in calls] == [0, 1, 2, 3]
    assert calls[0][1].tolist() == [999, 999, 999]
    assert torch.equal(out.frames, torch.full_like(out.frames, 0.25))


# ------------------------------------------------------------------------------------------------ outputs
def test_every_output_type():
    pipe = make_pipeline(tiny_transformer())
    kwargs = dict(num_frames=3, num_inference_steps=2, num_transition_frames=2, return_transition=True)
    latent = pipe(random_video(3), generator=gen(0), output_type="latent", **kwargs)
    np_out = pipe(random_video(3), generator=gen(0), output_type="np", **kwargs)
    pt_out = pipe(random_video(3), generator=gen(0), output_type="pt", **kwargs)
    pil_out = pipe(random_video(3), generator=gen(0), output_type="pil", **kwargs)
    assert isinstance(latent, Syn2SeqPipelineOutput) and latent.frames.shape == (1, 3, 3, SIZE, SIZE)
    assert np_out.frames.shape == (1, 3, SIZE, SIZE, 3) and np_out.frames.dtype == np.float32
    assert np_out.transition_frames.shape == (1, 2, SIZE, SIZE, 3)
    assert pt_out.frames.shape == (1, 3, 3, SIZE, SIZE)
    assert len(pil_out.frames) == 1 and len(pil_out.frames[0]) == 3
    assert isinstance(pil_out.frames[0][0], PIL.Image.Image) and pil_out.frames[0][0].size == (SIZE, SIZE)
    expected = ((latent.frames.permute(0, 2, 3, 4, 1) + 1) / 2).clamp(0, 1)
    np.testing.assert_allclose(np_out.frames, expected.numpy(), atol=1e-6)
    torch.testing.assert_close(pt_out.frames, expected.permute(0, 1, 4, 2, 3))
    assert 0 <= np_out.frames.min() and np_out.frames.max() <= 1
    tup = pipe(random_video(3), generator=gen(0), output_type="latent", return_dict=False, num_frames=3,
               num_inference_steps=2)
    assert isinstance(tup, tuple) and len(tup) == 1 and tup[0].shape == (1, 3, 3, SIZE, SIZE)


def test_source_video_formats_give_the_same_result(tmp_path):
    from diffusers_syn2seq.data.video_io import write_video

    frames = (np.random.default_rng(0).random((3, SIZE, SIZE, 3)) * 255).astype(np.uint8)
    pipe = make_pipeline(tiny_transformer())
    kwargs = dict(num_frames=2, num_inference_steps=2, output_type="latent")
    ref = pipe(torch.from_numpy(frames).permute(0, 3, 1, 2), generator=gen(0), **kwargs).frames
    as_float = pipe(torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255, generator=gen(0), **kwargs).frames
    as_numpy = pipe(frames, generator=gen(0), **kwargs).frames
    as_pil = pipe([PIL.Image.fromarray(f) for f in frames], generator=gen(0), **kwargs).frames
    path = tmp_path / "clip.mp4"
    write_video(path, frames, fps=8, lossless=True)
    as_file = pipe(str(path), generator=gen(0), **kwargs).frames
    for other in (as_numpy, as_pil, as_file):
        assert torch.equal(other, ref)
    torch.testing.assert_close(as_float, ref)


def test_latent_pipeline_with_a_per_frame_vae():
    torch.manual_seed(0)
    vae = AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 2,
                        up_block_types=("UpDecoderBlock2D",) * 2, block_out_channels=(8, 8), latent_channels=4,
                        norm_num_groups=4, layers_per_block=1, scaling_factor=0.5).eval()
    pipe = make_pipeline(tiny_transformer(in_channels=4), vae=vae)
    assert pipe.vae_scale_factor == 2
    video = torch.rand(3, 3, 2 * SIZE, 2 * SIZE, generator=gen(1))
    latents = pipe.encode_video(video.transpose(0, 1)[None] * 2 - 1)
    assert latents.shape == (1, 4, 3, SIZE, SIZE)
    one_frame = pipe.encode_video(video[1:2].transpose(0, 1)[None] * 2 - 1)
    torch.testing.assert_close(latents[:, :, 1:2], one_frame, atol=1e-5, rtol=1e-5)  # encoded per frame
    expected = vae.encode(video[:1] * 2 - 1).latent_dist.mode() * 0.5
    torch.testing.assert_close(latents[:, :, 0], expected, atol=1e-5, rtol=1e-5)  # with the scaling factor
    out = pipe(video, num_frames=2, num_inference_steps=2, generator=gen(0), output_type="np")
    assert out.frames.shape == (1, 2, 2 * SIZE, 2 * SIZE, 3)
    # Frames of another size are resized to the model resolution (16x16 pixels here).
    small = pipe(torch.rand(3, 3, SIZE, SIZE), num_frames=2, num_inference_steps=1, output_type="np")
    assert small.frames.shape == (1, 2, 2 * SIZE, 2 * SIZE, 3)


def test_bf16_transformer_runs_and_stays_close_to_fp32():
    pipe = make_pipeline(tiny_transformer())
    kwargs = dict(num_frames=2, num_inference_steps=2, history_guidance="vanilla", guidance_scale=1.5,
                  output_type="latent")
    ref = pipe(random_video(3), generator=gen(0), **kwargs).frames
    pipe.to(dtype=torch.bfloat16)
    assert pipe.transformer.dtype == torch.bfloat16
    low = pipe(random_video(3), generator=gen(0), **kwargs).frames
    assert low.dtype == torch.float32 and torch.isfinite(low).all()  # sampling state stays float32
    assert (low - ref).abs().max() < 0.1 and not torch.equal(low, ref)


# ------------------------------------------------------------------------------------------------ save / load
def test_save_load_round_trip_and_generic_loader(tmp_path):
    pipe = make_pipeline(tiny_transformer(), DiffusionForcingScheduler(prediction_type="v_prediction"))
    kwargs = dict(num_frames=3, num_inference_steps=2, output_type="latent", history_guidance="vanilla",
                  guidance_scale=1.5)
    ref = pipe(random_video(3), generator=gen(0), **kwargs).frames
    pipe.save_pretrained(tmp_path)
    index = json.loads((tmp_path / "model_index.json").read_text())
    assert index["_class_name"] == "Syn2SeqPipeline"
    assert index["transformer"] == ["diffusers_syn2seq.models.transformer_dfot", "DFoTTransformer3DModel"]
    assert index["scheduler"] == ["diffusers_syn2seq.schedulers.scheduling_diffusion_forcing",
                                  "DiffusionForcingScheduler"]
    for loader in (Syn2SeqPipeline, DiffusionPipeline):
        loaded = loader.from_pretrained(tmp_path)
        assert type(loaded) is Syn2SeqPipeline and loaded.vae is None
        loaded.set_progress_bar_config(disable=True)
        assert torch.equal(loaded(random_video(3), generator=gen(0), **kwargs).frames, ref)


def test_syn2seq_settings_are_pipeline_configuration(tmp_path):
    """mode / num_transition_frames / reversal are saved in model_index.json and are the call's defaults."""
    pipe = make_pipeline(tiny_transformer(max_frames=16), mode="video", num_transition_frames=2, reversal="segments")
    pipe.save_pretrained(tmp_path)
    index = json.loads((tmp_path / "model_index.json").read_text())
    assert (index["mode"], index["num_transition_frames"], index["reversal"]) == ("video", 2, "segments")
    for loader in (Syn2SeqPipeline, DiffusionPipeline):
        loaded = loader.from_pretrained(tmp_path)
        assert (loaded.config.mode, loaded.config.num_transition_frames, loaded.config.reversal) == \
            ("video", 2, "segments")
    loaded.set_progress_bar_config(disable=True)
    kwargs = dict(num_frames=3, num_inference_steps=1, output_type="latent", return_transition=True)
    out = loaded(random_video(3), generator=gen(0), **kwargs)
    assert out.transition_frames.shape[2] == 2  # the configured transition length
    assert loaded(random_video(3), generator=gen(0), num_transition_frames=5, **kwargs).transition_frames.shape[2] == 5
    jump = loaded(random_video(3), generator=gen(0), mode="jump", **kwargs)  # jump: no transition by default
    assert jump.transition_frames is None and jump.frames.shape[2] == 3
    # a call with the configured values spelled out is the same call
    explicit = loaded(random_video(3), generator=gen(0), mode="video", num_transition_frames=2, reversal="segments",
                      **kwargs)
    assert torch.equal(explicit.frames, out.frames)
    # defaults of a pipeline built without settings: one default transition length everywhere
    from diffusers_syn2seq.data import DEFAULT_NUM_TRANSITION_FRAMES

    plain = Syn2SeqPipeline(transformer=tiny_transformer(), scheduler=DiffusionForcingScheduler())
    assert (plain.config.mode, plain.config.num_transition_frames, plain.config.reversal) == \
        ("video+pose", DEFAULT_NUM_TRANSITION_FRAMES, "full")


def test_a_legacy_settings_sidecar_is_read_when_the_config_lacks_the_settings(tmp_path):
    make_pipeline(tiny_transformer(), mode="video+pose", num_transition_frames=0).save_pretrained(tmp_path)
    index = json.loads((tmp_path / "model_index.json").read_text())
    (tmp_path / "syn2seq_settings.json").write_text(json.dumps({"mode": "jump", "num_transition_frames": 0,
                                                                "reverse_prob": 0.0}))
    assert Syn2SeqPipeline.from_pretrained(tmp_path).config.mode == "video+pose"  # the config wins when it has them
    for key in ("mode", "num_transition_frames", "reversal"):
        index.pop(key)
    (tmp_path / "model_index.json").write_text(json.dumps(index))  # as saved before the settings were config
    loaded = Syn2SeqPipeline.from_pretrained(tmp_path)
    assert (loaded.config.mode, loaded.config.num_transition_frames, loaded.config.reversal) == ("jump", 0, "full")
    assert Syn2SeqPipeline.from_pretrained(tmp_path, mode="video").config.mode == "video"  # an argument wins


@pytest.mark.parametrize("settings,match", [
    ({"mode": "pose"}, r"`mode` must be one of \('jump', 'video', 'video\+pose'\), got 'pose'"),
    ({"reversal": "partial"}, r"`reversal` must be one of \('full', 'segments'\), got 'partial'"),
    ({"num_transition_frames": -1}, r"`num_transition_frames` must be a non-negative integer, got -1"),
    ({"num_transition_frames": 2.5}, r"`num_transition_frames` must be a non-negative integer, got 2\.5"),
])
def test_bad_pipeline_settings_raise_at_construction(settings, match):
    with pytest.raises(ValueError, match=match):
        Syn2SeqPipeline(transformer=tiny_transformer(), scheduler=DiffusionForcingScheduler(), **settings)


def test_hub_repo_id_goes_through_snapshot_download(tmp_path, monkeypatch):
    make_pipeline(tiny_transformer()).save_pretrained(tmp_path)
    calls = []

    def fake_snapshot_download(repo_id, **kwargs):
        calls.append((repo_id, kwargs))
        return str(tmp_path)

    monkeypatch.setattr(pipeline_syn2seq, "snapshot_download", fake_snapshot_download)
    loaded = Syn2SeqPipeline.from_pretrained("someone/syn2seq-tiny", revision="main", local_files_only=True)
    assert isinstance(loaded, Syn2SeqPipeline)
    assert calls == [("someone/syn2seq-tiny", {"revision": "main", "local_files_only": True})]


# ------------------------------------------------------------------------------------------------ bad input
@pytest.fixture(scope="module")
def small_pipe():
    return make_pipeline(tiny_transformer(max_frames=6))


@pytest.mark.parametrize(
    "video,kwargs,match",
    [
        (torch.rand(0, 3, SIZE, SIZE), {}, r"`source_video` must have at least 2 frames, got 0"),
        (torch.rand(1, 3, SIZE, SIZE), {}, r"`source_video` must have at least 2 frames, got 1"),
        ([], {}, r"`source_video` must hold at least 2 frames, got an empty list"),
        (None, {"height": 7}, r"`height` and `width` must be multiples of 2 .*got 7x8"),
        (torch.rand(3, 4, SIZE, SIZE), {}, r"`source_video` as a tensor must have shape"),
        (torch.rand(3, 3, SIZE, SIZE) * 2, {}, r"float `source_video` values must be finite and in \[0, 1\]"),
        (None, {"num_frames": 5, "num_transition_frames": 1, "sliding_window": False},
         r"`num_transition_frames \+ num_frames` must be at most max_frames - 1 = 5.*got 6"),
        (None, {"schedule": "zigzag"}, r"`schedule` must be one of .*got 'zigzag'"),
        (None, {"history_guidance": "spatial"}, r"`history_guidance` must be None or one of .*got 'spatial'"),
        (None, {"history_guidance": "vanilla", "guidance_scale": 0.5}, r"`guidance_scale` must be >= 1.*got 0.5"),
        (None, {"guidance_scale": 2.0}, r"`guidance_scale` has no effect without `history_guidance`.*got 2.0"),
        (None, {"history_guidance": "temporal"}, r"`history_subsets` must be a non-empty list"),
        (None, {"history_guidance": "temporal", "history_subsets": [[5]]}, r"`history_subsets\[0\]` holds index 5"),
        (None, {"direction": "sideways"}, r"`direction` must be one of .*got 'sideways'"),
        (None, {"output_type": "gif"}, r"`output_type` must be one of .*got 'gif'"),
        (None, {"context_frames": 6, "num_frames": 8}, r"`context_frames` must be in \[1, 5\].*got 6"),
        (None, {"latents": torch.zeros(1, 3, 9, SIZE, SIZE)}, r"`latents` must be a tensor of shape \(1, 3, 3, 8, 8\)"),
        (None, {"source_poses": torch.zeros(3, 16)}, r"`source_poses` / `target_poses` were given but"),
        (None, {"num_inference_steps": 0}, r"`num_inference_steps` must be an integer in \[1, 1000\], got 0"),
        (None, {"generator": [gen(0), gen(1)]},
         r"`generator` as a list must hold one torch.Generator per video \(1\), got 2"),
    ],
)
def test_bad_input_raises_a_clear_value_error(small_pipe, video, kwargs, match):
    video = random_video(3) if video is None else video
    with pytest.raises(ValueError, match=match):
        small_pipe(video, **{"num_frames": 3, "num_inference_steps": 2, **kwargs})


def test_scheduler_kind_must_match_the_noise_embedding():
    pipe = make_pipeline(tiny_transformer(), DiffusionForcingScheduler(noise_schedule="cosine_simple_diffusion"))
    with pytest.raises(ValueError, match=r"`scheduler` produces model timesteps for a 'fourier'.*uses 'sinusoidal'"):
        pipe(random_video(3), num_frames=2)


# ------------------------------------------------------------------------------------------------ camera poses
def random_poses(frames: int, seed: int = 0) -> torch.Tensor:
    """Valid `(F, 16)` poses: random rotations (QR, det +1), translations and plausible intrinsics."""
    from diffusers_syn2seq.camera import join_poses

    g = gen(seed)
    q, r = torch.linalg.qr(torch.randn(frames, 3, 3, generator=g, dtype=torch.float64))
    rotation = q * torch.sign(torch.diagonal(r, dim1=-2, dim2=-1))[:, None, :]
    rotation = rotation * torch.det(rotation)[:, None, None]  # proper rotations
    translation = torch.randn(frames, 3, generator=g, dtype=torch.float64)
    intrinsics = torch.tensor([0.9, 0.9, 0.5, 0.5], dtype=torch.float64).expand(frames, 4)
    return join_poses(intrinsics, rotation, translation).float()


def change_world_frame(poses: torch.Tensor, seed: int = 99) -> torch.Tensor:
    """The same cameras expressed in another world frame (x_w' = G x_w + g): R' = R G^T, T' = T - R' g."""
    from diffusers_syn2seq.camera import join_poses, split_poses

    g_rot = random_poses(1, seed)[0, 4:].reshape(3, 4)[:, :3]
    g_shift = torch.tensor([0.3, -1.0, 2.0])
    intrinsics, rotation, translation = split_poses(poses)
    new_rotation = rotation @ g_rot.T
    return join_poses(intrinsics, new_rotation, translation - (new_rotation @ g_shift[:, None]).squeeze(-1))


def capture_transformer_kwargs(model):
    captured = []
    model.register_forward_hook(lambda m, args, kwargs, out: captured.append(kwargs), with_kwargs=True)
    return captured


@pytest.fixture(scope="module")
def pose_pipe():
    return make_pipeline(tiny_transformer(max_frames=8, camera_ray_type="plucker"))


def test_pose_conditioned_sampling_builds_ray_maps_and_drops_poses_where_needed(pose_pipe):
    from diffusers_syn2seq.camera import interpolate_camera_path, ray_map

    captured = capture_transformer_kwargs(pose_pipe.transformer)
    src, tgt = random_poses(3, 1), random_poses(3, 2)
    out = pose_pipe(random_video(3), source_poses=src, target_poses=tgt, num_transition_frames=2,
                    num_inference_steps=2, history_guidance="vanilla", guidance_scale=1.5, generator=gen(0),
                    output_type="latent")
    assert out.frames.shape == (1, 3, 3, SIZE, SIZE)
    kwargs = captured[0]
    sequence = torch.cat([src, interpolate_camera_path(src[-1], tgt[0], 2), tgt])[None]
    expected_rays = ray_map(sequence, SIZE, SIZE, kind="plucker")  # normalised by the window's first frame
    torch.testing.assert_close(kwargs["camera_rays"][:1], expected_rays, atol=1e-5, rtol=1e-5)
    mask = kwargs["camera_rays_mask"]
    assert mask[0].all(), "s_H keeps every pose (the transition is interpolated)"
    assert not mask[1].any(), "s_empty drops every pose"

    captured.clear()
    pose_pipe(random_video(3), source_poses=src, target_poses=tgt, num_transition_frames=2, num_inference_steps=1,
              mode="video", generator=gen(0), output_type="latent")
    assert captured[0]["camera_rays_mask"][0].tolist() == [True] * 3 + [False] * 2 + [True] * 3


def test_pose_conditioning_changes_the_result_and_ignores_the_world_frame(pose_pipe):
    src, tgt = random_poses(3, 3), random_poses(4, 4)
    # (no transition: interpolating world-to-camera translations linearly, as DFoT does, depends on the world frame)
    kwargs = dict(num_inference_steps=2, num_transition_frames=0, generator=gen(0), output_type="latent")
    ref = pose_pipe(random_video(3), source_poses=src, target_poses=tgt, **kwargs).frames
    assert ref.shape[2] == 4  # num_frames defaults to the number of target poses
    moved = pose_pipe(random_video(3), source_poses=change_world_frame(src), target_poses=change_world_frame(tgt),
                      **{**kwargs, "generator": gen(0)}).frames
    torch.testing.assert_close(moved, ref, atol=1e-4, rtol=1e-4)
    other = pose_pipe(random_video(3), source_poses=src, target_poses=random_poses(4, 5),
                      **{**kwargs, "generator": gen(0)}).frames
    assert not torch.allclose(other, ref, atol=1e-3)


def test_ego2exo_reverses_the_poses_too(pose_pipe):
    from diffusers_syn2seq.camera import interpolate_camera_path, ray_map

    captured = capture_transformer_kwargs(pose_pipe.transformer)
    src, tgt = random_poses(3, 6), random_poses(3, 7)
    pose_pipe(random_video(3), source_poses=src, target_poses=tgt, direction="ego2exo", num_transition_frames=1,
              num_inference_steps=1, generator=gen(0), output_type="latent")
    rsrc, rtgt = src.flip(0), tgt.flip(0)
    sequence = torch.cat([rsrc, interpolate_camera_path(rsrc[-1], rtgt[0], 1), rtgt])[None]
    torch.testing.assert_close(captured[-1]["camera_rays"], ray_map(sequence, SIZE, SIZE, kind="plucker"),
                               atol=1e-5, rtol=1e-5)


def test_bad_poses_raise(pose_pipe):
    src, tgt = random_poses(3, 1), random_poses(3, 2)
    skewed = tgt.clone()
    skewed[1, 4] += 0.5  # R no longer orthonormal
    nan = src.clone()
    nan[0, 7] = float("nan")
    cases = [
        ({"source_poses": None, "target_poses": tgt}, r"`source_poses` and `target_poses` are required"),
        ({"source_poses": src[:2], "target_poses": tgt},
         r"`source_poses` must be .* of shape \(3, 16\).*got shape \(1, 2, 16\)"),
        ({"source_poses": src, "target_poses": tgt[:, :12]}, r"`target_poses`"),
        ({"source_poses": nan, "target_poses": tgt}, r"`source_poses`"),
        ({"source_poses": src, "target_poses": skewed}, r"`target_poses`"),
        ({"source_poses": src, "target_poses": tgt, "transition_poses": "drop", "num_transition_frames": 1},
         r"`transition_poses` must be None .* or a tensor of poses, got 'drop'; the transition's pose variant is "
         r"chosen with `mode`"),
        ({"source_poses": src, "target_poses": tgt, "transition_poses": src[:1], "num_transition_frames": 1,
          "mode": "video"}, r"`transition_poses` are only used in mode 'video\+pose', got mode 'video'"),
        ({"source_poses": src, "target_poses": tgt, "mode": "teleport"}, r"`mode` must be one of"),
        ({"source_poses": src, "target_poses": tgt, "mode": "jump", "num_transition_frames": 2},
         r"`num_transition_frames` must be 0 in 'jump' mode"),
    ]
    for kwargs, match in cases:
        with pytest.raises(ValueError, match=match):
            pose_pipe(random_video(3), num_inference_steps=1, num_frames=3, **kwargs)


def test_num_videos_per_prompt_equals_single_runs_with_the_same_generators(pose_pipe):
    """Two sources x two samples in one call: sample k of source b is output 2 b + k and equals a single call with
    that output's generator; per-source poses `(B, F, 16)` stay per source."""
    videos = random_video(3, batch=2, seed=4)
    src = torch.stack([random_poses(3, 1), random_poses(3, 5)])
    tgt = torch.stack([random_poses(2, 2), random_poses(2, 6)])
    kwargs = dict(num_transition_frames=1, num_inference_steps=3, history_guidance="fractional", guidance_scale=1.5,
                  output_type="latent")
    seeds = (20, 21, 22, 23)
    out = pose_pipe(videos, source_poses=src, target_poses=tgt, num_videos_per_prompt=2,
                    generator=[gen(seed) for seed in seeds], **kwargs).frames
    assert out.shape[0] == 4
    for index, seed in enumerate(seeds):
        b = index // 2
        single = pose_pipe(videos[b], source_poses=src[b], target_poses=tgt[b], generator=gen(seed), **kwargs).frames
        torch.testing.assert_close(out[index : index + 1], single, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(out[0], out[1])  # two samples of one source differ
    with pytest.raises(ValueError, match="`num_videos_per_prompt` must be a positive integer, got 0."):
        pose_pipe(videos, source_poses=src, target_poses=tgt, num_videos_per_prompt=0, **kwargs)
    with pytest.raises(ValueError, match="generator"):  # one generator per generated video
        pose_pipe(videos, source_poses=src, target_poses=tgt, num_videos_per_prompt=2, generator=[gen(0), gen(1)],
                  **kwargs)
