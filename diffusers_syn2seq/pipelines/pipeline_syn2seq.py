# SPDX-License-Identifier: Apache-2.0
"""`Syn2SeqPipeline`: exo<->ego video generation as Syn2Seq-Forcing sequence completion with a DFoT model.

The data path reads in one direction: source video -> sequence `[source | transition | target]`
(`data.sequence.SequenceLayout`, the layout training uses) -> windows of at most `max_frames` frames
(`data.windows.plan_windows`, conditioned by `data.windows.window_camera_rays` and, for condition models, each
window's slice of the frame conditions) -> one batched transformer forward per
denoising iteration (all history-guidance branches) -> guidance composition -> per-frame DDIM step -> frames. Source
frames are clean history; transition and target frames are generated under a scheduling matrix (full-sequence,
autoregressive or pyramid). The Syn2Seq settings a model was trained with (`mode`, `num_transition_frames`,
`reversal`) are pipeline configuration, saved in `model_index.json`.
"""

import contextlib
import dataclasses
import os
from collections.abc import Callable, Sequence
from typing import Any

import diffusers
import torch
from diffusers.callbacks import MultiPipelineCallbacks, PipelineCallback
from diffusers.models import AutoencoderKL, AutoencoderKLWan
from diffusers.pipelines.pipeline_utils import DiffusionPipeline
from diffusers.utils import logging, replace_example_docstring
from diffusers.utils.torch_utils import randn_tensor
from diffusers.video_processor import VideoProcessor
from huggingface_hub import snapshot_download

from ..bundled import legacy_settings
from ..data.sequence import DEFAULT_NUM_TRANSITION_FRAMES, SequenceLayout
from ..data.windows import plan_windows, window_camera_rays
from ..latents import decode_video, encode_video, vae_scale_factors
from ..loaders.lora_pipeline import Syn2SeqLoraLoaderMixin
from ..models.autoencoder_kl_dfot_video import AutoencoderKLDFoTVideo
from ..schedulers import PER_FRAME_SCHEDULERS, DiffusionForcingScheduler, FlowMatchDiffusionForcingScheduler
from ..validation import check_generator, check_non_negative_int, check_number
from .call_arguments import callback_latents, check_call_arguments, check_callback, check_transition_poses
from .history_guidance import (
    GENERATE,
    GENERATED_HISTORY,
    GROUND_TRUTH_HISTORY,
    compose_guidance,
    fraction_to_level,
    history_guidance_branches,
)
from .pipeline_output import Syn2SeqPipelineOutput
from .sequence_conditioning import FrameConditions, check_condition_processing, given_condition_names, sequence_poses
from .video_input import ConditionInput, PoseInput, VideoInput, num_pose_frames
from .video_latents import SequenceFrames, check_frame_counts, initial_noise, read_source

logger = logging.get_logger(__name__)

EXAMPLE_DOC_STRING = """
    Examples:
        ```py
        >>> import torch
        >>> from diffusers_syn2seq import Syn2SeqPipeline, bundled_model_path
        >>> from diffusers_syn2seq.data import render_synthetic_clip, write_video

        >>> pipe = Syn2SeqPipeline.from_pretrained(bundled_model_path())  # or a folder / Hub repo id
        >>> clip = render_synthetic_clip(seed=2_000_000, num_frames=4, resolution=32)
        >>> out = pipe(clip["exo"], source_poses=torch.from_numpy(clip["exo_poses"]),
        ...            target_poses=torch.from_numpy(clip["ego_poses"]), num_inference_steps=25,
        ...            generator=torch.Generator().manual_seed(0))
        >>> write_video("ego.mp4", (out.frames[0] * 255).round().astype("uint8"), fps=8)
        ```
"""


