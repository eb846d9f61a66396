# SPDX-License-Identifier: Apache-2.0
"""modules_dfot: the RoPE3D, noise features, input rules, condition keep-mask and retired config key that both
DFoT backbones share, tested on both backbones with the same inputs and the same expectations."""

import json
import logging
from contextlib import contextmanager

import pytest
import torch

from diffusers_syn2seq.models import DFoTTransformer3DModel, DFoTUViT3DModel
from diffusers_syn2seq.models.modules_dfot import (
    DFoTFourierEmbedding,
    _cached_rope3d_table,
    _rotate_pairs_real,
    apply_rope3d,
    condition_keep_mask,
    fourier_noise_features,
    retire_camera_dropout,
    rope3d,
    rope3d_axis_dims,
    sinusoidal_noise_features,
)

# Both backbones on the same input contract: 3 channels, 4 frames of 16x16, a 3-d condition, Plücker rays.
SHARED = dict(in_channels=3, sample_size=16, max_frames=4, patch_size=2, condition_dim=3, camera_ray_type="plucker",
              noise_embedding_type="fourier")
DIT = dict(num_layers=2, num_attention_heads=2, attention_head_dim=16)
UVIT = dict(block_out_channels=[16, 32], block_types=["ResBlock", "TransformerBlock"], block_dropouts=[0.0, 0.0],
            layers_per_block=[1], num_mid_blocks=1, num_attention_heads=2, emb_channels=32, norm_num_groups=8)
BACKBONES = {"dit": (DFoTTransformer3DModel, DIT), "uvit": (DFoTUViT3DModel, UVIT)}


def make_model(kind: str, **overrides) -> torch.nn.Module:
    """A tiny backbone whose every weight is non-zero (zero-initialised gates would make equalities trivial)."""
    cls, sizes = BACKBONES[kind]
    torch.manual_seed(0)
    model = cls(**{**SHARED, **sizes, **overrides})
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.1 * torch.randn(param.shape, generator=generator))
    return model.eval()


def make_inputs(batch: int = 2, frames: int = 4, size: int = 16) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(2)
    return dict(
        hidden_states=torch.randn(batch, 3, frames, size, size, generator=generator),
        timestep=torch.randn(batch, frames, generator=generator),
        condition=torch.randn(batch, frames, 3, generator=generator),
        camera_rays=torch.randn(batch, 6, frames, size, size, generator=generator),
    )


@pytest.fixture(scope="module", params=sorted(BACKBONES))
def backbone(request):
    return request.param, make_model(request.param)


def run(model, **inputs) -> torch.Tensor:
    with torch.no_grad():
        return model(**inputs).sample


