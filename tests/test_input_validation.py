# SPDX-License-Identifier: Apache-2.0
"""Bad inputs to the models, the camera module and the checkpoint conversion: each raises a clear error.

One parametrized table per category (shared argument checks, model configuration, model forward, camera,
conversion and loading); each row is a bad input and the exact fragment of the message it must produce, which names
the argument, the expectation and the received value. A row whose call returns instead of raising fails: nothing is
accepted silently. The good inputs next to them (numpy integers, float64 frames, the clean level -1, ...) must work.
"""

import json
import pickle
import re
import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from script_loading import load_script

from diffusers_syn2seq import camera
from diffusers_syn2seq.cli import convert_dfot_command
from diffusers_syn2seq.models import DFoTTransformer3DModel, DFoTUViT3DModel, convert_dfot_checkpoint, load_transformer
from diffusers_syn2seq.models.conversion_uvit_dfot import uvit3d_pose_from_official
from diffusers_syn2seq.validation import (
    InvalidTypeError,
    check_choice,
    check_finite,
    check_generator,
    check_int,
    check_number,
    check_positive_int,
    check_probability,
    sum_is_finite,
)

load_fixture = load_script("scripts/check_dfot_parity.py").load_fixture

NAN, INF = float("nan"), float("inf")


def expect_error(call, error: type[Exception], message: str) -> None:
    """``call()`` must raise ``error`` whose message contains ``message`` verbatim."""
    with pytest.raises(error) as excinfo:
        call()
    assert message in str(excinfo.value), f"{message!r} not in {str(excinfo.value)!r}"


# ----------------------------------------------------------------------------------------------------------------
# Shared argument checks (diffusers_syn2seq.validation)
# ----------------------------------------------------------------------------------------------------------------
CHECKS = {
    "int_bool": (lambda: check_positive_int("steps", True), InvalidTypeError,
                 "`steps` must be a positive integer, got True (a bool)."),
    "int_float": (lambda: check_positive_int("steps", 2.0), InvalidTypeError,
                  "`steps` must be a positive integer, got 2.0."),
    "int_str": (lambda: check_positive_int("steps", "3"), InvalidTypeError,
                "`steps` must be a positive integer, got '3'."),
    "int_zero": (lambda: check_positive_int("steps", 0), ValueError, "`steps` must be a positive integer, got 0."),
    "int_range": (lambda: check_int("scene", -1, 0, 9), ValueError, "`scene` must be an integer in [0, 9], got -1."),
    "int_tensor": (lambda: check_int("n", torch.tensor([3])), InvalidTypeError,
                   "`n` must be an integer, got a Tensor of shape (1,) and dtype torch.int64."),
    "number_nan": (lambda: check_number("scale", NAN), ValueError, "`scale` must be a finite number, got nan."),
    "number_inf": (lambda: check_number("eta", INF, 0), ValueError, "`eta` must be a finite number >= 0, got inf."),
    "number_bool": (lambda: check_number("eta", False), InvalidTypeError, "got False (a bool)."),
    "number_open": (lambda: check_number("lr", 0.0, 0.0, open_min=True), ValueError,
                    "`lr` must be a finite number > 0, got 0.0."),
    "probability": (lambda: check_probability("p", 1.0), ValueError, "`p` must be a probability in [0, 1), got 1.0."),
    "choice": (lambda: check_choice("mode", "exo", ("exo2ego", "ego2exo")), ValueError,
               "`mode` must be one of ('exo2ego', 'ego2exo'), got 'exo'."),
    "choice_bool": (lambda: check_choice("flag", True, (1, 2)), ValueError, "got True (a bool)."),
    "finite": (lambda: check_finite("latents", torch.tensor([0.0, NAN, INF])), ValueError,
               "`latents` must contain only finite values, got 1 NaN and 1 inf entries (of 3)."),
    "finite_type": (lambda: check_finite("latents", [0.0]), InvalidTypeError, "`latents` must be a torch.Tensor"),
    "int_tensor_0d_float": (lambda: check_int("n", torch.tensor(3.0)), InvalidTypeError,
                            "`n` must be an integer, got a Tensor of shape () and dtype torch.float32."),
    "int_numpy_bool": (lambda: check_int("n", np.bool_(True)), InvalidTypeError,
                       "`n` must be an integer, got True (a bool)."),
    "number_tensor": (lambda: check_number("x", torch.ones(2)), InvalidTypeError,
                      "`x` must be a finite number, got a Tensor of shape (2,) and dtype torch.float32."),
    "number_tensor_nan": (lambda: check_number("x", torch.tensor(NAN)), ValueError,
                          "`x` must be a finite number, got nan."),
    "choice_none": (lambda: check_choice("mode", None, ("a", "b")), ValueError,
                    "`mode` must be one of ('a', 'b'), got None."),
    "choice_allow_none": (lambda: check_choice("guidance", "x", ("vanilla",), allow_none=True), ValueError,
                          "`guidance` must be None or one of ('vanilla',), got 'x'."),
    "choice_list": (lambda: check_choice("direction", ["exo2ego"], ("exo2ego",)), ValueError,
                    "`direction` must be one of ('exo2ego',), got ['exo2ego']."),
    "choice_array": (lambda: check_choice("mode", np.array(["a"]), ("a",)), ValueError,
                     "`mode` must be one of ('a',), got a ndarray of shape (1,) and dtype <U1."),
    "generator_type": (lambda: check_generator("generator", "seed"), InvalidTypeError,
                       "`generator` must be None, a torch.Generator or a list of them (one per video), got 'seed'; "
                       "seed one with torch.Generator().manual_seed(seed)."),
    "generator_count": (lambda: check_generator("generator", [torch.Generator()] * 2, 1), ValueError,
                        "`generator` as a list must hold one torch.Generator per video (1), got 2."),
}


@pytest.mark.parametrize("case", sorted(CHECKS))
def test_shared_checks(case):
    expect_error(*CHECKS[case])


def test_finite_probe_overflow_is_not_an_error():
    big = torch.full((1000,), 60000.0, dtype=torch.float16)  # finite, but its float16 sum is inf
    assert not sum_is_finite(big) and check_finite("x", big) is big


def test_shared_checks_normalise_good_values():
    assert type(check_positive_int("n", np.int64(3))) is int and check_positive_int("n", np.int64(3)) == 3
    assert type(check_number("x", np.float32(0.5))) is float and check_probability("p", 0) == 0.0
    assert issubclass(InvalidTypeError, TypeError) and issubclass(InvalidTypeError, ValueError)
    assert type(check_int("n", torch.tensor(3))) is int and check_number("x", torch.tensor(0.5)) == 0.5  # 0-d tensors
    assert check_choice("guidance", None, ("vanilla",), allow_none=True) is None
    generator = torch.Generator()
    assert check_generator("g", None) is check_generator("g", generator) is check_generator("g", [generator], 1) is None


