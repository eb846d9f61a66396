# SPDX-License-Identifier: Apache-2.0
"""Train a Syn2Seq-Forcing DFoT model (full fine-tuning, from scratch, or LoRA) on a Syn2Seq dataset folder.

    accelerate launch training/train.py --config training/configs/synthetic_dit_tiny.yaml
    accelerate launch training/train.py --dataset_dir data/synth64 --model_preset dit-s --output_dir runs/dit-s \
        --mode video+pose --reverse_prob 0.5 --max_train_steps 20000 --mixed_precision bf16
    accelerate launch training/train.py --train_mode lora --pretrained_model_name_or_path runs/dit-s \
        --dataset_dir data/cooking --rank 32 --output_dir runs/cooking-lora

Flags may also come from a YAML file (`--config`, keys = flag names without dashes; the command line wins).
Bad input (a flag out of range, a missing file, a full disk) prints one line `train.py: error: ...` and exits with
status 2; `--debug` (or SYN2SEQ_DEBUG=1) shows the traceback.
Reading order: arguments -> checks (before anything heavy) -> models -> data -> optimiser -> resume -> training loop
(diffusion-forcing loss, checkpoints, validation) -> final pipeline / LoRA weights, model card, Hub upload.
"""

from __future__ import annotations

import argparse
import inspect
import io
import json
import logging
import math
import os
import pickle
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import diffusers
import numpy as np
import torch
import yaml
from accelerate import Accelerator
from accelerate.logging import get_logger
from accelerate.utils import LoggerType, ProjectConfiguration, set_seed
from diffusers.optimization import get_scheduler
from diffusers.training_utils import EMAModel, cast_training_params, free_memory
from peft import LoraConfig
from peft.utils import get_peft_model_state_dict, set_peft_model_state_dict
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file
from tqdm.auto import tqdm

from diffusers_syn2seq.bundled import dataset_scene_style, trained_reverse_prob
from diffusers_syn2seq.cli_support import ToolArgumentParser, add_debug_flag, read_json_object, run_tool
from diffusers_syn2seq.data import (
    DEFAULT_CACHE_BUDGET_MB,
    DEFAULT_NUM_TRANSITION_FRAMES,
    MODES,
    EpochShuffleSampler,
    InMemoryTakes,
    Syn2SeqClipDataset,
    Syn2SeqTrainingWindows,
    collate_syn2seq,
    decoded_take_bytes,
    load_metadata,
    write_video,
)
from diffusers_syn2seq.data.dataset import SPLITS
from diffusers_syn2seq.data.synthetic import CONTINUOUS_CATEGORY
from diffusers_syn2seq.data.transitions import CrossfadeTransition
from diffusers_syn2seq.evaluation import evaluate_scene, frames_to_unit_tensor, new_scores
from diffusers_syn2seq.hub import describe_upload, push_folder_to_hub
from diffusers_syn2seq.latents import (
    encode_take_latents,
    is_video_vae,
    load_vae,
    vae_latent_channels,
    vae_scale_factors,
)
from diffusers_syn2seq.loaders import Syn2SeqLoraLoaderMixin
from diffusers_syn2seq.loaders.foundation_lora import save_foundation_lora_settings
from diffusers_syn2seq.loaders.lora_pipeline import lora_keys_for_transformer
from diffusers_syn2seq.model_card import portable_path, save_model_card, scheduler_expression, training_command
from diffusers_syn2seq.models import (
    DIT_PRESETS,
    SKYREELS_V2_DF_1_3B_CONFIG,
    DFoTTransformer3DModel,
    WanDFoTTransformer3DModel,
    load_transformer,
)
from diffusers_syn2seq.models.loading import TRANSFORMER_CLASSES, _cast_keeping_fp32_modules
from diffusers_syn2seq.objective import (
    LOSS_WEIGHTINGS,
    MATCHED_FRACTIONS,
    NOISE_LEVEL_SAMPLINGS,
    diffusion_forcing_loss,
)
from diffusers_syn2seq.pipelines import Syn2SeqPipeline
from diffusers_syn2seq.safe_io import (
    atomic_write_bytes,
    atomic_write_text,
    check_output_dir,
    fix_weight_modes,
    publish_folder,
)
from diffusers_syn2seq.safe_loading import check_folder_or_repo_id, load_pretrained
from diffusers_syn2seq.schedulers import DiffusionForcingScheduler, FlowMatchDiffusionForcingScheduler
from diffusers_syn2seq.training_utils import (
    DEFAULT_LORA_TARGETS,
    check_total_limit,
    default_lora_targets,
    load_ema_state,
    loadable_checkpoint,
    model_inputs,
    resolve_checkpoint,
    save_checkpoint_atomically,
    save_ema_state,
    step_seed,
)

logger = get_logger(__name__)
# Renamed flags, old name -> new name: the old name is still accepted on the command line and in --config files,
# with a deprecation warning.
RENAMED_FLAGS = {"condition_dropout": "camera_dropout"}
# Inside every checkpoint: the commands and validation rows of the run so far, so a resumed run's summary and model
# card keep every segment's.
HISTORY_FILENAME = "run_history.json"
BACKBONE_CHOICES = ("dfot", "skyreels-v2-df", "wan")


# ====================================================================================================================
# 1. Arguments
# ====================================================================================================================
class _RenamedFlag(argparse.Action):
    """The old name of a renamed flag: stores into the new flag and notes the use (`parse_args` warns once, after the
    two parsing passes)."""

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, values)
        namespace._renamed_flags_used = {*getattr(namespace, "_renamed_flags_used", ()), self.option_strings[0]}


def _warn_renamed(old: str, new: str, where: str) -> None:
    # Plain logging: accelerate's logger needs an Accelerator, and the flags are read before there is one.
    logging.getLogger(__name__).warning(f"{where}{old!r} is deprecated and will be removed; use {new!r} instead.")


def build_parser() -> argparse.ArgumentParser:
    p = ToolArgumentParser(prog="train.py", description="Syn2Seq-Forcing DFoT training (full or LoRA).")
    p.add_argument("--config", type=str, default=None, help="YAML file of flag values (keys without dashes).")
    add_debug_flag(p)
    g = p.add_argument_group("model")
    _add_foundation_flags(g)
    g.add_argument("--pretrained_model_name_or_path", type=str, default=None,
                   help="Syn2Seq pipeline folder, transformer folder (config.json) or official DFoT checkpoint file "
                        "(with --dfot_config); with --backbone skyreels-v2-df|wan also a SkyReels-V2 / Wan diffusers "
                        "checkpoint (Hub repo id or folder with transformer/). Omit to train from scratch.")
    g.add_argument("--dfot_config", type=str, default=None,
                   help="JSON/YAML backbone settings of an official checkpoint.")
    g.add_argument("--model_preset", type=str, default="dit-s", choices=sorted(DIT_PRESETS),
                   help="DiT3D size when training from scratch.")
    g.add_argument("--model_config", type=str, default=None,
                   help="JSON of DFoTTransformer3DModel arguments for a from-scratch model (overrides the preset).")
    g.add_argument("--patch_size", type=int, default=2)
    g.add_argument("--max_frames", type=int, default=16, help="Model window (from scratch).")
    g.add_argument("--camera_ray_type", type=str, default="plucker", choices=["none", "ray", "plucker", "ray_encoding"])
    g.add_argument("--noise_schedule", type=str, default="cosine", choices=["cosine", "cosine_simple_diffusion"])
    g.add_argument("--vae_name_or_path", type=str, default=None,
                   help="VAE folder or repo for latent training, loaded as its config's class "
                        "(`latents.load_vae`): AutoencoderKL (DFoT's ImageVAE), or a video VAE compressing time, "
                        "AutoencoderKLWan or AutoencoderKLDFoTVideo (with --cache_latents).")
    g.add_argument("--vae_subfolder", type=str, default=None, help="Subfolder of --vae_name_or_path holding the VAE.")
    _add_data_arguments(p)
    g = p.add_argument_group("objective")
    g.add_argument("--noise_level_sampling", type=str, default="iid", choices=list(NOISE_LEVEL_SAMPLINGS))
    g.add_argument("--num_context_frames", type=int, default=0, help="uniform_future: frames with i.i.d. levels.")
    g.add_argument("--matched_fractions", type=float, nargs=2, default=list(MATCHED_FRACTIONS),
                   metavar=("CLEAN", "NOISY"),
                   help="inference_matched: fractions of samples with clean history (source frames at level -1, "
                        "later frames at one shared level, as sampling sees them) and with noisy history (history "
                        "and later frames each at one shared level); the rest keep i.i.d. levels.")
    g.add_argument("--loss_weighting", type=str, default=None, choices=list(LOSS_WEIGHTINGS),
                   help="Default: sigmoid for --backbone dfot, uniform (plain velocity MSE, how SkyReels-V2 and Wan "
                        "were trained) for skyreels-v2-df / wan.")
    g.add_argument("--camera_dropout", type=float, default=0.1,
                   help="Probability of dropping a sample's camera poses (trains the unconditional branch of pose "
                        "guidance).")
    g.add_argument("--condition_dropout", dest="camera_dropout", type=float, action=_RenamedFlag,
                   default=argparse.SUPPRESS, metavar="CONDITION_DROPOUT", help="Deprecated name of --camera_dropout.")
    g = p.add_argument_group("training")
    g.add_argument("--train_mode", type=str, default="full", choices=["full", "lora"])
    g.add_argument("--rank", type=int, default=16)
    g.add_argument("--lora_alpha", type=int, default=None, help="Default: rank.")
    g.add_argument("--lora_layers", type=str, default=None,
                   help="Comma-separated module names to adapt (default: the backbone's attention and feed-forward "
                        f"projections, {','.join(DEFAULT_LORA_TARGETS)} for DFoT, ffn.net.* for SkyReels-V2 / Wan).")
    g.add_argument("--output_dir", type=str, default="syn2seq-output")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--train_batch_size", type=int, default=4)
    g.add_argument("--max_train_steps", type=int, default=1000)
    g.add_argument("--max_train_minutes", type=float, default=None,
                   help="Also stop (and save as at the end) once this much wall-clock training time has passed: runs "
                        "compared at equal compute, e.g. benchmarks/recipe_search.py. Resumed runs count afresh.")
    g.add_argument("--gradient_accumulation_steps", type=int, default=1)
    g.add_argument("--gradient_checkpointing", action="store_true")
    g.add_argument("--compile", action="store_true", help="torch.compile the transformer blocks (compile_repeated_"
                   "blocks); off by default: no gain measured on CPU, where it needs a C++ compiler.")
    g.add_argument("--learning_rate", type=float, default=1e-4)
    g.add_argument("--scale_lr", action="store_true", help="Multiply the LR by batch x accumulation x processes.")
    g.add_argument("--lr_scheduler", type=str, default="constant_with_warmup",
                   choices=["constant", "constant_with_warmup", "cosine", "linear", "cosine_with_restarts"])
    g.add_argument("--lr_warmup_steps", type=int, default=0)
    g.add_argument("--adam_beta1", type=float, default=0.9)
    g.add_argument("--adam_beta2", type=float, default=0.99, help="DFoT's beta2.")
    g.add_argument("--adam_weight_decay", type=float, default=0.0)
    g.add_argument("--adam_epsilon", type=float, default=1e-8)
    g.add_argument("--max_grad_norm", type=float, default=1.0)
    g.add_argument("--use_ema", action="store_true")
    g.add_argument("--ema_decay", type=float, default=0.9999)
    g.add_argument("--mixed_precision", type=str, default=None, choices=["no", "fp16", "bf16"],
                   help="Default: accelerate config. On CPUs without native bf16, 'no' is much faster.")
    g = p.add_argument_group("checkpoints")
    g.add_argument("--checkpointing_steps", type=int, default=500)
    g.add_argument("--checkpoints_total_limit", type=int, default=None,
                   help="Keep at most this many checkpoints (>= 1; default: all).")
    g.add_argument("--resume_from_checkpoint", type=str, default=None, help="'latest', a checkpoint name or path.")
    g = p.add_argument_group("validation and logging")
    g.add_argument("--validation_steps", type=int, default=None, help="Validate every N steps (and at the end).")
    g.add_argument("--num_validation_videos", type=int, default=2)
    g.add_argument("--validation_inference_steps", type=int, default=50)
    g.add_argument("--validation_num_frames", type=int, default=None, help="Generated ego frames (default: clip).")
    g.add_argument("--validation_num_samples", type=int, default=2,
                   help="Samples per validation take for val/psnr_mean_of_n (PSNR of their pixel-wise mean); 1 "
                        "skips it. Each sample is one more generation.")
    g.add_argument("--report_to", type=str, default="tensorboard",
                   help="accelerate tracker(s): tensorboard, wandb, comet_ml, mlflow, ..., 'all' or 'none'.")
    g.add_argument("--logging_dir", type=str, default="logs")
    g.add_argument("--logging_steps", type=int, default=10,
                   help="Read the losses back from the device every N steps (one host synchronisation) and log "
                        "every step's loss then; also before each checkpoint, validation and the end.")
    g.add_argument("--tracker_project_name", type=str, default="syn2seq")
    _add_hub_flags(p.add_argument_group("hub"))
    return p


