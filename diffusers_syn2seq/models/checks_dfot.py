# SPDX-License-Identifier: Apache-2.0
"""Argument checks of the two DFoT backbones (DiT3D and U-ViT3D): configuration at construction, inputs of `forward`.

Both backbones take the same inputs, so they accept and reject the same values with the same messages:

* ``hidden_states``: ``(B, C, F, H, W)`` floating-point noisy frames, ``B >= 1``, ``1 <= F <= max_frames``, ``H`` and
  ``W`` positive multiples of the model's downsampling factor; a float dtype other than the model's is cast to it;
* ``timestep``: a scalar (Python number or 0-d tensor), per sample ``(B,)`` or per frame ``(B, F)``, always broadcast
  to ``(B, F)``. ``noise_embedding_type="sinusoidal"`` takes integer DDPM levels in ``[-1, num_train_timesteps - 1]``
  (``-1`` = clean context, embedded as 0, as DFoT does; an integral float such as ``250.0`` is accepted);
  ``"fourier"`` takes a finite real ``model_timestep_scale * logSNR`` (0.125 * logSNR) of magnitude at most
  ``FOURIER_TIMESTEP_LIMIT`` (20: beyond it alpha_bar is exactly 0 or 1 in float32 for any scale <= 1, so no schedule
  produces it; a DDPM index such as 500 is refused);
* ``condition``: optional ``(B, F, condition_dim)`` floating-point per-frame vector; ``None`` means "no condition",
  identical to an all-False ``condition_mask``;
* ``camera_rays``: optional ``(B, C_ray, F, H, W)`` floating-point ray map (``diffusers_syn2seq.camera.ray_map``) for
  pose models; ``None`` means "no pose", identical to an all-False ``camera_rays_mask``;
* ``condition_mask``, ``camera_rays_mask``: optional ``(B, F)`` bool tensors, False gives that frame the null embedding.

Every floating-point input must be finite, masked frames included (a NaN times a zero mask is still NaN). The value
checks (finiteness, timestep range) cost one sum per input and a single host synchronisation per forward; they are
skipped while `torch.compile` traces the forward (a whole-model compile), where the shape checks still run.
"""

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from ..camera import RAY_MAP_CHANNELS
from ..validation import (
    InvalidTypeError,
    check_choice,
    check_finite,
    check_int,
    check_non_negative_int,
    check_positive_int,
    check_positive_number,
    check_probability,
    describe,
    sum_is_finite,
)

NOISE_EMBEDDING_TYPES = ("sinusoidal", "fourier")
RESIDUAL_FORMS = ("standard", "dfot")
UVIT_BLOCK_TYPES = ("ResBlock", "TransformerBlock")
# The largest |timestep| a Fourier-embedding model accepts (module docstring): sigmoid(20) is 1.0 in float32.
FOURIER_TIMESTEP_LIMIT = 20.0


# ----------------------------------------------------------------------------------------------------------------
# Configuration
# ----------------------------------------------------------------------------------------------------------------
def _check_sample_size(value: Any, factor: int | None = None, factor_text: str = "") -> int | list[int]:
    """An int or an ``(H, W)`` pair of positive ints, each a multiple of ``factor`` if given; pairs come back as lists
    (JSON)."""
    expected = "a positive integer or a pair (H, W) of them"
    expected += f", each divisible by {factor_text} = {factor}" if factor else ""
    if isinstance(value, Sequence) and not isinstance(value, str):
        if len(value) != 2:
            raise ValueError(f"`sample_size` must be {expected}, got {list(value)}.")
        sizes: int | list[int] = [check_positive_int(f"sample_size[{i}]", v) for i, v in enumerate(value)]
    else:
        try:
            sizes = check_positive_int("sample_size", value)
        except InvalidTypeError:
            raise InvalidTypeError(f"`sample_size` must be {expected}, got {describe(value)}.") from None
    if factor and any(size % factor for size in (sizes if isinstance(sizes, list) else [sizes])):
        raise ValueError(f"`sample_size` must be {expected}, got {sizes}.")
    return sizes