# ----------------------------------------------------------------------------------------------------------------
# Model configuration
# ----------------------------------------------------------------------------------------------------------------
DIT = dict(in_channels=3, sample_size=8, max_frames=4, patch_size=2, num_layers=1, num_attention_heads=2,
           attention_head_dim=8, noise_embedding_dim=16, noise_embedding_type="sinusoidal", camera_ray_type="plucker",
           condition_dim=3)
UVIT = dict(in_channels=3, sample_size=8, max_frames=4, patch_size=2, block_out_channels=[16, 32],
            block_types=["ResBlock", "TransformerBlock"], block_dropouts=[0.0, 0.0], layers_per_block=[1],
            num_mid_blocks=1, num_attention_heads=2, emb_channels=32, norm_num_groups=8, noise_embedding_dim=16,
            noise_embedding_type="sinusoidal", camera_ray_type="plucker", condition_dim=3)
MODELS = {"dit": (DFoTTransformer3DModel, DIT), "uvit": (DFoTUViT3DModel, UVIT)}

# (backbones, overrides, error, message fragment)
CONFIGS = {
    "patch_size_zero": ("both", dict(patch_size=0), ValueError, "`patch_size` must be a positive integer, got 0."),
    "patch_size_bool": ("both", dict(patch_size=True), InvalidTypeError,
                        "`patch_size` must be a positive integer, got True (a bool)."),
    "patch_size_float": ("both", dict(patch_size=2.0), InvalidTypeError,
                         "`patch_size` must be a positive integer, got 2.0."),
    "in_channels_zero": ("both", dict(in_channels=0), ValueError, "`in_channels` must be a positive integer, got 0."),
    "in_channels_str": ("both", dict(in_channels="3"), InvalidTypeError,
                        "`in_channels` must be a positive integer, got '3'."),
    "out_channels_zero": ("both", dict(out_channels=0), ValueError,
                          "`out_channels` must be a positive integer, got 0."),
    "max_frames_zero": ("both", dict(max_frames=0), ValueError, "`max_frames` must be a positive integer, got 0."),
    "max_frames_negative": ("both", dict(max_frames=-2), ValueError,
                            "`max_frames` must be a positive integer, got -2."),
    "heads_zero": ("both", dict(num_attention_heads=0), ValueError,
                   "`num_attention_heads` must be a positive integer, got 0."),
    "noise_type": ("both", dict(noise_embedding_type="learned"), ValueError,
                   "`noise_embedding_type` must be one of ('sinusoidal', 'fourier'), got 'learned'."),
    "noise_dim_zero": ("both", dict(noise_embedding_dim=0), ValueError,
                       "`noise_embedding_dim` must be a positive integer, got 0."),
    "condition_dim_negative": ("both", dict(condition_dim=-3), ValueError,
                               "`condition_dim` must be a non-negative integer, got -3."),
    "condition_dim_bool": ("both", dict(condition_dim=True), InvalidTypeError,
                           "`condition_dim` must be a non-negative integer, got True (a bool)."),
    "condition_dropout_one": ("both", dict(condition_dropout=1.5), ValueError,
                              "`condition_dropout` must be a probability in [0, 1), got 1.5."),
    "condition_dropout_nan": ("both", dict(condition_dropout=NAN), ValueError,
                              "`condition_dropout` must be a probability in [0, 1), got nan."),
    "ray_type": ("both", dict(camera_ray_type="depth"), ValueError,
                 "`camera_ray_type` must be None or one of ('ray_encoding', 'plucker', 'ray'), got 'depth'."),
    "norm_eps_zero": ("both", dict(norm_eps=0.0), ValueError, "`norm_eps` must be a finite number > 0, got 0.0."),
    "rope_theta_negative": ("both", dict(rope_theta=-1.0), ValueError,
                            "`rope_theta` must be a finite number > 0, got -1.0."),
    "timesteps_one": ("both", dict(num_train_timesteps=1), ValueError,
                      "`num_train_timesteps` must be an integer >= 2, got 1."),
    "sample_size_triple": ("both", dict(sample_size=[8, 8, 8]), ValueError,
                           "`sample_size` must be a positive integer or a pair (H, W) of them"),
    "sample_size_zero": ("both", dict(sample_size=[8, 0]), ValueError,
                         "`sample_size[1]` must be a positive integer, got 0."),
    "sample_size_str": ("both", dict(sample_size="8"), InvalidTypeError,
                        "`sample_size` must be a positive integer or a pair (H, W) of them"),
    "dit_num_layers_negative": ("dit", dict(num_layers=-1), ValueError,
                                "`num_layers` must be a positive integer, got -1."),
    "dit_num_layers_zero": ("dit", dict(num_layers=0), ValueError, "`num_layers` must be a positive integer, got 0."),
    "dit_head_dim_odd": ("dit", dict(attention_head_dim=15), ValueError,
                         "`attention_head_dim` must be even for rotary embeddings, got 15."),
    "dit_head_dim_zero": ("dit", dict(attention_head_dim=0), ValueError,
                          "`attention_head_dim` must be a positive integer, got 0."),
    "dit_mlp_ratio_negative": ("dit", dict(mlp_ratio=-1), ValueError,
                               "`mlp_ratio` must be a finite number > 0, got -1.0."),
    "dit_mlp_ratio_nan": ("dit", dict(mlp_ratio=NAN), ValueError, "`mlp_ratio` must be a finite number > 0, got nan."),
    "dit_mlp_ratio_tiny": ("dit", dict(mlp_ratio=0.01), ValueError,
                           "`mlp_ratio` must give the MLP at least one channel"),
    "dit_residual_form": ("dit", dict(residual_form="pre"), ValueError,
                          "`residual_form` must be one of ('standard', 'dfot'), got 'pre'."),
    "uvit_sample_size_divisible": ("uvit", dict(sample_size=6), ValueError,
                                   "each divisible by patch_size * 2**(levels-1) = 4, got 6."),
    "uvit_mlp_ratio_negative": ("uvit", dict(mlp_ratio=-1), ValueError,
                                "`mlp_ratio` must be a positive integer, got -1."),
    "uvit_mlp_ratio_float": ("uvit", dict(mlp_ratio=2.5), InvalidTypeError,
                             "`mlp_ratio` must be a positive integer, got 2.5."),
    "uvit_channels_zero": ("uvit", dict(block_out_channels=[16, 0]), ValueError,
                           "`block_out_channels[1]` must be a positive integer, got 0."),
    "uvit_channels_int": ("uvit", dict(block_out_channels=128), InvalidTypeError,
                          "`block_out_channels` must be a list of integers >= 1, got 128."),
    "uvit_channels_empty": ("uvit", dict(block_out_channels=[], block_types=[], block_dropouts=[], layers_per_block=[]),
                            ValueError, "`block_out_channels` must list the width of at least one level, got []."),
    "uvit_block_type": ("uvit", dict(block_types=["ResBlock", "Attention"]), ValueError,
                        "`block_types[1]` must be one of ('ResBlock', 'TransformerBlock'), got 'Attention'."),
    "uvit_resblock_dropout": ("uvit", dict(block_dropouts=[0.1, 0.0]), ValueError,
                              "`block_dropouts[0]` must be 0 for a ResBlock level (no dropout), got 0.1."),
    "uvit_dropout_range": ("uvit", dict(block_dropouts=[0.0, 1.5]), ValueError,
                           "`block_dropouts[1]` must be a probability in [0, 1), got 1.5."),
    "uvit_layers_negative": ("uvit", dict(layers_per_block=[-1]), ValueError,
                             "`layers_per_block[0]` must be a non-negative integer, got -1."),
    "uvit_layers_length": ("uvit", dict(layers_per_block=[1, 1]), ValueError,
                           "`layers_per_block` one per level but the last; got 2 levels"),
    "uvit_mid_negative": ("uvit", dict(num_mid_blocks=-1), ValueError,
                          "`num_mid_blocks` must be a non-negative integer, got -1."),
    "uvit_groups": ("uvit", dict(norm_num_groups=5), ValueError,
                    "`block_out_channels[0]` must be divisible by norm_num_groups = 5"),
    "uvit_groups_zero": ("uvit", dict(norm_num_groups=0), ValueError,
                         "`norm_num_groups` must be a positive integer, got 0."),
    "uvit_odd_heads": ("uvit", dict(block_out_channels=[16, 30]), ValueError,
                       "`block_out_channels[1]` must split into num_attention_heads = 2 heads of even size (RoPE), "
                       "got 30."),
    "uvit_emb_zero": ("uvit", dict(emb_channels=0), ValueError, "`emb_channels` must be a positive integer, got 0."),
}
CONFIG_CASES = [(kind, case) for case, (which, *_) in sorted(CONFIGS.items())
                for kind in (("dit", "uvit") if which == "both" else (which,))]


