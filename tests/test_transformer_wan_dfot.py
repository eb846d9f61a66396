# SPDX-License-Identifier: Apache-2.0
"""Tests of `WanDFoTTransformer3DModel`: SkyReels-V2 DF / Wan backbones behind the DFoT forward contract.

Tiny configurations as in diffusers' own tests (2 layers, 2 heads x 12, feed-forward 32)."""

import json

import pytest
import torch
from diffusers import DiffusionPipeline, SkyReelsV2Transformer3DModel, WanTransformer3DModel

from diffusers_syn2seq import FlowMatchDiffusionForcingScheduler, Syn2SeqPipeline, WanDFoTTransformer3DModel
from diffusers_syn2seq.models import load_transformer
from diffusers_syn2seq.models.transformer_wan_dfot import encode_prompt_embeds

TINY = dict(patch_size=2, num_attention_heads=2, attention_head_dim=12, in_channels=4, out_channels=4, text_dim=16,
            freq_dim=256, ffn_dim=32, num_layers=2, rope_max_seq_len=32, sample_size=8, max_frames=6,
            prompt_length=7)
BACKBONE_TINY = dict(patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12, in_channels=4,
                     out_channels=4, text_dim=16, freq_dim=256, ffn_dim=32, num_layers=2, rope_max_seq_len=32)


def tiny_wrapper(backbone: str = "skyreels-v2-df", seed: int = 0, **kwargs) -> WanDFoTTransformer3DModel:
    torch.manual_seed(seed)
    settings = {**TINY, "inject_sample_info": backbone == "skyreels-v2-df", **kwargs}
    model = WanDFoTTransformer3DModel(backbone_type=backbone, **settings).eval()
    model.set_prompt_embeds(torch.randn(5, 16, generator=torch.Generator().manual_seed(seed + 1)))
    return model


def inputs(batch: int = 1, frames: int = 3, seed: int = 2):
    generator = torch.Generator().manual_seed(seed)
    latents = torch.randn(batch, 4, frames, 8, 8, generator=generator)
    timesteps = torch.rand(batch, frames, generator=generator) * 1000
    timesteps[:, 0] = 0.0  # a clean frame, as SkyReels feeds its prefix
    return latents, timesteps


def skyreels_call(backbone: SkyReelsV2Transformer3DModel, latents, timesteps, prompt_embeds, fps: int | None = 24):
    """The backbone called the way `SkyReelsV2DiffusionForcingPipeline` calls it (one sample at a time where the fps
    embedding is used: diffusers fails on fps lists of more than one entry)."""
    fps_embeds = None if fps is None else [0 if fps == 16 else 1] * latents.shape[0]
    return backbone(hidden_states=latents, timestep=timesteps, encoder_hidden_states=prompt_embeds,
                    enable_diffusion_forcing=True, fps=fps_embeds, return_dict=False)[0]


# ------------------------------------------------------------------------------------------------ parity
@torch.no_grad()
@pytest.mark.parametrize("fps", [24, 16])
def test_skyreels_wrapper_equals_the_skyreels_pipeline_call(fps):
    model = tiny_wrapper(fps=fps)
    latents, timesteps = inputs()
    expected = skyreels_call(model.backbone, latents, timesteps, model.prompt_embeds, fps)
    assert torch.equal(model(latents, timesteps).sample, expected)


@torch.no_grad()
def test_skyreels_wrapper_batch_two_equals_single_sample_calls():
    model = tiny_wrapper()
    latents, timesteps = inputs(batch=2)
    out = model(latents, timesteps, return_dict=False)[0]
    assert out.shape == latents.shape
    for b in range(2):
        expected = skyreels_call(model.backbone, latents[b : b + 1], timesteps[b : b + 1], model.prompt_embeds)
        assert torch.allclose(out[b : b + 1], expected, atol=1e-5)