def _check_int_list(name: str, value: Any, minimum: int) -> list[int]:
    if not isinstance(value, Sequence) or isinstance(value, str):
        raise InvalidTypeError(f"`{name}` must be a list of integers >= {minimum}, got {describe(value)}.")
    return [check_int(f"{name}[{i}]", v, minimum=minimum) for i, v in enumerate(value)]


def _check_shared_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """The options both backbones have, normalised to plain Python values (sample size checked by the caller)."""
    checked = {
        "in_channels": check_positive_int("in_channels", config["in_channels"]),
        "max_frames": check_positive_int("max_frames", config["max_frames"]),
        "patch_size": check_positive_int("patch_size", config["patch_size"]),
        "num_attention_heads": check_positive_int("num_attention_heads", config["num_attention_heads"]),
        "noise_embedding_type": check_choice(
            "noise_embedding_type", config["noise_embedding_type"], NOISE_EMBEDDING_TYPES
        ),
        "noise_embedding_dim": check_positive_int("noise_embedding_dim", config["noise_embedding_dim"]),
        "num_train_timesteps": check_int("num_train_timesteps", config["num_train_timesteps"], minimum=2),
        "condition_dropout": check_probability("condition_dropout", config["condition_dropout"]),
        "norm_eps": check_positive_number("norm_eps", config["norm_eps"]),
        "rope_theta": check_positive_number("rope_theta", config["rope_theta"]),
    }
    out_channels = config["out_channels"]
    checked["out_channels"] = None if out_channels is None else check_positive_int("out_channels", out_channels)
    # 0 is DFoT's "no external condition" (external_cond_dim=0): the same as None.
    condition_dim = config["condition_dim"]
    checked["condition_dim"] = None if condition_dim is None else check_non_negative_int("condition_dim", condition_dim)
    checked["condition_dim"] = checked["condition_dim"] or None
    ray_type = config["camera_ray_type"]
    if ray_type is not None and not (isinstance(ray_type, str) and ray_type in RAY_MAP_CHANNELS):
        raise ValueError(
            f"`camera_ray_type` must be None or one of {tuple(RAY_MAP_CHANNELS)}, got {describe(ray_type)}."
        )
    checked["camera_ray_type"] = ray_type
    return checked


def check_dit_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """Checked and normalised options of a ``DFoTTransformer3DModel`` (its ``__init__`` arguments)."""
    checked = _check_shared_config(config)
    # Not checked against patch_size: the DiT runs at any multiple of it and refuses other sizes per forward, and
    # training/train.py builds the model before it checks the dataset's frame size with its own, more useful message.
    checked["sample_size"] = _check_sample_size(config["sample_size"])
    checked["num_layers"] = check_positive_int("num_layers", config["num_layers"])
    head_dim = checked["attention_head_dim"] = check_positive_int("attention_head_dim", config["attention_head_dim"])
    if head_dim % 2:
        raise ValueError(f"`attention_head_dim` must be even for rotary embeddings, got {head_dim}.")
    hidden_size = checked["num_attention_heads"] * head_dim
    ratio = checked["mlp_ratio"] = check_positive_number("mlp_ratio", config["mlp_ratio"])
    if int(hidden_size * ratio) < 1:
        raise ValueError(
            f"`mlp_ratio` must give the MLP at least one channel (hidden size {hidden_size} * mlp_ratio >= 1), "
            f"got {ratio}."
        )
    checked["residual_form"] = check_choice("residual_form", config["residual_form"], RESIDUAL_FORMS)
    return checked