@pytest.mark.parametrize("kind,case", CONFIG_CASES, ids=[f"{k}-{c}" for k, c in CONFIG_CASES])
def test_bad_model_config(kind, case):
    cls, base = MODELS[kind]
    _, overrides, error, message = CONFIGS[case]
    expect_error(lambda: cls(**{**base, **overrides}), error, message)


@pytest.mark.parametrize("kind", sorted(MODELS))
def test_numpy_integers_are_accepted_and_saved_as_ints(kind, tmp_path):
    cls, base = MODELS[kind]
    model = cls(**{**base, "patch_size": np.int64(2), "max_frames": np.int32(4), "sample_size": [np.int64(8)] * 2})
    assert model.config.patch_size == 2 and type(model.config.patch_size) is int
    model.save_pretrained(tmp_path)  # a numpy integer in the config would not serialise
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["max_frames"] == 4 and config["sample_size"] == [8, 8]
    assert cls.from_pretrained(tmp_path).config.num_train_timesteps == 1000


def test_condition_dim_zero_means_none():
    assert DFoTTransformer3DModel(**{**DIT, "condition_dim": 0}).condition_embedding is None


def test_configs_saved_before_num_train_timesteps_still_load(tmp_path):
    DFoTTransformer3DModel(**DIT).save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    del config["num_train_timesteps"]
    (tmp_path / "config.json").write_text(json.dumps(config))
    assert DFoTTransformer3DModel.from_pretrained(tmp_path).config.num_train_timesteps == 1000


# ----------------------------------------------------------------------------------------------------------------
# Model forward
# ----------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    return {kind: cls(**base).eval() for kind, (cls, base) in MODELS.items()}


def good_inputs() -> dict:
    generator = torch.Generator().manual_seed(0)
    return dict(
        hidden_states=torch.randn(2, 3, 4, 8, 8, generator=generator),
        timestep=torch.randint(0, 1000, (2, 4), generator=generator),
        condition=torch.randn(2, 4, 3, generator=generator),
        camera_rays=torch.randn(2, 6, 4, 8, 8, generator=generator),
    )


def _poisoned(name: str, value: float) -> dict:
    tensor = good_inputs()[name].clone()
    tensor.view(-1)[1] = value
    return {name: tensor}


def _masked_nan_rays() -> dict:
    rays = good_inputs()["camera_rays"].clone()
    rays[:, :, 1] = NAN  # a masked frame: NaN * 0 is still NaN, so it is refused too
    mask = torch.ones(2, 4, dtype=torch.bool)
    mask[:, 1] = False
    return dict(camera_rays=rays, camera_rays_mask=mask)