@torch.no_grad()
def test_wan_wrapper_equals_skyreels_df_with_the_same_weights():
    wan = tiny_wrapper("wan")
    skyreels = SkyReelsV2Transformer3DModel(**BACKBONE_TINY).eval()
    skyreels.load_state_dict(wan.backbone.state_dict())  # Wan and SkyReels DF share one state dict
    latents, timesteps = inputs(batch=2)
    expected = skyreels_call(skyreels, latents, timesteps, wan.prompt_embeds.expand(2, -1, -1), fps=None)
    assert torch.allclose(wan(latents, timesteps).sample, expected, atol=1e-5)


@torch.no_grad()
def test_from_backbone_copies_config_and_weights():
    torch.manual_seed(3)
    backbone = WanTransformer3DModel(**BACKBONE_TINY).eval()
    model = WanDFoTTransformer3DModel.from_backbone(backbone, sample_size=8, max_frames=6, prompt_length=7).eval()
    assert model.config.backbone_type == "wan" and model.config.ffn_dim == 32 and model.config.patch_size == 2
    latents, timesteps = inputs()
    text = torch.randn(1, 7, 16)
    model.set_prompt_embeds(text)
    tokens = timesteps.repeat_interleave(16, dim=1)  # Wan's per-token timesteps, 4x4 tokens per frame
    expected = backbone(hidden_states=latents, timestep=tokens, encoder_hidden_states=text, return_dict=False)[0]
    assert torch.equal(model(latents, timesteps).sample, expected)
    as_skyreels = WanDFoTTransformer3DModel.from_backbone(backbone, backbone_type="skyreels-v2-df", sample_size=8,
                                                          max_frames=6, prompt_length=7).eval()
    as_skyreels.set_prompt_embeds(text)
    assert torch.allclose(as_skyreels(latents, timesteps).sample, expected, atol=1e-5)


def test_from_backbone_refuses_a_block_causal_backbone():
    """SkyReels' `num_frame_per_block` > 1 (block-causal attention mask) would be lost in the wrapper's backbone,
    whose output then differs: refused, naming the value."""
    backbone = SkyReelsV2Transformer3DModel(**BACKBONE_TINY, num_frame_per_block=2)
    with pytest.raises(ValueError, match=r"`backbone.config.num_frame_per_block` must be 1 .*got 2; load the backbone "
                                         r"with num_frame_per_block=1."):
        WanDFoTTransformer3DModel.from_backbone(backbone, sample_size=8, max_frames=6, prompt_length=7)
    backbone.register_to_config(num_frame_per_block=1)
    assert WanDFoTTransformer3DModel.from_backbone(backbone, sample_size=8, max_frames=6, prompt_length=7)

# ------------------------------------------------------------------------------------------------ camera
@torch.no_grad()
@pytest.mark.parametrize("backbone", ["skyreels-v2-df", "wan"])
def test_zero_initialised_camera_adapter_leaves_the_backbone_unchanged(backbone):
    bare = tiny_wrapper(backbone)
    posed = tiny_wrapper(backbone, camera_ray_type="plucker")
    assert posed.camera_ray_channels == 6
    posed.load_state_dict({**bare.state_dict(), **{k: v for k, v in posed.state_dict().items() if "camera" in k}})
    latents, timesteps = inputs(batch=2)
    rays = torch.randn(2, 6, 3, 8, 8)
    expected = bare(latents, timesteps).sample
    assert torch.equal(posed(latents, timesteps, camera_rays=rays).sample, expected)
    torch.nn.init.normal_(posed.camera_embedding.weight)  # as after training: the rays now matter ...
    assert not torch.allclose(posed(latents, timesteps, camera_rays=rays).sample, expected, atol=1e-3)
    # ... except for frames whose pose is masked out (all masked = the bare backbone)
    mask = torch.zeros(2, 3, dtype=torch.bool)
    assert torch.equal(posed(latents, timesteps, camera_rays=rays, camera_rays_mask=mask).sample, expected)


def test_one_ray_map_per_latent_frame():
    """Latent frame j carries the ray map of pixel frame 4 j (the pipeline's and train.py's scheme): 6 Plücker
    channels, not the 24 of 4 packed frames."""
    model = tiny_wrapper("wan", camera_ray_type="plucker")
    assert model.camera_ray_channels == 6 and "camera_rays_per_latent" not in model.config
    latents, timesteps = inputs()
    with pytest.raises(ValueError, match=r"`camera_rays` must be a tensor of shape \(B, C_ray, F, H, W\) = "
                                         r"\(1, 6, 3, 8, 8\) .*got \(1, 24, 3, 8, 8\)"):
        model(latents, timesteps, camera_rays=torch.randn(1, 24, 3, 8, 8))