def _check_uvit_levels(config: Mapping[str, Any], checked: dict[str, Any]) -> None:
    """Per-level lists of a U-ViT: lengths, entries, and the widths each block kind needs."""
    channels = checked["block_out_channels"] = _check_int_list("block_out_channels", config["block_out_channels"], 1)
    if not channels:
        raise ValueError("`block_out_channels` must list the width of at least one level, got [].")
    types = config["block_types"]
    if not isinstance(types, Sequence) or isinstance(types, str):
        raise InvalidTypeError(f"`block_types` must be a list of {UVIT_BLOCK_TYPES} entries, got {describe(types)}.")
    checked["block_types"] = [check_choice(f"block_types[{i}]", t, UVIT_BLOCK_TYPES) for i, t in enumerate(types)]
    dropouts = config["block_dropouts"]
    if not isinstance(dropouts, Sequence) or isinstance(dropouts, str):
        raise InvalidTypeError(f"`block_dropouts` must be a list of probabilities, got {describe(dropouts)}.")
    checked["block_dropouts"] = [check_probability(f"block_dropouts[{i}]", p) for i, p in enumerate(dropouts)]
    checked["layers_per_block"] = _check_int_list("layers_per_block", config["layers_per_block"], 0)
    num_levels = len(channels)
    if not (len(types) == len(dropouts) == num_levels and len(checked["layers_per_block"]) == num_levels - 1):
        raise ValueError(
            "`block_types` and `block_dropouts` need one entry per level and `layers_per_block` one per level but "
            f"the last; got {num_levels} levels, {len(types)} block types, {len(dropouts)} dropouts, "
            f"{len(checked['layers_per_block'])} layers_per_block."
        )
    heads, groups = checked["num_attention_heads"], checked["norm_num_groups"]
    for level, (kind, width, p) in enumerate(zip(checked["block_types"], channels, checked["block_dropouts"])):
        if kind == "ResBlock" and p != 0.0:
            raise ValueError(f"`block_dropouts[{level}]` must be 0 for a ResBlock level (no dropout), got {p}.")
        if kind == "ResBlock" and width % groups:
            raise ValueError(
                f"`block_out_channels[{level}]` must be divisible by norm_num_groups = {groups} (GroupNorm of a "
                f"ResBlock level), got {width}."
            )
        if kind == "TransformerBlock" and (width % heads or (width // heads) % 2):
            raise ValueError(
                f"`block_out_channels[{level}]` must split into num_attention_heads = {heads} heads of even size "
                f"(RoPE), got {width}."
            )


def check_uvit_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """Checked and normalised options of a ``DFoTUViT3DModel`` (its ``__init__`` arguments)."""
    checked = _check_shared_config(config)
    checked["norm_num_groups"] = check_positive_int("norm_num_groups", config["norm_num_groups"])
    _check_uvit_levels(config, checked)
    factor = checked["patch_size"] * 2 ** (len(checked["block_out_channels"]) - 1)
    checked["sample_size"] = _check_sample_size(config["sample_size"], factor, "patch_size * 2**(levels-1)")
    checked["num_mid_blocks"] = check_non_negative_int("num_mid_blocks", config["num_mid_blocks"])
    checked["emb_channels"] = check_positive_int("emb_channels", config["emb_channels"])
    checked["mlp_ratio"] = check_positive_int("mlp_ratio", config["mlp_ratio"])
    return checked


# ----------------------------------------------------------------------------------------------------------------
# Forward inputs
# ----------------------------------------------------------------------------------------------------------------
def _shape(value: Any) -> str:
    return str(tuple(value.shape)) if isinstance(value, torch.Tensor) else describe(value)


def _check_frame_mask(name: str, mask: Any, batch_size: int, num_frames: int) -> None:
    if mask is None:
        return
    if not isinstance(mask, torch.Tensor) or tuple(mask.shape) != (batch_size, num_frames):
        raise ValueError(
            f"`{name}` must be a tensor of shape (B, F) = ({batch_size}, {num_frames}) (False drops that frame's "
            f"embedding), got {_shape(mask)}."
        )
    if mask.dtype != torch.bool:
        raise ValueError(f"`{name}` must be a bool tensor (False drops that frame's embedding), got {mask.dtype}.")


def _check_float_input(name: str, value: torch.Tensor, device: torch.device) -> None:
    if not value.is_floating_point():
        raise ValueError(f"`{name}` must be a floating-point tensor, got dtype {value.dtype}.")
    if value.device != device:
        raise ValueError(f"`{name}` must be on the device of `hidden_states` ({device}), got {value.device}.")


def broadcast_timestep(timestep: Any, batch_size: int, num_frames: int, device: torch.device) -> torch.Tensor:
    """A scalar, 0-d, ``(B,)`` or ``(B, F)`` noise level -> ``(B, F)`` tensor on ``device`` (a view when it can).

    Raises a ``ValueError`` naming ``timestep``, the accepted shapes and the received one.
    """
    if not isinstance(timestep, torch.Tensor):
        if isinstance(timestep, bool):
            raise ValueError(f"`timestep` must be a number or a tensor of noise levels, got {timestep} (a bool).")
        try:
            timestep = torch.as_tensor(timestep)
        except (TypeError, ValueError, RuntimeError):
            raise ValueError(
                f"`timestep` must be a number or a tensor of noise levels, got {type(timestep).__name__}."
            ) from None
    if timestep.dtype == torch.bool or timestep.is_complex():
        raise ValueError(f"`timestep` must hold real noise levels (integer or float), got dtype {timestep.dtype}.")
    timestep = timestep.to(device)
    if timestep.ndim == 0:
        return timestep.expand(batch_size, num_frames)
    if tuple(timestep.shape) == (batch_size,):
        return timestep[:, None].expand(batch_size, num_frames)
    if tuple(timestep.shape) == (batch_size, num_frames):
        return timestep
    raise ValueError(
        f"`timestep` must be a scalar or have shape (B,) = ({batch_size},) or (B, F) = ({batch_size}, {num_frames}), "
        f"got {tuple(timestep.shape)}."
    )


def _check_video(hidden_states: Any, in_channels: int, max_frames: int, size_multiple: int) -> None:
    if not isinstance(hidden_states, torch.Tensor) or hidden_states.ndim != 5 or hidden_states.shape[1] != in_channels:
        raise ValueError(
            f"`hidden_states` must be a tensor of shape (B, C, F, H, W) with C = in_channels = {in_channels}, "
            f"got {_shape(hidden_states)}."
        )
    batch_size, _, num_frames, height, width = hidden_states.shape
    if batch_size < 1:
        raise ValueError(f"`hidden_states` must hold at least one sample (B >= 1), got {tuple(hidden_states.shape)}.")
    if height < 1 or width < 1 or height % size_multiple or width % size_multiple:
        raise ValueError(
            f"`hidden_states` height and width must be multiples of {size_multiple} (the model's downsampling "
            f"factor), got {height}x{width}."
        )
    if not 1 <= num_frames <= max_frames:
        raise ValueError(
            f"`hidden_states` must have 1 to max_frames={max_frames} frames (the model's window; longer videos are "
            f"generated with the pipeline's sliding window), got {num_frames}."
        )
    if not hidden_states.is_floating_point():
        raise ValueError(f"`hidden_states` must be a floating-point tensor, got dtype {hidden_states.dtype}.")


def _check_condition(condition: Any, condition_dim: int | None, batch_size: int, num_frames: int) -> None:
    if condition is None:
        return
    if not condition_dim:
        raise ValueError(
            "`condition` must be None for a model without a vector condition (condition_dim=None), got "
            f"{_shape(condition)}."
        )
    if not isinstance(condition, torch.Tensor) or tuple(condition.shape) != (batch_size, num_frames, condition_dim):
        raise ValueError(
            f"`condition` must be a tensor of shape (B, F, condition_dim) = ({batch_size}, {num_frames}, "
            f"{condition_dim}), got {_shape(condition)}."
        )


def _check_camera_rays(camera_rays: Any, camera_ray_type: str | None, video_shape: torch.Size) -> None:
    if camera_rays is None:
        return
    if camera_ray_type is None:
        raise ValueError(
            "`camera_rays` must be None for a model without pose conditioning (camera_ray_type=None), got "
            f"{_shape(camera_rays)}."
        )
    batch_size, _, num_frames, height, width = video_shape
    expected = (batch_size, RAY_MAP_CHANNELS[camera_ray_type], num_frames, height, width)
    if not isinstance(camera_rays, torch.Tensor) or tuple(camera_rays.shape) != expected:
        raise ValueError(
            f"`camera_rays` must be a tensor of shape (B, C_ray, F, H, W) = {expected} for "
            f"camera_ray_type={camera_ray_type!r}, got {_shape(camera_rays)}."
        )


def _discrete_levels_ok(timestep: torch.Tensor, num_train_timesteps: int) -> torch.Tensor:
    ok = (timestep >= -1) & (timestep <= num_train_timesteps - 1)
    if timestep.is_floating_point():
        ok = ok & (timestep == timestep.round())
    return ok


def _fourier_timestep_ok(timestep: torch.Tensor) -> torch.Tensor:
    return timestep.abs() <= FOURIER_TIMESTEP_LIMIT


def _check_values(
    tensors: dict[str, torch.Tensor | None], timestep: torch.Tensor, discrete_levels: int | None
) -> None:
    """Finite floating-point inputs and, for a discrete (sinusoidal) model, integer levels in range: all reduced on
    the device and read back with one synchronisation. Finiteness is probed through each tensor's sum
    (`validation.sum_is_finite`); the exact, slower path only runs when a probe fails, to confirm and word the error."""
    floats = {name: t for name, t in tensors.items() if t is not None and t.is_floating_point()}
    flags = [sum_is_finite(t) for t in floats.values()]
    if discrete_levels is not None:
        flags.append(_discrete_levels_ok(timestep, discrete_levels).all())
    else:
        flags.append(_fourier_timestep_ok(timestep).all())
    device = timestep.device
    if bool(torch.stack([flag.to(device) for flag in flags]).all()):
        return
    for name, tensor in floats.items():
        check_finite(name, tensor)
    ok = _discrete_levels_ok(timestep, discrete_levels) if discrete_levels is not None else \
        _fourier_timestep_ok(timestep)
    bad = timestep[~ok]
    if bad.numel() == 0:
        return  # a sum overflowed on finite values
    bad = bad.unique()
    shown = ", ".join(f"{v:g}" for v in bad[:4].tolist()) + (", ..." if bad.numel() > 4 else "")
    if discrete_levels is None:
        raise ValueError(
            f"`timestep` must hold model_timestep_scale * logSNR values in [-{FOURIER_TIMESTEP_LIMIT:g}, "
            f"{FOURIER_TIMESTEP_LIMIT:g}] for noise_embedding_type='fourier' (pass scheduler.model_timesteps(levels); "
            f"an integer DDPM level is not one), got {shown}."
        )
    raise ValueError(
        f"`timestep` must hold integer noise levels in [-1, {discrete_levels - 1}] for noise_embedding_type="
        f"'sinusoidal' (-1 = clean context; pass scheduler.model_timesteps(levels)), got {shown}."
    )


def check_dfot_inputs(
    hidden_states: Any,
    timestep: Any,
    condition: Any,
    camera_rays: Any,
    condition_mask: Any,
    camera_rays_mask: Any,
    config: Mapping[str, Any],
    size_multiple: int,
) -> torch.Tensor:
    """Check the inputs of a DFoT backbone (module docstring) and return the timestep broadcast to ``(B, F)``.

    Args:
        hidden_states, timestep, condition, camera_rays, condition_mask, camera_rays_mask: the forward arguments.
        config: the model's configuration (``in_channels``, ``max_frames``, ``condition_dim``, ``camera_ray_type``,
            ``noise_embedding_type``, ``num_train_timesteps``).
        size_multiple: the model's spatial downsampling factor; ``H`` and ``W`` must be multiples of it.

    Returns:
        ``(B, F)`` noise levels on the device of ``hidden_states``.

    Raises:
        ValueError: naming the argument, the expected and the received value.
    """
    _check_video(hidden_states, config["in_channels"], config["max_frames"], size_multiple)
    batch_size, _, num_frames = hidden_states.shape[:3]
    device = hidden_states.device
    timestep = broadcast_timestep(timestep, batch_size, num_frames, device)
    _check_condition(condition, config["condition_dim"], batch_size, num_frames)
    _check_frame_mask("condition_mask", condition_mask, batch_size, num_frames)
    _check_camera_rays(camera_rays, config["camera_ray_type"], hidden_states.shape)
    _check_frame_mask("camera_rays_mask", camera_rays_mask, batch_size, num_frames)
    for name, value in (("condition", condition), ("camera_rays", camera_rays)):
        if value is not None:
            _check_float_input(name, value, device)
    if torch.compiler.is_compiling():
        # Traced into a graph, the host read-back would break it (or sync inside it): the value checks run in eager
        # forwards only (regional compilation keeps the model's forward, hence these checks, eager).
        return timestep
    discrete = config["noise_embedding_type"] == "sinusoidal"
    _check_values(
        {"hidden_states": hidden_states, "timestep": timestep, "condition": condition, "camera_rays": camera_rays},
        timestep, config.get("num_train_timesteps", 1000) if discrete else None,
    )
    return timestep
