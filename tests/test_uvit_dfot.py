# SPDX-License-Identifier: Apache-2.0
"""DFoTUViT3DModel: parity with the official DFoT UViT3DPose, and diffusers model behaviour.

The input checks and conditioning rules shared with the DiT are tested on both backbones in test_modules_dfot.py.
"""

import copy
import json

import pytest
import torch
from script_loading import load_script

import diffusers_syn2seq
from diffusers_syn2seq.camera import ray_map
from diffusers_syn2seq.models.conversion_uvit_dfot import uvit3d_pose_from_official
from diffusers_syn2seq.models.transformer_uvit_dfot import UVIT_REALESTATE10K_CONFIG, DFoTUViT3DModel

# Two levels (ResBlock 16x16 tokens, transformer 8x8 after the stem), one mid block: runs in milliseconds.
TINY = dict(
    in_channels=3,
    sample_size=[16, 24],
    max_frames=3,
    patch_size=2,
    block_out_channels=[16, 32],
    block_types=["ResBlock", "TransformerBlock"],
    block_dropouts=[0.0, 0.0],
    layers_per_block=[1],
    num_mid_blocks=2,
    num_attention_heads=2,
    emb_channels=32,
    norm_num_groups=8,
    camera_ray_type="plucker",
    condition_dim=5,
)


def randomize_(model: torch.nn.Module, std: float = 0.1) -> torch.nn.Module:
    """Give the zero-initialised output layers random values so that every path of the network matters."""
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, param in model.named_parameters():
            owner = name.rsplit(".", 2)[-2]  # e.g. "norm1", "norm_q", "linear", "conv2"
            if "norm" in owner:  # norm scales stay near 1 (and biases near 0)
                param.add_(std * torch.randn(param.shape, generator=generator))
            else:
                param.normal_(0, std, generator=generator)
    return model


def tiny_model(**overrides) -> DFoTUViT3DModel:
    torch.manual_seed(0)
    return randomize_(DFoTUViT3DModel(**{**TINY, **overrides})).eval()