def _add_foundation_flags(g: argparse._ArgumentGroup) -> None:
    """`--backbone` and the settings of the SkyReels-V2 DF / Wan backbones (issue 16)."""
    g.add_argument("--backbone", type=str, default="dfot", choices=list(BACKBONE_CHOICES),
                   help="'dfot': a DFoT DiT3D / U-ViT3D with the DDIM diffusion-forcing scheduler; 'skyreels-v2-df' / "
                        "'wan': a SkyReels-V2 DF / Wan 2.1 transformer (WanDFoTTransformer3DModel) trained with the "
                        "rectified-flow scheduler.")
    g.add_argument("--flow_shift", type=float, default=5.0,
                   help="skyreels-v2-df / wan: shift of the flow scheduler's sampling grid (SkyReels: 8 text-to-video, "
                        "5 image-to-video).")
    g.add_argument("--prompt_embeds", type=str, default=None,
                   help="skyreels-v2-df / wan: safetensors file with the `prompt_embeds` (1, L, text_dim) the model is "
                        "conditioned on (models.encode_prompt_embeds; default: the model's stored one).")


def _add_hub_flags(g: argparse._ArgumentGroup) -> None:
    g.add_argument("--push_to_hub", action="store_true")
    g.add_argument("--hub_model_id", type=str, default=None)
    g.add_argument("--hub_token", type=str, default=None)
    g.add_argument("--hub_private", action="store_true")
    g.add_argument("--hub_dry_run", action="store_true", help="With --push_to_hub (an error without it): write "
                   "what would be uploaded to OUTPUT/hub_dry_run instead of uploading, no network.")
    g.add_argument("--license", type=str, default="apache-2.0")


def _add_data_arguments(p: argparse.ArgumentParser) -> None:
    """The data flags of `build_parser`."""
    g = p.add_argument_group("data")
    g.add_argument("--dataset_dir", type=str, default=None, help="Syn2Seq dataset folder (metadata.parquet + clips).")
    g.add_argument("--train_split", type=str, default="train")
    g.add_argument("--validation_split", type=str, default="validation")
    g.add_argument("--num_clip_frames", type=int, default=None, help="Use the first N frames of exo and ego clips.")
    g.add_argument("--task", type=str, default="auto", choices=list(TASKS),
                   help="'pretrain': DFoT's own task on continuous-camera clips (make_synthetic_dataset.py "
                        "--continuous; every frame real, with its pose); 'syn2seq': exo/ego pairs; 'auto' (default): "
                        "pretrain when every training take is a continuous clip, else syn2seq.")
    g.add_argument("--mode", type=str, default="video+pose", choices=list(MODES), help="Syn2Seq sequence mode.")
    g.add_argument("--window_frames", type=int, default=None, help="Training window (default: model max_frames).")
    g.add_argument("--reverse_prob", type=float, default=None,
                   help="Probability of the Ego2Exo reversal (default: the base pipeline's, from its "
                        "training_summary.json, when training from a pipeline folder that records it, else 0.5).")
    g.add_argument("--reversal", type=str, default="full", choices=["full", "segments"])
    g.add_argument("--transition_source", type=str, default="cached", choices=["cached", "crossfade"],
                   help="'cached': transitions stored in the dataset (crossfade fallback for takes without one).")
    g.add_argument("--num_transition_frames", type=int, default=DEFAULT_NUM_TRANSITION_FRAMES,
                   help="Frames of crossfade transitions (and of the saved pipeline's transition when the dataset "
                        "caches none).")
    g.add_argument("--cache_latents", action="store_true", help="Encode every take once with the VAE and reuse it.")
    g.add_argument("--cache_data", type=str, default="auto", choices=["auto", "always", "never"],
                   help="Decode the training takes once and keep them in memory (per process) instead of decoding "
                        "every batch: 'auto' when they fit --cache_data_max_mb (else a log line and per-batch "
                        "decoding), 'always' (an error when they do not fit), 'never'.")
    g.add_argument("--cache_data_max_mb", type=float, default=DEFAULT_CACHE_BUDGET_MB,
                   help="Memory budget of --cache_data, in MiB of decoded uint8 frames and poses per process.")
    g.add_argument("--dataloader_num_workers", type=int, default=0)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Flags, with defaults taken from `--config` YAML when given (flags on the command line win)."""
    parser = build_parser()
    pre, _ = parser.parse_known_args(argv)
    if pre.config is not None:
        path = Path(pre.config)
        if not path.is_file():
            parser.error(f"--config: expected a YAML file, got {pre.config!r} (does not exist)")
        try:
            values = yaml.safe_load(path.read_text()) or {}
        except (yaml.YAMLError, UnicodeDecodeError) as error:
            parser.error(f"--config: expected a YAML file of flag values, got {pre.config!r}, which does not parse: "
                         f"{' '.join(str(error).split())}")
        if not isinstance(values, dict):
            parser.error(f"--config: expected a YAML mapping of flag names to values, got a "
                         f"{type(values).__name__} in {pre.config!r}")
        for old, new in RENAMED_FLAGS.items():
            if old in values:
                if new in values:
                    parser.error(f"--config {pre.config}: expected one of {new!r} and its deprecated name {old!r}, "
                                 "got both")
                _warn_renamed(old, new, f"--config {pre.config}: key ")
                values[new] = values.pop(old)
        known = {action.dest for action in parser._actions}
        unknown = sorted(set(values) - known)
        if unknown:
            parser.error(f"--config {pre.config}: unknown keys {unknown}; expected flag names such as 'learning_rate'")
        parser.set_defaults(**values)
    args = parser.parse_args(argv)
    for option in sorted(vars(args).pop("_renamed_flags_used", ())):
        _warn_renamed(option, f"--{RENAMED_FLAGS[option.lstrip('-')]}", "flag ")
    check_flag_types(parser, args)
    if args.loss_weighting is None:
        args.loss_weighting = "sigmoid" if args.backbone == "dfot" else "uniform"
    args.command = _command_line(argv)
    if args.reverse_prob is None:  # a LoRA on an Exo2Ego-only base stays Exo2Ego unless asked otherwise
        base = args.pretrained_model_name_or_path
        args.reverse_prob = (trained_reverse_prob(base) if base and Path(base).is_dir() else None)
        args.reverse_prob = 0.5 if args.reverse_prob is None else args.reverse_prob
    return args


def check_flag_types(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Values from a `--config` file skip argparse's conversion and choices: check their types and choices here."""
    for action in parser._actions:
        value = getattr(args, action.dest, None)
        if action.dest in ("help", "config") or value is None or value is argparse.SUPPRESS:
            continue
        counted = isinstance(action.nargs, int) and action.nargs > 0  # e.g. --matched_fractions CLEAN NOISY
        values = value if counted and isinstance(value, (list, tuple)) else [value]
        if counted and len(values) != action.nargs:
            raise ValueError(f"--{action.dest}: expected {action.nargs} values, got {value!r}")
        for item in values:
            if action.type is int and (isinstance(item, bool) or not isinstance(item, int)):
                raise TypeError(f"--{action.dest}: expected an integer, got {item!r}")
            if action.type is float and (isinstance(item, bool) or not isinstance(item, (int, float))):
                raise TypeError(f"--{action.dest}: expected a number, got {item!r}")
            if action.type is str and not isinstance(item, str):
                raise TypeError(f"--{action.dest}: expected a string, got {item!r}")
            if isinstance(action, argparse._StoreTrueAction) and not isinstance(item, bool):
                raise TypeError(f"--{action.dest}: expected true or false, got {item!r}")
            if action.choices is not None and item not in action.choices:
                raise ValueError(f"--{action.dest}: expected one of {list(action.choices)}, got {item!r}")
        if action.type is float:
            setattr(args, action.dest, [float(v) for v in value] if values is value else float(value))


