# SPDX-License-Identifier: Apache-2.0
"""`Syn2SeqPipeline` as a diffusers citizen, tested with the patterns of diffusers' own pipeline mixins: batch
consistency, a callback changing guidance, caching through the pipeline, optional components saved and loaded,
`height` / `width`, the call properties; and a clear error for every bad call argument (issue 13)."""

import numpy as np
import PIL.Image
import pytest
import torch
from diffusers import AutoencoderKL
from diffusers.hooks import FirstBlockCacheConfig, PyramidAttentionBroadcastConfig
from test_pipeline import SIZE, gen, make_pipeline, random_poses, random_video, tiny_transformer

from diffusers_syn2seq import DFoTUViT3DModel, Syn2SeqPipeline
from diffusers_syn2seq.schedulers import DiffusionForcingScheduler

GUIDED = dict(num_inference_steps=3, history_guidance="vanilla", guidance_scale=1.5, eta=0.4, output_type="pt")


@pytest.fixture(scope="module")
def pose_pipe():
    return make_pipeline(tiny_transformer(max_frames=6, camera_ray_type="plucker", num_layers=2),
                         num_transition_frames=1)


def test_call_signature_has_the_optional_parameters_of_diffusers_video_pipelines():
    """diffusers' `test_pipeline_call_signature` with the video pipelines' optional parameters (`num_videos_per_prompt`
    in place of `num_images_per_prompt`): all present, all with defaults."""
    import inspect

    parameters = inspect.signature(Syn2SeqPipeline.__call__).parameters
    required_optional = {"num_inference_steps", "num_videos_per_prompt", "generator", "latents", "output_type",
                         "return_dict", "callback_on_step_end", "callback_on_step_end_tensor_inputs",
                         "attention_kwargs", "height", "width"}
    missing = {name for name in required_optional
               if name not in parameters or parameters[name].default is inspect.Parameter.empty}
    assert not missing, f"required optional parameters not present: {missing}"
    assert parameters["num_videos_per_prompt"].default == 1

# ------------------------------------------------------------------------------------------------ batching
def test_a_list_of_videos_is_a_batch_identical_to_single_calls(pose_pipe):
    """diffusers' test_inference_batch_single_identical: element i of a batch with generators [g0, g1, ...] equals
    a single call with g_i (here with poses, guidance branches, eta noise and sliding windows)."""
    videos = [random_video(3, seed=s) for s in range(3)]
    sources, targets = [random_poses(3, 10 + s) for s in range(3)], [random_poses(4, 20 + s) for s in range(3)]
    batched = pose_pipe(videos, source_poses=sources, target_poses=targets, generator=[gen(s) for s in range(3)],
                        **GUIDED).frames
    assert batched.shape == (3, 4, 3, SIZE, SIZE)
    for s in range(3):
        single = pose_pipe(videos[s], source_poses=sources[s], target_poses=targets[s], generator=gen(s),
                           **GUIDED).frames
        torch.testing.assert_close(batched[s], single[0], atol=1e-5, rtol=0)
    # The same batch as a 5-D tensor and as lists of PIL frames gives the same frames.
    stacked = pose_pipe(torch.stack(videos), source_poses=torch.stack(sources), target_poses=torch.stack(targets),
                        generator=[gen(s) for s in range(3)], **GUIDED).frames
    assert torch.equal(stacked, batched)
    as_pil = [[PIL.Image.fromarray((f.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)) for f in v]
              for v in videos]
    from_pil = pose_pipe(as_pil, source_poses=sources, target_poses=targets, generator=[gen(s) for s in range(3)],
                         **GUIDED).frames
    torch.testing.assert_close(from_pil, batched, atol=0.05, rtol=0)  # PIL frames are quantised to uint8