# ------------------------------------------------------------------------------------------------ saving
@torch.no_grad()
def test_save_load_round_trip_keeps_prompt_and_camera(tmp_path):
    model = tiny_wrapper(camera_ray_type="plucker")
    torch.nn.init.normal_(model.camera_embedding.weight)
    model.save_pretrained(tmp_path / "transformer")
    assert (tmp_path / "transformer" / "diffusion_pytorch_model.safetensors").is_file()
    loaded = WanDFoTTransformer3DModel.from_pretrained(tmp_path / "transformer").eval()
    assert torch.equal(loaded.prompt_embeds, model.prompt_embeds)
    latents, timesteps = inputs()
    rays = torch.randn(1, 6, 3, 8, 8)
    assert torch.equal(loaded.state_dict()["camera_embedding.weight"], model.camera_embedding.weight)
    # same weights; the summation order of a reloaded model may differ in the last bit
    assert torch.allclose(loaded(latents, timesteps, rays).sample, model(latents, timesteps, rays).sample, atol=1e-6)
    assert type(load_transformer(tmp_path / "transformer")) is WanDFoTTransformer3DModel


@torch.no_grad()
def test_loads_as_the_transformer_of_a_pipeline_folder(tmp_path):
    model = tiny_wrapper("wan")
    pipe = Syn2SeqPipeline(transformer=model, scheduler=FlowMatchDiffusionForcingScheduler(shift=8.0), mode="video")
    pipe.save_pretrained(tmp_path)
    index = json.loads((tmp_path / "model_index.json").read_text())
    assert index["transformer"] == ["diffusers_syn2seq.models.transformer_wan_dfot", "WanDFoTTransformer3DModel"]
    loaded = DiffusionPipeline.from_pretrained(tmp_path)
    assert isinstance(loaded.transformer, WanDFoTTransformer3DModel)
    assert isinstance(loaded.scheduler, FlowMatchDiffusionForcingScheduler) and loaded.scheduler.config.shift == 8.0
    latents, timesteps = inputs()
    assert torch.allclose(loaded.transformer(latents, timesteps).sample, model(latents, timesteps).sample, atol=1e-6)
    assert type(load_transformer(tmp_path)) is WanDFoTTransformer3DModel


def test_bfloat16_forward_keeps_fp32_modules():
    model = tiny_wrapper().to(torch.bfloat16)
    latents, timesteps = inputs()
    out = model(latents, timesteps).sample
    assert out.dtype == torch.bfloat16 and bool(torch.isfinite(out.float()).all())


def test_gradient_checkpointing_gives_the_same_gradients():
    latents, timesteps = inputs()
    grads = []
    for checkpointing in (False, True):
        model = tiny_wrapper().train()
        if checkpointing:
            model.enable_gradient_checkpointing()
        model(latents, timesteps).sample.square().mean().backward()
        grads.append(model.backbone.blocks[0].ffn.net[2].weight.grad.clone())
    assert torch.allclose(grads[0], grads[1], atol=1e-6)


def test_encode_prompt_embeds_pads_with_zeros_beyond_the_tokens():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast, T5Config, T5EncoderModel

    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2, "a": 3, "kitchen": 4, "scene": 5}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>", eos_token="</s>",
                                        unk_token="<unk>")
    torch.manual_seed(0)
    encoder = T5EncoderModel(T5Config(vocab_size=6, d_model=16, d_kv=4, d_ff=32, num_layers=1, num_heads=2)).eval()
    embeds = encode_prompt_embeds(encoder, tokenizer, "a kitchen  scene", max_sequence_length=7)
    assert embeds.shape == (1, 7, 16)
    assert embeds[0, :3].abs().sum(-1).gt(0).all() and torch.equal(embeds[0, 3:], torch.zeros(4, 16))
    ids = torch.tensor([[3, 4, 5, 0, 0, 0, 0]])
    hidden = encoder(ids, (ids > 0).long()).last_hidden_state
    assert torch.allclose(embeds[0, :3], hidden[0, :3], atol=1e-6)
    model = tiny_wrapper()
    model.set_prompt_embeds(embeds)
    assert torch.equal(model.prompt_embeds, embeds)