def _command_line(argv: list[str] | None) -> str:
    return training_command("training/train.py", sys.argv[1:] if argv is None else argv)


# The range of every numeric flag, checked before anything heavy. Integers: flag -> (minimum, maximum or None,
# whether the flag may be left unset). Numbers: flag -> (low, high, low included, high included).
INT_FLAG_RANGES: dict[str, tuple[int, int | None, bool]] = {
    "patch_size": (1, None, False), "max_frames": (1, None, False), "num_clip_frames": (1, None, True),
    "window_frames": (1, None, True), "dataloader_num_workers": (0, None, False),
    "num_context_frames": (0, None, False), "rank": (1, None, False), "lora_alpha": (1, None, True),
    "seed": (0, 2**32 - 1, False), "train_batch_size": (1, None, False), "max_train_steps": (1, None, False),
    "gradient_accumulation_steps": (1, None, False), "lr_warmup_steps": (0, None, False),
    "checkpointing_steps": (1, None, False), "checkpoints_total_limit": (1, None, True),
    "validation_steps": (1, None, True), "num_validation_videos": (1, None, False),
    "validation_inference_steps": (1, None, False), "validation_num_frames": (1, None, True),
    "validation_num_samples": (1, None, False), "logging_steps": (1, None, False),
}
FLOAT_FLAG_RANGES: dict[str, tuple[float, float, bool, bool]] = {
    "reverse_prob": (0.0, 1.0, True, True), "camera_dropout": (0.0, 1.0, True, True),
    "learning_rate": (0.0, math.inf, False, False), "adam_beta1": (0.0, 1.0, True, False),
    "adam_beta2": (0.0, 1.0, True, False), "adam_weight_decay": (0.0, math.inf, True, False),
    "adam_epsilon": (0.0, math.inf, False, False), "max_grad_norm": (0.0, math.inf, False, False),
    "ema_decay": (0.0, 1.0, False, False), "max_train_minutes": (0.0, math.inf, False, False),
    "flow_shift": (0.0, math.inf, False, False),
    "cache_data_max_mb": (0.0, math.inf, True, False),
}


def _interval(low: float, high: float, low_in: bool, high_in: bool) -> str:
    if high == math.inf:
        return f"a finite number {'>=' if low_in else '>'} {low:g}"
    return f"a number in {'[' if low_in else '('}{low:g}, {high:g}{']' if high_in else ')'}"


def check_flag_ranges(args: argparse.Namespace) -> None:
    """Every numeric flag in its range (`INT_FLAG_RANGES`, `FLOAT_FLAG_RANGES`): NaN and infinities are refused;
    errors name the flag, the expected range and the received value."""
    for name, (low, high, optional) in INT_FLAG_RANGES.items():
        value = getattr(args, name)
        if value is None and optional:
            continue
        if value is None or value < low or (high is not None and value > high):
            expected = f"an integer >= {low}" if high is None else f"an integer in [{low}, {high}]"
            raise ValueError(f"--{name}: expected {expected}{' or nothing' if optional else ''}, got {value}.")
    for name, (low, high, low_in, high_in) in FLOAT_FLAG_RANGES.items():
        value = getattr(args, name)
        if value is None and name == "max_train_minutes":
            continue
        inside = math.isfinite(value) and (value >= low if low_in else value > low) and (
            value <= high if high_in else value < high)
        if not inside:
            raise ValueError(f"--{name}: expected {_interval(low, high, low_in, high_in)}, got {value}.")
    clean, noisy = args.matched_fractions
    if not (math.isfinite(clean) and math.isfinite(noisy) and clean >= 0 and noisy >= 0 and clean + noisy <= 1):
        raise ValueError(f"--matched_fractions: expected two fractions >= 0 summing to at most 1, got {clean} {noisy}.")
    minimum = 0 if args.mode == "jump" else 1  # every other mode builds a transition of this many frames
    if args.num_transition_frames < minimum:
        raise ValueError(f"--num_transition_frames: expected an integer >= {minimum} with --mode {args.mode}, got "
                         f"{args.num_transition_frames}.")
    if args.lora_layers is not None and not [t for t in args.lora_layers.split(",") if t.strip()]:
        raise ValueError(f"--lora_layers: expected comma-separated module names, got {args.lora_layers!r}.")


def check_args(args: argparse.Namespace) -> None:
    """Argument checks that need no data or model; errors name the flag, the expectation and the value. The output
    folder is created and checked for writing last (after every cheaper check)."""
    check_flag_ranges(args)
    if args.dataset_dir is None:
        raise ValueError("--dataset_dir: expected a Syn2Seq dataset folder, got nothing.")
    if not Path(args.dataset_dir).is_dir():
        raise ValueError(f"--dataset_dir: expected an existing Syn2Seq dataset folder, got {args.dataset_dir!r} "
                         "(does not exist).")
    if args.train_mode == "lora" and not args.pretrained_model_name_or_path:
        raise ValueError("--train_mode lora: expected a base model in --pretrained_model_name_or_path (a pipeline or "
                         "transformer folder, or a converted DFoT checkpoint), got none; LoRA needs trained weights.")
    if args.train_mode == "lora" and args.use_ema:
        raise ValueError("--use_ema: supported with --train_mode full only, got --train_mode lora.")
    if args.pretrained_model_name_or_path and Path(args.pretrained_model_name_or_path).is_file() \
            and args.dfot_config is None:
        raise ValueError("--dfot_config: expected the backbone settings (JSON/YAML) of the official DFoT checkpoint "
                         f"{args.pretrained_model_name_or_path!r}, got none.")
    if args.backbone != "dfot" and (args.dfot_config is not None or args.noise_schedule != "cosine"):
        raise ValueError(f"--dfot_config / --noise_schedule: expected with --backbone dfot only, got --backbone "
                         f"{args.backbone} (its flow scheduler is set by --flow_shift).")
    for flag in ("config", "model_config", "dfot_config", "prompt_embeds"):
        value = getattr(args, flag)
        if value is not None and not Path(value).is_file():
            raise ValueError(f"--{flag}: expected an existing file, got {value!r}.")
    check_foundation_flags(args)
    for flag in ("train_split", "validation_split"):
        if getattr(args, flag) not in SPLITS:
            raise ValueError(f"--{flag}: expected one of {list(SPLITS)}, got {getattr(args, flag)!r}.")
    trackers = ["none", *(t.value for t in LoggerType)]
    if args.report_to not in trackers:  # accelerate's own error names neither the flag nor the choices
        raise ValueError(f"--report_to: expected one of {trackers}, got {args.report_to!r}.")
    if args.vae_name_or_path is not None:
        check_folder_or_repo_id(args.vae_name_or_path, "--vae_name_or_path")
    if args.cache_latents and args.vae_name_or_path is None and not _pipeline_has_vae(args):
        raise ValueError("--cache_latents: expected a VAE (--vae_name_or_path or a pipeline with a vae), got none.")
    if args.push_to_hub and not args.hub_model_id:
        raise ValueError("--push_to_hub: expected --hub_model_id 'user/name', got none.")
    check_total_limit(args.checkpoints_total_limit)
    if args.hub_dry_run and not args.push_to_hub:
        raise ValueError("--hub_dry_run: expected together with --push_to_hub (it replaces the upload by a local copy "
                         "of what would be uploaded), got it alone.")
    check_output_dir(args.output_dir, "--output_dir")


def check_foundation_flags(args: argparse.Namespace) -> None:
    """The SkyReels-V2 / Wan flags: refused with --backbone dfot (they would be ignored), and the prompt file holds
    its `prompt_embeds` (checked by its header, before any model is built)."""
    if args.backbone == "dfot":
        given = [f"--{flag}" for flag, default in (("prompt_embeds", None), ("flow_shift", 5.0))
                 if getattr(args, flag) != default]
        if given:
            raise ValueError(f"{' / '.join(given)}: expected with --backbone skyreels-v2-df or wan only (a DFoT "
                             "backbone has no text condition and a DDIM scheduler), got --backbone dfot.")
    if args.prompt_embeds is not None and Path(args.prompt_embeds).is_file():
        try:
            with safe_open(args.prompt_embeds, "pt") as file:
                keys = list(file.keys())
        except (SafetensorError, OSError) as error:
            raise ValueError(f"--prompt_embeds: expected a safetensors file, got {args.prompt_embeds!r}: "
                             f"{error}") from None
        if "prompt_embeds" not in keys:
            raise ValueError(f"--prompt_embeds: expected a safetensors file with the key 'prompt_embeds' "
                             f"(models.encode_prompt_embeds), got {args.prompt_embeds!r} with keys {keys}.")