def test_batch_inputs_must_agree(pose_pipe):
    with pytest.raises(ValueError, match=r"the videos of a `source_video` batch must have the same number of frames"):
        pose_pipe([random_video(3), random_video(4)], source_poses=random_poses(3), target_poses=random_poses(2))
    with pytest.raises(ValueError, match=r"`target_poses` must be .* or a list of 2 \(2, 16\) poses, got a list of 2"):
        pose_pipe([random_video(3), random_video(3)], source_poses=random_poses(3),
                  target_poses=[random_poses(2), random_poses(3)])


# ------------------------------------------------------------------------------------------------ callbacks
def test_callback_changes_guidance_from_the_next_iteration_on(pose_pipe):
    """diffusers' test_callback_cfg: a callback raising `pipe._guidance_scale` every iteration ends the call with
    guidance_scale + num_timesteps, and the change is used by the following iterations only."""
    kwargs = dict(source_poses=random_poses(3), target_poses=random_poses(2), **GUIDED)

    def increase(pipe, i, t, callback_kwargs):
        pipe._guidance_scale += 1.0
        return callback_kwargs

    plain = pose_pipe(random_video(3), generator=gen(0), **kwargs).frames
    raised = pose_pipe(random_video(3), generator=gen(0), callback_on_step_end=increase, **kwargs).frames
    assert pose_pipe.num_timesteps == 3 and pose_pipe.guidance_scale == 1.5 + 3
    assert not torch.allclose(plain, raised, atol=1e-3)

    def increase_at_the_end(pipe, i, t, callback_kwargs):
        if i == pipe.num_timesteps - 1:
            pipe._guidance_scale = 5.0
        return callback_kwargs

    late = pose_pipe(random_video(3), generator=gen(0), callback_on_step_end=increase_at_the_end, **kwargs).frames
    assert torch.equal(late, plain)  # nothing is denoised after the last iteration


def test_callback_changing_guidance_to_one_drops_the_unconditional_branch():
    pipe = make_pipeline(tiny_transformer(max_frames=6))
    calls = []
    pipe.transformer.register_forward_hook(lambda m, args, kwargs, out: calls.append(kwargs["hidden_states"].shape[0]),
                                           with_kwargs=True)

    def no_guidance(pipe, i, t, callback_kwargs):
        pipe._guidance_scale = 1.0
        return callback_kwargs

    pipe(random_video(3), num_frames=2, generator=gen(0), callback_on_step_end=no_guidance, **GUIDED)
    assert calls == [2, 1, 1]  # vanilla guidance: 2 branches, then w = 1 is a single branch


def test_interrupt_stops_denoising():
    pipe = make_pipeline(tiny_transformer(max_frames=6))
    seen = []

    def stop(pipe, i, t, callback_kwargs):
        seen.append(i)
        pipe._interrupt = True
        return callback_kwargs

    pipe(random_video(3), num_frames=5, num_inference_steps=4, generator=gen(0), callback_on_step_end=stop,
         context_frames=2)
    assert seen == [0] and pipe.interrupt and pipe.num_timesteps == 8  # two windows planned, one iteration run


def test_call_properties():
    pipe = make_pipeline(tiny_transformer(max_frames=6))
    observed = {}

    def record(pipe, i, t, callback_kwargs):
        observed[i] = (pipe.guidance_scale, pipe.attention_kwargs, pipe.current_timestep, t.tolist(), pipe.interrupt)
        return callback_kwargs

    pipe(random_video(3), num_frames=2, generator=gen(0), callback_on_step_end=record,
         attention_kwargs={"scale": 1.0}, **GUIDED)
    assert observed[0] == (1.5, {"scale": 1.0}, 999, [999, 999], False)
    assert observed[2][2:4] == (332, [332, 332]) and pipe.current_timestep is None