x = good_inputs()["hidden_states"]
# (changes to the good inputs, error, message fragment); the same message on both backbones
FORWARD = {
    "hidden_nan": (_poisoned("hidden_states", NAN), "`hidden_states` must contain only finite values, got 1 NaN and "
                                                     "0 inf entries (of 1536)."),
    "hidden_inf": (_poisoned("hidden_states", -INF), "`hidden_states` must contain only finite values, got 0 NaN and "
                                                      "1 inf entries"),
    "timestep_nan": (dict(timestep=torch.tensor([[1.0, NAN, 3.0, 4.0]] * 2)),
                     "`timestep` must contain only finite values, got 2 NaN"),
    "timestep_too_large": (dict(timestep=5000), "`timestep` must hold integer noise levels in [-1, 999] for "
                                                "noise_embedding_type='sinusoidal'"),
    "timestep_fraction": (dict(timestep=0.5), "(-1 = clean context; pass scheduler.model_timesteps(levels)), got 0.5."),
    "timestep_negative": (dict(timestep=torch.tensor([-100, 3])), "got -100."),
    "timestep_minus_two": (dict(timestep=torch.full((2, 4), -2)), "got -2."),
    "timestep_bool": (dict(timestep=True),
                      "`timestep` must be a number or a tensor of noise levels, got True (a bool)."),
    "timestep_str": (dict(timestep="noisy"), "`timestep` must be a number or a tensor of noise levels, got str."),
    "timestep_bool_tensor": (dict(timestep=torch.ones(2, 4, dtype=torch.bool)),
                             "`timestep` must hold real noise levels (integer or float), got dtype torch.bool."),
    "timestep_shape": (dict(timestep=torch.zeros(2, 3)), "`timestep` must be a scalar or have shape (B,) = (2,) or "
                                                         "(B, F) = (2, 4), got (2, 3)."),
    "rays_nan": (_poisoned("camera_rays", NAN), "`camera_rays` must contain only finite values, got 1 NaN"),
    "rays_inf": (_poisoned("camera_rays", INF), "`camera_rays` must contain only finite values, got 0 NaN and 1 inf"),
    "rays_nan_masked": (_masked_nan_rays(),
                        "`camera_rays` must contain only finite values, got 768 NaN and 0 inf entries (of 3072)."),
    "condition_nan": (_poisoned("condition", NAN), "`condition` must contain only finite values, got 1 NaN"),
    "rays_int": (dict(camera_rays=torch.zeros(2, 6, 4, 8, 8, dtype=torch.int64)),
                 "`camera_rays` must be a floating-point tensor, got dtype torch.int64."),
    "condition_int": (dict(condition=torch.zeros(2, 4, 3, dtype=torch.int32)),
                      "`condition` must be a floating-point tensor, got dtype torch.int32."),
    "hidden_uint8": (dict(hidden_states=torch.zeros(2, 3, 4, 8, 8, dtype=torch.uint8)),
                     "`hidden_states` must be a floating-point tensor, got dtype torch.uint8."),
    "hidden_complex": (dict(hidden_states=torch.zeros(2, 3, 4, 8, 8, dtype=torch.complex64)),
                       "`hidden_states` must be a floating-point tensor, got dtype torch.complex64."),
    "empty_batch": (dict(hidden_states=x[:0], timestep=0, condition=None, camera_rays=None),
                    "`hidden_states` must hold at least one sample (B >= 1), got (0, 3, 4, 8, 8)."),
    "too_many_frames": (dict(hidden_states=torch.cat([x, x[:, :, :1]], 2), timestep=0, condition=None,
                             camera_rays=None), "`hidden_states` must have 1 to max_frames=4 frames"),
    "no_frames": (dict(hidden_states=x[:, :, :0], timestep=0, condition=None, camera_rays=None),
                  "`hidden_states` must have 1 to max_frames=4 frames (the model's window; longer videos are generated "
                  "with the pipeline's sliding window), got 0."),
    "zero_height": (dict(hidden_states=x[..., :0, :], camera_rays=None), "`hidden_states` height and width must be "
                                                                          "multiples of"),
    "odd_size": (dict(hidden_states=x[..., :7, :7], camera_rays=None), "(the model's downsampling factor), got 7x7."),
    "channels": (dict(hidden_states=x[:, :2]), "`hidden_states` must be a tensor of shape (B, C, F, H, W) with C = "
                                               "in_channels = 3, got (2, 2, 4, 8, 8)."),
    "ndim": (dict(hidden_states=x[:, :, 0]), "with C = in_channels = 3, got (2, 3, 8, 8)."),
    "list": (dict(hidden_states=x.tolist()), "with C = in_channels = 3, got a list."),
    "rays_mask_float": (dict(camera_rays_mask=torch.full((2, 4), 0.5)),
                        "`camera_rays_mask` must be a bool tensor (False drops that frame's embedding), got "
                        "torch.float32."),
    "condition_mask_shape": (dict(condition_mask=torch.ones(2, 3, dtype=torch.bool)),
                             "`condition_mask` must be a tensor of shape (B, F) = (2, 4)"),
    "rays_channels": (dict(camera_rays=torch.zeros(2, 180, 4, 8, 8)), "`camera_rays` must be a tensor of shape "
                                                                      "(B, C_ray, F, H, W) = (2, 6, 4, 8, 8)"),
    "condition_shape": (dict(condition=torch.zeros(2, 4, 2)), "`condition` must be a tensor of shape "
                                                              "(B, F, condition_dim) = (2, 4, 3), got (2, 4, 2)."),
    "rays_device": (dict(camera_rays=torch.zeros(2, 6, 4, 8, 8, device="meta")),
                    "`camera_rays` must be on the device of `hidden_states` (cpu), got meta."),
}
FORWARD_CASES = [(kind, case) for case in sorted(FORWARD) for kind in sorted(MODELS)]


@pytest.mark.parametrize("kind,case", FORWARD_CASES, ids=[f"{k}-{c}" for k, c in FORWARD_CASES])
def test_bad_forward_input(models, kind, case):
    changes, message = FORWARD[case]
    inputs = {**good_inputs(), **changes}
    with torch.no_grad():
        expect_error(lambda: models[kind](**inputs), ValueError, message)


@pytest.mark.parametrize("kind", sorted(MODELS))
def test_fourier_and_custom_schedule_ranges(kind):
    cls, base = MODELS[kind]
    inputs = good_inputs()
    fourier = cls(**{**base, "noise_embedding_type": "fourier"}).eval()
    with torch.no_grad():
        expect_error(lambda: fourier(**{**inputs, "timestep": torch.tensor([0.1, INF])}), ValueError,
                     "`timestep` must contain only finite values, got 0 NaN and 4 inf entries (of 8).")
        fourier(**{**inputs, "timestep": torch.tensor([-2.4, 1.6])})  # any finite 0.125 * logSNR
        fourier(**{**inputs, "timestep": torch.tensor([0, 3])})  # integer dtype is a number like any other
        fourier(**{**inputs, "timestep": torch.tensor([-20.0, 20.0])})  # the limits themselves
        # A DDPM index is no 0.125 * logSNR of any schedule (issue 24: it used to be embedded silently).
        expect_error(lambda: fourier(**{**inputs, "timestep": 500}), ValueError,
                     "`timestep` must hold model_timestep_scale * logSNR values in [-20, 20] for noise_embedding_type="
                     "'fourier' (pass scheduler.model_timesteps(levels); an integer DDPM level is not one), got 500.")
        expect_error(lambda: fourier(**{**inputs, "timestep": torch.tensor([-20.5, 0.0])}), ValueError, "got -20.5.")
        small = cls(**{**base, "num_train_timesteps": 10}).eval()
        small(**{**inputs, "timestep": torch.tensor([-1, 9])})
        expect_error(lambda: small(**{**inputs, "timestep": 10}), ValueError,
                     "`timestep` must hold integer noise levels in [-1, 9]")


@pytest.mark.parametrize("kind", sorted(MODELS))
def test_large_finite_inputs_pass_the_finite_probe(models, kind):
    inputs = {**good_inputs(), "hidden_states": torch.full((2, 3, 4, 8, 8), 6e4, dtype=torch.float16)}
    with torch.no_grad():
        assert torch.isfinite(models[kind](**inputs).sample).all()


@pytest.mark.parametrize("kind", sorted(MODELS))
def test_good_forward_inputs(models, kind):
    model, inputs = models[kind], good_inputs()
    with torch.no_grad():
        reference = model(**inputs).sample
        # float64 frames (and rays, condition) are cast to the model's dtype: same numbers, float32 output
        as_double = model(**{k: v.double() if v.is_floating_point() else v for k, v in inputs.items()}).sample
        assert as_double.dtype == torch.float32
        torch.testing.assert_close(as_double, reference, rtol=0, atol=1e-6)
        # integral float levels are the integer levels; -1 (clean) embeds as 0
        integral = model(**{**inputs, "timestep": inputs["timestep"].double()}).sample
        torch.testing.assert_close(integral, reference, rtol=0, atol=0)
        clean = model(**{**inputs, "timestep": torch.full((2, 4), -1)}).sample
        torch.testing.assert_close(clean, model(**{**inputs, "timestep": 0}).sample, rtol=0, atol=0)
        model(**{**inputs, "timestep": np.int64(999)})
        assert torch.isfinite(reference).all()