def tiny_inputs(batch: int = 2, frames: int = 3, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    height, width = TINY["sample_size"]
    poses = torch.zeros(batch, frames, 16)
    poses[..., :4] = torch.tensor([0.9, 1.1, 0.5, 0.5])
    angle = 0.1 * torch.arange(frames, dtype=torch.float32)
    poses[..., 4], poses[..., 6], poses[..., 9], poses[..., 12], poses[..., 14] = (
        angle.cos(),
        angle.sin(),
        torch.ones(frames),
        -angle.sin(),
        angle.cos(),
    )
    poses[..., 7] = torch.randn(batch, frames, generator=generator)
    return dict(
        hidden_states=torch.randn(batch, 3, frames, height, width, generator=generator),
        timestep=torch.randn(batch, frames, generator=generator),
        condition=torch.randn(batch, frames, 5, generator=generator),
        camera_rays=ray_map(poses, height, width, kind="plucker"),
    )


# ---------------------------------------------------------------------------------------------------------
# Parity with the official backbone
# ---------------------------------------------------------------------------------------------------------
PARITY = load_script("scripts/check_dfot_parity.py")


@pytest.fixture(scope="module")
def official(dfot_fixtures_dir):
    return PARITY.load_fixture(dfot_fixtures_dir, "uvit3d_pose")


def run_official_inputs(model, tensors, **kwargs):
    return PARITY.official_output(model, tensors, **kwargs)


def test_parity_with_official_uvit3d_pose(official):
    tensors, config, state_dict = official
    model = uvit3d_pose_from_official(state_dict, config)
    assert not model.training
    out = run_official_inputs(model, tensors)
    assert (out - tensors["output"]).abs().max().item() < 1e-4
    # Checkpoint-style prefixed keys convert to the same model.
    prefixed = {f"diffusion_model.model.{k}": v for k, v in state_dict.items()}
    assert torch.equal(run_official_inputs(uvit3d_pose_from_official(prefixed, config), tensors), out)


def test_conversion_reports_bad_state_dicts(official):
    _, config, state_dict = official
    broken = dict(state_dict)
    broken.pop("mid_blocks.1.attn_out.weight")
    broken["mid_blocks.9.attn_out.weight"] = torch.zeros(1)
    with pytest.raises(
        ValueError,
        match=r"(?s)missing keys \(1\).*mid_blocks\.1\.attn\.to_out\.weight.*unexpected keys \(1\).*mid_blocks\.9",
    ):
        uvit3d_pose_from_official(broken, config)
    wrong_heads = copy.deepcopy(config)
    wrong_heads["backbone_config"]["num_heads"] = 4
    with pytest.raises(ValueError, match="num_heads"):
        uvit3d_pose_from_official(state_dict, wrong_heads)
    with pytest.raises(ValueError, match="camera_ray_type"):
        uvit3d_pose_from_official(
            state_dict,
            {
                **config,
                "external_cond_dim": 6,
                "backbone_config": {**config["backbone_config"], "conditioning": {"dim": 6}},
            },
        )


def test_realestate10k_preset_size():
    with torch.device("meta"):
        model = DFoTUViT3DModel.from_realestate10k_config()
    assert UVIT_REALESTATE10K_CONFIG["block_out_channels"] == [128, 256, 576, 1152]
    # dfot.md: ~459M parameters.
    assert abs(sum(p.numel() for p in model.parameters()) / 1e6 - 459) < 1


# ---------------------------------------------------------------------------------------------------------
# Conditioning semantics
# ---------------------------------------------------------------------------------------------------------
def test_pose_mask_semantics():
    model, inputs = tiny_model(), tiny_inputs()
    with torch.no_grad():
        base = model(**inputs).sample
        assert torch.equal(model(**inputs, camera_rays_mask=torch.ones(2, 3, dtype=torch.bool)).sample, base)
        null = model(**{**inputs, "camera_rays": None}).sample
        dropped = model(**inputs, camera_rays_mask=torch.zeros(2, 3, dtype=torch.bool)).sample
        torch.testing.assert_close(dropped, null, atol=1e-5, rtol=0)
        assert not torch.allclose(null, base, atol=1e-3)
        # Dropping one frame's pose is not the same as dropping all of them.
        one = torch.tensor([[True, False, True], [True, True, True]])
        partial = model(**inputs, camera_rays_mask=one).sample
        assert torch.equal(partial[1], model(**inputs).sample[1])  # other sample untouched
        assert not torch.allclose(partial[0], base[0], atol=1e-4) and not torch.allclose(
            partial[0], null[0], atol=1e-4
        )


def test_timestep_shapes_and_condition_mask():
    model, inputs = tiny_model(), tiny_inputs()
    inputs["timestep"] = torch.tensor([0.3, -1.2])
    with torch.no_grad():
        per_sample = model(**inputs).sample
        per_frame = model(**{**inputs, "timestep": inputs["timestep"][:, None].expand(2, 3)}).sample
        assert torch.equal(per_sample, per_frame)
        no_cond = model(**{**inputs, "condition": None}).sample
        masked = model(**inputs, condition_mask=torch.zeros(2, 3, dtype=torch.bool)).sample
        torch.testing.assert_close(masked, no_cond, atol=1e-6, rtol=0)
        assert not torch.allclose(no_cond, per_sample, atol=1e-3)


def test_fewer_frames_than_max_and_tuple_output():
    model, inputs = tiny_model(), tiny_inputs(frames=2)
    with torch.no_grad():
        (sample,) = model(**inputs, return_dict=False)
    assert sample.shape == inputs["hidden_states"].shape


def test_frames_interact_through_attention():
    model, inputs = tiny_model(), tiny_inputs()
    changed = {k: v.clone() for k, v in inputs.items()}
    changed["hidden_states"][:, :, 2] += 1.0
    with torch.no_grad():
        a, b = model(**inputs).sample, model(**changed).sample
    assert not torch.allclose(a[:, :, 0], b[:, :, 0], atol=1e-5)  # frame 0 sees frame 2


def test_untrained_model_predicts_zero():
    torch.manual_seed(0)
    model = DFoTUViT3DModel(**TINY).eval()
    with torch.no_grad():
        assert torch.count_nonzero(model(**tiny_inputs()).sample) == 0


# ---------------------------------------------------------------------------------------------------------
# diffusers behaviour
# ---------------------------------------------------------------------------------------------------------
def test_deterministic():
    model, inputs = tiny_model(), tiny_inputs()
    with torch.no_grad():
        assert torch.equal(model(**inputs).sample, model(**inputs).sample)


def test_save_load_round_trip(tmp_path):
    model, inputs = tiny_model(), tiny_inputs()
    model.save_pretrained(tmp_path)
    assert (tmp_path / "config.json").is_file() and (tmp_path / "diffusion_pytorch_model.safetensors").is_file()
    assert json.loads((tmp_path / "config.json").read_text())["_syn2seq_version"] == diffusers_syn2seq.__version__
    loaded = DFoTUViT3DModel.from_pretrained(tmp_path).eval()
    assert list(loaded.config.sample_size) == TINY["sample_size"]
    with torch.no_grad():
        assert torch.equal(model(**inputs).sample, loaded(**inputs).sample)
    # The Fourier buffers are trained-network state: they must survive the round trip.
    assert torch.equal(model.noise_embedding.freqs, loaded.noise_embedding.freqs)


def test_from_pretrained_bfloat16_keeps_fp32_modules(tmp_path):
    tiny_model().save_pretrained(tmp_path)
    model = DFoTUViT3DModel.from_pretrained(tmp_path, dtype=torch.bfloat16).eval()
    dtypes = {name: p.dtype for name, p in model.named_parameters()}
    assert dtypes["noise_embedding.mlp.linear_1.weight"] == torch.float32
    assert dtypes["down_blocks.0.blocks.0.norm1.weight"] == torch.float32
    assert dtypes["mid_blocks.0.norm.linear.weight"] == torch.float32
    assert dtypes["mid_blocks.0.attn.norm_q.weight"] == torch.float32
    assert dtypes["mid_blocks.0.attn.to_q.weight"] == torch.bfloat16
    assert dtypes["down_blocks.0.blocks.0.conv1.weight"] == torch.bfloat16
    assert model.noise_embedding.freqs.dtype == torch.float32
    inputs = tiny_inputs()
    with torch.no_grad():
        out = model(**inputs).sample
        ref = DFoTUViT3DModel.from_pretrained(tmp_path).eval()(**inputs).sample
    assert out.dtype == torch.bfloat16 and torch.isfinite(out).all()
    assert (out.float() - ref).abs().max() < 0.1 * ref.abs().max()


def test_layerwise_casting_bfloat16_storage():
    model, inputs = tiny_model(), tiny_inputs()
    with torch.no_grad():
        ref = model(**inputs).sample
        model.enable_layerwise_casting(storage_dtype=torch.bfloat16, compute_dtype=torch.float32)
        out = model(**inputs).sample
    assert model.mid_blocks[0].attn.to_q.weight.dtype == torch.bfloat16
    assert model.mid_blocks[0].norm.linear.weight.dtype == torch.float32  # skipped: modulation
    assert model.noise_embedding.mlp.linear_1.weight.dtype == torch.float32
    assert out.dtype == torch.float32
    assert (out - ref).abs().max() < 0.05 * ref.abs().max()


def loss_and_grads(model, inputs):
    model.zero_grad(set_to_none=True)
    out = model(**inputs).sample
    loss = (out**2).mean()
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def test_gradient_checkpointing_same_loss_and_grads():
    model, inputs = tiny_model(), tiny_inputs()
    model.train()
    loss, grads = loss_and_grads(model, inputs)
    model.enable_gradient_checkpointing()
    assert model.gradient_checkpointing
    loss_ckpt, grads_ckpt = loss_and_grads(model, inputs)
    torch.testing.assert_close(loss_ckpt, loss)
    assert grads.keys() == grads_ckpt.keys()
    for name in grads:
        torch.testing.assert_close(grads_ckpt[name], grads[name], atol=1e-6, rtol=1e-5, msg=name)


def test_every_parameter_gets_a_gradient():
    model, inputs = tiny_model(), tiny_inputs()
    model.train()
    _, grads = loss_and_grads(model, inputs)
    params = dict(model.named_parameters())
    assert set(grads) == set(params)
    zero = [n for n, g in grads.items() if torch.count_nonzero(g) == 0]
    assert not zero, zero


def test_training_condition_dropout_is_per_sample_and_never_drops_poses():
    model, inputs = tiny_model(condition_dropout=0.5), tiny_inputs(batch=8)
    with torch.no_grad():
        kept = model(**inputs).sample
        no_cond = model(**{**inputs, "condition": None}).sample
        model.train()  # TINY has no dropout layers: only the condition dropout differs from eval
        torch.manual_seed(3)
        a = model(**inputs).sample
        torch.manual_seed(3)
        b = model(**inputs).sample
        posed = model(**{**inputs, "condition": None}).sample
    assert torch.equal(a, b)
    kept_rows = [torch.allclose(a[i], kept[i], atol=1e-5) for i in range(8)]
    dropped_rows = [torch.allclose(a[i], no_cond[i], atol=1e-5) for i in range(8)]
    assert all(k or d for k, d in zip(kept_rows, dropped_rows)) and any(kept_rows) and any(dropped_rows)
    # Poses are dropped only by the training objective (through `camera_rays_mask`), never by the model.
    assert torch.equal(posed, no_cond)


def test_attention_processors_and_qkv_fusion():
    model, inputs = tiny_model(), tiny_inputs()
    assert len(model.attn_processors) == TINY["num_mid_blocks"]
    with torch.no_grad():
        base = model(**inputs).sample
        model.fuse_qkv_projections()
        fused = model(**inputs).sample
    torch.testing.assert_close(fused, base, atol=1e-5, rtol=1e-5)


def test_lora_add_save_load_unload(tmp_path):
    from peft import LoraConfig

    model, inputs = tiny_model(), tiny_inputs()
    with torch.no_grad():
        base = model(**inputs).sample
    targets = ["to_q", "to_k", "to_v", "to_out", "ff.proj_in", "ff.proj_out"]
    model.add_adapter(LoraConfig(r=4, lora_alpha=4, target_modules=targets, init_lora_weights=False))
    with torch.no_grad():
        with_lora = model(**inputs).sample
        scaled_off = model(**inputs, attention_kwargs={"scale": 0.0}).sample
    assert not torch.allclose(with_lora, base, atol=1e-4)
    torch.testing.assert_close(scaled_off, base, atol=1e-6, rtol=0)
    model.save_lora_adapter(tmp_path)

    fresh = tiny_model()
    fresh.load_lora_adapter(tmp_path, prefix=None, weight_name="pytorch_lora_weights.safetensors")
    with torch.no_grad():
        torch.testing.assert_close(fresh(**inputs).sample, with_lora, atol=1e-6, rtol=0)
        fresh.unload_lora()
        torch.testing.assert_close(fresh(**inputs).sample, base, atol=1e-6, rtol=0)


# ---------------------------------------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------------------------------------
def test_bad_configs_raise():
    with pytest.raises(ValueError, match="camera_ray_type"):
        DFoTUViT3DModel(**{**TINY, "camera_ray_type": "depth"})
    with pytest.raises(ValueError, match="sample_size"):
        DFoTUViT3DModel(**{**TINY, "sample_size": 18})
    with pytest.raises(ValueError, match="heads"):
        DFoTUViT3DModel(**{**TINY, "num_attention_heads": 3})
    with pytest.raises(ValueError, match="layers_per_block"):
        DFoTUViT3DModel(**{**TINY, "layers_per_block": [1, 1]})
    with pytest.raises(ValueError, match=r"`condition_dropout` must be a probability in \[0, 1\)"):
        DFoTUViT3DModel(**{**TINY, "condition_dropout": -0.1})


@pytest.mark.parametrize("cache", ["FirstBlockCacheConfig", "MagCacheConfig"])
def test_block_list_caches_are_refused_with_a_clear_message(cache):
    """First-Block-Cache raised `IndexError: pop from empty list` inside diffusers and MagCache applied nothing: the
    U-ViT has no flat block list. Attention-level caches still enable."""
    import diffusers.hooks as hooks

    config = hooks.FirstBlockCacheConfig(threshold=0.1) if cache == "FirstBlockCacheConfig" else \
        hooks.MagCacheConfig(num_inference_steps=4, mag_ratios=[1.0] * 4)
    model = tiny_model()
    with pytest.raises(ValueError, match=f"for DFoTUViT3DModel, got {cache}, which needs a flat list of transformer "
                                         "blocks"):
        model.enable_cache(config)
    assert not model.is_cache_enabled
    model.enable_cache(hooks.PyramidAttentionBroadcastConfig(spatial_attention_block_skip_range=2,
                                                             current_timestep_callback=lambda: 500))
    assert model.is_cache_enabled
