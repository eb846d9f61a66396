# SPDX-License-Identifier: Apache-2.0
"""The diffusion-forcing training objective: per-frame noise-level sampling, loss weighting and the loss.

DFoT trains every frame of a window at its own noise level and puts loss on all real frames. The scheduler
(`DiffusionForcingScheduler`) holds the noise schedule and the sampling maths (forward process, targets, model
timesteps, DDIM); this module decides which levels a batch is trained at, how each frame's error is weighted and
which samples lose their camera poses. Levels follow the scheduler's convention: integers `0..T-1` (`T - 1` = pure
noise), or float times in `[0, 1]` for the continuous schedule.
"""

from __future__ import annotations

from typing import Literal

import torch

from .validation import check_choice

__all__ = [
    "LOSS_WEIGHTINGS",
    "MATCHED_FRACTIONS",
    "NOISE_LEVEL_SAMPLINGS",
    "diffusion_forcing_loss",
    "loss_weights",
    "sample_noise_levels",
]

NOISE_LEVEL_SAMPLINGS = ("iid", "uniform_future", "inference_matched")
# Default mixture of `inference_matched`: clean history, noisy history, and the rest i.i.d.
MATCHED_FRACTIONS = (0.5, 0.25)
LOSS_WEIGHTINGS = ("uniform", "sigmoid", "min_snr", "fused_min_snr")


def sample_noise_levels(
    scheduler,
    batch_size: int,
    num_frames: int,
    strategy: Literal["iid", "uniform_future", "inference_matched"] = "iid",
    num_context_frames: int = 0,
    frame_mask: torch.Tensor | None = None,
    continuous: bool = False,
    generator: torch.Generator | None = None,
    device: str | torch.device | None = None,
    num_history: torch.Tensor | None = None,
    matched_fractions: tuple[float, float] = MATCHED_FRACTIONS,
) -> torch.Tensor:
    """Training levels `(B, F)` of `scheduler` (a per-frame scheduler, DDIM or flow), one per (sample, frame).

    Args:
        strategy: `"iid"`: independent levels (DFoT); `"uniform_future"`: the first `num_context_frames` frames
            i.i.d., the frames after them share one level per sample; `"inference_matched"`: the configurations
            sampling uses (`inference_matched_levels`), mixed with `"iid"`.
        frame_mask: optional `(B, F)` bool, False for frames missing from a clip: they get full noise.
        continuous: draw float times `t ~ U[0, 1]` (continuous schedule only) instead of integer levels
            `0..T-1`.
        num_history, matched_fractions: `"inference_matched"` only (see `inference_matched_levels`).
    """
    check_choice("strategy", strategy, NOISE_LEVEL_SAMPLINGS)
    if continuous and not scheduler.is_continuous:
        raise ValueError("`continuous=True` needs `noise_schedule='cosine_simple_diffusion'`.")
    if not 0 <= num_context_frames <= num_frames:
        raise ValueError(f"`num_context_frames` must be in [0, {num_frames}], got {num_context_frames!r}.")
    T = scheduler.config.num_train_timesteps

    def draw(shape):
        if continuous:
            return torch.rand(shape, generator=generator, device=device)
        return torch.randint(0, T, shape, generator=generator, device=device)

    levels = draw((batch_size, num_frames))
    if strategy == "uniform_future" and num_context_frames < num_frames:
        future = draw((batch_size, 1)).expand(batch_size, num_frames - num_context_frames)
        levels = torch.cat([levels[:, :num_context_frames], future], dim=1)
    if strategy == "inference_matched":
        if continuous:
            raise ValueError("`strategy='inference_matched'` needs a discrete schedule (clean history is level -1), "
                             "got the continuous one.")
        levels = inference_matched_levels(levels, T, num_history, matched_fractions, generator)
    if frame_mask is not None:
        if frame_mask.shape != (batch_size, num_frames):
            raise ValueError(
                f"`frame_mask` must have shape {(batch_size, num_frames)}, got {tuple(frame_mask.shape)}."
            )
        full = torch.ones_like(levels) if continuous else torch.full_like(levels, T - 1)
        levels = torch.where(frame_mask.to(levels.device), levels, full)
    return levels