# ----------------------------------------------------------------------------------------------------------------
# Camera
# ----------------------------------------------------------------------------------------------------------------
def poses(*shape: int) -> torch.Tensor:
    """Valid (*shape, 16) pose vectors: rotations about y, unit-ish intrinsics, random translations."""
    generator = torch.Generator().manual_seed(3)
    angle = torch.rand(*shape, generator=generator)
    out = torch.zeros(*shape, 16)
    out[..., :4] = torch.tensor([0.9, 1.1, 0.5, 0.5])
    out[..., 4], out[..., 6], out[..., 9], out[..., 12], out[..., 14] = (
        angle.cos(), angle.sin(), torch.ones_like(angle), -angle.sin(), angle.cos()
    )
    out[..., [7, 11, 15]] = torch.randn(*shape, 3, generator=generator)
    return out


def _edit(tensor: torch.Tensor, index, value) -> torch.Tensor:
    tensor = tensor.clone()
    tensor[index] = value
    return tensor


P = poses(2, 3)
W2C = camera.poses_to_world_to_camera(P)
ROTATION = W2C[..., :3, :3]
INTRINSICS = P[..., :4]

# (call, error, message fragment)
CAMERA = {
    "scaled_rotation": (lambda: camera.validate_poses(_edit(P, (..., 4), 3.0)), ValueError,
                        "`poses` must hold orthonormal rotations (|R R^T - I| <= 0.001), got max deviation"),
    "reflection": (lambda: camera.validate_poses(torch.cat([P[..., :4], -P[..., 4:]], -1), "camera_poses"), ValueError,
                   "`camera_poses` must hold proper rotations with det(R) = +1, got det(R) = -1."),
    "nan": (lambda: camera.validate_poses(_edit(P, (0, 1, 7), NAN)), ValueError,
            "`poses` must contain only finite values, got 1 NaN and 0 inf entries (of 96)."),
    "shape": (lambda: camera.validate_poses(P[..., :12]), ValueError,
              "(world-to-camera matrix), got shape (2, 3, 12)."),
    "int_dtype": (lambda: camera.validate_poses(P.long()), ValueError,
                  "`poses` must be a floating point tensor, got dtype torch.int64."),
    "zero_focal": (lambda: camera.validate_poses(_edit(P, (..., 1), 0.0)), ValueError,
                   "`poses` must have non-zero focal lengths fx, fy (entries 0 and 1), got min |f| = 0."),
    "list": (lambda: camera.validate_poses(P.tolist()), InvalidTypeError, "`poses` must be a torch.Tensor of shape"),
    "atol": (lambda: camera.validate_poses(P, rotation_atol=-1), ValueError,
             "`rotation_atol` must be a finite number > 0, got -1.0."),
    "matrix_row": (lambda: camera.validate_poses(_edit(W2C, (..., 3, 0), 1.0), "w2c"), ValueError,
                   "`w2c` as (..., 4, 4) matrices must have last row [0, 0, 0, 1], got max deviation 1."),
    "rays_height_zero": (lambda: camera.camera_rays(P, 0, 8), ValueError,
                         "`height` must be a positive integer, got 0."),
    "rays_height_float": (lambda: camera.camera_rays(P, 2.5, 8), InvalidTypeError,
                          "`height` must be a positive integer, got 2.5."),
    "rays_width_bool": (lambda: camera.camera_rays(P, 8, True), InvalidTypeError,
                        "`width` must be a positive integer, got True (a bool)."),
    "rays_height_str": (lambda: camera.camera_rays(P, "8", 8), InvalidTypeError,
                        "`height` must be a positive integer, got '8'."),
    "rays_matrices": (lambda: camera.camera_rays(W2C, 8, 8), ValueError,
                      "`poses` must be pose vectors of shape (..., 16), got shape (2, 3, 4, 4)."),
    "ray_map_kind": (lambda: camera.ray_map(P, 4, 4, kind="pluecker"), ValueError,
                     "`kind` must be one of ('plucker', 'ray', 'ray_encoding'), got 'pluecker'."),
    "ray_map_2d": (lambda: camera.ray_map(P[0], 4, 4), ValueError,
                   "`poses` must be a tensor of shape (B, T, 16), got shape (3, 16)."),
    "ray_map_rotation": (lambda: camera.ray_map(_edit(P, (..., 5), 0.5), 4, 4), ValueError,
                         "`poses` must hold orthonormal rotations"),
    "normalize_no_frames": (lambda: camera.normalize_by_first(P[0, 0]), ValueError,
                            "`poses` must be pose vectors of shape (..., T, 16) (with a frame axis), got shape (16,)."),
    "nerf_frequencies": (lambda: camera.nerf_encoding(P, 0), ValueError,
                         "`num_frequencies` must be a positive integer, got 0."),
    "nerf_int": (lambda: camera.nerf_encoding(P.long()), ValueError,
                 "`x` must be a floating point tensor, got dtype torch.int64."),
    "path_frames_bool": (lambda: camera.interpolate_camera_path(P[0, 0], P[0, 1], True), InvalidTypeError,
                         "`num_frames` must be a positive integer, got True (a bool)."),
    "path_frames_float": (lambda: camera.interpolate_camera_path(P[0, 0], P[0, 1], 2.0), InvalidTypeError,
                          "`num_frames` must be a positive integer, got 2.0."),
    "path_frames_zero": (lambda: camera.interpolate_camera_path(P[0, 0], P[0, 1], 0), ValueError,
                         "`num_frames` must be a positive integer, got 0."),
    "path_nan": (lambda: camera.interpolate_camera_path(P[0, 0], _edit(P[0, 1], 7, NAN), 2), ValueError,
                 "`end_pose` must contain only finite values"),
    "masked_float_mask": (lambda: camera.interpolate_masked_poses(P, torch.zeros(2, 3)), ValueError,
                          "`mask` must be a bool tensor (True = replace that frame), got dtype torch.float32."),
    "masked_list_mask": (lambda: camera.interpolate_masked_poses(P, [[True] * 3] * 2), ValueError,
                         "`mask` must be a tensor of shape (B, T) = (2, 3), got a list."),
    "masked_nan_known": (lambda: camera.interpolate_masked_poses(_edit(P, (0, 0, 8), NAN),
                                                                 torch.zeros(2, 3, dtype=torch.bool)), ValueError,
                         "`poses (unmasked frames)` must contain only finite values"),
    "slerp_t_nan": (lambda: camera.slerp_poses(P[0, 0], P[0, 1], NAN), ValueError,
                    "`t` must contain only finite values, got 1 NaN and 0 inf entries (of 1)."),
    "slerp_t_str": (lambda: camera.slerp_poses(P[0, 0], P[0, 1], "half"), InvalidTypeError,
                    "`t` must be a number or a 1-D tensor of fractions, got 'half'."),
    "slerp_t_2d": (lambda: camera.slerp_poses(P[0, 0], P[0, 1], torch.zeros(2, 2)), ValueError,
                   "`t` must be a scalar or a 1-D tensor (N,), got shape (2, 2)."),
    "slerp_t_bool": (lambda: camera.slerp_poses(P[0, 0], P[0, 1], True), InvalidTypeError,
                     "`t` must be a number or a 1-D tensor of fractions, got True (a bool)."),
    "quaternion_zero": (lambda: camera.quaternion_to_rotation(torch.zeros(4)), ValueError,
                        "`quaternion` must have a non-zero norm to describe a rotation, got min norm 0."),
    "quaternion_shape": (lambda: camera.quaternion_to_rotation(torch.ones(3)), ValueError,
                         "`quaternion` must have shape (..., 4) (w, x, y, z), got shape (3,)."),
    "quaternion_of_shear": (lambda: camera.rotation_to_quaternion(_edit(ROTATION, (..., 0, 1), 0.5)), ValueError,
                            "`rotation` must hold orthonormal rotations"),
    "c2w_not_rigid": (lambda: camera.poses_from_camera_to_world(2 * W2C, INTRINSICS), ValueError,
                      "`camera_to_world` must hold orthonormal rotations"),
    "w2c_zero_focal": (lambda: camera.poses_from_world_to_camera(W2C, torch.zeros(2, 3, 4)), ValueError,
                       "`intrinsics` must have non-zero focal lengths fx, fy"),
    "w2c_shape": (lambda: camera.poses_from_world_to_camera(W2C[..., :3], INTRINSICS), ValueError,
                  "`world_to_camera` must have shape (..., 4, 4) or (..., 3, 4), got shape (2, 3, 4, 3)."),
    "to_w2c_nan": (lambda: camera.poses_to_world_to_camera(_edit(P, (1, 2, 15), INF)), ValueError,
                   "`poses` must contain only finite values, got 0 NaN and 1 inf entries"),
    "to_c2w_shape": (lambda: camera.poses_to_camera_to_world(P[..., :15]), ValueError,
                     "`poses` must be pose vectors of shape (..., 16), got shape (2, 3, 15)."),
    "to_quaternions_shear": (lambda: camera.poses_to_quaternions(_edit(P, (..., 5), 0.5)), ValueError,
                             "`poses` must hold orthonormal rotations"),
    "join_shape": (lambda: camera.join_poses(INTRINSICS, ROTATION[..., :2], P[..., 7:10]), ValueError,
                   "`rotation` must have shape (..., 3, 3), got shape (2, 3, 3, 2)."),
    "split_shape": (lambda: camera.split_poses(P[..., :10]), ValueError,
                    "`poses` must be a tensor of shape (..., 16), got shape (2, 3, 10)."),
    "camera_poses_nan": (lambda: camera.CameraPoses.from_vectors(_edit(P, (0, 0, 0), NAN)), ValueError,
                         "`poses` must contain only finite values"),
}