def _pipeline_has_vae(args) -> bool:
    path = args.pretrained_model_name_or_path
    return bool(path) and (Path(path) / "vae" / "config.json").is_file()


# ====================================================================================================================
# 2. Models
# ====================================================================================================================
def load_models(args, data_resolution: tuple[int, int]):
    """Transformer, scheduler and optional VAE from a pipeline / model folder, an official checkpoint, or a preset."""
    if args.backbone != "dfot":
        return load_foundation_models(args, data_resolution)
    path = args.pretrained_model_name_or_path
    scheduler = None
    if path:
        # --dfot_config only describes checkpoint files (check_args requires it there); folders carry their config.
        dfot_config = args.dfot_config if Path(path).is_file() else None
        try:
            transformer = load_transformer(path, dfot_config)
        except ValueError as error:
            raise ValueError(f"--pretrained_model_name_or_path / --dfot_config: {error}") from error
        if isinstance(transformer, WanDFoTTransformer3DModel):
            raise ValueError(f"--backbone: expected {transformer.config.backbone_type!r} for the SkyReels-V2 / Wan "
                             f"model in {path!r}, got 'dfot'.")
        if (Path(path) / "model_index.json").is_file():  # a pipeline also brings its scheduler
            scheduler = DiffusionForcingScheduler.from_pretrained(path, subfolder="scheduler")
    vae, vae_factor = _load_vae_of_args(args)
    if not path:
        height, width = data_resolution
        config = dict(DIT_PRESETS[args.model_preset])
        if args.model_config:
            config.update(_read_model_config(args.model_config, DFoTTransformer3DModel))
        config.setdefault("in_channels", vae_latent_channels(vae))
        config.setdefault("sample_size", (height // vae_factor, width // vae_factor) if height != width
                          else height // vae_factor)
        config.setdefault("max_frames", args.max_frames)
        config.setdefault("patch_size", args.patch_size)
        config.setdefault("camera_ray_type", None if args.camera_ray_type == "none" else args.camera_ray_type)
        config.setdefault("noise_embedding_type", "fourier" if args.noise_schedule == "cosine_simple_diffusion"
                          else "sinusoidal")
        transformer = DFoTTransformer3DModel(**config)
    if scheduler is None:
        schedule = "cosine_simple_diffusion" if transformer.config.noise_embedding_type == "fourier" else "cosine"
        scheduler = DiffusionForcingScheduler(noise_schedule=schedule)
    return transformer, scheduler, vae, vae_factor


def _load_vae_of_args(args):
    """The VAE of `--vae_name_or_path`, else of the `--pretrained_model_name_or_path` pipeline's `vae/`, else None;
    and its spatial factor (both backbones)."""
    vae = None
    if args.vae_name_or_path:
        vae = load_pretrained(load_vae, args.vae_name_or_path, "--vae_name_or_path", subfolder=args.vae_subfolder)
    elif _pipeline_has_vae(args):
        vae = load_pretrained(load_vae, args.pretrained_model_name_or_path, "--pretrained_model_name_or_path",
                              subfolder="vae")
    return vae, vae_scale_factors(vae)[1]


def load_foundation_models(args, data_resolution: tuple[int, int]):
    """`--backbone skyreels-v2-df|wan`: a `WanDFoTTransformer3DModel` (from a Syn2Seq folder, a SkyReels-V2 / Wan
    diffusers checkpoint, or `--model_config` from scratch), the flow scheduler and the optional per-frame VAE."""
    path = args.pretrained_model_name_or_path
    vae, vae_factor = _load_vae_of_args(args)
    height, width = data_resolution
    size = (height // vae_factor, width // vae_factor)
    wrapper_settings = dict(sample_size=list(size), max_frames=args.max_frames,
                            camera_ray_type=None if args.camera_ray_type == "none" else args.camera_ray_type)
    scheduler = None
    if path and _is_syn2seq_folder(path):
        transformer = load_transformer(path)
        _check_backbone(args, transformer, path)  # before its scheduler, which only fits the right backbone
        if (Path(path) / "model_index.json").is_file():
            scheduler = FlowMatchDiffusionForcingScheduler.from_pretrained(path, subfolder="scheduler")
    elif path:
        if args.train_mode == "lora" and wrapper_settings["camera_ray_type"] is not None:
            raise ValueError(f"--camera_ray_type: expected none with --train_mode lora on the {args.backbone} "
                             f"checkpoint {path!r} (its new, zero-initialised camera adapter would stay frozen and is "
                             f"not part of a LoRA file; use --mode video, or --train_mode full), got "
                             f"{args.camera_ray_type}.")
        transformer = WanDFoTTransformer3DModel.from_pretrained_backbone(path, backbone_type=args.backbone,
                                                                         **wrapper_settings)
    else:
        channels = vae_latent_channels(vae)
        config = {**SKYREELS_V2_DF_1_3B_CONFIG, "in_channels": channels, "out_channels": channels,
                  "inject_sample_info": args.backbone == "skyreels-v2-df"}
        if args.model_config:
            config.update(_read_model_config(args.model_config, WanDFoTTransformer3DModel))
        transformer = WanDFoTTransformer3DModel(**{**config, **wrapper_settings, "backbone_type": args.backbone})
    _check_backbone(args, transformer, path)
    if args.prompt_embeds:
        transformer.set_prompt_embeds(load_file(args.prompt_embeds)["prompt_embeds"])
    return transformer, scheduler or FlowMatchDiffusionForcingScheduler(shift=args.flow_shift), vae, vae_factor


def _check_backbone(args, transformer, path: str | None) -> None:
    if not isinstance(transformer, WanDFoTTransformer3DModel) or transformer.config.backbone_type != args.backbone:
        got = transformer.config.backbone_type if isinstance(transformer, WanDFoTTransformer3DModel) else "dfot"
        raise ValueError(f"--backbone: expected the backbone of {path!r}, {got!r}, got {args.backbone!r}.")


def _vae_source(args) -> dict[str, Any] | None:
    """Where the run's VAE came from, as a foundation LoRA folder records it (a local folder by its name only)."""
    if args.vae_name_or_path:
        path = args.vae_name_or_path
        return {"name_or_path": Path(path).resolve().name if Path(path).is_dir() else path,
                "subfolder": args.vae_subfolder}
    return {"from_base": True, "subfolder": "vae"} if _pipeline_has_vae(args) else None


def _is_syn2seq_folder(path: str) -> bool:
    """A Syn2Seq pipeline folder or a transformer folder of this package (else: a SkyReels-V2 / Wan checkpoint)."""
    folder = Path(path)
    for name, classes in (("model_index.json", ("Syn2SeqPipeline",)), ("config.json", tuple(TRANSFORMER_CLASSES))):
        if (folder / name).is_file():
            try:
                return json.loads((folder / name).read_text()).get("_class_name") in classes
            except (ValueError, AttributeError):
                return False
    return False


def _read_model_config(path: str, cls: type) -> dict[str, Any]:
    config = read_json_object(path, "--model_config", f"a JSON file of {cls.__name__} arguments")
    accepted = sorted(set(inspect.signature(cls.__init__).parameters) - {"self"})
    unknown = sorted(set(config) - set(accepted))
    if unknown:
        raise ValueError(f"--model_config: expected {cls.__name__} arguments in {path!r}, got unknown keys {unknown}; "
                         f"accepted: {accepted}.")
    return config


# ====================================================================================================================
# 3. Data checks (before any training)
# ====================================================================================================================
def check_data(args, split: str, role: str) -> Any:
    """The split's metadata table, checked: present, non-empty, sequences at least one window long."""
    try:
        table = load_metadata(args.dataset_dir, split=split)
    except ValueError as error:
        raise ValueError(f"--dataset_dir: expected a Syn2Seq dataset folder, got {args.dataset_dir!r}: "
                         f"{error}") from None
    if len(table) == 0:
        splits = sorted(set(load_metadata(args.dataset_dir, validate=False)["split"]))
        raise ValueError(f"--{role}_split: expected a split with at least one take in {args.dataset_dir!r}, got "
                         f"{split!r} which is empty (splits present: {splits}).")
    return table


TASKS = ("auto", "syn2seq", "pretrain")
TASK_DESCRIPTIONS = {
    "syn2seq": "Syn2Seq-Forcing fine-tuning on synchronised exo/ego pairs",
    "pretrain": "pretraining on continuous-camera clips (DFoT's own task: one camera, every frame at its own noise "
                "level, a pose on every frame; validation generates the last frames of held-out clips from the first "
                "ones)",
}


def resolve_task(args, table) -> str:
    """`--task`, with `auto` read from the training takes' category; a pretraining run is checked to see every frame
    of its continuous clips (`video+pose` on the cached rendered middle piece, played forwards)."""
    categories = sorted(set(table["category"]))
    continuous = [c == CONTINUOUS_CATEGORY for c in categories]
    task = args.task
    if task == "auto":
        if any(continuous) and not all(continuous):
            raise ValueError(f"--task: expected 'pretrain' or 'syn2seq' for a training split that mixes continuous "
                             f"clips and exo/ego pairs, got 'auto' (categories {categories} in {args.dataset_dir!r}).")
        task = "pretrain" if all(continuous) else "syn2seq"
    if task == "pretrain":
        if not all(continuous):
            raise ValueError(f"--task pretrain: expected continuous-camera takes (category {CONTINUOUS_CATEGORY!r}, "
                             f"written by make_synthetic_dataset.py --continuous), got categories {categories} in "
                             f"--dataset_dir {args.dataset_dir!r}.")
        wrong = [(flag, value, expected) for flag, value, expected in (
            ("--mode", args.mode, "video+pose"), ("--transition_source", args.transition_source, "cached"),
            ("--reverse_prob", args.reverse_prob, 0.0)) if value != expected]
        if wrong:
            flag, value, expected = wrong[0]
            raise ValueError(f"{flag}: expected {expected} with --task pretrain (the continuous clip's three pieces "
                             f"are one video: every frame real, with its pose, played forwards), got {value}.")
    return task


def check_windows(args, table, window: int, temporal: int = 1) -> None:
    """Every take's sequence holds a window; with a causal video VAE compressing time `temporal` times, counted in
    latent frames of the sequence cut to latent boundaries (`data.sequence.trim_to_latent_boundaries`)."""
    for row in table:
        n = row["num_frames"] if args.num_clip_frames is None else min(row["num_frames"], args.num_clip_frames)
        if args.num_clip_frames is not None and row["num_frames"] < args.num_clip_frames:
            raise ValueError(f"--num_clip_frames: expected at most the clip length, got {args.num_clip_frames} but "
                             f"take {row['take_id']!r} has {row['num_frames']} frames.")
        transition = 0
        if args.mode != "jump":
            cached = row["transition_poses"]
            transition = len(cached) if (cached and args.transition_source == "cached") else args.num_transition_frames
        total = 2 * n + transition
        if temporal > 1:
            total = 1 + (n - 1) // temporal + transition // temporal + n // temporal
        if total < window:
            raise ValueError(f"--window_frames: expected at most the sequence length of every take, got a window of "
                             f"{window} frames but take {row['take_id']!r} gives {total}"
                             f"{' latent frames' if temporal > 1 else ''} (exo {n} + transition {transition} + ego "
                             f"{n}); the clip is shorter than the window.")


def check_resolution(table, transformer, vae_factor: int) -> tuple[int, int]:
    heights, widths = set(table["height"]), set(table["width"])
    if len(heights) != 1 or len(widths) != 1:
        raise ValueError(f"--dataset_dir: expected one frame size for all takes, got heights {sorted(heights)} and "
                         f"widths {sorted(widths)}.")
    height, width = heights.pop(), widths.pop()
    multiple = transformer.config.patch_size * vae_factor
    if height % multiple or width % multiple:
        raise ValueError(f"--dataset_dir: expected a frame size divisible by patch_size x vae_scale_factor = {multiple}"
                         f" (patch_size={transformer.config.patch_size}), got {height}x{width}.")
    size = transformer.config.sample_size
    size = (size, size) if isinstance(size, int) else tuple(size)
    if (height // vae_factor, width // vae_factor) != tuple(size):
        raise ValueError(f"--dataset_dir: expected frames of {size[0] * vae_factor}x{size[1] * vae_factor} (the "
                         f"model's sample_size {tuple(size)} x vae factor {vae_factor}), got {height}x{width}.")
    return height, width


def pipeline_settings(args, table) -> dict[str, Any]:
    """The Syn2Seq settings every saved pipeline carries (`Syn2SeqPipeline` configuration, `model_index.json`): the
    training mode, its Ego2Exo reversal, and the transition length it was trained with (the cached transitions' when
    the dataset has them and all have one length, else `--num_transition_frames`; 0 for `jump`)."""
    num_transition = 0
    if args.mode != "jump":
        num_transition = args.num_transition_frames
        if args.transition_source == "cached" and args.num_clip_frames is None:
            cached = {len(row["transition_poses"]) for row in table if row["transition_poses"]}
            if len(cached) == 1:
                num_transition = cached.pop()
    return {"mode": args.mode, "num_transition_frames": num_transition, "reversal": args.reversal}


# ====================================================================================================================
# 4. Validation
# ====================================================================================================================
# Per-scene scores of `evaluation.record_scores` logged by `log_validation`, as `val/<name>` (mean over the takes).
VALIDATION_METRICS = (("psnr", "psnr"), ("ssim", "ssim"), ("layout_psnr", "layout_psnr"),
                      ("mean_of_n_psnr", "psnr_mean_of_n"))


@torch.no_grad()
def log_validation(args, accelerator, transformer, scheduler, vae, takes, step: int, settings: dict[str, Any]
                   ) -> dict[str, float]:
    """Generate the ego clip of held-out takes from their exo clip; write MP4 + PNG (source | generated | ground
    truth) under OUTPUT/validation/step-N, log PSNR / SSIM / layout PSNR of the generated frames and the PSNR of the
    mean of `--validation_num_samples` samples (`diffusers_syn2seq.evaluation.evaluate_scene`, as `syn2seq
    evaluate`)."""
    was_training = transformer.training
    transformer.eval()
    pipe = Syn2SeqPipeline(transformer=transformer, scheduler=scheduler, vae=vae, **settings)
    pipe.set_progress_bar_config(disable=True)
    out_dir = Path(args.output_dir) / "validation" / f"step-{step}"
    out_dir.mkdir(parents=True, exist_ok=True)
    scores = new_scores()
    images = []
    num_takes = min(args.num_validation_videos, len(takes))
    for i in tqdm(range(num_takes), desc=f"validation at step {step} ({num_takes} takes)",
                  disable=not accelerator.is_local_main_process, leave=False):
        take = takes[i]
        num_transition = args.num_transition_frames
        if take.get("transition") is not None and args.transition_source == "cached":
            num_transition = len(take["transition"])
        # the benchmark's own generation and scores (`syn2seq evaluate`), so validation and benchmark cannot drift apart
        generated, truth = evaluate_scene(pipe, take, scores, args.mode, "exo2ego", num_transition,
                                          args.validation_inference_steps, args.seed + i, args.validation_num_frames,
                                          num_samples=args.validation_num_samples)
        n = len(generated)
        source = frames_to_unit_tensor(np.asarray(take["exo"][:n]))
        row = torch.cat([source, generated, truth], dim=-1)  # (F, 3, H, 3W): source | generated | ground truth
        video = (row.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)
        write_video(out_dir / f"sample-{i}.mp4", video, fps=float(take.get("fps") or 8.0), chroma="444")
        grid = np.concatenate(list(video), axis=0)  # frames stacked vertically
        from PIL import Image

        png = io.BytesIO()
        Image.fromarray(grid).save(png, format="PNG")
        atomic_write_bytes(out_dir / f"sample-{i}.png", png.getvalue())  # a reader never sees half a PNG
        images.append(grid)
    metrics = {f"val/{name}": float(np.mean(scores[key])) for key, name in VALIDATION_METRICS if key in scores}
    accelerator.log(metrics, step=step)
    for tracker in accelerator.trackers:
        if tracker.name == "tensorboard":
            for i, grid in enumerate(images):
                tracker.writer.add_image(f"val/sample-{i}", grid, step, dataformats="HWC")
    logger.info(f"validation at step {step}: {metrics}")
    if was_training:
        transformer.train()
    del pipe
    free_memory()
    return metrics


# ====================================================================================================================
# 5. Training
# ====================================================================================================================
def make_accelerator(args, output_dir: Path) -> Accelerator:
    """The run's `Accelerator` (precision, accumulation, trackers), logging, and the global seed."""
    accelerator = Accelerator(
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        mixed_precision=args.mixed_precision,
        log_with=None if args.report_to == "none" else args.report_to,
        project_config=ProjectConfiguration(project_dir=str(output_dir),
                                            logging_dir=str(output_dir / args.logging_dir)),
    )
    logging.basicConfig(format="%(asctime)s - %(levelname)s - %(name)s - %(message)s", level=logging.INFO)
    if not accelerator.is_local_main_process:
        diffusers.utils.logging.set_verbosity_error()
    set_seed(args.seed)
    return accelerator


def prepare_transformer(args, accelerator, transformer, vae):
    """Devices and dtypes, the LoRA adapter (LoRA runs) or full training, gradient checkpointing, compilation, EMA.

    Returns `(lora_config, ema)`; both may be None."""
    weight_dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(accelerator.mixed_precision, torch.float32)
    if vae is not None:
        vae.requires_grad_(False)
        vae.to(accelerator.device, dtype=weight_dtype if args.train_mode == "lora" else torch.float32)
    transformer.to(accelerator.device)
    lora_config = None
    if args.train_mode == "lora":
        transformer.requires_grad_(False)
        if weight_dtype != torch.float32:  # frozen base in half precision; norms and embeddings stay float32
            _cast_keeping_fp32_modules(transformer, weight_dtype)
        targets = [t.strip() for t in (args.lora_layers or "").split(",") if t.strip()] \
            or default_lora_targets(transformer)
        args.lora_layers = ",".join(targets)  # what ran, for the model card
        lora_config = LoraConfig(r=args.rank, lora_alpha=args.lora_alpha or args.rank, init_lora_weights=True,
                                 target_modules=targets)
        transformer.add_adapter(lora_config)
        cast_training_params(transformer, dtype=torch.float32)
    else:
        transformer.requires_grad_(True)
    transformer.train()
    if args.gradient_checkpointing:
        transformer.enable_gradient_checkpointing()
    if args.compile:  # in place: parameter names, saving and the EMA copy are unchanged
        transformer.compile_repeated_blocks()
    ema = None
    if args.use_ema:
        ema = EMAModel(transformer.parameters(), decay=args.ema_decay, model_cls=type(transformer),
                       model_config=transformer.config)
        ema.to(accelerator.device)
    return lora_config, ema


def register_checkpoint_hooks(args, accelerator, lora_config, ema, history: dict[str, list]) -> None:
    """Checkpoints hold the transformer folder (full runs) or the LoRA file (LoRA runs), the EMA weights as
    `ema.safetensors` (`training_utils.save_ema_state`), and the run's history so far (`history`: every segment's
    command and validation row, `HISTORY_FILENAME`): saved and loaded here, in accelerate's hooks, rather than with
    `register_for_checkpointing`, which would write a pickle and unpickle it with `weights_only=False` on resume."""

    def save_model_hook(models, weights, folder):
        if accelerator.is_main_process:
            atomic_write_text(Path(folder) / HISTORY_FILENAME, json.dumps(history, indent=2))
            for model in models:
                model = accelerator.unwrap_model(model)
                if args.train_mode == "lora":
                    Syn2SeqPipeline.save_lora_weights(folder,
                                                      transformer_lora_layers=get_peft_model_state_dict(model),
                                                      transformer_lora_adapter_metadata=lora_config.to_dict())
                else:
                    model.save_pretrained(Path(folder) / "transformer")
                weights.pop()
            if ema is not None:
                save_ema_state(ema, folder)

    def load_model_hook(models, folder):
        while models:
            model = accelerator.unwrap_model(models.pop())
            if args.train_mode == "lora":
                state = Syn2SeqLoraLoaderMixin.lora_state_dict(folder, use_safetensors=True)
                state = lora_keys_for_transformer(state, model)  # a wrapper's files name its backbone's modules
                state = {k.removeprefix("transformer."): v for k, v in state.items()}
                result = set_peft_model_state_dict(model, state, adapter_name="default")
                if getattr(result, "unexpected_keys", None):
                    raise ValueError(f"checkpoint {folder}: unexpected LoRA keys {result.unexpected_keys[:5]}")
                cast_training_params(model, dtype=torch.float32)
            else:
                loaded = type(model).from_pretrained(Path(folder) / "transformer", use_safetensors=True)
                model.load_state_dict(loaded.state_dict())
                del loaded
        if ema is not None:
            load_ema_state(ema, folder)

    accelerator.register_save_state_pre_hook(save_model_hook)
    accelerator.register_load_state_pre_hook(load_model_hook)


def make_training_data(args, accelerator, vae, window: int):
    """Decoded takes (kept in memory by `--cache_data`, else decoded per batch in the DataLoader workers) or cached
    latents -> deterministic Syn2Seq windows -> batches.

    Returns `(windows, sampler, dataloader)`."""
    transition_fn = None
    if args.mode != "jump":
        transition_fn = CrossfadeTransition()
    takes = Syn2SeqClipDataset(args.dataset_dir, args.train_split, args.num_clip_frames,
                               load_transition=args.transition_source == "cached" and args.num_clip_frames is None)
    latents = None
    if args.cache_latents:
        # A causal video VAE's cache holds the joint encoding of each direction that training can draw.
        directions = [d for d, p in (("exo2ego", 1 - args.reverse_prob), ("ego2exo", args.reverse_prob)) if p > 0]
        latents = [encode_take_latents(vae, takes[i], transition_fn, args.num_transition_frames, mode=args.mode,
                                       reversal=args.reversal, directions=directions)
                   for i in tqdm(range(len(takes)), desc="caching latents",
                                 disable=not accelerator.is_local_main_process)]
    else:
        takes = cache_decoded_takes(args, accelerator, takes)
    windows = Syn2SeqTrainingWindows(takes, args.mode, window, args.reverse_prob, args.reversal, transition_fn,
                                     args.num_transition_frames, seed=args.seed, latents=latents)
    sampler = EpochShuffleSampler(len(windows), seed=args.seed)
    dataloader = torch.utils.data.DataLoader(
        windows, batch_size=args.train_batch_size, sampler=sampler, num_workers=args.dataloader_num_workers,
        collate_fn=lambda batch: collate_syn2seq(batch, pad_to=window), drop_last=False,
    )
    return windows, sampler, dataloader


def cache_decoded_takes(args, accelerator, takes):
    """`--cache_data`: the takes decoded once and kept in memory (`InMemoryTakes`) when they fit
    `--cache_data_max_mb`; otherwise, with `auto`, the takes as they are (decoded per batch) and a log line saying
    why, with `always` a `ValueError` naming the flags and both sizes. Batches are the same either way."""
    if args.cache_data == "never":
        return takes
    need_mb = decoded_take_bytes(takes) / 2**20
    if need_mb > args.cache_data_max_mb:
        if args.cache_data == "always":
            raise ValueError(f"--cache_data always: expected the decoded training takes to fit --cache_data_max_mb="
                             f"{args.cache_data_max_mb:g} MiB, got {need_mb:.1f} MiB for {len(takes)} takes; raise "
                             "--cache_data_max_mb or use --cache_data auto (decodes per batch when over budget).")
        logger.info(f"--cache_data auto: not caching the training takes ({need_mb:.1f} MiB decoded, over "
                    f"--cache_data_max_mb={args.cache_data_max_mb:g}); every batch decodes its clips")
        return takes
    logger.info(f"--cache_data {args.cache_data}: decoding {len(takes)} training takes once into memory "
                f"({need_mb:.1f} MiB)")
    return InMemoryTakes(takes, progress=lambda indices: tqdm(indices, desc="decoding takes",
                                                              disable=not accelerator.is_local_main_process))


def make_optimizer(args, accelerator, transformer):
    """AdamW over the trainable parameters and the LR schedule. Returns `(params, optimizer, lr_scheduler)`."""
    if args.scale_lr:
        args.learning_rate *= args.gradient_accumulation_steps * args.train_batch_size * accelerator.num_processes
    params = [p for p in transformer.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=args.learning_rate, betas=(args.adam_beta1, args.adam_beta2),
                                  weight_decay=args.adam_weight_decay, eps=args.adam_epsilon)
    lr_scheduler = get_scheduler(args.lr_scheduler, optimizer=optimizer,
                                 num_warmup_steps=args.lr_warmup_steps * accelerator.num_processes,
                                 num_training_steps=args.max_train_steps * accelerator.num_processes)
    return params, optimizer, lr_scheduler


def resumed_history(args, output_dir: Path, global_step: int) -> dict[str, list]:
    """The run's history, `{"commands": [...], "validation": [...]}`: this segment's command after those of the
    segments before the checkpoint it resumes from, and their validation rows up to its step (none for a new run)."""
    history: dict[str, list] = {"commands": [], "validation": []}
    checkpoint = resolve_checkpoint(output_dir, args.resume_from_checkpoint) if global_step else None
    if checkpoint is not None and (checkpoint / HISTORY_FILENAME).is_file():
        saved = json.loads((checkpoint / HISTORY_FILENAME).read_text())
        history["commands"] = list(saved.get("commands", []))
        history["validation"] = [row for row in saved.get("validation", []) if row["step"] <= global_step]
    history["commands"].append(args.command)
    return history


def resume_position(args, accelerator, output_dir: Path, steps_per_epoch: int) -> tuple[int, int, int]:
    """Load the checkpoint `--resume_from_checkpoint` names, if any: `(global_step, first_epoch, skip_batches)`."""
    checkpoint = resolve_checkpoint(output_dir, args.resume_from_checkpoint)
    if checkpoint is None:
        if args.resume_from_checkpoint:
            accelerator.print(f"no checkpoint in {output_dir}: starting a new run")
        return 0, 0, 0
    accelerator.print(f"resuming from {checkpoint}")
    with loadable_checkpoint(checkpoint, use_ema=args.use_ema) as folder:  # never hands accelerate a pickle to load
        try:
            accelerator.load_state(str(folder))
        except pickle.UnpicklingError as error:  # optimizer.bin, scheduler.bin: refused by the restricted loader
            raise ValueError(f"--resume_from_checkpoint {str(checkpoint)!r}: a file was refused by torch's restricted "
                             f"loader (weights_only=True) and is never loaded: {' '.join(str(error).split())}"
                             ) from None
    global_step = int(checkpoint.name.split("-")[1])
    return (global_step, global_step // steps_per_epoch,
            (global_step % steps_per_epoch) * args.gradient_accumulation_steps)


def fixed_batch_loss(args, accelerator, transformer, scheduler, vae, batch) -> float:
    """The loss of one fixed batch with fixed noise and levels (an overfit check before and after training)."""
    model = accelerator.unwrap_model(transformer)
    was_training = model.training
    model.eval()
    inputs = model_inputs(batch, model.config, vae, accelerator.device)
    generator = torch.Generator().manual_seed(12345)
    with torch.no_grad(), accelerator.autocast():
        loss, _ = diffusion_forcing_loss(model, scheduler, inputs["x0"], inputs["frame_mask"], inputs["camera_rays"],
                                         inputs["pose_mask"], args.noise_level_sampling, args.num_context_frames,
                                         args.loss_weighting, 0.0, generator,
                                         num_history=inputs["num_history"],
                                         matched_fractions=tuple(args.matched_fractions))
    model.train(was_training)
    return float(loss)


def training_step(args, accelerator, transformer, scheduler, vae, batch, params, optimizer, lr_scheduler,
                  micro_step: int) -> torch.Tensor:
    """One micro-batch: model inputs, the diffusion-forcing loss (noise, levels and pose dropout drawn from the
    micro-step's own seed, so a resumed run draws what an uninterrupted one would), backward, optimiser step.

    The batch stays on the CPU (the loader does not place it) and nothing is read back from the device: the loss is
    returned as a tensor, checked and logged by `LossLog` every `--logging_steps` steps."""
    generator = torch.Generator().manual_seed(step_seed(args.seed, micro_step, accelerator.process_index))
    torch.manual_seed(step_seed(args.seed, micro_step, accelerator.process_index))  # model-internal dropout
    with accelerator.accumulate(transformer):
        inputs = model_inputs(batch, accelerator.unwrap_model(transformer).config, vae, accelerator.device)
        loss, _ = diffusion_forcing_loss(
            transformer, scheduler, inputs["x0"], inputs["frame_mask"], inputs["camera_rays"], inputs["pose_mask"],
            args.noise_level_sampling, args.num_context_frames, args.loss_weighting, args.camera_dropout, generator,
            num_history=inputs["num_history"], matched_fractions=tuple(args.matched_fractions),
        )
        accelerator.backward(loss)
        if accelerator.sync_gradients and args.max_grad_norm > 0:
            accelerator.clip_grad_norm_(params, args.max_grad_norm)
        optimizer.step()
        lr_scheduler.step()
        optimizer.zero_grad(set_to_none=True)
    return loss


def validate_with_ema(args, accelerator, model, scheduler, vae, ema, val_takes, step: int, settings) -> dict:
    """`log_validation` on the EMA weights when there are any (the training weights are restored afterwards)."""
    if ema is not None:
        ema.store(model.parameters())
        ema.copy_to(model.parameters())
    metrics = {"step": step, **log_validation(args, accelerator, model, scheduler, vae, val_takes, step, settings)}
    if ema is not None:
        ema.restore(model.parameters())
    return metrics


def time_is_up(accelerator, deadline: float | None, flushed: bool) -> bool:
    """True once the `--max_train_minutes` deadline has passed on any process (all processes stop together). One
    process checks its clock at every step; several agree through a gather (a host synchronisation) at the steps
    whose losses were just flushed (`flushed`), so they stop within `--logging_steps` steps of the deadline."""
    if deadline is None:
        return False
    if accelerator.num_processes == 1:
        return time.monotonic() > deadline
    if not flushed:
        return False
    expired = torch.tensor([time.monotonic() > deadline], device=accelerator.device)
    return bool(accelerator.gather(expired).any())


class LossLog:
    """The training losses, kept on the device and read back every `--logging_steps` steps in one transfer (one host
    synchronisation per flush instead of one per step), then checked and logged step by step: `train_log.jsonl`, the
    trackers and the progress bar get every step's loss (mean over processes) and learning rate, as before.

    A non-finite loss of any micro-step on any process raises a `FloatingPointError` naming its step on every
    process at the next flush, which comes before every checkpoint, validation and the final save: a NaN never
    reaches a saved file."""

    def __init__(self, accelerator, progress, path: Path):
        self.accelerator, self.progress, self.path = accelerator, progress, path
        self.micro: list[tuple[int, int, torch.Tensor]] = []  # (step, micro-step, loss) of every micro-batch
        self.steps: list[tuple[int, torch.Tensor, float]] = []  # (step, loss, lr) of every optimiser step

    def add_micro_step(self, step: int, micro_step: int, loss: torch.Tensor) -> None:
        self.micro.append((step, micro_step, loss.detach()))

    def add_step(self, step: int, loss: torch.Tensor, lr: float) -> None:
        self.steps.append((step, loss.detach(), lr))

    def flush(self) -> None:
        if self.micro:
            # gathered, so that every process sees a non-finite loss of any of them and all stop together
            micro = self.accelerator.gather(torch.stack([loss for _, _, loss in self.micro])[None])
            finite = torch.isfinite(micro).all(dim=0).tolist()
            if not all(finite):
                index = finite.index(False)
                step, micro_step, _ = self.micro[index]
                value = micro[:, index][~torch.isfinite(micro[:, index])][0].item()
                raise FloatingPointError(f"non-finite loss {value} at step {step} (micro-step {micro_step}); "
                                         "lower --learning_rate or use --mixed_precision no.")
            self.micro = []
        if not self.steps:
            return
        losses = torch.stack([loss for _, loss, _ in self.steps])
        means = self.accelerator.gather(losses[None]).mean(dim=0).tolist()  # (processes, steps) -> per step
        for (step, _, lr), loss in zip(self.steps, means):
            logs = {"train/loss": loss, "train/lr": lr}
            self.accelerator.log(logs, step=step)
            if self.accelerator.is_main_process:
                with open(self.path, "a") as f:
                    f.write(json.dumps({"step": step, **logs}) + "\n")
        self.progress.set_postfix(loss=f"{means[-1]:.4f}")
        self.steps = []


def save_outputs(args, model, scheduler, vae, lora_config, settings, summary: dict[str, Any], card: dict[str, Any]
                 ) -> None:
    """The trained pipeline (full runs, with its Syn2Seq settings) or LoRA file, the summary, the model card and the
    Hub upload (or its dry run)."""
    output_dir = Path(args.output_dir)
    # Written into a hidden folder first and moved into place when complete (model_index.json last), so a failed
    # write (disk full) never leaves a half-written pipeline next to the checkpoints.
    staging = output_dir / f".final-{os.getpid()}.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        if args.train_mode == "lora":
            Syn2SeqPipeline.save_lora_weights(staging, transformer_lora_layers=get_peft_model_state_dict(model),
                                              transformer_lora_adapter_metadata=lora_config.to_dict())
            if _is_foundation_lora(args):  # the base is a bare checkpoint: keep what it takes to sample as trained
                base = args.pretrained_model_name_or_path  # a Hub id as it is, a local folder by its name only
                save_foundation_lora_settings(staging, model, scheduler, settings,
                                              Path(base).resolve().name if Path(base).is_dir() else base,
                                              _vae_source(args))
        else:
            Syn2SeqPipeline(transformer=model, scheduler=scheduler, vae=vae, **settings).save_pretrained(staging)
        fix_weight_modes([staging])
    except (OSError, RuntimeError, SafetensorError) as error:
        shutil.rmtree(staging, ignore_errors=True)
        raise OSError(getattr(error, "errno", None), f"could not write the trained weights to {str(output_dir)!r} "
                      f"(is the disk full or read-only?): {' '.join(str(error).split())}; the checkpoints are kept",
                      str(output_dir)) from error
    publish_folder(staging, output_dir, last="model_index.json")
    atomic_write_text(output_dir / "training_summary.json", json.dumps(summary, indent=2))
    save_model_card(output_dir, card)
    if args.push_to_hub:
        manifest = push_folder_to_hub(output_dir, args.hub_model_id, token=args.hub_token, private=args.hub_private,
                                      dry_run_dir=output_dir / "hub_dry_run" if args.hub_dry_run else None)
        logger.info(describe_upload(manifest))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    # 1. Arguments and the accelerator.
    args = parse_args(argv)
    check_args(args)
    output_dir = Path(args.output_dir)
    accelerator = make_accelerator(args, output_dir)

    # 2. Data tables and models, all checked before anything is trained.
    train_table = check_data(args, args.train_split, "train")
    task = resolve_task(args, train_table)
    logger.info(f"task: {TASK_DESCRIPTIONS[task]}")
    heights, widths = sorted(set(train_table["height"])), sorted(set(train_table["width"]))
    transformer, scheduler, vae, vae_factor = load_models(args, (heights[0], widths[0]))
    check_resolution(train_table, transformer, vae_factor)
    window = args.window_frames or transformer.config.max_frames
    if window > transformer.config.max_frames:
        raise ValueError(f"--window_frames: expected at most the model's max_frames={transformer.config.max_frames}, "
                         f"got {window}.")
    if is_video_vae(vae) and not args.cache_latents:
        raise ValueError("--cache_latents: expected with a causal video VAE (its sequences are encoded jointly, per "
                         "direction, before training), got none.")
    check_windows(args, train_table, window, vae_scale_factors(vae)[0])
    settings = pipeline_settings(args, train_table)  # saved with every pipeline this run writes
    val_takes = []
    if args.validation_steps:
        check_data(args, args.validation_split, "validation")
        val_takes = Syn2SeqClipDataset(args.dataset_dir, args.validation_split, args.num_clip_frames,
                                       load_transition=args.num_clip_frames is None)
        val_takes = [val_takes[i] for i in range(min(args.num_validation_videos, len(val_takes)))]

    # 3. Trainable weights, checkpoint hooks, data, optimiser; everything through accelerate.
    lora_config, ema = prepare_transformer(args, accelerator, transformer, vae)
    history: dict[str, list] = {"commands": [args.command], "validation": []}  # filled in on resume
    register_checkpoint_hooks(args, accelerator, lora_config, ema, history)
    windows, sampler, train_dataloader = make_training_data(args, accelerator, vae, window)
    params, optimizer, lr_scheduler = make_optimizer(args, accelerator, transformer)
    transformer, optimizer, lr_scheduler = accelerator.prepare(transformer, optimizer, lr_scheduler)
    # Batches stay on the CPU: `model_inputs` moves frames and rays to the device and keeps the masks on the CPU,
    # where the objective's per-frame maths runs without reading anything back from the device.
    train_dataloader = accelerator.prepare_data_loader(train_dataloader, device_placement=False)
    steps_per_epoch = math.ceil(len(train_dataloader) / args.gradient_accumulation_steps)
    num_epochs = math.ceil(args.max_train_steps / steps_per_epoch)
    if accelerator.is_main_process:
        accelerator.init_trackers(args.tracker_project_name, config={k: v for k, v in vars(args).items()
                                                                     if isinstance(v, (int, float, str, bool))})
    num_params = sum(p.numel() for p in accelerator.unwrap_model(transformer).parameters())
    logger.info(f"{type(accelerator.unwrap_model(transformer)).__name__}: {num_params:,} parameters, "
                f"{sum(p.numel() for p in params):,} trained; {len(windows)} takes, {steps_per_epoch} steps/epoch")

    # 4. Resume, and the fixed-batch loss before training (same windows, noise and levels as after it).
    global_step, first_epoch, skip_batches = resume_position(args, accelerator, output_dir, steps_per_epoch)
    history.update(resumed_history(args, output_dir, global_step))
    sampler.select_epoch(0)
    windows.select_epoch(0)
    fixed_batch = next(iter(torch.utils.data.DataLoader(windows, batch_size=args.train_batch_size, sampler=sampler,
                                                        collate_fn=train_dataloader.collate_fn)))
    summary: dict[str, Any] = {"fixed_batch_loss_start": None if global_step else fixed_batch_loss(
        args, accelerator, transformer, scheduler, vae, fixed_batch)}
    log_path = output_dir / "logs" / "train_log.jsonl"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    val_metrics: list[dict[str, float]] = history["validation"]  # the same list: checkpoints save it as it grows

    # 5. The loop: deterministic epochs, one optimiser step per accumulated batch, logs, checkpoints, validation.
    progress = tqdm(range(args.max_train_steps), initial=global_step, desc="steps",
                    disable=not accelerator.is_local_main_process)
    deadline = None if args.max_train_minutes is None else time.monotonic() + 60 * args.max_train_minutes
    start_time, out_of_time = time.monotonic(), False
    loss_log = LossLog(accelerator, progress, log_path)
    for epoch in range(first_epoch, num_epochs):
        sampler.select_epoch(epoch)
        windows.select_epoch(epoch)
        loader = train_dataloader
        if epoch == first_epoch and skip_batches:
            loader = accelerator.skip_first_batches(train_dataloader, skip_batches)
        for index, batch in enumerate(loader, start=skip_batches if epoch == first_epoch else 0):
            micro_step = epoch * len(train_dataloader) + index
            loss = training_step(args, accelerator, transformer, scheduler, vae, batch, params, optimizer,
                                 lr_scheduler, micro_step)
            loss_log.add_micro_step(global_step + 1, micro_step, loss)
            if not accelerator.sync_gradients:
                continue
            if ema is not None:
                ema.step(accelerator.unwrap_model(transformer).parameters())
            global_step += 1
            progress.update(1)
            loss_log.add_step(global_step, loss, lr_scheduler.get_last_lr()[0])
            checkpoint = global_step % args.checkpointing_steps == 0
            validate = bool(args.validation_steps) and global_step % args.validation_steps == 0
            flush = checkpoint or validate or global_step % args.logging_steps == 0
            if flush:  # the losses are checked before anything is saved
                loss_log.flush()
            if validate and accelerator.is_main_process:  # before the checkpoint, whose history then holds it
                val_metrics.append(validate_with_ema(args, accelerator, accelerator.unwrap_model(transformer),
                                                     scheduler, vae, ema, val_takes, global_step, settings))
            if checkpoint:
                save_checkpoint_atomically(accelerator, output_dir, global_step, args.checkpoints_total_limit)
            out_of_time = time_is_up(accelerator, deadline, flush)
            if global_step >= args.max_train_steps or out_of_time:
                break
        if global_step >= args.max_train_steps or out_of_time:
            break
    loss_log.flush()
    progress.close()
    summary.update(train_seconds=time.monotonic() - start_time, stopped_by_time_budget=out_of_time)
    accelerator.wait_for_everyone()

    # 6. Final weights (EMA when used), last validation, pipeline / LoRA file, summary, model card, Hub.
    if accelerator.is_main_process:
        model = accelerator.unwrap_model(transformer)
        summary["fixed_batch_loss_end"] = fixed_batch_loss(args, accelerator, transformer, scheduler, vae,
                                                           fixed_batch)
        if ema is not None:
            ema.copy_to(model.parameters())
        if args.validation_steps and (not val_metrics or val_metrics[-1]["step"] != global_step):
            val_metrics.append({"step": global_step, **log_validation(args, accelerator, model, scheduler, vae,
                                                                      val_takes, global_step, settings)})
        samples = sorted(str(p.relative_to(output_dir)) for p in (output_dir / "validation").glob(
            f"step-{global_step}/*.png")) if val_metrics else []
        summary.update(global_step=global_step, num_parameters=num_params, validation=val_metrics, task=task,
                       commands=history["commands"],
                       **settings, reverse_prob=args.reverse_prob, scene_style=dataset_scene_style(train_table))
        card = _card_info(args, model, scheduler, vae, num_params, sum(p.numel() for p in params), window,
                          accelerator.num_processes, train_table, val_metrics, samples, settings)
        card["commands"] = history["commands"]
        card["task"] = TASK_DESCRIPTIONS[task]
        card["mixed_precision"] = accelerator.mixed_precision  # what ran (train.py's flag or accelerate's)
        save_outputs(args, model, scheduler, vae, lora_config, settings, summary, card)
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return summary


def _is_foundation_lora(args) -> bool:
    """A LoRA on a SkyReels-V2 / Wan diffusers checkpoint (not a Syn2Seq folder): its folder also holds the wrapper's
    settings and prompt embedding (`loaders/foundation_lora.py`)."""
    path = args.pretrained_model_name_or_path
    return args.train_mode == "lora" and args.backbone != "dfot" and bool(path) and not _is_syn2seq_folder(path)


def _usage(args) -> str:
    """How the card's usage example loads the run (`model_card.USAGES`): its own pipeline folder (full runs), or the
    base and then the LoRA: a Syn2Seq pipeline with `from_pretrained`, a SkyReels-V2 / Wan checkpoint with
    `from_foundation_lora`, and a bare transformer folder or official DFoT checkpoint with `load_transformer` and a
    pipeline built around it (neither has a `model_index.json` to load a pipeline from)."""
    if args.train_mode == "full":
        return "pipeline"
    if _is_foundation_lora(args):
        return "foundation_lora"
    return "lora" if (Path(args.pretrained_model_name_or_path) / "model_index.json").is_file() else "transformer_lora"


def _usage_example(args, model, scheduler, vae, table, settings) -> dict[str, Any]:
    """What the card's usage example needs: how the run is loaded (with the scheduler, Syn2Seq settings and VAE a
    pipeline built around a bare transformer takes), and a SynthEgoExo clip like the training data (clip length,
    frame size, scene style; poses for a pose-conditioned model)."""
    lengths = sorted(set(table["num_frames"]))
    height, width = int(table["height"][0]), int(table["width"][0])
    base = args.pretrained_model_name_or_path
    return {
        "usage": _usage(args), "scheduler_code": scheduler_expression(scheduler), "reversal": settings["reversal"],
        "dfot_config": args.dfot_config if base and Path(base).is_file() else None,
        "vae_name_or_path": args.vae_name_or_path, "vae_subfolder": args.vae_subfolder,
        "example_frames": args.num_clip_frames or lengths[0],
        "example_resolution": height if height == width else (height, width),
        "example_style": dataset_scene_style(table) or "textured",
        "posed": model.config.camera_ray_type is not None,
    }


def _card_info(args, model, scheduler, vae, num_params, num_trainable, window, num_processes, table, val_metrics,
               samples, settings) -> dict[str, Any]:
    lengths = sorted(set(table["num_frames"]))
    clip = str(args.num_clip_frames or (lengths[0] if len(lengths) == 1 else f"{lengths[0]}-{lengths[-1]}"))
    transition = "none (jump)" if args.mode == "jump" else (
        "cached in the dataset (" + ", ".join(sorted({str(s) for s in table["transition_source"]})) + ")"
        if args.transition_source == "cached" else f"crossfade ({args.num_transition_frames} frames)")
    return {
        "training_mode": args.train_mode, "base_model": args.pretrained_model_name_or_path,
        "repo_id": args.hub_model_id, "license": args.license, "rank": args.rank,
        "lora_alpha": args.lora_alpha or args.rank,
        "lora_layers": args.lora_layers, "transformer_class": type(model).__name__, "num_parameters": f"{num_params:,}",
        "trainable_parameters": f"{num_trainable:,}", "space": "pixels" if vae is None else
        "causal video VAE latents" if is_video_vae(vae) else "per-frame VAE latents",
        "prediction_type": scheduler.config.prediction_type, "noise_schedule": scheduler.config.get(
            "noise_schedule", f"rectified flow (shift {scheduler.config.get('shift')})"),
        "syn2seq_mode": args.mode,
        "segment_lengths": f"{clip} / {settings['num_transition_frames']} / {clip} frames",
        "transition_source": transition, "window_frames": window, "reverse_prob": args.reverse_prob,
        "noise_level_sampling": args.noise_level_sampling, "loss_weighting": args.loss_weighting,
        "dataset": f"`{portable_path(args.dataset_dir)}` split `{args.train_split}` ({len(table)} takes, "
                   f"{sorted(set(table['category']))}).",
        "max_train_steps": args.max_train_steps,
        "batch_size": f"{args.train_batch_size} x {args.gradient_accumulation_steps} x {num_processes}",
        "learning_rate": args.learning_rate, "adam_betas": (args.adam_beta1, args.adam_beta2),
        "weight_decay": args.adam_weight_decay, "lr_scheduler": args.lr_scheduler,
        "lr_warmup_steps": args.lr_warmup_steps, "mixed_precision": args.mixed_precision or "accelerate default",
        "ema": f"decay {args.ema_decay}" if args.use_ema else "no", "command": args.command,
        "num_transition_frames": settings["num_transition_frames"],
        "metrics": [{k.replace("val/", ""): v for k, v in m.items()} for m in val_metrics], "samples": samples,
        **_usage_example(args, model, scheduler, vae, table, settings),
    }


if __name__ == "__main__":
    sys.exit(run_tool("train.py", main))