# ------------------------------------------------------------------------------------------------ caching
def test_first_block_cache_through_the_pipeline():
    """Every transformer call runs inside `cache_context("cond")`; the cache restarts with each window and when the
    branch count changes, so sliding windows and history guidance work with First-Block-Cache."""
    pipe = make_pipeline(tiny_transformer(max_frames=6, num_layers=3))
    kwargs = dict(num_frames=6, context_frames=2, num_inference_steps=4, history_guidance="fractional",
                  guidance_scale=1.5, output_type="pt")
    reference = pipe(random_video(3), generator=gen(0), **kwargs).frames
    pipe.transformer.enable_cache(FirstBlockCacheConfig(threshold=0.0))  # never reuses: the same frames
    try:
        assert torch.equal(pipe(random_video(3), generator=gen(0), **kwargs).frames, reference)
        pipe.transformer.disable_cache()
        pipe.transformer.enable_cache(FirstBlockCacheConfig(threshold=10.0))  # always reuses after the first call
        cached = pipe(random_video(3), generator=gen(0), **kwargs).frames
        assert torch.isfinite(cached).all() and not torch.allclose(cached, reference, atol=1e-4)
    finally:
        pipe.transformer.disable_cache()
    assert torch.equal(pipe(random_video(3), generator=gen(0), **kwargs).frames, reference)


def test_uvit_is_a_cache_mixin_and_caches_through_the_pipeline():
    torch.manual_seed(0)
    model = DFoTUViT3DModel(in_channels=3, sample_size=[16, 24], max_frames=4, patch_size=2,
                            block_out_channels=[16, 32], block_types=["ResBlock", "TransformerBlock"],
                            block_dropouts=[0.0, 0.0],
                            layers_per_block=[1], num_mid_blocks=2, num_attention_heads=2, emb_channels=32,
                            norm_num_groups=8, camera_ray_type="plucker", noise_embedding_type="sinusoidal").eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.1, generator=gen(1))
    pipe = make_pipeline(model)
    video = torch.rand(2, 3, 16, 24, generator=gen(2))
    kwargs = dict(source_poses=random_poses(2), target_poses=random_poses(2), num_inference_steps=3, output_type="pt")
    reference = pipe(video, generator=gen(0), **kwargs).frames
    # Pyramid attention broadcast: attention outputs are reused every other iteration.
    pipe.transformer.enable_cache(PyramidAttentionBroadcastConfig(
        spatial_attention_block_skip_range=2, spatial_attention_timestep_skip_range=(-2, 1000),
        spatial_attention_block_identifiers=["attn"], current_timestep_callback=lambda: pipe.current_timestep))
    try:
        cached = pipe(video, generator=gen(0), **kwargs).frames
    finally:
        pipe.transformer.disable_cache()
    assert cached.shape == reference.shape and not torch.allclose(cached, reference, atol=1e-5)
    assert torch.equal(pipe(video, generator=gen(0), **kwargs).frames, reference)


# ------------------------------------------------------------------------------------------------ components
def tiny_vae() -> AutoencoderKL:
    torch.manual_seed(0)
    return AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 2,
                         up_block_types=("UpDecoderBlock2D",) * 2, block_out_channels=(8, 8), latent_channels=4,
                         norm_num_groups=4, layers_per_block=1, scaling_factor=0.5).eval()


def test_save_load_optional_components(tmp_path):
    """diffusers' test_save_load_optional_components: a latent pipeline without its `vae` samples from
    `source_latents` (output_type='latent'), exactly as with it, and stays without it after save / load."""
    with_vae = make_pipeline(tiny_transformer(in_channels=4), vae=tiny_vae())
    video = random_video(3)  # 8x8 frames: resized to the 16x16 pixels of the model
    kwargs = dict(num_frames=2, num_inference_steps=2, output_type="latent")
    reference = with_vae(video, generator=gen(0), **kwargs).frames
    source = with_vae.encode_video(torch.nn.functional.interpolate(video * 2 - 1, size=(16, 16), mode="bicubic",
                                                                   antialias=True).clamp(-1, 1).transpose(0, 1)[None])
    pipe = Syn2SeqPipeline(**{**with_vae.components, "vae": None}, num_transition_frames=0)
    pipe.set_progress_bar_config(disable=True)
    assert pipe.vae_scale_factor == 1
    out = pipe(source_latents=source, generator=gen(0), **kwargs).frames
    torch.testing.assert_close(out, reference, atol=1e-5, rtol=0)
    batch = pipe(source_latents=[source[0], source[0]], generator=[gen(0), gen(0)], **kwargs).frames
    torch.testing.assert_close(batch, out.expand(2, -1, -1, -1, -1), atol=1e-5, rtol=0)  # a list is a batch
    pipe.save_pretrained(tmp_path)
    loaded = Syn2SeqPipeline.from_pretrained(tmp_path)
    loaded.set_progress_bar_config(disable=True)
    assert loaded.vae is None
    assert torch.equal(loaded(source_latents=source, generator=gen(0), **kwargs).frames, out)
    with pytest.raises(ValueError, match=r"has no `vae` but its transformer works in a 4-channel latent space"):
        loaded(video, **kwargs)
    with pytest.raises(ValueError, match=r"`output_type` must be 'latent' for a latent model \(in_channels=4\)"):
        loaded(source_latents=source, num_frames=2, output_type="np")


