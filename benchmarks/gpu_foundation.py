# SPDX-License-Identifier: Apache-2.0
"""SkyReels-V2 DF 1.3B behind Syn2Seq on a GPU: one LoRA training step and 10-step sampling, memory and time.

    python benchmarks/gpu_foundation.py                       # CUDA: the real 1.3B configuration, random weights
    python benchmarks/gpu_foundation.py --backbone wan --json runs/gpu_foundation.json
    python benchmarks/gpu_foundation.py --tiny                # CPU: the same code on a tiny configuration

Builds `WanDFoTTransformer3DModel` with the configuration of `Skywork/SkyReels-V2-DF-1.3B-540P-Diffusers`
(`SKYREELS_V2_DF_1_3B_CONFIG`, 1.4B parameters) directly on the GPU with random weights (nothing is downloaded),
frozen in bf16 with the fp32 modules kept, and measures:

1. LoRA training (`train.py --train_mode lora`'s set-up: rank `--rank` on attention and feed-forward, fp32 LoRA
   weights, AdamW, gradient checkpointing, bf16 autocast, the flow objective `diffusion_forcing_loss` with uniform
   weighting) on a 33-frame 480x832 window in Wan-VAE latents (9 x 60 x 104, 14,040 tokens): seconds per step and
   peak memory (`torch.cuda.max_memory_allocated`);
2. sampling: `Syn2SeqPipeline` in latent space (3 source + 1 transition + 5 target latent frames = one 9-frame
   window), `--steps` steps, without and with fractional history guidance (1 and 3 branches per forward).

The VAE and the text encoder are not part of the measurement (latents are cached for training; the prompt
embedding is stored in the model). Results are printed as a table and, with `--json`, written to a file.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script from a checkout
    sys.path.insert(0, str(REPO))

from diffusers.training_utils import cast_training_params  # noqa: E402
from peft import LoraConfig  # noqa: E402

from diffusers_syn2seq import FlowMatchDiffusionForcingScheduler, Syn2SeqPipeline  # noqa: E402
from diffusers_syn2seq.models import SKYREELS_V2_DF_1_3B_CONFIG, WanDFoTTransformer3DModel  # noqa: E402
from diffusers_syn2seq.models.loading import _cast_keeping_fp32_modules  # noqa: E402
from diffusers_syn2seq.objective import diffusion_forcing_loss  # noqa: E402
from diffusers_syn2seq.safe_io import atomic_write_text, check_output_file  # noqa: E402
from diffusers_syn2seq.training_utils import default_lora_targets  # noqa: E402

TINY_CONFIG = dict(backbone_type="skyreels-v2-df", patch_size=2, num_attention_heads=2, attention_head_dim=12,
                   in_channels=16, out_channels=16, text_dim=16, freq_dim=256, ffn_dim=32, num_layers=2,
                   rope_max_seq_len=32, inject_sample_info=True)
# (source, transition, target) latent frames of the sampling call: one window of 9 latent frames
SAMPLING_SEGMENTS = (3, 1, 5)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="gpu_foundation.py", description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="CPU check: a 2-layer model on 9 x 8 x 8 latents.")
    parser.add_argument("--backbone", default="skyreels-v2-df", choices=["skyreels-v2-df", "wan"])
    parser.add_argument("--frames", type=int, default=33, help="Pixel frames (Wan VAE: 1 + 4k -> 1 + k latents).")
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--width", type=int, default=832)
    parser.add_argument("--rank", type=int, default=64)
    parser.add_argument("--train_steps", type=int, default=3, help="Timed training steps (after one warm-up).")
    parser.add_argument("--steps", type=int, default=10, help="Sampling steps.")
    parser.add_argument("--no_gradient_checkpointing", action="store_true")
    parser.add_argument("--json", type=str, default=None, help="Also write the results to this file.")
    args = parser.parse_args(argv)
    if not args.tiny and not torch.cuda.is_available():
        parser.error("needs a CUDA GPU (torch.cuda.is_available() is False); run with --tiny to check the script "
                     "on CPU")
    if args.frames < 1 or (args.frames - 1) % 4:
        parser.error(f"--frames: expected 1 + 4k pixel frames (the Wan VAE's temporal compression), got "
                     f"{args.frames}")
    if args.height % 16 or args.width % 16:
        parser.error(f"--height / --width: expected multiples of 16 (VAE factor 8 x patch 2), got "
                     f"{args.height}x{args.width}")
    for name in ("rank", "train_steps", "steps"):
        if getattr(args, name) < 1:
            parser.error(f"--{name}: expected an integer >= 1, got {getattr(args, name)}")
    if args.json:  # its folder is created (or refused) now, before any GPU time is spent
        try:
            check_output_file(args.json, "--json")
        except (ValueError, OSError) as error:
            parser.error(str(error))
    return args


def latent_shape(args) -> tuple[int, int, int]:
    """(latent frames, height, width) of the window: Wan VAE 4x in time (causal), 8x in space."""
    if args.tiny:
        return 1 + (args.frames - 1) // 4, 8, 8
    return 1 + (args.frames - 1) // 4, args.height // 8, args.width // 8


def build_model(args, device: torch.device) -> WanDFoTTransformer3DModel:
    frames, height, width = latent_shape(args)
    config = dict(TINY_CONFIG if args.tiny else SKYREELS_V2_DF_1_3B_CONFIG)
    config.update(backbone_type=args.backbone, inject_sample_info=args.backbone == "skyreels-v2-df",
                  sample_size=[height, width], max_frames=max(frames, sum(SAMPLING_SEGMENTS)))
    torch.manual_seed(0)
    with torch.device(device):  # random weights created where they are used (no 5.6 GB float32 copy on the host)
        model = WanDFoTTransformer3DModel(**config)
    model.set_prompt_embeds(torch.randn(64, config["text_dim"]) * 0.1)
    if device.type == "cuda":
        _cast_keeping_fp32_modules(model, torch.bfloat16)
    return model


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak_gib(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None


def train_lora(args, model, device: torch.device) -> dict:
    """LoRA set-up of train.py and `1 + train_steps` optimiser steps on random latents; time of the timed steps."""
    model.requires_grad_(False)
    model.add_adapter(LoraConfig(r=args.rank, lora_alpha=args.rank, init_lora_weights=True,
                                 target_modules=default_lora_targets(model)))
    cast_training_params(model, dtype=torch.float32)
    if not args.no_gradient_checkpointing:
        model.enable_gradient_checkpointing()
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4, betas=(0.9, 0.99))
    scheduler = FlowMatchDiffusionForcingScheduler()
    frames, height, width = latent_shape(args)
    x0 = torch.randn(1, model.config.in_channels, frames, height, width, device=device)
    mask = torch.ones(1, frames, dtype=torch.bool, device=device)
    losses, times = [], []
    reset_peak(device)
    for step in range(1 + args.train_steps):
        synchronize(device)
        start = time.perf_counter()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            loss, _ = diffusion_forcing_loss(model, scheduler, x0, mask, loss_weighting="uniform",
                                             generator=torch.Generator().manual_seed(step))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        synchronize(device)
        times.append(time.perf_counter() - start)
        losses.append(float(loss.detach()))
    model.eval()
    lora_b = [p for name, p in model.named_parameters() if "lora_B" in name]  # zero at init: > 0 once trained
    return {"rank": args.rank, "trainable_parameters": sum(p.numel() for p in params),
            "lora_b_norm": float(torch.stack([p.detach().float().norm() for p in lora_b]).norm()),
            "tokens": frames * height * width // 4,
            "latents": [frames, height, width], "step_s": sum(times[1:]) / args.train_steps,
            "first_step_s": times[0], "peak_gib": peak_gib(device), "losses": losses}


def sample(args, model, device: torch.device, guidance: str | None) -> dict:
    """One `Syn2SeqPipeline` call in latent space; wall time and peak memory."""
    pipe = Syn2SeqPipeline(transformer=model, scheduler=FlowMatchDiffusionForcingScheduler(shift=5.0),
                           mode="video", num_transition_frames=SAMPLING_SEGMENTS[1])
    pipe.set_progress_bar_config(disable=True)
    _, height, width = latent_shape(args)
    source = torch.randn(1, model.config.in_channels, SAMPLING_SEGMENTS[0], height, width, device=device)
    settings = dict(history_guidance=guidance, guidance_scale=1.5 if guidance else 1.0)
    reset_peak(device)
    synchronize(device)
    start = time.perf_counter()
    frames = pipe(source_latents=source, num_frames=SAMPLING_SEGMENTS[2], num_inference_steps=args.steps,
                  output_type="latent", generator=torch.Generator(device).manual_seed(0), **settings).frames
    synchronize(device)
    seconds = time.perf_counter() - start
    if not bool(torch.isfinite(frames).all()):
        raise FloatingPointError(f"sampling with history_guidance={guidance!r} produced non-finite latents")
    return {"guidance": guidance or "none", "branches": 3 if guidance == "fractional" else 1, "seconds": seconds,
            "per_step_s": seconds / pipe.num_timesteps, "peak_gib": peak_gib(device),
            "shape": list(frames.shape)}


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    device = torch.device("cpu" if args.tiny else "cuda")
    model = build_model(args, device)
    results = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu (--tiny)",
               "backbone": args.backbone, "parameters": sum(p.numel() for p in model.parameters()),
               "window": f"{args.frames} frames {args.height}x{args.width}" if not args.tiny else "tiny",
               "gradient_checkpointing": not args.no_gradient_checkpointing}
    results["train"] = train_lora(args, model, device)
    with torch.no_grad():
        results["sampling"] = [sample(args, model, device, guidance) for guidance in (None, "fractional")]
    print(report(results))
    if args.json:
        atomic_write_text(args.json, json.dumps(results, indent=2))
    return results


def report(results: dict) -> str:
    """Markdown table of the results (ready for BENCHMARKS.md)."""
    gib = lambda value: "n/a (CPU)" if value is None else f"{value:.2f}"  # noqa: E731
    train = results["train"]
    lines = [f"{results['backbone']} ({results['parameters'] / 1e6:,.1f}M parameters) on {results['device']}, "
             f"{results['window']}, latents {train['latents']} ({train['tokens']} tokens)", "",
             "| run | time | peak GiB |", "|---|---|---|",
             f"| LoRA step (rank {train['rank']}, {train['trainable_parameters'] / 1e6:.1f}M trained, gradient "
             f"checkpointing {'on' if results['gradient_checkpointing'] else 'off'}) | {train['step_s']:.3f} s/step "
             f"(first {train['first_step_s']:.1f} s) | {gib(train['peak_gib'])} |"]
    for run in results["sampling"]:
        lines.append(f"| sampling, guidance {run['guidance']} ({run['branches']} branch(es)/forward) | "
                     f"{run['seconds']:.2f} s ({run['per_step_s']:.3f} s/forward) | {gib(run['peak_gib'])} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