@pytest.mark.parametrize("case", sorted(CAMERA))
def test_bad_camera_input(case):
    expect_error(*CAMERA[case])


def test_rotation_tolerance():
    slightly_off = _edit(P, (..., 4), P[..., 4] + 1e-5)  # float32 rounding of real data: accepted
    camera.validate_poses(slightly_off)
    camera.validate_poses(_edit(P, (..., 4), P[..., 4] + 2e-3), rotation_atol=1e-2)
    expect_error(lambda: camera.validate_poses(_edit(P, (..., 4), P[..., 4] + 2e-3)), ValueError, "orthonormal")


# ----------------------------------------------------------------------------------------------------------------
# Conversion of official checkpoints and load_transformer
# ----------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def dit_fixture(dfot_fixtures_dir):
    _, config, state_dict = load_fixture(dfot_fixtures_dir, "dit3d_discrete")
    return config, state_dict


def _backbone(config: dict, **changes) -> dict:
    return {**config, "backbone_config": {**config["backbone_config"], **changes}}


def _without(config: dict, key: str) -> dict:
    return {k: v for k, v in config.items() if k != key}


def _write(path, data: bytes):
    path.write_bytes(data)
    return path


class _Payload:
    def __reduce__(self):
        return (print, ("never run",))


# name -> (function of (config, state_dict, tmp_path) making the call, error, message fragment)
CONVERSION = {
    "safetensors_truncated": (
        lambda c, s, d: convert_dfot_checkpoint(_write(d / "m.safetensors", b"\x08\x00\x00\x00\x00\x00\x00\x00{"), c),
        ValueError, "m.safetensors' is not a readable safetensors file (Error while deserializing header"),
    "safetensors_empty": (lambda c, s, d: convert_dfot_checkpoint(_write(d / "e.safetensors", b""), c), ValueError,
                          "e.safetensors' is not a readable safetensors file"),
    "torch_truncated": (lambda c, s, d: convert_dfot_checkpoint(_write(d / "t.ckpt", b"PK\x03\x04junk"), c), ValueError,
                        "t.ckpt' is not a readable torch file"),
    "torch_empty": (lambda c, s, d: convert_dfot_checkpoint(_write(d / "e.pt", b""), c), ValueError,
                    "e.pt' is not a readable torch file (EOFError"),
    "pickle_payload": (lambda c, s, d: convert_dfot_checkpoint(
        _write(d / "evil.ckpt", pickle.dumps({"state_dict": _Payload()})), c), ValueError,
        "could not be loaded with torch.load(weights_only=True)"),
    # issue 24: a state dict full of NaN used to convert; the first weight (in the file's order) is named
    "nan_weights": (lambda c, s, d: convert_dfot_checkpoint({k: v.float() * NAN for k, v in s.items()}, c), ValueError,
                    "`checkpoint key 'dit_base.blocks.0.attn.proj.bias'` must contain only finite values, got 96 NaN"),
    "folder": (lambda c, s, d: convert_dfot_checkpoint(d, c), ValueError,
               "`checkpoint` must be a file, got the folder"),
    "suffix": (lambda c, s, d: convert_dfot_checkpoint(_write(d / "m.h5", b"\0"), c), ValueError,
               "`checkpoint` must be a .safetensors file or a torch file (.ckpt, .pt, .pth, .bin), got 'm.h5'."),
    "missing_file": (lambda c, s, d: convert_dfot_checkpoint(d / "none.ckpt", c), FileNotFoundError,
                     "`checkpoint` file not found:"),
    "not_a_checkpoint": (lambda c, s, d: convert_dfot_checkpoint(3, c), ValueError,
                         "`checkpoint` must be a path or a mapping of tensors, got int."),
    "state_dict_list": (lambda c, s, d: convert_dfot_checkpoint({"state_dict": [1]}, c), ValueError,
                        "`checkpoint['state_dict']` must be a mapping, got list."),
    "no_tensors": (lambda c, s, d: convert_dfot_checkpoint({"step": 3}, c), ValueError,
                   "`checkpoint` must hold backbone tensors under one of"),
    "non_tensor_value": (lambda c, s, d: convert_dfot_checkpoint({"diffusion_model.model.dit_base.x": "w"}, c),
                         ValueError, "`checkpoint` key 'diffusion_model.model.dit_base.x' must hold a tensor, got "
                                     "str."),
    "unknown_prefix": (lambda c, s, d: convert_dfot_checkpoint({f"ema.{k}": v for k, v in s.items()}, c), ValueError,
                       "key(s) that are not DiT3D backbone weights, e.g. ['ema."),
    "unknown_key": (lambda c, s, d: convert_dfot_checkpoint({**s, "dit_base.extra.weight": torch.zeros(1)}, c),
                    ValueError, "`checkpoint` has 1 key(s) that are not DiT3D backbone weights, e.g. "
                                "['dit_base.extra.weight']"),
    "size_mismatch": (lambda c, s, d: convert_dfot_checkpoint(s, _backbone(c, mlp_ratio=2.0)), ValueError,
                      "transformer_blocks.0.ff.net.0.proj.weight (from 'dit_base.blocks.0.mlp.fc1.weight'): checkpoint "
                      "(384, 96) vs model (192, 96)"),
    "size_mismatch_file": (lambda c, s, d: convert_dfot_checkpoint(
        _save(s, d / "w.safetensors"), _backbone(c, mlp_ratio=2.0)), ValueError,
        "w.safetensors' do not match the model configured from `dfot_config`"),
    "depth_mismatch": (lambda c, s, d: convert_dfot_checkpoint(s, _backbone(c, depth=3)), ValueError,
                       "missing ['transformer_blocks.2."),
    "config_list": (lambda c, s, d: convert_dfot_checkpoint(s, [c]), ValueError,
                    "`dfot_config` must be a mapping with backbone_config, x_shape and max_tokens, got a list."),
    "config_no_shape": (lambda c, s, d: convert_dfot_checkpoint(s, _without(c, "x_shape")), ValueError,
                        "`dfot_config` is missing 'x_shape'"),
    "backbone_str": (lambda c, s, d: convert_dfot_checkpoint(s, {**c, "backbone_config": "dit3d"}), ValueError,
                     "`dfot_config['backbone_config']` must be a mapping, got 'dit3d'."),
    "x_shape_pair": (lambda c, s, d: convert_dfot_checkpoint(s, {**c, "x_shape": [4, 16]}), ValueError,
                     "`dfot_config['x_shape']` must be [C, H, W], got [4, 16]."),
    "x_shape_zero": (lambda c, s, d: convert_dfot_checkpoint(s, {**c, "x_shape": [4, 0, 16]}), ValueError,
                     "`dfot_config['x_shape'][1]` must be a positive integer, got 0."),
    "max_tokens_zero": (lambda c, s, d: convert_dfot_checkpoint(s, {**c, "max_tokens": 0}), ValueError,
                        "`dfot_config['max_tokens']` must be a positive integer, got 0."),
    "hidden_size_missing": (lambda c, s, d: convert_dfot_checkpoint(s, {**c, "backbone_config": _without(
        c["backbone_config"], "hidden_size")}), ValueError,
            "`dfot_config['backbone_config']` is missing ['hidden_size']"),
    "depth_negative": (lambda c, s, d: convert_dfot_checkpoint(s, _backbone(c, depth=-1)), ValueError,
                       "`dfot_config['backbone_config']['depth']` must be a positive integer, got -1."),
    "heads_zero": (lambda c, s, d: convert_dfot_checkpoint(s, _backbone(c, num_heads=0)), ValueError,
                   "`dfot_config['backbone_config']['num_heads']` must be a positive integer, got 0."),
    "mlp_ratio_negative": (lambda c, s, d: convert_dfot_checkpoint(s, _backbone(c, mlp_ratio=-4.0)), ValueError,
                           "`dfot_config` does not describe a valid DFoTTransformer3DModel: `mlp_ratio` must be"),
    "name": (lambda c, s, d: convert_dfot_checkpoint(s, _backbone(c, name="unet3d")), ValueError,
             "`dfot_config['backbone_config']['name']` must be 'dit3d' or 'u_vit3d_pose', got 'unet3d'."),
    "dtype_str": (lambda c, s, d: convert_dfot_checkpoint(s, c, torch_dtype="float16"), ValueError,
                  "`torch_dtype` must be None or a floating-point torch.dtype, got 'float16'."),
    "dtype_int": (lambda c, s, d: convert_dfot_checkpoint(s, c, torch_dtype=torch.int8), ValueError,
                  "`torch_dtype` must be None or a floating-point torch.dtype"),
}