# ----------------------------------------------------------------------------------------------------------------
# RoPE3D
# ----------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "head_dim,split",
    [(72, (24, 24, 24)), (64, (20, 22, 22)), (40, (12, 14, 14)), (38, (14, 12, 12)), (48, (16, 16, 16))],
)
def test_rope_split_matches_dfot(head_dim, split):
    # (d/2) % 3 == 0 -> (d/6,)*3 pairs; == 1 -> (d/6+1, d/6, d/6); == 2 -> (d/6, d/6+1, d/6+1) (dfot.md)
    assert rope3d_axis_dims(head_dim) == split
    table = rope3d(head_dim, 2, 3, 4)
    assert table.shape == (24, head_dim // 2, 2) and table.dtype == torch.float32


def reference_rope(x: torch.Tensor, grid: tuple[int, int, int], theta: float = 10000.0) -> torch.Tensor:
    """DFoT's formula, written out independently of modules_dfot: per axis, pair i of its d_a channels turns by
    pos_a / theta ** (2 i / d_a); x * cos + (-x1, x0) * sin with tables repeated over each pair; in float64."""
    positions = torch.cartesian_prod(*(torch.arange(n, dtype=torch.float64) for n in grid))  # (N, 3), f-major
    angles = torch.cat([
        positions[:, axis, None] / theta ** (torch.arange(0, d, 2, dtype=torch.float64) / d)
        for axis, d in enumerate(rope3d_axis_dims(x.shape[-1]))
    ], dim=-1).repeat_interleave(2, dim=-1)  # (N, head_dim)
    angles = angles.view(angles.shape[0], *([1] * (x.ndim - 3)), angles.shape[-1])
    x64 = x.double()
    swapped = torch.stack([-x64[..., 1::2], x64[..., 0::2]], dim=-1).flatten(-2)
    return x64 * angles.cos() + swapped * angles.sin()


@pytest.mark.parametrize("path", ["eager (complex)", "compiled (real)"])
def test_rope_matches_dfot_formula_on_fused_and_separate_layouts(path):
    grid, heads, head_dim = (3, 2, 4), 2, 20
    generator = torch.Generator().manual_seed(0)
    qkv = torch.randn(2, 24, 3, heads, head_dim, generator=generator)  # a fused projection, (B, N, 3, heads, d)
    table = rope3d(head_dim, *grid)
    if path == "eager (complex)":
        rotate = apply_rope3d
    else:  # the formulation `torch.compile` traces, called directly
        def rotate(x, emb):
            view = emb.view(emb.shape[0], *([1] * (x.ndim - 3)), *emb.shape[1:])
            return _rotate_pairs_real(x.float().unflatten(-1, (-1, 2)), view).flatten(-2).to(x.dtype)
    query_key = qkv[:, :, :2]  # a strided view: read in place
    expected = reference_rope(query_key, grid)
    torch.testing.assert_close(rotate(query_key, table).double(), expected, rtol=0, atol=1e-5)
    torch.testing.assert_close(rotate(qkv[:, :, 1], table).double(), expected[:, :, 1], rtol=0, atol=1e-5)
    low = rotate(query_key.bfloat16(), table)
    assert low.dtype == torch.bfloat16
    torch.testing.assert_close(low.double(), reference_rope(query_key.bfloat16(), grid), rtol=1e-2, atol=1e-2)


def test_rope_table_is_cached_and_serves_training_after_inference_mode():
    _cached_rope3d_table.cache_clear()
    with torch.inference_mode():
        first = rope3d(8, 2, 3, 5)
    assert rope3d(8, 2, 3, 5) is first and rope3d(8, 2, 3, 5, device="cpu") is first
    assert rope3d(8, 2, 3, 5, theta=100.0) is not first
    x = torch.randn(1, 30, 2, 8, requires_grad=True)
    apply_rope3d(x, first).pow(2).sum().backward()  # an inference tensor could not be saved for backward
    torch.testing.assert_close(x.grad, 2 * x.detach())  # a rotation: d|Rx|^2/dx = 2x


def test_rope_scores_depend_only_on_relative_positions():
    frames, height, width, head_dim = 3, 2, 2, 24
    rotary_emb = rope3d(head_dim, frames, height, width)
    generator = torch.Generator().manual_seed(0)
    q, k = torch.randn(2, 1, 1, 1, head_dim, generator=generator).double()
    q, k = q.expand(1, frames * height * width, 1, head_dim), k.expand(1, frames * height * width, 1, head_dim)
    rq, rk = apply_rope3d(q, rotary_emb)[0, :, 0], apply_rope3d(k, rotary_emb)[0, :, 0]
    torch.testing.assert_close(rq.norm(dim=-1), q[0, :, 0].norm(dim=-1))  # a rotation

    def index(f, h, w):
        return (f * height + h) * width + w

    # Moving both tokens one frame later leaves their score unchanged.
    for a, b in [((0, 0, 1), (1, 1, 0)), ((0, 1, 1), (0, 0, 0)), ((1, 0, 0), (0, 1, 1))]:
        shifted_a, shifted_b = (a[0] + 1, *a[1:]), (b[0] + 1, *b[1:])
        score = rq[index(*a)] @ rk[index(*b)]
        torch.testing.assert_close(rq[index(*shifted_a)] @ rk[index(*shifted_b)], score, rtol=1e-5, atol=1e-5)


def test_rope_rejects_odd_head_dim():
    with pytest.raises(ValueError, match="`attention_head_dim` must be even for rotary embeddings, got 15"):
        rope3d_axis_dims(15)


# ----------------------------------------------------------------------------------------------------------------
# Noise-level features
# ----------------------------------------------------------------------------------------------------------------
def test_fourier_features_formula_and_buffers():
    embedding = DFoTFourierEmbedding(8)
    assert set(dict(embedding.named_buffers())) == {"freqs", "phases"}  # the official checkpoint names
    levels = torch.tensor([[-1.5, 0.0], [0.25, 2.0]])
    expected = 2**0.5 * torch.cos(levels[..., None] * embedding.freqs + embedding.phases)
    torch.testing.assert_close(embedding(levels), expected)
    torch.testing.assert_close(fourier_noise_features(levels, embedding.freqs, embedding.phases), expected)


def test_sinusoidal_features_clamp_clean_label():
    levels = torch.tensor([[-1, 0, 500]])
    features = sinusoidal_noise_features(levels, 16)
    assert features.shape == (1, 3, 16)
    torch.testing.assert_close(features[0, 0], features[0, 1], rtol=0, atol=0)


@pytest.mark.parametrize("kind", sorted(BACKBONES))
def test_clean_context_label_minus_one_equals_zero_for_sinusoidal_models(kind):
    model = make_model(kind, noise_embedding_type="sinusoidal")
    inputs = make_inputs()
    levels = torch.tensor([[-1, -1, 300, 999], [-1, 20, 40, 60]])
    torch.testing.assert_close(
        run(model, **{**inputs, "timestep": levels}), run(model, **{**inputs, "timestep": levels.clamp(min=0)}),
        rtol=0, atol=0,
    )


# ----------------------------------------------------------------------------------------------------------------
# One set of input rules for both backbones
# ----------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("noise_embedding_type,level", [("fourier", 0.3), ("sinusoidal", 250)])
@pytest.mark.parametrize("kind", sorted(BACKBONES))
def test_scalar_timestep_equals_its_broadcast(kind, noise_embedding_type, level):
    model, inputs = make_model(kind, noise_embedding_type=noise_embedding_type), make_inputs()
    dtype = torch.float32 if isinstance(level, float) else torch.long
    per_frame = run(model, **{**inputs, "timestep": torch.full((2, 4), level, dtype=dtype)})
    for timestep in (level, torch.tensor(level), torch.full((2,), level, dtype=dtype)):
        torch.testing.assert_close(run(model, **{**inputs, "timestep": timestep}), per_frame, rtol=0, atol=0)
    assert not torch.allclose(run(model, **{**inputs, "timestep": torch.tensor([level, 2 * level])}), per_frame)


@pytest.mark.parametrize("name,mask_name", [("camera_rays", "camera_rays_mask"), ("condition", "condition_mask")])
def test_a_missing_condition_equals_an_all_masked_one(backbone, name, mask_name):
    _, model = backbone
    inputs = make_inputs()
    missing = run(model, **{**inputs, name: None})
    masked = run(model, **inputs, **{mask_name: torch.zeros(2, 4, dtype=torch.bool)})
    torch.testing.assert_close(missing, masked, rtol=0, atol=0)
    assert not torch.allclose(missing, run(model, **inputs), atol=1e-4)  # the condition did matter


def _bad(case: str, inputs: dict) -> dict:
    x = inputs["hidden_states"]
    changes = {
        "not_tensor": dict(hidden_states=x.tolist()),
        "ndim": dict(hidden_states=x[:, :, 0]),
        "channels": dict(hidden_states=torch.cat([x, x[:, :1]], dim=1)),
        "size": dict(hidden_states=x[..., :15, :15], camera_rays=inputs["camera_rays"][..., :15, :15]),
        "frames": dict(hidden_states=torch.cat([x, x[:, :, :1]], dim=2), timestep=0.5, condition=None,
                       camera_rays=None),
        "timestep_shape": dict(timestep=torch.zeros(2, 3)),
        "timestep_one": dict(timestep=torch.zeros(1)),
        "timestep_bool": dict(timestep=torch.ones(2, 4, dtype=torch.bool)),
        "timestep_type": dict(timestep="noisy"),
        "condition_shape": dict(condition=inputs["condition"][..., :2]),
        "condition_mask": dict(condition_mask=torch.ones(2, 3, dtype=torch.bool)),
        "rays_shape": dict(camera_rays=torch.zeros(2, 180, 4, 16, 16)),
        "rays_mask": dict(camera_rays_mask=[[True] * 4] * 2),
    }
    return {**inputs, **changes[case]}


BAD_INPUTS = [
    ("not_tensor", r"`hidden_states` must be a tensor of shape \(B, C, F, H, W\) with C = in_channels = 3, got a list"),
    ("ndim", r"`hidden_states` must be a tensor of shape \(B, C, F, H, W\) .*, got \(2, 3, 16, 16\)\."),
    ("channels", r"`hidden_states` .* C = in_channels = 3, got \(2, 4, 4, 16, 16\)\."),
    ("size", r"`hidden_states` height and width must be multiples of \d \(the model's downsampling factor\), "
             r"got 15x15"),
    ("frames", r"`hidden_states` must have 1 to max_frames=4 frames .*, got 5\."),
    ("timestep_shape", r"`timestep` must be a scalar or have shape \(B,\) = \(2,\) or \(B, F\) = \(2, 4\), "
                       r"got \(2, 3\)"),
    ("timestep_one", r"`timestep` must be a scalar or have shape .*, got \(1,\)\."),
    ("timestep_bool", r"`timestep` must hold real noise levels \(integer or float\), got dtype torch.bool"),
    ("timestep_type", r"`timestep` must be a number or a tensor of noise levels, got str"),
    ("condition_shape", r"`condition` must be a tensor of shape \(B, F, condition_dim\) = \(2, 4, 3\), "
                        r"got \(2, 4, 2\)"),
    ("condition_mask", r"`condition_mask` must be a tensor of shape \(B, F\) = \(2, 4\) .*, got \(2, 3\)\."),
    ("rays_shape", r"`camera_rays` must be a tensor of shape \(B, C_ray, F, H, W\) = \(2, 6, 4, 16, 16\) for "
                   r"camera_ray_type='plucker', got \(2, 180, 4, 16, 16\)"),
    ("rays_mask", r"`camera_rays_mask` must be a tensor of shape \(B, F\) = \(2, 4\) .*, got a list"),
]


@pytest.mark.parametrize("case,message", BAD_INPUTS, ids=[case for case, _ in BAD_INPUTS])
def test_bad_inputs_raise_the_same_error_on_both_backbones(case, message):
    errors = {}
    for kind in sorted(BACKBONES):
        with pytest.raises(ValueError, match=message) as excinfo:
            make_model(kind)(**_bad(case, make_inputs()))
        errors[kind] = str(excinfo.value)
    if case != "size":  # only the downsampling factor differs (2 for the DiT, 4 for the U-ViT)
        assert errors["dit"] == errors["uvit"]


@pytest.mark.parametrize("kind", sorted(BACKBONES))
@pytest.mark.parametrize(
    "argument,overrides,message",
    [
        ("condition", {"condition_dim": None}, r"`condition` must be None for a model without a vector condition "
                                               r"\(condition_dim=None\), got \(2, 4, 3\)"),
        ("camera_rays", {"camera_ray_type": None}, r"`camera_rays` must be None for a model without pose "
                                                   r"conditioning \(camera_ray_type=None\), got \(2, 6, 4, 16, 16\)"),
    ],
)
def test_condition_given_to_a_model_without_it_raises(kind, argument, overrides, message):
    model, inputs = make_model(kind, **overrides), make_inputs()
    with pytest.raises(ValueError, match=message):
        model(**inputs)
    run(model, **{**inputs, argument: None})  # accepted without it


# ----------------------------------------------------------------------------------------------------------------
# Training-time dropout of the vector condition; poses are never dropped by the models
# ----------------------------------------------------------------------------------------------------------------
def test_condition_keep_mask():
    mask = torch.tensor([[True, False, True]] * 64)
    assert condition_keep_mask(None, 0.5, 64, 3, torch.device("cpu"), training=False) is None
    assert torch.equal(condition_keep_mask(mask, 0.5, 64, 3, torch.device("cpu"), training=False), mask)
    assert condition_keep_mask(None, 0.0, 64, 3, torch.device("cpu"), training=True) is None
    torch.manual_seed(5)
    keep = condition_keep_mask(None, 0.5, 64, 3, torch.device("cpu"), training=True)
    assert keep.shape == (64, 3) and keep.dtype == torch.bool
    assert torch.equal(keep, keep[:, :1].expand(64, 3))  # whole samples, as DFoT
    assert 0 < int(keep[:, 0].sum()) < 64
    torch.manual_seed(5)
    combined = condition_keep_mask(mask, 0.5, 64, 3, torch.device("cpu"), training=True)
    assert torch.equal(combined, keep & mask)


def test_training_mode_never_drops_poses(backbone):
    kind, _ = backbone
    model, inputs = make_model(kind), make_inputs(batch=8)
    inputs["condition"] = None
    evaluated = run(model, **inputs)
    model.train()
    for seed in range(3):
        torch.manual_seed(seed)
        torch.testing.assert_close(run(model, **inputs), evaluated, rtol=0, atol=0)


# ----------------------------------------------------------------------------------------------------------------
# Configs saved with the retired `camera_dropout`
# ----------------------------------------------------------------------------------------------------------------
@contextmanager
def captured_warnings(*names: str):
    """Warnings of the given loggers (diffusers' own logger does not propagate to the root, so caplog misses it)."""
    records = []
    handler = logging.Handler(level=logging.WARNING)
    handler.emit = records.append
    loggers = [logging.getLogger(name) for name in names]
    for logger in loggers:
        logger.addHandler(handler)
    try:
        yield records
    finally:
        for logger in loggers:
            logger.removeHandler(handler)


def _save_with_camera_dropout(model, folder, value):
    model.save_pretrained(folder)
    config = json.loads((folder / "config.json").read_text())
    config.pop("condition_dropout")  # as written before `condition_dropout` existed on the U-ViT
    (folder / "config.json").write_text(json.dumps({**config, "camera_dropout": value}))


@pytest.mark.parametrize("value", [0.0, 0.1])
def test_old_config_with_camera_dropout_still_loads(backbone, tmp_path, value):
    kind, model = backbone
    _save_with_camera_dropout(model, tmp_path / "old", value)
    with captured_warnings("diffusers", "diffusers_syn2seq") as records:
        loaded = type(model).from_pretrained(tmp_path / "old")
    messages = [record.getMessage() for record in records]
    assert not any("not expected" in m for m in messages), messages
    assert any(f"--camera_dropout {value}" in m for m in messages) == bool(value), messages
    assert "camera_dropout" not in loaded.config
    # The vector condition keeps its old dropout on the U-ViT, where `camera_dropout` used to drop it too.
    assert loaded.config.condition_dropout == (value if kind == "uvit" else 0.0)
    inputs = make_inputs()
    torch.testing.assert_close(run(loaded, **inputs), run(model, **inputs), rtol=0, atol=0)
    loaded.save_pretrained(tmp_path / "new")
    assert "camera_dropout" not in json.loads((tmp_path / "new" / "config.json").read_text())


def test_retire_camera_dropout_keeps_everything_else():
    config = {"_class_name": "DFoTUViT3DModel", "camera_ray_type": None, "camera_dropout": 0.3, "max_frames": 8}
    assert retire_camera_dropout(config, "DFoTUViT3DModel") == {
        "_class_name": "DFoTUViT3DModel", "camera_ray_type": None, "max_frames": 8
    }
    assert "camera_dropout" in config  # the caller's dict is not modified