class Syn2SeqPipeline(DiffusionPipeline, Syn2SeqLoraLoaderMixin):
    r"""
    Syn2Seq-Forcing exo<->ego video generation with a Diffusion Forcing Transformer.

    The model sees one continuous sequence `[source | transition | target]`: for `exo2ego` the exocentric clip is the
    clean history and the transition (a fly-through from the exo to the ego camera) and the egocentric clip are
    generated; for `ego2exo` the same model runs on the time-reversed sequence `[ego reversed | transition reversed |
    exo reversed]`. Callers always pass videos and poses in natural time order; the pipeline reverses and restores.

    Args:
        transformer ([`DFoTTransformer3DModel`] or any model with its forward signature and config names
            `in_channels`, `sample_size`, `max_frames`, `patch_size`, `noise_embedding_type`, `camera_ray_type`).
        scheduler ([`DiffusionForcingScheduler`] or [`FlowMatchDiffusionForcingScheduler`]): its schedule kind must
            match the model's noise embedding (`"flow"` for the SkyReels-V2 / Wan wrapper).
        vae ([`AutoencoderKL`], [`AutoencoderKLWan`] or [`AutoencoderKLDFoTVideo`], *optional*): the VAE of a latent
            model, a per-frame image VAE (DFoT's ImageVAE is an `AutoencoderKL` whose config carries the per-channel
            `latents_mean` / `latents_std` the latents are normalised with) or a causal video VAE compressing time
            (frame counts on latent boundaries, see `video_latents.py`); None
            for pixel-space models. A latent model without its VAE still samples from `source_latents` with
            `output_type="latent"`.
        mode (`str`, defaults to `"video+pose"`): the Syn2Seq mode the model was trained with: `"jump"` (no
            transition), `"video"` (transition frames without poses) or `"video+pose"` (transition frames on the
            interpolated camera path). Saved in `model_index.json`; `__call__(mode=...)` overrides it.
        num_transition_frames (`int`, defaults to 4): transition frames generated between source and target (0 in
            `"jump"` mode). Saved in `model_index.json`; `__call__` overrides it.
        reversal (`str`, defaults to `"full"`): the Ego2Exo sequence order the model was trained with (`"full"`:
            whole sequence backwards; `"segments"`: `[ego | reversed transition | exo]`, see `data.sequence`).
        condition_processing (`str`, *optional*): for transformers with per-frame condition vectors
            (`condition_dim`): None feeds the frame conditions as given; `"mask_first"` zeroes the vector of every
            window's first frame, as DFoT's `external_cond_processing="mask_first"` (the official Minecraft model).
            Saved in `model_index.json`.

    LoRA: `load_lora_weights`, `save_lora_weights`, `fuse_lora`, ... come from [`Syn2SeqLoraLoaderMixin`]; pass
    `attention_kwargs={"scale": s}` to scale the LoRA layers at call time. Caching (`transformer.enable_cache(...)`,
    e.g. First-Block-Cache) works through the pipeline: every transformer call runs in `cache_context("cond")`.
    """

    model_cpu_offload_seq = "transformer->vae"
    _optional_components = ["vae"]
    _callback_tensor_inputs = ["latents"]

    def __init__(
        self,
        transformer: torch.nn.Module,
        scheduler: DiffusionForcingScheduler | FlowMatchDiffusionForcingScheduler,
        vae: AutoencoderKL | AutoencoderKLWan | AutoencoderKLDFoTVideo | None = None,
        mode: str = "video+pose",
        num_transition_frames: int = DEFAULT_NUM_TRANSITION_FRAMES,
        reversal: str = "full",
        condition_processing: str | None = None,
    ):
        super().__init__()
        # Checked now, so a folder with bad settings fails at load time, not at the first call.
        if not isinstance(transformer, torch.nn.Module) or not hasattr(transformer, "config"):
            raise ValueError(f"`transformer` must be a DFoT model (a torch module with a config), got "
                             f"{type(transformer).__name__}.")
        if not isinstance(scheduler, PER_FRAME_SCHEDULERS):
            raise ValueError(f"`scheduler` must be a DiffusionForcingScheduler or FlowMatchDiffusionForcingScheduler "
                             f"(per-frame noise levels), got {type(scheduler).__name__}.")
        num_transition_frames = check_non_negative_int("num_transition_frames", num_transition_frames)
        SequenceLayout(1, 0 if mode == "jump" else num_transition_frames, 1, mode, reversal=reversal)
        temporal = vae_scale_factors(vae)[0]
        if mode != "jump" and num_transition_frames % temporal:
            raise ValueError(f"`num_transition_frames` must be a multiple of {temporal} (transition frames; whole "
                             f"latent frames of a VAE compressing time {temporal}x), got {num_transition_frames}.")
        self.register_modules(transformer=transformer, scheduler=scheduler, vae=vae)
        self.register_to_config(mode=mode, num_transition_frames=num_transition_frames, reversal=reversal,
                                condition_processing=check_condition_processing(condition_processing))
        self.video_processor = VideoProcessor(vae_scale_factor=self.vae_scale_factor, do_resize=False)

    # ------------------------------------------------------------------------------------------------ loading
    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, **kwargs):
        """Load from a local folder, or from a Hub repo id fetched with `huggingface_hub.snapshot_download` first
        (honours `revision`, `cache_dir`, `token`, `local_files_only`, `proxies`, `force_download`)."""
        path = str(pretrained_model_name_or_path)
        if not os.path.isdir(path):
            hub_keys = ("revision", "cache_dir", "token", "local_files_only", "proxies", "force_download")
            hub_kwargs = {key: kwargs.pop(key) for key in hub_keys if key in kwargs}
            path = snapshot_download(path, **hub_kwargs)
        for key, value in legacy_settings(path).items():
            kwargs.setdefault(key, value)
        return super().from_pretrained(path, **kwargs)

    @classmethod
    def from_foundation_lora(cls, lora_name_or_path: str | os.PathLike,
                             base_model_name_or_path: str | os.PathLike | None = None, vae=None,
                             torch_dtype: torch.dtype | None = None, adapter_name: str | None = None, **hub_kwargs):
        """The pipeline a LoRA that `train.py --backbone skyreels-v2-df|wan --train_mode lora` trained on a bare
        SkyReels-V2 / Wan diffusers checkpoint was trained as, with the LoRA loaded: see
        `loaders.foundation_lora.load_foundation_lora_pipeline` (the arguments are its own)."""
        from ..loaders.foundation_lora import load_foundation_lora_pipeline

        return load_foundation_lora_pipeline(cls, lora_name_or_path, base_model_name_or_path, vae, torch_dtype,
                                             adapter_name, **hub_kwargs)

    # ------------------------------------------------------------------------------------------------ properties
    @property
    def vae_scale_factor(self) -> int:
        """Pixels per model-space cell along height and width (`latents.vae_scale_factors`; follows `pipe.vae`)."""
        return vae_scale_factors(getattr(self, "vae", None))[1]

    @property
    def vae_scale_factor_temporal(self) -> int:
        """Pixel frames per latent frame after the first: 4 for a Wan VAE, 1 for per-frame VAEs and pixel models."""
        return vae_scale_factors(getattr(self, "vae", None))[0]

    @property
    def model_frame_size(self) -> tuple[int, int]:
        """(height, width) of the model input (latent or pixel grid) from `transformer.config.sample_size`."""
        size = self.transformer.config.sample_size
        return (int(size), int(size)) if isinstance(size, int) else (int(size[0]), int(size[1]))

    @property
    def guidance_scale(self) -> float:
        """`w` of history guidance in the running (or last) call; a `callback_on_step_end` may set
        `pipe._guidance_scale`, which the next iteration uses."""
        return self._guidance_scale

    @property
    def num_timesteps(self) -> int:
        """Number of transformer evaluations (denoising iterations over all windows) of the running or last call."""
        return getattr(self, "_num_timesteps", 0)

    @property
    def attention_kwargs(self) -> dict | None:
        return self._attention_kwargs

    @property
    def current_timestep(self) -> int | None:
        """Highest noise level (0..T-1) among the generated frames at the running iteration (the shared level of a
        full-sequence window), a scalar as diffusers' cache hooks expect; None outside the loop. The per-frame
        levels are the callback's `t`."""
        return self._current_timestep

    @property
    def interrupt(self) -> bool:
        """Set `pipe._interrupt = True` (e.g. from a callback) to stop denoising; frames are returned as they are."""
        return self._interrupt

    # ------------------------------------------------------------------------------------------------ video io
    def encode_video(self, video: torch.Tensor) -> torch.Tensor:
        """Pixels `(B, 3, F, H, W)` in [-1, 1] -> model space `(B, C, F', h, w)` (`latents.encode_video`: per-frame
        VAE latents, a causal video VAE's joint encoding of `1 + t a` frames, or the pixels without a VAE)."""
        return encode_video(self.vae, video)

    def decode_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """Model space `(B, C, F', h, w)` -> pixels `(B, 3, F, H, W)` in [-1, 1] (`latents.decode_video`; a causal
        video VAE decodes from the first latent: pass the source latents too)."""
        return decode_video(self.vae, latents)

    # ------------------------------------------------------------------------------------------------ checks
    def check_inputs(self, settings: dict[str, Any], callback_on_step_end, callback_on_step_end_tensor_inputs
                     ) -> dict[str, Any]:
        """Check the scalar arguments of `__call__` (`settings`: name -> value, see `call_arguments`) and the
        components; returns the arguments normalised (Python ints and floats)."""
        if not isinstance(self.scheduler, PER_FRAME_SCHEDULERS):
            raise ValueError(f"`pipe.scheduler` must be a DiffusionForcingScheduler or "
                             f"FlowMatchDiffusionForcingScheduler, got {type(self.scheduler).__name__}.")
        args = check_call_arguments(settings, self.scheduler.config.num_train_timesteps)
        check_callback(callback_on_step_end, callback_on_step_end_tensor_inputs, self._callback_tensor_inputs)
        self._check_components(args["output_type"])
        return args

    def _check_components(self, output_type: str) -> None:
        model_kind, schedule = self.transformer.config.noise_embedding_type, self.scheduler.config
        if self.scheduler.noise_embedding_type != model_kind:
            raise ValueError(
                f"`scheduler` produces model timesteps for a {self.scheduler.noise_embedding_type!r} noise embedding "
                f"(noise_schedule={schedule.get('noise_schedule', 'rectified_flow')!r}) but the transformer uses "
                f"{model_kind!r}."
            )
        channels = self.transformer.config.in_channels
        if self.vae is None and channels != 3 and output_type != "latent":
            raise ValueError(f"`output_type` must be 'latent' for a latent model (in_channels={channels}) without a "
                             f"`vae` (nothing can decode its frames), got {output_type!r}.")

    def _spatial_multiple(self) -> int:
        """Pixel height and width must be multiples of this: VAE factor x the transformer's downsampling."""
        config = self.transformer.config
        levels = len(getattr(config, "block_out_channels", None) or [0])  # U-ViT: one halving per extra level
        return self.vae_scale_factor * int(getattr(config, "patch_size", 1)) * 2 ** (levels - 1)

    # ------------------------------------------------------------------------------------------------ sampling
    def _branch_inputs(self, history_roles: list[int], guidance: dict, camera_rays, pose_valid,
                       conditions: FrameConditions | None, batch: int, device: torch.device) -> dict:
        """The history-guidance branches of a window at the current `guidance_scale`, laid out for one batched
        forward (branch j, sample b -> row j * B + b). A branch that drops the conditions (the empty-history branch of
        guidance) drops the camera rays and the frame conditions alike, as DFoT's guided samplers do
        (`use_external_cond_guidance`)."""
        scale = check_number("guidance_scale", self._guidance_scale)  # a callback may have changed it
        branches = history_guidance_branches(history_roles, guidance_scale=scale, **guidance)
        nb, num_history = branches.num_branches, len(history_roles)
        levels = branches.history_levels.to(device)
        inputs = dict(scale=scale, branches=branches, renoise=bool((levels >= 0).any()),
                      history_levels=levels[:, None, :].expand(nb, batch, num_history), rays=None, rays_mask=None,
                      condition=None, condition_mask=None)
        keep = ~branches.drop_conditions.to(device)
        if conditions is not None:
            inputs.update(conditions.branch_inputs(keep, device))
        if camera_rays is not None:
            inputs["rays"] = camera_rays.to(device).repeat(nb, 1, 1, 1, 1)
            inputs["rays_mask"] = (keep[:, None, None] & pose_valid.to(device)[None]).reshape(nb * batch, -1)
        return inputs

    def _reset_cache(self) -> None:
        # Cache hooks (First-Block-Cache, ...) compare consecutive calls; a new window or branch count changes the
        # batch shape, so their state starts afresh.
        if hasattr(self.transformer, "_reset_stateful_cache"):
            self.transformer._reset_stateful_cache()

    def _denoise_window(self, window: torch.Tensor, level_matrix: torch.Tensor, history_roles: list[int],
                        guidance: dict, camera_rays, pose_valid, conditions: FrameConditions | None, eta: float,
                        generator, progress_bar, step_offset: int, callback_on_step_end: Callable | None,
                        callback_on_step_end_tensor_inputs: Sequence[str]) -> torch.Tensor:
        """Denoise the generated frames of one window; its first `H = len(history_roles)` frames are history and are
        never modified.

        Args:
            window: `(B, C, F, h, w)` float32: `H` history frames then `F - H` frames at full noise.
            level_matrix: `(R, F - H)` per-iteration levels of the generated frames (scheduling matrix).
            history_roles, guidance: the history frames' roles and the history-guidance settings (branches are
                rebuilt whenever `pipe._guidance_scale` changes).
            camera_rays, pose_valid: `(B, C_ray, F, h, w)` and `(B, F)` for pose-conditioned models, else None.
            conditions: the window's frame conditions, or None (the transformer then gets no `condition`: the null
                embedding).
        Returns:
            the window with its generated frames at level -1.
        """
        batch, _, frames = window.shape[:3]
        num_history, device, dtype = len(history_roles), window.device, self.transformer.dtype
        clean_history = window[:, :, :num_history].clone()
        cache_context = getattr(self.transformer, "cache_context", None)
        self._reset_cache()
        inputs, latents, num_rows, nb = None, window, level_matrix.shape[0] - 1, 0
        for row in range(num_rows):
            if self.interrupt:
                break
            if inputs is None or inputs["scale"] != self._guidance_scale:
                inputs = self._branch_inputs(history_roles, guidance, camera_rays, pose_valid, conditions, batch,
                                             device)
                if nb and nb != inputs["branches"].num_branches:
                    self._reset_cache()
            nb = inputs["branches"].num_branches
            current, following = level_matrix[row], level_matrix[row + 1]
            self._current_timestep = int(current.max())
            # 1. Inputs of every branch: history at the branch's level (re-noised with fresh noise), same x_t.
            history_in = clean_history.unsqueeze(0).expand(nb, *clean_history.shape)
            if inputs["renoise"]:
                noise = randn_tensor((batch, nb, *clean_history.shape[1:]), generator=generator, device=device,
                                     dtype=torch.float32).transpose(0, 1)
                history_in = self.scheduler.add_noise(
                    history_in.reshape(nb * batch, *clean_history.shape[1:]),
                    noise.reshape(nb * batch, *clean_history.shape[1:]),
                    inputs["history_levels"].reshape(nb * batch, num_history),
                ).view(nb, *clean_history.shape)
            generated_in = latents[:, :, num_history:].unsqueeze(0).expand(nb, *latents[:, :, num_history:].shape)
            model_in = torch.cat([history_in, generated_in], dim=3).flatten(0, 1)
            levels = torch.cat(
                [inputs["history_levels"], current.to(device)[None, None].expand(nb, batch, -1)], dim=2
            ).reshape(nb * batch, frames)

            # 2. ONE transformer forward for all branches, then the guidance composition.
            context = cache_context("cond", step_index=row, num_inference_steps=num_rows) \
                if cache_context is not None else contextlib.nullcontext()
            # Only condition models get the condition arguments: other transformers (Wan wrapper) do not take them.
            condition_kwargs = {} if inputs["condition"] is None else dict(condition=inputs["condition"],
                                                                          condition_mask=inputs["condition_mask"])
            with context:
                prediction = self.transformer(
                    hidden_states=model_in.to(dtype),
                    timestep=self.scheduler.model_timesteps(levels),
                    camera_rays=None if inputs["rays"] is None else inputs["rays"].to(dtype),
                    camera_rays_mask=inputs["rays_mask"],
                    attention_kwargs=self.attention_kwargs,
                    return_dict=False,
                    **condition_kwargs,
                )[0]
            prediction = compose_guidance(prediction.unflatten(0, (nb, batch)), inputs["branches"].weights)

            # 3. DDIM step of the generated frames only; history frames never go through the step.
            generated = self.scheduler.step(
                prediction[:, :, num_history:], current[None], latents[:, :, num_history:],
                next_timestep=following[None], eta=eta, generator=generator,
            ).prev_sample
            latents = torch.cat([clean_history, generated], dim=2)

            if callback_on_step_end is not None:
                callback_kwargs = {"latents": latents} if "latents" in callback_on_step_end_tensor_inputs else {}
                callback_outputs = callback_on_step_end(self, step_offset + row, current, callback_kwargs)
                latents = callback_latents(callback_outputs, latents)
                latents[:, :, :num_history] = clean_history  # restore history, whatever the callback did
            progress_bar.update()
        return latents

    @torch.no_grad()
    @replace_example_docstring(EXAMPLE_DOC_STRING)
    def __call__(
        self,
        source_video: VideoInput | Sequence[VideoInput] | None = None,
        source_poses: PoseInput | None = None,
        target_poses: PoseInput | None = None,
        num_frames: int | None = None,
        num_videos_per_prompt: int = 1,
        num_transition_frames: int | None = None,
        mode: str | None = None,
        direction: str = "exo2ego",
        reversal: str | None = None,
        num_inference_steps: int = 50,
        schedule: str = "full_sequence",
        uncertainty_scale: float = 1.0,
        history_guidance: str | None = None,
        guidance_scale: float = 1.0,
        fractional_level: float = 0.8,
        history_subsets: Sequence[Sequence[int]] | None = None,
        history_weights: Sequence[float] | None = None,
        stabilization_level: float = 0.02,
        context_frames: int | None = None,
        sliding_window: bool = True,
        transition_poses: PoseInput | None = None,
        eta: float = 0.0,
        generator: torch.Generator | list[torch.Generator] | None = None,
        latents: torch.Tensor | None = None,
        output_type: str = "np",
        return_dict: bool = True,
        return_transition: bool = False,
        callback_on_step_end: Callable[[Any, int, torch.Tensor, dict], dict] | PipelineCallback
        | MultiPipelineCallbacks | None = None,
        callback_on_step_end_tensor_inputs: Sequence[str] = ("latents",),
        attention_kwargs: dict | None = None,
        height: int | None = None,
        width: int | None = None,
        source_latents: torch.Tensor | None = None,
        source_conditions: ConditionInput | None = None,
        target_conditions: ConditionInput | None = None,
        transition_conditions: ConditionInput | None = None,
    ):
        r"""
        Generate the target view of `source_video` (ego from exo, or exo from ego).

        Causal video VAE (`pipe.vae_scale_factor_temporal` t > 1, e.g. `AutoencoderKLWan`, t = 4): videos, poses,
        `num_frames` and `num_transition_frames` count PIXEL frames and must lie on latent boundaries (source `1 + t a`,
        transition `t b`, target `t c`; else a ValueError naming the argument); the transformer, its `max_frames`,
        `context_frames`, the windows, `latents` and the callback count LATENT frames (`1 + a | b | c`); latent frame
        `j` carries the pose of pixel frame `t j` of the sequence. See `pipelines/video_latents.py`.

        Args:
            source_video: the clean source clip, at least 2 frames: tensor `(F, 3, H, W)` / `(B, F, 3, H, W)` or
                array `(F, H, W, 3)` / `(B, F, H, W, 3)`, uint8 or float in [0, 1]; a list of PIL images; a video file
                path; or a list of such videos (a batch, equal lengths). Frames are resized to `height` x `width`.
            source_poses, target_poses: pose-conditioned models only: `(F, 16)` (shared by the batch), `(B, F, 16)` or
                a list of `B` `(F, 16)` camera poses of the source and of the target frames, natural time order,
                DFoT convention (fx, fy, px, py normalised by image size, then row-major world-to-camera [R|T]). Ray
                maps are built at the model resolution by `data.windows.window_camera_rays`, relative to each window's
                first frame with a known pose, exactly as in training.
            num_frames: number of target frames (default: `len(target_poses)` if given, else the source length;
                source length - 1 with a causal video VAE).
            num_videos_per_prompt: samples generated per source clip, in one batched call (diffusers' name; the
                output holds `B * num_videos_per_prompt` videos, the samples of source 0 first). Poses stay per source.
            num_transition_frames: transition frames generated between source and target, discarded unless
                `return_transition=True` (default: the pipeline's `config.num_transition_frames`; 0 in `"jump"` mode).
            mode: Syn2Seq mode (default: the pipeline's `config.mode`, the one the model was trained with):
                `"jump"` (no transition), `"video"` (transition frames without poses: their pose embedding is
                dropped), `"video+pose"` (transition frames on the SLERP camera path from the last source to the first
                target camera, or `transition_poses`).
            direction: `"exo2ego"` (source = exo clip) or `"ego2exo"` (source = ego clip; the model runs on the
                reversed sequence, outputs are returned in natural time order; a causal video VAE's source is reversed
                in pixel space, then encoded).
            reversal: Ego2Exo sequence order, `"full"` or `"segments"` (default: the pipeline's `config.reversal`).
            num_inference_steps: DDIM steps per frame (levels `-1, 19, ..., 999` for 50).
            schedule: `"full_sequence"`, `"autoregressive"` or `"pyramid"` (scheduling matrix of each window).
            uncertainty_scale: pyramid only: delay (in steps) between consecutive frames' denoising.
            history_guidance: None, `"vanilla"`, `"fractional"` or `"temporal"` (see `history_guidance.py`).
            guidance_scale: `w` of vanilla / fractional guidance (>= 1; 1 disables); temporal guidance without
                `history_weights` gives each subset `w / #subsets`. `pipe.guidance_scale` holds it during the call,
                and a callback may change `pipe._guidance_scale`.
            fractional_level: noise fraction `k_H` of the history in the fractional branch (DFoT: 0.8 / 0.4).
            history_subsets, history_weights: temporal guidance: index lists into the window's history frames
                (0 = oldest, negative from the newest) and their weights.
            stabilization_level: noise fraction at which previously generated frames are used as history (fresh
                noise each step; 0.02 = level 19); ground-truth source frames are always clean.
            context_frames: history frames kept per window when sliding (default `max_frames // 2`).
            sliding_window: allow several windows when the sequence exceeds `transformer.config.max_frames`;
                without it, only the latest source frames that fit are used and too many frames raise.
            transition_poses: pose-conditioned models in `"video+pose"` mode: `(Ni, 16)` / `(B, Ni, 16)` poses of the
                transition frames in natural order, instead of the interpolated camera path.
            eta: DDIM stochasticity.
            generator: a generator, or one per generated video (`B * num_videos_per_prompt`; each video then draws
                all its noise from its own, so a batch gives the frames of single calls with the same generators).
            latents: initial noise of the generated frames, `(B * num_videos_per_prompt, C, Ni + Nf, h, w)` in
                sequence order.
            output_type: `"np"`, `"pt"`, `"pil"` or `"latent"` (see [`Syn2SeqPipelineOutput`]; a causal video VAE's
                latents stay in sequence order and decode only after the source latents, `video_latents.py`).
            return_dict: return a [`Syn2SeqPipelineOutput`] instead of a tuple `(frames,)` /
                `(frames, transition_frames)`.
            return_transition: also return the transition frames.
            callback_on_step_end: `callback(pipe, i, t, callback_kwargs) -> dict` (or a diffusers `PipelineCallback`)
                after every denoising iteration; `i` counts iterations over all windows (`pipe.num_timesteps` in all),
                `t` holds the generated frames' levels `(G,)` before the step, `callback_kwargs["latents"]` is the
                window `(B, C, F, h, w)`; returning a modified `latents` replaces it (history frames are restored).
            callback_on_step_end_tensor_inputs: tensors passed to the callback (subset of `["latents"]`).
            attention_kwargs: forwarded to the transformer (e.g. `{"scale": 0.5}` for LoRA layers).
            height, width: pixel size the source is resized to and the target is generated at (default: the model
                resolution, `sample_size * vae_scale_factor`; other sizes must be multiples of the VAE factor times
                the transformer's downsampling and are outside what the model was trained on).
            source_latents: the source clip already in model space, `(C, F, h, w)` / `(B, C, F, h, w)` (or a list
                of `(C, F, h, w)`) in natural order, instead of `source_video` (how a latent pipeline without its
                `vae` samples; use `output_type="latent"` then). A causal video VAE's latents are its joint encoding of
                the source (`latents.encode_video`), refused where the sequence plays the source backwards.
            source_conditions, target_conditions, transition_conditions: condition models only (`condition_dim`
                D, e.g. the actions of DFoT's Minecraft model: D = 8, the 4-d actions of the skipped frame before a
                frame and of the frame itself, `frame_skip=2`): one vector per frame of each segment, `(F, D)` (shared
                by the batch), `(B, F, D)` or a list of `B` `(F, D)`, natural time order, like the poses. A segment
                left None gets the null embedding; all three None is unconditional sampling. With
                `condition_processing="mask_first"` each window's first vector is zeroed (DFoT's Minecraft sampler).
                Refused with a VAE compressing time, as in DFoT. See `pipelines/sequence_conditioning.py`.

        Examples:
        """
        if isinstance(callback_on_step_end, (PipelineCallback, MultiPipelineCallbacks)):
            callback_on_step_end_tensor_inputs = callback_on_step_end.tensor_inputs
        # 0. Checks and inputs; the Syn2Seq settings default to the pipeline's configuration.
        mode = self.config.mode if mode is None else mode
        if num_transition_frames is None:
            num_transition_frames = 0 if mode == "jump" else self.config.num_transition_frames
        args = self.check_inputs(dict(
            mode=mode, reversal=self.config.reversal if reversal is None else reversal, direction=direction,
            schedule=schedule, uncertainty_scale=uncertainty_scale, history_guidance=history_guidance,
            guidance_scale=guidance_scale, fractional_level=fractional_level, stabilization_level=stabilization_level,
            num_inference_steps=num_inference_steps, num_videos_per_prompt=num_videos_per_prompt,
            num_frames=num_frames, num_transition_frames=num_transition_frames,
            context_frames=context_frames, eta=eta, output_type=output_type, height=height, width=width,
            sliding_window=sliding_window, return_dict=return_dict, return_transition=return_transition,
        ), callback_on_step_end, callback_on_step_end_tensor_inputs)
        check_transition_poses(transition_poses)
        self._guidance_scale, self._attention_kwargs = args["guidance_scale"], attention_kwargs
        self._interrupt, self._current_timestep, self._num_timesteps = False, None, 0
        num_transition, device = args["num_transition_frames"], self._execution_device
        clip = read_source(self, source_video, source_latents, args["height"], args["width"], device)
        num_sources, per_source = clip.batch, args["num_videos_per_prompt"]
        if per_source > 1:  # every source repeated in place: samples of one source are neighbours in the batch
            clip = dataclasses.replace(clip, frames=clip.frames.repeat_interleave(per_source, dim=0))
        batch = clip.batch
        check_generator("generator", generator, batch)
        ray_type = getattr(self.transformer.config, "camera_ray_type", None)
        if ray_type is None and any(p is not None for p in (source_poses, target_poses, transition_poses)):
            raise ValueError("`source_poses` / `target_poses` were given but the transformer has no camera "
                             "conditioning (camera_ray_type=None); poses (transition_poses too) need a "
                             "pose-conditioned transformer.")
        frame_conditions = dict(source=source_conditions, transition=transition_conditions, target=target_conditions)
        condition_dim = getattr(self.transformer.config, "condition_dim", None)
        given = given_condition_names(frame_conditions, condition_dim, self.vae_scale_factor_temporal)
        num_frames, num_source = args["num_frames"], clip.num_frames
        if num_frames is None:  # a causal video VAE's default target: 4a frames from 1 + 4a source frames
            num_frames = num_pose_frames(target_poses) or num_source - (self.vae_scale_factor_temporal > 1)
        check_frame_counts(self.vae_scale_factor_temporal, num_source, num_transition, num_frames,
                           "source_video" if source_latents is None else "source_latents",
                           "num_frames" if args["num_frames"] is not None or target_poses is None else "target_poses")
        lengths = {"exo": num_source, "ego": num_frames} if direction == "exo2ego" else \
            {"exo": num_frames, "ego": num_source}
        layout = SequenceLayout(lengths["exo"], num_transition, lengths["ego"], mode, direction, args["reversal"])

        # 1. The sequence [source | transition | target] in model (sampling) order, laid out by the same
        # `SequenceLayout` training uses (`frames.model`: in latent frames for a causal video VAE, whose source is
        # reversed in pixel space and encoded jointly), with noise for the transition and target frames.
        frames = SequenceFrames(self.vae, layout)
        source = frames.source(clip)
        _, channels, num_source, height, width = source.shape
        num_generate = frames.model.num_frames - num_source
        latents = initial_noise(latents, (batch, channels, num_generate, height, width), generator, device,
                                num_frames, num_transition)
        sequence = torch.cat([source, latents], dim=2)
        roles = [GROUND_TRUTH_HISTORY] * num_source + [GENERATE] * num_generate
        poses = pose_mask = None
        if ray_type is not None:
            poses = sequence_poses(layout, source_poses, target_poses, transition_poses, num_sources, ray_type)
            poses = frames.poses(poses.repeat_interleave(per_source, dim=0))
            poses, pose_mask = poses.to(device), frames.model.pose_mask.to(device).expand(batch, -1)
        conditions = None  # none given: the transformer gets no condition at all, the null embedding of every frame
        if given:
            conditions = FrameConditions.from_segments(layout, frame_conditions, num_sources, int(condition_dim))
            conditions = conditions.repeat_interleave(per_source)

        # 2. Windows and their scheduling matrices.
        windows = plan_windows(num_source, num_generate, self.transformer.config.max_frames, args["context_frames"],
                               sliding_window)
        T = self.scheduler.config.num_train_timesteps
        steps = args["num_inference_steps"]
        self.scheduler.set_timesteps(steps, device=device)
        matrices = [self.scheduler.scheduling_matrix(g, steps, schedule, args["uncertainty_scale"]).to(device)
                    for _, _, g in windows]
        self._num_timesteps = sum(m.shape[0] - 1 for m in matrices)
        guidance = dict(
            guidance=history_guidance, fractional_level=fraction_to_level(args["fractional_level"], T),
            stabilization_level=fraction_to_level(args["stabilization_level"], T), masked_level=T - 1,
            history_subsets=history_subsets, history_weights=history_weights,
        )

        # 3. Sample window after window; generated frames become (stabilised) history for the next windows.
        step_offset = 0
        with self.progress_bar(total=self._num_timesteps) as progress_bar:
            for (start, num_hist, num_gen), matrix in zip(windows, matrices):
                if self.interrupt:
                    break
                end = start + num_hist + num_gen
                rays = rays_mask = None
                if poses is not None:  # the conditioning training uses for the same window
                    rays, rays_mask = window_camera_rays(poses[:, start:end], pose_mask[:, start:end], height,
                                                         width, ray_type)
                window_conditions = None if conditions is None else conditions.window(
                    start, end, self.config.get("condition_processing"))
                window = self._denoise_window(
                    sequence[:, :, start:end], matrix, roles[start : start + num_hist], guidance, rays, rays_mask,
                    window_conditions, args["eta"], generator, progress_bar, step_offset,
                    callback_on_step_end, callback_on_step_end_tensor_inputs,
                )
                sequence[:, :, start + num_hist : end] = window[:, :, num_hist:]
                roles[start + num_hist : end] = [GENERATED_HISTORY] * num_gen
                step_offset += matrix.shape[0] - 1
        self._current_timestep = None

        # 4. Split into segments in natural time order and decode (a causal video VAE decodes the whole sequence).
        frames, transition_frames = frames.outputs(sequence, output_type, self.video_processor.postprocess_video,
                                                   return_transition)
        self.maybe_free_model_hooks()
        if not return_dict:
            return (frames, transition_frames) if return_transition else (frames,)
        return Syn2SeqPipelineOutput(frames=frames, transition_frames=transition_frames)


def _register_with_diffusers() -> None:
    """Make `DiffusionPipeline.from_pretrained(dir)` resolve `"_class_name": "Syn2SeqPipeline"`.

    diffusers looks the pipeline class of `model_index.json` up as an attribute of the `diffusers` module (components
    recorded under a full module path, like ours, are resolved from `sys.modules` and need nothing more); exposing
    the class there once this package is imported is the least intrusive way to make the generic loader work.
    """
    if getattr(diffusers, Syn2SeqPipeline.__name__, None) is None:
        setattr(diffusers, Syn2SeqPipeline.__name__, Syn2SeqPipeline)


_register_with_diffusers()