# ------------------------------------------------------------------------------------------------ errors
@pytest.mark.parametrize("kwargs, message", [
    ({"backbone_type": "cogvideox"}, "`backbone_type` must be one of"),
    ({"noise_embedding_type": "sinusoidal"}, "`noise_embedding_type` must be one of"),
    ({"camera_ray_type": "depth"}, "`camera_ray_type` must be None or one of"),
    ({"patch_size": 0}, "`patch_size` must be"),
    ({"sample_size": 7}, "`sample_size` must be a positive integer or a pair"),
    ({"max_frames": 0}, "`max_frames` must be"),
    ({"backbone_type": "wan", "inject_sample_info": True}, "`inject_sample_info` .* 'skyreels-v2-df' backbone only"),
    ({"attention_head_dim": 7}, r"`attention_head_dim` must be an even positive integer \(Wan's 3-D rotary embedding "
                                r"splits each head into even time, height and width parts\), got 7."),  # issue 24
    ({"num_attention_heads": 0}, "`num_attention_heads` must be a positive integer, got 0."),
])
def test_bad_config_is_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        WanDFoTTransformer3DModel(**{**TINY, **kwargs})


@pytest.mark.parametrize("call, message", [
    (lambda m, x, t: m(x[:, :3], t), r"`hidden_states` must be a tensor of shape \(B, C, F, H, W\) with C = "),
    (lambda m, x, t: m(torch.zeros(1, 4, 7, 8, 8), t), "`hidden_states` must have 1 to max_frames=6 frames"),
    (lambda m, x, t: m(x[..., :5], t), "`hidden_states` height and width must be multiples of 2"),
    (lambda m, x, t: m(x, t[:, :2]), r"`timestep` must be a scalar or have shape \(B,\)"),
    (lambda m, x, t: m(x, t * float("nan")), r"`timestep` must be model timesteps sigma \* 1000 in \[0, 1000\]"),
    (lambda m, x, t: m(x, t - 1), r"`timestep` must be model timesteps .* got min -1.0"),
    (lambda m, x, t: m(x, torch.full_like(t, 5000.0)), r"in \[0, 1000\] \(0 = clean, 1000 = pure noise\), got min "
                                                       r"5000.0 and max 5000.0"),  # sigma 5 (issue 24)
    (lambda m, x, t: m(x * float("nan"), t), "`hidden_states` must contain only finite values, got 768 NaN"),
    (lambda m, x, t: m(x, t, encoder_hidden_states=torch.zeros(2, 7, 16)),
     r"`encoder_hidden_states` must be a tensor \(1 or B=1, L, text_dim=16\), got \(2, 7, 16\)"),
    (lambda m, x, t: m(x, t, camera_rays=torch.zeros(1, 6, 3, 8, 8)), "`camera_rays` must be None for a model"),
    (lambda m, x, t: m(x, t, camera_rays_mask=torch.ones(1, 2, dtype=torch.bool)), "`camera_rays_mask` must be"),
    (lambda m, x, t: m.set_prompt_embeds(torch.zeros(8, 16)), r"`prompt_embeds` must be a tensor \(L, text_dim\)"),
    (lambda m, x, t: m.set_prompt_embeds(torch.zeros(3, 15)), r"`prompt_embeds` must be a tensor \(L, text_dim\)"),
    (lambda m, x, t: m.set_prompt_embeds(torch.full((3, 16), float("inf"))), "`prompt_embeds` must be finite"),
    (lambda m, x, t: WanDFoTTransformer3DModel.from_backbone(torch.nn.Linear(2, 2)), "`backbone` must be a"),
])
def test_bad_inputs_are_refused(call, message):
    latents, timesteps = inputs()
    with pytest.raises(ValueError, match=message):
        call(tiny_wrapper(), latents, timesteps)