def _save(state_dict, path):
    save_file({k: v.contiguous() for k, v in state_dict.items()}, str(path))
    return path


@pytest.mark.parametrize("case", sorted(CONVERSION))
def test_bad_dit_conversion(dit_fixture, tmp_path, case):
    make, error, message = CONVERSION[case]
    config, state_dict = dit_fixture
    expect_error(lambda: make(config, state_dict, tmp_path), error, message)


@pytest.fixture(scope="module")
def uvit_fixture(dfot_fixtures_dir):
    _, config, state_dict = load_fixture(dfot_fixtures_dir, "uvit3d_pose")
    return config, state_dict


UVIT_CONVERSION = {
    "wrong_heads": (lambda c, s: (s, _backbone(c, num_heads=4)),
                    "has width 48 but num_heads=4 gives head dim 24; fix backbone_config['num_heads']."),
    "zero_heads": (lambda c, s: (s, _backbone(c, num_heads=0)),
                   "`dfot_config` does not describe a valid DFoTUViT3DModel (official channels -> block_out_channels, "
                   "num_updown_blocks -> layers_per_block, num_heads -> num_attention_heads): `num_attention_heads` "
                   "must be a positive integer, got 0."),
    "fractional_patch": (lambda c, s: (s, _backbone(c, patch_size=2.7)),
                         "`patch_size` must be a positive integer, got 2.7."),
    "missing_channels": (lambda c, s: (s, {**c, "backbone_config": _without(c["backbone_config"], "channels")}),
                         "`dfot_config['backbone_config']` is missing ['channels']"),
    "fused_rows": (lambda c, s: ({**s, "mid_blocks.0.fused_attn_mlp_proj.weight": torch.zeros(10, 128)}, c),
                   "`mid_blocks.0.fused_attn_mlp_proj.weight` must have more than 3 * 128 rows"),
    "extra_key": (lambda c, s: ({**s, "extra.weight": torch.zeros(1)}, c),
                  "Cannot convert the state dict: Official U-ViT3D state dict does not match DFoTUViT3DModel"),
    "shape": (lambda c, s: ({**s, "embed_input.proj.bias": torch.zeros(7)}, c),
              "patch_embed.bias: checkpoint (7,) vs model (32,)"),
    "non_tensor": (lambda c, s: ({**s, "embed_input.proj.bias": [0.0]}, c), "missing keys (1): ['patch_embed.bias']"),
}


