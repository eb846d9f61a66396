# SPDX-License-Identifier: Apache-2.0
"""`convert_dfot_pipeline`: a whole `Syn2SeqPipeline` (transformer, scheduler, VAE) from official DFoT checkpoints."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import torch

from ..models.conversion_dfot import convert_dfot_checkpoint
from ..models.conversion_vae_dfot import convert_dfot_vae
from ..schedulers import DiffusionForcingScheduler
from .pipeline_syn2seq import Syn2SeqPipeline

__all__ = ["convert_dfot_pipeline"]


def convert_dfot_pipeline(
    checkpoint: str | os.PathLike | Mapping[str, Any],
    dfot_config: Mapping[str, Any],
    vae_checkpoint: str | os.PathLike | Mapping[str, Any] | None = None,
    vae_config: Mapping[str, Any] | None = None,
    torch_dtype: torch.dtype | None = None,
):
    """A whole `Syn2SeqPipeline` from an official DFoT backbone checkpoint and, for a latent model, its VAE.

    The scheduler follows the backbone's noise input, as in the official configs: a discrete (sinusoidal) model gets
    the 1000-step cosine schedule (Kinetics-600), a continuous (Fourier) one the shifted (0.125) cosine
    simple-diffusion schedule (Minecraft, RealEstate10K). The pipeline is set to `mode="jump"`: an official model
    predicts future frames from context frames, with no transition segment. A latent backbone needs its VAE (or is
    saved without one, for `source_latents` / `output_type="latent"` sampling). A backbone with a per-frame condition
    (`external_cond_dim`) takes `dfot_config["external_cond_processing"]` (`"mask_first"` for Minecraft) as the
    pipeline's `condition_processing`.
    """
    if (vae_checkpoint is None) != (vae_config is None):
        raise ValueError("`vae_checkpoint` and `vae_config` go together: pass both or neither, got only "
                         f"{'vae_checkpoint' if vae_checkpoint is not None else 'vae_config'}.")
    transformer = convert_dfot_checkpoint(checkpoint, dfot_config, torch_dtype=torch_dtype)
    vae = None
    if vae_checkpoint is not None:
        vae = convert_dfot_vae(vae_checkpoint, vae_config, torch_dtype=torch_dtype)
        latent, channels = vae.config.latent_channels, transformer.config.in_channels
        if latent != channels:
            raise ValueError(f"The VAE's latent_channels ({latent}) must equal the transformer's in_channels "
                             f"({channels}): `vae_config` does not belong to this checkpoint.")
    continuous = transformer.config.noise_embedding_type == "fourier"
    scheduler = DiffusionForcingScheduler(noise_schedule="cosine_simple_diffusion", shift=0.125) if continuous \
        else DiffusionForcingScheduler(noise_schedule="cosine")
    # How the official sampler processes the condition vectors belongs to the trained model: kept in the pipeline.
    processing = dfot_config.get("external_cond_processing") if transformer.config.condition_dim else None
    return Syn2SeqPipeline(transformer=transformer, scheduler=scheduler, vae=vae, mode="jump",
                           num_transition_frames=0, condition_processing=processing)