def inference_matched_levels(iid_levels: torch.Tensor, num_train_timesteps: int, num_history: torch.Tensor | None,
                             fractions: tuple[float, float] = MATCHED_FRACTIONS,
                             generator: torch.Generator | None = None) -> torch.Tensor:
    """Training levels `(B, F)` that spend training on what sampling asks of the model.

    Each sample is, with probability `fractions[0]`, a *clean-history* sample: its first `h` frames are at level -1
    (clean, exactly the source frames of a sampling window; they get no loss) and every later frame shares one level
    drawn from `0..T-1` (the full-sequence schedule generates all frames of a window at one level); with probability
    `fractions[1]` a *noisy-history* sample: the first `h` frames share one level and the later frames another (the
    history-guidance branches and stabilised generated history see noisy history); otherwise it keeps its i.i.d.
    levels (`iid_levels`), so every conditional of the sequence is still learnt.

    `h` is the sample's `num_history` (the leading source frames of its window, `data.window_history_lengths`); a
    window with no source frame, or nothing but source frames, gets `h` uniform in `[1, F - 1]` (sliding windows keep
    generated frames as history).
    """
    batch, frames = iid_levels.shape
    clean_fraction, noisy_fraction = fractions
    if min(fractions) < 0 or clean_fraction + noisy_fraction > 1:
        raise ValueError(f"`matched_fractions` must be two fractions >= 0 summing to at most 1, got {fractions}.")
    if frames < 2:
        return iid_levels  # a window of one frame has no history to match
    device = iid_levels.device
    random_h = torch.randint(1, frames, (batch,), generator=generator).to(device)
    if num_history is None:
        num_history = random_h
    num_history = num_history.to(device)
    h = torch.where((num_history < 1) | (num_history >= frames), random_h, num_history)
    kind = torch.rand(batch, generator=generator).to(device)
    shared = torch.randint(0, num_train_timesteps, (batch, 2), generator=generator).to(device)
    history = torch.arange(frames, device=device)[None] < h[:, None]
    clean = torch.where(history, torch.full_like(iid_levels, -1), shared[:, 1:2].expand(-1, frames))
    noisy = torch.where(history, shared[:, :1].expand(-1, frames), shared[:, 1:2].expand(-1, frames))
    out = torch.where((kind < clean_fraction)[:, None], clean, iid_levels)
    return torch.where(((kind >= clean_fraction) & (kind < clean_fraction + noisy_fraction))[:, None], noisy, out)


def loss_weights(
    scheduler,
    levels: torch.Tensor,
    strategy: Literal["uniform", "sigmoid", "min_snr", "fused_min_snr"] = "sigmoid",
    sigmoid_bias: float = -1.0,
    snr_clip: float = 5.0,
    cum_snr_decay: float = 0.96,
    causal: bool = False,
) -> torch.Tensor:
    """Per-frame weights `(B, F)` of an MSE computed in the `prediction_type` space of `scheduler` at `levels` `(B, F)`.

    Each strategy defines an epsilon-space weight `w_eps`, converted like DFoT (`w_eps` for epsilon,
    `w_eps * SNR` for sample, `w_eps * SNR / (SNR + 1)` for v; `w_eps (1 - sigma)^2` for the flow velocity of
    `FlowMatchDiffusionForcingScheduler`, whose `SNR = (1 - sigma)^2 / sigma^2`), so the losses are equal whatever
    the target:

    - `sigmoid`: `sigmoid(bias - logSNR)` (Kingma & Gao 2023; DFoT continuous models, bias -1);
    - `min_snr`: `min(SNR, snr_clip) / SNR` (Hang et al. 2023);
    - `fused_min_snr`: Diffusion Forcing's min-SNR where each frame's SNR is fused with an exponentially
      decayed (`cum_snr_decay`) running SNR of the other frames, averaged over both directions unless `causal`;
      like DFoT, its space conversion uses the fused SNR, so it is defined per `prediction_type`.
    """
    check_choice("strategy", strategy, LOSS_WEIGHTINGS)
    if levels.ndim != 2:
        raise ValueError(f"`levels` must have shape (B, F), got {tuple(levels.shape)}.")
    if strategy == "uniform":
        return torch.ones(levels.shape, dtype=torch.float32, device=levels.device)
    # float64 keeps SNRs of 1e13 (level 0 of the shifted grid) from overflowing products.
    alpha = scheduler.alphas_cumprod_at(levels).double()
    snr = alpha / (1.0 - alpha).clamp(min=1e-20)
    if strategy == "sigmoid":
        w_eps = torch.sigmoid(sigmoid_bias - scheduler.log_snr_at(levels).double())
    elif strategy == "min_snr":
        w_eps = snr.clamp(max=snr_clip) / snr.clamp(min=1e-8)
    else:
        norm_clipped = snr.clamp(max=snr_clip) / snr_clip
        norm = snr / snr_clip

        def shifted_ema(x: torch.Tensor) -> torch.Tensor:
            # out[:, f] = EMA of x[:, :f] (the frames before f, excluding f itself); out[:, 0] = 0
            out = torch.zeros_like(x)
            ema = x[:, 0]
            for f in range(1, x.shape[1]):
                out[:, f] = ema
                ema = cum_snr_decay * ema + (1 - cum_snr_decay) * x[:, f]
            return out

        cum = shifted_ema(norm_clipped)
        if not causal:  # non-causal DFoT: average the forward and the backward running SNR
            cum = 0.5 * (cum + shifted_ema(norm_clipped.flip(1)).flip(1))
        fused_clipped = 1 - (1 - cum * cum_snr_decay) * (1 - norm_clipped)
        fused = 1 - (1 - cum * cum_snr_decay) * (1 - norm)
        w_eps = (fused_clipped * snr_clip) / (fused * snr_clip).clamp(min=1e-8)
        snr = fused * snr_clip
    kind = scheduler.config.prediction_type
    if kind == "epsilon":
        weights = w_eps
    elif kind == "sample":
        weights = w_eps * snr
    elif kind == "flow_prediction":  # rectified flow: eps error = (1 - sigma) x velocity error
        weights = w_eps * scheduler.prediction_loss_factor(levels).double()
    else:
        weights = w_eps * snr / (snr + 1.0)
    return weights.to(torch.float32)