def test_height_and_width_resize_the_source_and_set_the_output_size():
    pipe = make_pipeline(tiny_transformer(max_frames=6))
    video = random_video(3)
    reference = pipe(video, num_frames=2, num_inference_steps=2, generator=gen(0), output_type="pt").frames
    large = torch.nn.functional.interpolate(video, size=(24, 24), mode="bilinear")
    resized = pipe(large, num_frames=2, num_inference_steps=2, generator=gen(0), output_type="pt").frames
    assert resized.shape == reference.shape == (1, 2, 3, SIZE, SIZE)
    assert (resized - reference).abs().mean() < 0.05  # the same content, resized back to the model resolution
    other = pipe(video, num_frames=2, num_inference_steps=2, height=12, width=16, output_type="np").frames
    assert other.shape == (1, 2, 12, 16, 3)


# ------------------------------------------------------------------------------------------------ bad arguments
NAN_LATENTS = torch.full((1, 3, 2, SIZE, SIZE), float("nan"))
BAD_CALLS = [
    ({"guidance_scale": float("inf"), "history_guidance": "vanilla"},
     "`guidance_scale` must be a finite number, got inf"),
    ({"eta": float("inf")}, "`eta` must be a finite number >= 0, got inf"),
    ({"eta": float("nan")}, "`eta` must be a finite number >= 0, got nan"),
    ({"latents": NAN_LATENTS}, "`latents` must contain only finite values, got 384 NaN and 0 inf entries (of 384)"),
    ({"num_frames": True}, "`num_frames` must be a positive integer, got True (a bool)."),
    ({"num_frames": 2.0}, "`num_frames` must be a positive integer, got 2.0."),
    ({"context_frames": 2.7}, "`context_frames` must be a non-negative integer, got 2.7."),
    ({"num_inference_steps": np.float64(3)}, "`num_inference_steps` must be an integer in [1, 1000], got "),
    ({"num_transition_frames": -1}, "`num_transition_frames` must be a non-negative integer, got -1."),
    ({"num_frames": 10**11},  # 71526 GiB of noise: no machine allocates that
     "`num_frames` (100000000000) + `num_transition_frames` (0) generated frames need 71525.6 GiB"),
    ({"height": True}, "`height` must be a positive integer, got True (a bool)."),
    ({"uncertainty_scale": "1"}, "`uncertainty_scale` must be a finite number >= 0, got '1'."),
    ({"fractional_level": float("nan")}, "`fractional_level` must be a finite number in [0, 1], got nan"),
    ({"stabilization_level": 1.5}, "`stabilization_level` must be a finite number in [0, 1], got 1.5"),
    ({"history_guidance": 1}, "`history_guidance` must be None or one of ('vanilla', 'fractional', 'temporal'), got 1"),
    ({"mode": None, "num_transition_frames": 0}, None),  # None means: the pipeline's configured mode
    ({"direction": ["exo2ego"]}, "`direction` must be one of ('exo2ego', 'ego2exo'), got ['exo2ego']"),
    ({"output_type": None}, "`output_type` must be one of ('np', 'pt', 'pil', 'latent'), got None"),
    ({"sliding_window": "yes"}, "`sliding_window` must be True or False, got 'yes'"),
    ({"return_dict": 1}, "`return_dict` must be True or False, got 1"),
    ({"generator": "seed"},
     "`generator` must be None, a torch.Generator or a list of them (one per video), got 'seed'"),
    ({"generator": 0}, "`generator` must be None, a torch.Generator or a list of them (one per video), got 0; seed "
                       "one with torch.Generator().manual_seed(seed)."),
    ({"transition_poses": 123},
     "`transition_poses` must be None (the interpolated camera path of `mode='video+pose'`) or a tensor of poses, "
     "got 123"),
    ({"callback_on_step_end": "print"}, "`callback_on_step_end` must be callable, got str"),
    ({"callback_on_step_end_tensor_inputs": "latents"},
     "`callback_on_step_end_tensor_inputs` must be a list of names, got the string 'latents'"),
    ({"source_latents": torch.zeros(1, 3, 3, SIZE, SIZE)},
     "pass exactly one of `source_video` (pixels) and `source_latents` (model space), got both"),
]