@pytest.mark.parametrize("case", sorted(UVIT_CONVERSION))
def test_bad_uvit_conversion(uvit_fixture, case):
    make, message = UVIT_CONVERSION[case]
    state_dict, config = make(*uvit_fixture)
    expect_error(lambda: convert_dfot_checkpoint(state_dict, config), ValueError, message)


def test_uvit_converter_alone_names_the_key(uvit_fixture):
    config, state_dict = uvit_fixture
    expect_error(lambda: uvit3d_pose_from_official({**state_dict, "x": 1}, config), ValueError,
                 "`state_dict` key 'x' must hold a tensor, got int.")


def _folder(tmp_path, edit=None, weights: bytes | None = None):
    folder = tmp_path / "model"
    if not folder.exists():
        DFoTTransformer3DModel(**DIT).save_pretrained(folder)
    if edit is not None:
        (folder / "config.json").write_text(edit(json.loads((folder / "config.json").read_text())))
    if weights is not None:
        (folder / "diffusion_pytorch_model.safetensors").write_bytes(weights)
    return folder


def _config_file(tmp_path, name: str, text: str):
    path = tmp_path / name
    path.write_text(text)
    return path


LOADING = {
    "config_json": (lambda d: load_transformer(_folder(d, lambda c: "{bad")), ValueError,
                    "config.json' is not valid JSON: Expecting property name"),
    "config_list": (lambda d: load_transformer(_folder(d, lambda c: "[1]")), ValueError,
                    "config.json' must hold a JSON object, got list."),
    "config_value": (lambda d: load_transformer(_folder(d, lambda c: json.dumps({**c, "patch_size": 0}))), ValueError,
                     "could not load DFoTTransformer3DModel from"),
    "weights_corrupt": (lambda d: load_transformer(_folder(d, weights=b"\0" * 40)), OSError,
                        "diffusion_pytorch_model.safetensors"),
    "weights_shape": (lambda d: load_transformer(_folder(d, lambda c: json.dumps({**c, "attention_head_dim": 4}))),
                      ValueError, "because camera_embedding.bias expected shape torch.Size([8]), but got "
                                  "torch.Size([16])"),
    "dfot_config_json": (lambda d: load_transformer({"a": torch.zeros(1)}, _config_file(d, "c.json", "{")), ValueError,
                         "c.json' is not valid JSON"),
    "dfot_config_yaml": (lambda d: load_transformer({"a": torch.zeros(1)}, _config_file(d, "c.yaml", "a: [1")),
                         ValueError, "c.yaml' is not valid YAML"),
    "dfot_config_list": (lambda d: load_transformer({"a": torch.zeros(1)}, _config_file(d, "c.json", "[1]")),
                         ValueError, "c.json' must hold a mapping, got list."),
}


@pytest.mark.parametrize("case", sorted(LOADING))
def test_bad_load_transformer(tmp_path, case):
    if case == "dfot_config_yaml":
        pytest.importorskip("yaml")
    make, error, message = LOADING[case]
    expect_error(lambda: make(tmp_path), error, message)


def _convert_args(tmp_path, dit_fixture, **changes):
    config, state_dict = dit_fixture
    checkpoint, config_path = tmp_path / "model.pt", tmp_path / "config.json"
    torch.save(state_dict, checkpoint)
    config_path.write_text(json.dumps(config))
    args = {"--checkpoint": checkpoint, "--config": config_path, "--output_dir": tmp_path / "out", **changes}
    return [str(part) for item in args.items() for part in item]


CLI = {
    "checkpoint": (lambda d: {"--checkpoint": _write(d / "bad.pt", b"")}, "bad.pt' is not a readable torch file"),
    "config": (lambda d: {"--config": _config_file(d, "broken.json", "{")},
               "--config: expected a JSON file of backbone settings, got"),
    "output_file": (lambda d: {"--output_dir": _write(d / "taken", b"x")}, "--output_dir: expected a folder, got"),
}


@pytest.mark.parametrize("case", sorted(CLI))
def test_convert_command_prints_one_line_and_exits_2(tmp_path, dit_fixture, capsys, case):
    changes, message = CLI[case]
    assert convert_dfot_command(_convert_args(tmp_path, dit_fixture, **changes(tmp_path))) == 2
    err = capsys.readouterr().err
    assert err.startswith("syn2seq-convert-dfot: error: ") and message in err and "Traceback" not in err
    assert not (tmp_path / "out").exists() or case == "output_file"
    with pytest.raises((ValueError, OSError), match=re.escape(message)):  # --debug re-raises
        convert_dfot_command([*_convert_args(tmp_path, dit_fixture, **changes(tmp_path)), "--debug"])


def test_convert_command_writes_the_folder_without_leftovers(tmp_path, dit_fixture):
    assert convert_dfot_command(_convert_args(tmp_path, dit_fixture)) == 0
    assert (tmp_path / "out" / "config.json").is_file()
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".out.tmp")]
    shutil.rmtree(tmp_path / "out")


# ----------------------------------------------------------------------------------------------------------------
# Pipeline call arguments that used to fail deep inside a library (issue 24)
# ----------------------------------------------------------------------------------------------------------------
def _tiny_pipeline():
    from diffusers_syn2seq.pipelines import Syn2SeqPipeline
    from diffusers_syn2seq.schedulers import DiffusionForcingScheduler

    torch.manual_seed(0)
    transformer = DFoTTransformer3DModel(**{**DIT, "camera_ray_type": None, "condition_dim": None}).eval()
    pipe = Syn2SeqPipeline(transformer=transformer, scheduler=DiffusionForcingScheduler(), mode="video",
                           num_transition_frames=0)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _shrink(pipe, i, t, kwargs):
    return {"latents": kwargs["latents"][:, :, :1]}


PIPELINE_CALLS = {
    "history_subsets_str": ({"history_guidance": "temporal", "history_subsets": "abc"},
                            "`history_subsets` must be a non-empty list of index lists for temporal guidance, got "
                            "'abc'."),
    "history_subsets_inner": ({"history_guidance": "temporal", "history_subsets": [[0], "1"]},
                              "`history_subsets[1]` must be a list of history-frame indices (ints), got '1'."),
    "callback_shape": ({"callback_on_step_end": _shrink},
                       "`callback_on_step_end` must return `latents` as a float tensor of the shape it was given "
                       "(1, 3, 4, 8, 8), got a Tensor of shape (1, 3, 1, 8, 8) and dtype torch.float32."),
    "callback_type": ({"callback_on_step_end": lambda pipe, i, t, kwargs: kwargs["latents"]},
                      "`callback_on_step_end` must return None or a dict of tensors, got a Tensor of shape"),
}


@pytest.mark.parametrize("case", sorted(PIPELINE_CALLS))
def test_bad_pipeline_calls(case):
    kwargs, message = PIPELINE_CALLS[case]
    pipe = _tiny_pipeline()
    expect_error(lambda: pipe(torch.rand(2, 3, 8, 8), num_frames=2, num_inference_steps=2, **kwargs), ValueError,
                 message)