def diffusion_forcing_loss(
    transformer,
    scheduler,
    x0: torch.Tensor,
    frame_mask: torch.Tensor,
    camera_rays: torch.Tensor | None = None,
    pose_mask: torch.Tensor | None = None,
    noise_level_sampling: str = "iid",
    num_context_frames: int = 0,
    loss_weighting: str = "sigmoid",
    camera_dropout: float = 0.0,
    generator: torch.Generator | None = None,
    noise: torch.Tensor | None = None,
    levels: torch.Tensor | None = None,
    num_history: torch.Tensor | None = None,
    matched_fractions: tuple[float, float] = MATCHED_FRACTIONS,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """DFoT's objective on one batch: every frame gets its own noise level, all real noisy frames get loss (frames
    at level -1, the clean history of `inference_matched`, have nothing to denoise and get none).

    Args:
        x0: clean frames `(B, C, F, H, W)` in model space.
        frame_mask: `(B, F)` True for real frames; padded frames are fully noised and get no loss. Keep it (and
            `pose_mask`, `num_history`, `levels`) on the CPU to avoid a host synchronisation on accelerators.
        camera_rays, pose_mask: pose conditioning (`model_inputs`); frames with `pose_mask` False get the null
            camera embedding.
        noise_level_sampling: `sample_noise_levels` strategy: `"iid"` (DFoT), `"uniform_future"` (frames after
            `num_context_frames` share a level) or `"inference_matched"` (`inference_matched_levels`, with
            `num_history` `(B,)` leading source frames per window and `matched_fractions`).
        loss_weighting: `loss_weights` strategy (`"sigmoid"`, `"min_snr"`, `"fused_min_snr"`, `"uniform"`).
        camera_dropout: probability of dropping a whole sample's camera poses (all its frames get the null camera
            embedding through `camera_rays_mask`); trains the unconditional branch of pose guidance (DFoT's 10%).
        generator: source of levels, noise and camera dropout (None: the global RNG); a per-step generator makes a
            resumed run draw exactly what an uninterrupted one would.
        noise, levels: fixed values instead of drawing them (used for the fixed-batch loss).

    Returns:
        the scalar loss (mean over real frames of the weighted per-frame MSE in `prediction_type` space) and a dict with
        the per-frame `mse` and `weights` `(B, F)` and the `levels`.
    """
    batch, _, num_frames = x0.shape[:3]
    device = x0.device
    # Every per-frame (B, F) quantity (levels, their checks, weights, model timesteps) is computed on the CPU and only
    # the results are sent to the device: no device-to-host copy, hence no host synchronisation, when the caller keeps
    # the masks on the CPU (`model_inputs` does); masks on the device cost one copy here.
    frame_mask = frame_mask.to("cpu")
    if levels is None:
        levels = sample_noise_levels(
            scheduler, batch, num_frames, strategy=noise_level_sampling,
            num_context_frames=min(num_context_frames, num_frames), frame_mask=frame_mask,
            continuous=scheduler.is_continuous, generator=generator, num_history=num_history,
            matched_fractions=matched_fractions,
        )
    levels = levels.to("cpu")
    if noise is None:
        noise = torch.randn(x0.shape, generator=generator, dtype=torch.float32).to(device)
    noise = noise.clamp(-20.0, 20.0)  # DFoT clips the training noise
    noisy = scheduler.add_noise(x0, noise, levels)
    target = scheduler.get_target(x0, noise, levels)

    rays_mask = None
    if camera_rays is not None:
        rays_mask = pose_mask.clone() if pose_mask is not None else torch.ones(batch, num_frames, dtype=torch.bool)
        if camera_dropout > 0:
            keep = torch.rand(batch, generator=generator) >= camera_dropout
            rays_mask = rays_mask & keep.to(rays_mask.device)[:, None]
    model_dtype = next(transformer.parameters()).dtype
    prediction = transformer(
        hidden_states=noisy.to(model_dtype),
        timestep=scheduler.model_timesteps(levels).to(device),
        camera_rays=None if camera_rays is None else camera_rays.to(model_dtype),
        camera_rays_mask=rays_mask,
        return_dict=False,
    )[0]
    mse = ((prediction.float() - target.float()) ** 2).mean(dim=(1, 3, 4))  # (B, F)
    weights = loss_weights(scheduler, levels, strategy=loss_weighting).to(device)
    valid = (frame_mask & (levels >= 0)).float().to(device)
    loss = (mse * weights * valid).sum() / valid.sum().clamp(min=1.0)
    return loss, {"mse": mse.detach(), "weights": weights, "levels": levels.to(device)}
