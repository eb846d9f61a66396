# SPDX-License-Identifier: Apache-2.0
"""DFoTTransformer3DModel: parity with the official DiT3D, diffusers behaviour, presets and config validation.

The input checks and conditioning rules shared with the U-ViT are tested on both backbones in test_modules_dfot.py.
"""

import copy
import json
import pickle

import pytest
import torch
from safetensors.torch import save_file
from script_loading import load_script

from diffusers_syn2seq import DFoTTransformer3DModel, convert_dfot_checkpoint
from diffusers_syn2seq.models import DIT_PRESETS
from diffusers_syn2seq.models.conversion_dfot import load_official_state_dict

FIXTURES = ["dit3d_discrete", "dit3d_external_cond", "dit3d_continuous"]


PARITY = load_script("scripts/check_dfot_parity.py")
load_fixture, run_official_layout = PARITY.load_fixture, PARITY.official_output


# ------------------------------------------------------------------------------------------------------------------
# Parity with the official backbone
# ------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", FIXTURES)
def test_parity_with_official_dit3d(dfot_fixtures_dir, name):
    tensors, config, state_dict = load_fixture(dfot_fixtures_dir, name)
    model = convert_dfot_checkpoint(state_dict, config)
    assert not model.training
    assert model.config.residual_form == "dfot"
    out = run_official_layout(model, tensors)
    assert out.shape == tensors["output"].shape
    assert (out - tensors["output"]).abs().max().item() < 1e-4


def test_standard_residual_form_differs_from_dfot_form(dfot_fixtures_dir):
    """The residual switch is real: the same weights in the standard form do not reproduce the official output."""
    tensors, config, state_dict = load_fixture(dfot_fixtures_dir, "dit3d_discrete")
    model = convert_dfot_checkpoint(state_dict, config)
    standard = DFoTTransformer3DModel.from_config({**model.config, "residual_form": "standard"}).eval()
    standard.load_state_dict(model.state_dict())
    assert (run_official_layout(standard, tensors) - tensors["output"]).abs().max().item() > 1e-2


@pytest.mark.parametrize("layout", ["lightning_ckpt", "compiled_prefix", "safetensors", "save_pretrained"])
def test_conversion_from_files(dfot_fixtures_dir, tmp_path, layout):
    tensors, config, state_dict = load_fixture(dfot_fixtures_dir, "dit3d_external_cond")
    if layout == "lightning_ckpt":
        ckpt = {
            "state_dict": {f"diffusion_model.model.{k}": v for k, v in state_dict.items()},
            "optimizer_states": [{"state": {0: {"exp_avg": torch.zeros(3)}}, "param_groups": [{"lr": 1e-4}]}],
            "global_step": 10,
        }
        path = tmp_path / "model.ckpt"
        torch.save(ckpt, path)
        model = convert_dfot_checkpoint(path, config)
    elif layout == "compiled_prefix":
        compiled = {f"diffusion_model._orig_mod.model.{k}": v for k, v in state_dict.items()}
        model = convert_dfot_checkpoint(compiled, config)
    elif layout == "safetensors":
        path = tmp_path / "model.safetensors"
        save_file({f"diffusion_model.model.{k}": v.contiguous() for k, v in state_dict.items()}, str(path))
        model = convert_dfot_checkpoint(path, config)
    else:  # the command-line entry writes a diffusers folder
        from diffusers_syn2seq.cli import convert_dfot_command

        ckpt_path, config_path = tmp_path / "model.pt", tmp_path / "config.json"
        torch.save(state_dict, ckpt_path)
        config_path.write_text(json.dumps(config))
        assert convert_dfot_command(["--checkpoint", str(ckpt_path), "--config", str(config_path), "--output_dir",
                                     str(tmp_path / "out")]) == 0
        assert (tmp_path / "out" / "diffusion_pytorch_model.safetensors").is_file()
        model = DFoTTransformer3DModel.from_pretrained(tmp_path / "out").eval()
    assert (run_official_layout(model, tensors) - tensors["output"]).abs().max().item() < 1e-4


class _Payload:
    """Unpickling this would run code: `weights_only=True` must refuse it."""

    def __reduce__(self):
        return (print, ("this must never run",))