def test_camera_rays_of_the_wrong_shape_are_refused():
    model = tiny_wrapper(camera_ray_type="plucker")
    latents, timesteps = inputs()
    with pytest.raises(ValueError, match=r"`camera_rays` must be a tensor of shape \(B, C_ray, F, H, W\) = "
                                         r"\(1, 6, 3, 8, 8\) for camera_ray_type='plucker', got \(1, 180, 3, 8, 8\)"):
        model(latents, timesteps, camera_rays=torch.zeros(1, 180, 3, 8, 8))


@torch.no_grad()
def test_from_pretrained_backbone_reads_a_checkpoint_folder_and_keeps_fp32_modules(tmp_path):
    torch.manual_seed(4)
    backbone = SkyReelsV2Transformer3DModel(**BACKBONE_TINY, inject_sample_info=True).eval()
    backbone.save_pretrained(tmp_path / "transformer")
    model = WanDFoTTransformer3DModel.from_pretrained_backbone(str(tmp_path), sample_size=8, max_frames=6,
                                                               prompt_length=7).eval()
    assert model.config.backbone_type == "skyreels-v2-df" and model.config.inject_sample_info
    latents, timesteps = inputs()
    model.set_prompt_embeds(torch.randn(7, 16))
    expected = skyreels_call(backbone, latents, timesteps, model.prompt_embeds)
    assert torch.allclose(model(latents, timesteps).sample, expected, atol=1e-6)
    half = WanDFoTTransformer3DModel.from_pretrained_backbone(str(tmp_path), dtype=torch.bfloat16, sample_size=8,
                                                              max_frames=6, prompt_length=7)
    assert half.backbone.blocks[0].ffn.net[2].weight.dtype == torch.bfloat16
    assert half.backbone.scale_shift_table.dtype == torch.float32  # _keep_in_fp32_modules
    with pytest.raises(ValueError, match="`name_or_path` must hold a SkyReelsV2Transformer3DModel or "
                                         "WanTransformer3DModel"):
        tiny_wrapper().save_pretrained(tmp_path / "wrapper")
        WanDFoTTransformer3DModel.from_pretrained_backbone(str(tmp_path / "wrapper"), subfolder=None)


def test_from_pretrained_backbone_says_what_it_tried(tmp_path, monkeypatch):
    """Issue 24: a missing folder is named as such (not diffusers' Hub connection error); a name that could be a Hub
    repo id says it was tried there; pickled weights are refused with the line that converts them."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    missing = tmp_path / "nowhere"
    with pytest.raises(ValueError, match=f"`name_or_path`: expected a local folder or a Hub repo id \\(user/name\\), "
                                         f"got '{missing}': no such folder, and not a Hub repo id either."):
        WanDFoTTransformer3DModel.from_pretrained_backbone(str(missing))
    with pytest.raises(OSError, match="`name_or_path`: 'no-such-user/no-such-model' is not a local folder \\(no such "
                                      "folder\\), and loading it as a Hub repo id failed: "):
        WanDFoTTransformer3DModel.from_pretrained_backbone("no-such-user/no-such-model")
    SkyReelsV2Transformer3DModel(**BACKBONE_TINY).save_pretrained(tmp_path / "pickled" / "transformer",
                                                                  safe_serialization=False)
    folder = tmp_path / "pickled" / "transformer"
    assert not list(folder.glob("*.safetensors"))  # loading it would run the unpickler on a handed file
    with pytest.raises(ValueError) as error:
        WanDFoTTransformer3DModel.from_pretrained_backbone(str(tmp_path / "pickled"))
    assert str(error.value) == (
        f"`name_or_path`: '{folder}' holds pickled weights only (diffusion_pytorch_model.bin), which are never loaded "
        f"here (unpickling a file can run code); convert them once, where you trust the file: "
        f"SkyReelsV2Transformer3DModel.from_pretrained('{folder}', use_safetensors=False).save_pretrained('{folder}') "
        "writes safetensors beside them.")