@pytest.mark.parametrize("kwargs, message", BAD_CALLS)
def test_bad_call_arguments_raise_a_clear_error(kwargs, message):
    pipe = make_pipeline(tiny_transformer(max_frames=6))
    call = {"num_frames": 2, "num_inference_steps": 2, **kwargs}
    if message is None:
        assert pipe(random_video(3), **call).frames.shape == (1, 2, SIZE, SIZE, 3)
        return
    with pytest.raises(ValueError) as error:
        pipe(random_video(3), **call)
    assert message in str(error.value)


def test_numpy_integers_are_accepted_as_counts():
    pipe = make_pipeline(tiny_transformer(max_frames=6))
    numpy_counts = pipe(random_video(3), num_frames=np.int64(2), num_inference_steps=np.int32(2),
                        context_frames=np.int64(2), generator=gen(0), output_type="pt").frames
    python_counts = pipe(random_video(3), num_frames=2, num_inference_steps=2, context_frames=2, generator=gen(0),
                         output_type="pt").frames
    assert torch.equal(numpy_counts, python_counts)


def test_missing_components_raise_a_clear_error():
    with pytest.raises(ValueError, match=r"`scheduler` must be a DiffusionForcingScheduler .*got NoneType"):
        Syn2SeqPipeline(transformer=tiny_transformer(), scheduler=None)
    with pytest.raises(ValueError, match=r"`transformer` must be a DFoT model .*got NoneType"):
        Syn2SeqPipeline(transformer=None, scheduler=DiffusionForcingScheduler())
    pipe = make_pipeline(tiny_transformer())
    pipe.scheduler = None
    with pytest.raises(ValueError, match=r"`pipe.scheduler` must be a DiffusionForcingScheduler or "
                                         r"FlowMatchDiffusionForcingScheduler, got NoneType"):
        pipe(random_video(3), num_frames=2)


@pytest.mark.parametrize("video, message", [
    (torch.rand(0, 3, 3, SIZE, SIZE), "must hold at least one video, got a batch of shape (0, 3, 3, 8, 8)"),
    (np.zeros((0, 3, SIZE, SIZE, 3), np.uint8), "`source_video` must hold at least one video, got a batch of shape"),
    ([torch.rand(3, 3, SIZE, SIZE), PIL.Image.new("RGB", (SIZE, SIZE))], "a list of PIL images (one video) or a list"),
    (None, "pass exactly one of `source_video` (pixels) and `source_latents` (model space), got neither"),
])
def test_bad_source_videos_raise_a_clear_error(video, message):
    pipe = make_pipeline(tiny_transformer(max_frames=6))
    with pytest.raises(ValueError) as error:
        pipe(video, num_frames=2, num_inference_steps=2)
    assert message in str(error.value)