def test_conversion_refuses_unsafe_and_unknown_files(tmp_path, dfot_fixtures_dir):
    _, config, _ = load_fixture(dfot_fixtures_dir, "dit3d_discrete")
    bad = tmp_path / "evil.ckpt"
    with open(bad, "wb") as f:
        pickle.dump({"state_dict": _Payload()}, f)
    with pytest.raises(ValueError, match="weights_only=True"):
        convert_dfot_checkpoint(bad, config)
    other = tmp_path / "model.h5"
    other.write_bytes(b"\0")
    with pytest.raises(ValueError, match="must be a .safetensors file"):
        convert_dfot_checkpoint(other, config)
    with pytest.raises(FileNotFoundError):
        convert_dfot_checkpoint(tmp_path / "missing.ckpt", config)
    with pytest.raises(ValueError, match="must be 'dit3d' or 'u_vit3d_pose'"):
        convert_dfot_checkpoint({"a": torch.zeros(1)}, {**config, "backbone_config": {"name": "unet3d"}})


def test_conversion_reports_mismatched_config(dfot_fixtures_dir):
    _, config, state_dict = load_fixture(dfot_fixtures_dir, "dit3d_discrete")
    wrong = copy.deepcopy(config)
    wrong["backbone_config"]["depth"] = 3
    with pytest.raises(ValueError, match="missing"):
        convert_dfot_checkpoint(state_dict, wrong)
    assert set(load_official_state_dict({"state_dict": state_dict})) == set(state_dict)


# ------------------------------------------------------------------------------------------------------------------
# diffusers behaviour
# ------------------------------------------------------------------------------------------------------------------
def tiny_config(**overrides):
    config = dict(
        in_channels=3,
        sample_size=8,
        max_frames=4,
        patch_size=2,
        num_layers=2,
        num_attention_heads=2,
        attention_head_dim=16,
        noise_embedding_type="sinusoidal",
    )
    config.update(overrides)
    return config


def randomized(model: DFoTTransformer3DModel, seed: int = 0) -> DFoTTransformer3DModel:
    """Zero-initialised gates would make many properties trivially true: give every weight a random value."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.parameters():
            param.copy_(torch.randn(param.shape, generator=generator) * 0.2)
    return model


def tiny_inputs(batch_size=2, frames=4, channels=3, size=8, seed=0):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(batch_size, channels, frames, size, size, generator=generator)
    t = torch.randint(0, 1000, (batch_size, frames), generator=generator)
    return x, t


def test_output_shape_and_timestep_broadcast():
    model = randomized(DFoTTransformer3DModel(**tiny_config(out_channels=5))).eval()
    x, t = tiny_inputs()
    out = model(x, t).sample
    assert out.shape == (2, 5, 4, 8, 8)
    per_sample = model(x, torch.tensor([7, 300])).sample
    per_frame = model(x, torch.tensor([[7] * 4, [300] * 4])).sample
    torch.testing.assert_close(per_sample, per_frame, rtol=0, atol=0)
    assert isinstance(model(x, t, return_dict=False), tuple)


def test_clean_context_label_minus_one_equals_zero_for_sinusoidal():
    model = randomized(DFoTTransformer3DModel(**tiny_config())).eval()
    x, t = tiny_inputs()
    t_minus = t.clone()
    t_minus[:, :2] = -1
    t_zero = t_minus.clamp(min=0)
    torch.testing.assert_close(model(x, t_minus).sample, model(x, t_zero).sample, rtol=0, atol=0)


def test_per_frame_noise_levels_matter():
    model = randomized(DFoTTransformer3DModel(**tiny_config())).eval()
    x, t = tiny_inputs()
    t2 = t.clone()
    t2[:, -1] = (t2[:, -1] + 500) % 1000
    assert not torch.allclose(model(x, t).sample, model(x, t2).sample)


def test_deterministic_and_save_load_round_trip(tmp_path):
    model = randomized(DFoTTransformer3DModel(**tiny_config(noise_embedding_type="fourier", condition_dim=5))).eval()
    x, _ = tiny_inputs()
    t = torch.randn(2, 4)
    cond = torch.randn(2, 4, 5)
    first = model(x, t, condition=cond).sample
    torch.testing.assert_close(first, model(x, t, condition=cond).sample, rtol=0, atol=0)
    model.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["_syn2seq_version"] and config["condition_dim"] == 5
    assert (tmp_path / "diffusion_pytorch_model.safetensors").is_file()
    loaded = DFoTTransformer3DModel.from_pretrained(tmp_path).eval()
    # The random Fourier features are buffers: they must travel with the weights.
    torch.testing.assert_close(loaded.time_proj.freqs, model.time_proj.freqs, rtol=0, atol=0)
    torch.testing.assert_close(loaded(x, t, condition=cond).sample, first, rtol=0, atol=0)


def test_from_pretrained_bf16_keeps_fp32_modules(tmp_path):
    DFoTTransformer3DModel(**tiny_config(condition_dim=3)).save_pretrained(tmp_path)
    model = DFoTTransformer3DModel.from_pretrained(tmp_path, dtype=torch.bfloat16)
    for name, param in model.named_parameters():
        keep = any(m in name for m in DFoTTransformer3DModel._keep_in_fp32_modules)
        assert param.dtype == (torch.float32 if keep else torch.bfloat16), name
    assert model.transformer_blocks[0].norm1.linear.weight.dtype == torch.float32
    assert model.transformer_blocks[0].attn.to_q.weight.dtype == torch.bfloat16
    x, t = tiny_inputs()
    out = model(x.bfloat16(), t, condition=torch.randn(2, 4, 3)).sample
    assert out.dtype == torch.bfloat16 and torch.isfinite(out.float()).all()


def test_bf16_autocast_close_to_fp32():
    model = randomized(DFoTTransformer3DModel(**tiny_config())).eval()
    x, t = tiny_inputs()
    reference = model(x, t).sample
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = model(x, t).sample
    scale = reference.abs().max()
    assert (low.float() - reference).abs().max() / scale < 0.05


def test_gradient_checkpointing_same_loss_and_gradients():
    model = randomized(DFoTTransformer3DModel(**tiny_config(camera_ray_type="plucker")))
    x, t = tiny_inputs()
    rays = torch.randn(2, 6, 4, 8, 8)

    def loss_and_grads(m):
        m.zero_grad()
        loss = m(x, t, camera_rays=rays).sample.pow(2).mean()
        loss.backward()
        return loss.detach(), {n: p.grad.clone() for n, p in m.named_parameters()}

    loss_ref, grads_ref = loss_and_grads(model)
    checkpointed = copy.deepcopy(model)
    checkpointed.enable_gradient_checkpointing()
    assert checkpointed.gradient_checkpointing
    loss_ckpt, grads_ckpt = loss_and_grads(checkpointed)
    torch.testing.assert_close(loss_ckpt, loss_ref)
    for name, grad in grads_ref.items():
        torch.testing.assert_close(grads_ckpt[name], grad, rtol=1e-5, atol=1e-6, msg=name)


@pytest.mark.parametrize(
    "extra", [{}, {"condition_dim": 3, "camera_ray_type": "ray", "noise_embedding_type": "fourier"}]
)
def test_every_parameter_receives_a_gradient(extra):
    model = randomized(DFoTTransformer3DModel(**tiny_config(**extra)))
    x, t = tiny_inputs()
    kwargs = {}
    if extra:
        t = torch.randn(2, 4)
        kwargs = {"condition": torch.randn(2, 4, 3), "camera_rays": torch.randn(2, 6, 4, 8, 8)}
    model(x, t, **kwargs).sample.pow(2).mean().backward()
    for name, param in model.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name


def test_lora_add_save_load_unload_round_trip(tmp_path):
    from peft import LoraConfig

    model = randomized(DFoTTransformer3DModel(**tiny_config())).eval()
    x, t = tiny_inputs()
    base = model(x, t).sample
    model.add_adapter(
        LoraConfig(r=4, lora_alpha=4, init_lora_weights=False, target_modules=["to_q", "to_k", "to_v", "to_out.0"])
    )
    with_lora = model(x, t).sample
    assert not torch.allclose(with_lora, base)
    half = model(x, t, attention_kwargs={"scale": 0.5}).sample
    assert not torch.allclose(half, with_lora)
    model.save_lora_adapter(tmp_path)

    fresh = randomized(DFoTTransformer3DModel(**tiny_config())).eval()
    assert (tmp_path / "pytorch_lora_weights.safetensors").is_file()
    fresh.load_lora_adapter(tmp_path, prefix=None, weight_name="pytorch_lora_weights.safetensors")
    torch.testing.assert_close(fresh(x, t).sample, with_lora, rtol=1e-5, atol=1e-5)
    fresh.unload_lora()
    torch.testing.assert_close(fresh(x, t).sample, base, rtol=0, atol=0)
    assert not any("lora" in n for n, _ in fresh.named_parameters())


def test_qkv_fusion_leaves_outputs_unchanged():
    model = randomized(DFoTTransformer3DModel(**tiny_config())).eval()
    x, t = tiny_inputs()
    reference = model(x, t).sample
    model.fuse_qkv_projections()
    assert model.transformer_blocks[0].attn.fused_projections
    torch.testing.assert_close(model(x, t).sample, reference, rtol=1e-5, atol=1e-5)
    model.unfuse_qkv_projections()
    torch.testing.assert_close(model(x, t).sample, reference, rtol=0, atol=0)


def test_attention_backend_and_processors():
    model = randomized(DFoTTransformer3DModel(**tiny_config())).eval()
    x, t = tiny_inputs()
    reference = model(x, t).sample
    assert len(model.attn_processors) == model.config.num_layers
    model.set_attention_backend("native")
    torch.testing.assert_close(model(x, t).sample, reference, rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="must be one of"):
        model.set_attention_backend("not-a-backend")


def test_first_block_cache_can_be_enabled():
    from diffusers.hooks import FirstBlockCacheConfig

    model = randomized(DFoTTransformer3DModel(**tiny_config(num_layers=3))).eval()
    x, t = tiny_inputs()
    reference = model(x, t).sample
    model.enable_cache(FirstBlockCacheConfig(threshold=0.0))  # threshold 0: never skip, outputs must not change
    assert model.is_cache_enabled
    with model.cache_context("test"):
        torch.testing.assert_close(model(x, t).sample, reference, rtol=1e-6, atol=1e-6)
    model.disable_cache()


@pytest.mark.slow
def test_compile_repeated_blocks_matches_eager_in_inference_and_training():
    """Regional compilation (`compile_repeated_blocks`, ~1 min of Inductor on the 2-core CI machine): the blocks
    compile without graph breaks, outputs and gradients equal eager ones (per-token conditioning from camera rays
    included), and the state dict keeps its keys."""
    model = randomized(DFoTTransformer3DModel(**tiny_config(camera_ray_type="plucker")))
    x, t = tiny_inputs()
    rays = torch.randn(2, 6, 4, 8, 8, generator=torch.Generator().manual_seed(1))
    compiled = copy.deepcopy(model)
    compiled.compile_repeated_blocks(fullgraph=True)
    assert list(compiled.state_dict()) == list(model.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(compiled.eval()(x, t, camera_rays=rays).sample,
                                   model.eval()(x, t, camera_rays=rays).sample, rtol=1e-4, atol=1e-4)
    grads = []
    for m in (model.train(), compiled.train()):
        m(x, t, camera_rays=rays).sample.pow(2).mean().backward()
        grads.append({name: param.grad for name, param in m.named_parameters()})
    for name, grad in grads[0].items():
        torch.testing.assert_close(grads[1][name], grad, rtol=1e-4, atol=1e-5, msg=name)


@pytest.mark.slow
def test_whole_model_compiles_in_one_graph_and_skips_only_the_value_checks():
    """`torch.compile(model, fullgraph=True)`: the whole forward traces into one graph, which the host read-back of
    the value checks would break (they are skipped while compiling), and matches eager; eager still checks values."""
    model = randomized(DFoTTransformer3DModel(**tiny_config())).eval()
    x, t = tiny_inputs()
    compiled = torch.compile(model, fullgraph=True)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x, t).sample, model(x, t).sample, rtol=1e-4, atol=1e-4)
        with pytest.raises(ValueError, match="`hidden_states` must contain only finite values"):
            model(torch.full((2, 3, 4, 8, 8), float("nan")), t)


def test_camera_rays_and_masks():
    model = randomized(DFoTTransformer3DModel(**tiny_config(camera_ray_type="plucker", condition_dim=3))).eval()
    x, t = tiny_inputs()
    rays, cond = torch.randn(2, 6, 4, 8, 8), torch.randn(2, 4, 3)
    out = model(x, t, condition=cond, camera_rays=rays).sample
    assert not torch.allclose(out, model(x, t, condition=cond, camera_rays=rays + 1).sample)
    # A dropped frame gets the null embedding: its rays (and condition) no longer matter.
    mask = torch.ones(2, 4, dtype=torch.bool)
    mask[:, 1] = False
    other_rays, other_cond = rays.clone(), cond.clone()
    other_rays[:, :, 1] += 5.0
    other_cond[:, 1] += 5.0
    a = model(x, t, condition=cond, camera_rays=rays, camera_rays_mask=mask, condition_mask=mask).sample
    b = model(x, t, condition=other_cond, camera_rays=other_rays, camera_rays_mask=mask, condition_mask=mask).sample
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    # All-false masks equal the model with zero condition/camera embeddings.
    none = torch.zeros(2, 4, dtype=torch.bool)
    dropped = model(x, t, condition=cond, camera_rays=rays, camera_rays_mask=none, condition_mask=none).sample
    dropped2 = model(x, t, condition=cond * 7, camera_rays=rays * 7, camera_rays_mask=none, condition_mask=none).sample
    torch.testing.assert_close(dropped, dropped2, rtol=0, atol=0)


def test_training_condition_dropout_is_per_sample_and_off_in_eval():
    model = randomized(DFoTTransformer3DModel(**tiny_config(condition_dim=3, condition_dropout=0.5)))
    x, t = tiny_inputs(batch_size=8)
    cond = torch.randn(8, 4, 3)
    model.eval()
    assert torch.equal(model(x, t, condition=cond).sample, model(x, t, condition=cond).sample)
    model.train()
    torch.manual_seed(1)
    train_out = model(x, t, condition=cond).sample
    with torch.no_grad():
        model.eval()
        kept = model(x, t, condition=cond).sample
        dropped = model(x, t, condition=cond, condition_mask=torch.zeros(8, 4, dtype=torch.bool)).sample
    per_sample_kept = [(train_out[i] - kept[i]).abs().max() < 1e-5 for i in range(8)]
    per_sample_dropped = [(train_out[i] - dropped[i]).abs().max() < 1e-5 for i in range(8)]
    assert all(k or d for k, d in zip(per_sample_kept, per_sample_dropped))
    assert any(per_sample_kept) and any(per_sample_dropped)


# ------------------------------------------------------------------------------------------------------------------
# Presets and configuration
# ------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(DIT_PRESETS))
def test_presets_build_models_of_the_named_size(name):
    with torch.device("meta"):
        model = DFoTTransformer3DModel(in_channels=4, **DIT_PRESETS[name])
    preset = DIT_PRESETS[name]
    assert len(model.transformer_blocks) == preset["num_layers"]
    assert model.transformer_blocks[0].attn.inner_dim == preset["num_attention_heads"] * preset["attention_head_dim"]


def test_preset_sizes_follow_dit():
    # DiT-S/B/L/XL hidden sizes 384/768/1024/1152 (Peebles & Xie, table 1), as in DFoT.
    widths = {k: v["num_attention_heads"] * v["attention_head_dim"] for k, v in DIT_PRESETS.items()}
    assert widths == {"dit-tiny": 32, "dit-s": 384, "dit-b": 768, "dit-l": 1024, "dit-xl": 1152}


def test_bad_config_raises_value_error():
    with pytest.raises(ValueError, match="`noise_embedding_type` must be one of"):
        DFoTTransformer3DModel(**tiny_config(noise_embedding_type="learned"))
    with pytest.raises(ValueError, match="`residual_form` must be one of"):
        DFoTTransformer3DModel(**tiny_config(residual_form="pre"))
    with pytest.raises(ValueError, match="`camera_ray_type` must be None or one of"):
        DFoTTransformer3DModel(**tiny_config(camera_ray_type="depth"))
    with pytest.raises(ValueError, match=r"`condition_dropout` must be a probability in \[0, 1\), got 1.5"):
        DFoTTransformer3DModel(**tiny_config(condition_dropout=1.5))
    with pytest.raises(ValueError, match="`attention_head_dim` must be even"):
        DFoTTransformer3DModel(**tiny_config(attention_head_dim=15))
