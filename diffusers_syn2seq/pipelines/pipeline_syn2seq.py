# SPDX-License-Identifier: Apache-2.0
"""`Syn2SeqPipeline`: exo<->ego video generation as Syn2Seq-Forcing sequence completion with a DFoT model.

The data path reads in one direction: source video -> sequence `[source | transition | target]`
(`data.sequence.SequenceLayout`, the layout training uses) -> windows of at most `max_frames` frames
(`data.windows.plan_windows`, conditioned by `data.windows.window_camera_rays`) -> one batched transformer forward per
denoising iteration (all history-guidance branches) -> guidance composition -> per-frame DDIM step -> frames. Source
frames are clean history; transition and target frames are generated under a scheduling matrix (full-sequence,
autoregressive or pyramid). The Syn2Seq settings a model was trained with (`mode`, `num_transition_frames`,
`reversal`) are pipeline configuration, saved in `model_index.json`.
"""

import os
from collections.abc import Callable, Sequence
from typing import Any

import diffusers
import torch
from diffusers.models import AutoencoderKL
from diffusers.pipelines.pipeline_utils import DiffusionPipeline
from diffusers.utils import logging, replace_example_docstring
from diffusers.utils.torch_utils import randn_tensor
from diffusers.video_processor import VideoProcessor
from huggingface_hub import snapshot_download

from ..bundled import legacy_settings
from ..data.sequence import (
    DEFAULT_NUM_TRANSITION_FRAMES,
    DIRECTIONS,
    MODES,
    REVERSALS,
    SequenceLayout,
    check_choice,
)
from ..data.windows import plan_windows, window_camera_rays
from ..latents import decode_frames, encode_frames
from ..loaders.lora_pipeline import Syn2SeqLoraLoaderMixin
from ..schedulers.scheduling_diffusion_forcing import SCHEDULES, DiffusionForcingScheduler
from .history_guidance import (
    GENERATE,
    GENERATED_HISTORY,
    GROUND_TRUTH_HISTORY,
    HISTORY_GUIDANCE,
    GuidanceBranches,
    compose_guidance,
    fraction_to_level,
    history_guidance_branches,
)
from .pipeline_output import Syn2SeqPipelineOutput
from .video_input import VideoInput, video_to_tensor

logger = logging.get_logger(__name__)

OUTPUT_TYPES = ("np", "pt", "pil", "latent")

EXAMPLE_DOC_STRING = """
    Examples:
        ```py
        >>> import torch
        >>> from diffusers.utils import export_to_video
        >>> from diffusers_syn2seq import Syn2SeqPipeline

        >>> pipe = Syn2SeqPipeline.from_pretrained("path/or/repo-id")
        >>> exo = "exo_clip.mp4"  # (T, H, W, 3) frames at the model resolution
        >>> out = pipe(exo, num_frames=8, history_guidance="fractional",
        ...            guidance_scale=1.5, generator=torch.Generator().manual_seed(0))
        >>> export_to_video(out.frames[0], "ego.mp4", fps=8)
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
        scheduler ([`DiffusionForcingScheduler`]): its schedule kind must match the model's noise embedding.
        vae ([`AutoencoderKL`], *optional*): per-frame image VAE for latent models; None for pixel-space models.
        mode (`str`, defaults to `"video+pose"`): the Syn2Seq mode the model was trained with: `"jump"` (no
            transition), `"video"` (transition frames without poses) or `"video+pose"` (transition frames on the
            interpolated camera path). Saved in `model_index.json`; `__call__(mode=...)` overrides it.
        num_transition_frames (`int`, defaults to 4): transition frames generated between source and target (0 in
            `"jump"` mode). Saved in `model_index.json`; `__call__` overrides it.
        reversal (`str`, defaults to `"full"`): the Ego2Exo sequence order the model was trained with (`"full"`:
            whole sequence backwards; `"segments"`: `[ego | reversed transition | exo]`, see `data.sequence`).

    LoRA: `load_lora_weights`, `save_lora_weights`, `fuse_lora`, ... come from [`Syn2SeqLoraLoaderMixin`]; pass
    `attention_kwargs={"scale": s}` to scale the LoRA layers at call time.
    """

    model_cpu_offload_seq = "transformer->vae"
    _optional_components = ["vae"]
    _callback_tensor_inputs = ["latents"]

    def __init__(
        self,
        transformer: torch.nn.Module,
        scheduler: DiffusionForcingScheduler,
        vae: AutoencoderKL | None = None,
        mode: str = "video+pose",
        num_transition_frames: int = DEFAULT_NUM_TRANSITION_FRAMES,
        reversal: str = "full",
    ):
        super().__init__()
        # Checked now, so a folder with bad settings fails at load time, not at the first call.
        if isinstance(num_transition_frames, bool) or not isinstance(num_transition_frames, int) \
                or num_transition_frames < 0:
            raise ValueError(f"`num_transition_frames` must be an integer >= 0, got {num_transition_frames!r}.")
        SequenceLayout(1, 0 if mode == "jump" else num_transition_frames, 1, mode, reversal=reversal)
        self.register_modules(transformer=transformer, scheduler=scheduler, vae=vae)
        self.register_to_config(mode=mode, num_transition_frames=int(num_transition_frames), reversal=reversal)
        self.vae_scale_factor = 2 ** (len(vae.config.block_out_channels) - 1) if vae is not None else 1
        # Frames must already be at the model resolution (no resizing), see `__call__`.
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

    # ------------------------------------------------------------------------------------------------ properties
    @property
    def model_frame_size(self) -> tuple[int, int]:
        """(height, width) of the model input (latent or pixel grid) from `transformer.config.sample_size`."""
        size = self.transformer.config.sample_size
        return (int(size), int(size)) if isinstance(size, int) else (int(size[0]), int(size[1]))

    @property
    def num_timesteps(self) -> int:
        """Number of transformer evaluations of the last call (all windows)."""
        return getattr(self, "_num_timesteps", 0)

    # ------------------------------------------------------------------------------------------------ video io
    def encode_video(self, video: torch.Tensor) -> torch.Tensor:
        """Pixels `(B, 3, F, H, W)` in [-1, 1] -> model space `(B, C, F, h, w)`: per-frame VAE latents (mode of the
        posterior, `(z - shift_factor) * scaling_factor`) or the pixels themselves without a VAE."""
        if self.vae is None:
            return video
        batch, _, frames = video.shape[:3]
        latents = encode_frames(self.vae, video.transpose(1, 2).flatten(0, 1))
        return latents.unflatten(0, (batch, frames)).transpose(1, 2)

    def decode_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """Model space `(B, C, F, h, w)` -> pixels `(B, 3, F, H, W)` in [-1, 1] (per-frame VAE decode)."""
        if self.vae is None:
            return latents.float()
        batch, _, frames = latents.shape[:3]
        images = decode_frames(self.vae, latents.transpose(1, 2).flatten(0, 1))
        return images.unflatten(0, (batch, frames)).transpose(1, 2)

    def _to_output(self, latents: torch.Tensor, output_type: str):
        if output_type == "latent":
            return latents
        return self.video_processor.postprocess_video(self.decode_latents(latents), output_type=output_type)

    # ------------------------------------------------------------------------------------------------ checks
    def check_inputs(
        self,
        mode,
        reversal,
        direction,
        schedule,
        uncertainty_scale,
        history_guidance,
        guidance_scale,
        fractional_level,
        stabilization_level,
        num_inference_steps,
        num_frames,
        num_transition_frames,
        eta,
        output_type,
        transition_poses,
        callback_on_step_end_tensor_inputs,
    ):
        for name, value, choices in (("mode", mode, MODES), ("reversal", reversal, REVERSALS),
                                     ("direction", direction, DIRECTIONS)):
            check_choice(name, value, choices)
        if schedule not in SCHEDULES:
            raise ValueError(f"`schedule` must be one of {SCHEDULES}, got {schedule!r}.")
        if not (isinstance(uncertainty_scale, (int, float)) and uncertainty_scale >= 0):
            raise ValueError(f"`uncertainty_scale` must be a number >= 0, got {uncertainty_scale!r}.")
        if history_guidance is not None and history_guidance not in HISTORY_GUIDANCE:
            raise ValueError(f"`history_guidance` must be None or one of {HISTORY_GUIDANCE}, got {history_guidance!r}.")
        if history_guidance in ("vanilla", "fractional") and not guidance_scale >= 1.0:
            raise ValueError(
                f"`guidance_scale` must be >= 1 for {history_guidance} history guidance (1 = no guidance), got "
                f"{guidance_scale!r}."
            )
        if history_guidance is None and guidance_scale != 1.0:
            raise ValueError(
                f"`guidance_scale` has no effect without `history_guidance` and must stay 1.0, got {guidance_scale!r}; "
                "pass history_guidance='vanilla' or 'fractional'."
            )
        for name, value in (("fractional_level", fractional_level), ("stabilization_level", stabilization_level)):
            if not (isinstance(value, (int, float)) and 0.0 <= value <= 1.0):
                raise ValueError(f"`{name}` must be a noise fraction in [0, 1], got {value!r}.")
        T = self.scheduler.config.num_train_timesteps
        if not (isinstance(num_inference_steps, int) and 1 <= num_inference_steps <= T):
            raise ValueError(f"`num_inference_steps` must be an integer in [1, {T}], got {num_inference_steps!r}.")
        if num_frames is not None and not (isinstance(num_frames, int) and num_frames >= 1):
            raise ValueError(f"`num_frames` must be a positive integer, got {num_frames!r}.")
        if not (isinstance(num_transition_frames, int) and num_transition_frames >= 0):
            raise ValueError(f"`num_transition_frames` must be an integer >= 0, got {num_transition_frames!r}.")
        if mode == "jump" and num_transition_frames:
            raise ValueError(f"`num_transition_frames` must be 0 in 'jump' mode (no transition), got "
                             f"{num_transition_frames}.")
        if not (isinstance(eta, (int, float)) and eta >= 0):
            raise ValueError(f"`eta` must be >= 0, got {eta!r}.")
        if output_type not in OUTPUT_TYPES:
            raise ValueError(f"`output_type` must be one of {OUTPUT_TYPES}, got {output_type!r}.")
        if transition_poses is not None and not isinstance(transition_poses, torch.Tensor):
            raise ValueError(
                "`transition_poses` must be None (the interpolated camera path of `mode='video+pose'`) or a tensor of "
                f"poses, got {transition_poses!r}; the transition's pose variant is chosen with `mode` "
                "('video+pose': interpolated poses, 'video': no poses)."
            )
        unknown = [k for k in callback_on_step_end_tensor_inputs or [] if k not in self._callback_tensor_inputs]
        if unknown:
            raise ValueError(
                f"`callback_on_step_end_tensor_inputs` must be a subset of {self._callback_tensor_inputs}, "
                f"got {unknown}."
            )
        model_kind = self.transformer.config.noise_embedding_type
        if self.scheduler.noise_embedding_type != model_kind:
            raise ValueError(
                f"`scheduler` produces model timesteps for a {self.scheduler.noise_embedding_type!r} noise embedding "
                f"(noise_schedule={self.scheduler.config.noise_schedule!r}) but the transformer uses {model_kind!r}."
            )
        if getattr(self.transformer.config, "condition_dim", None):
            raise ValueError("Transformers with per-frame condition vectors (`condition_dim`) are not supported by "
                             f"this pipeline, got condition_dim={self.transformer.config.condition_dim}.")

    def _check_frames(self, video: torch.Tensor) -> None:
        expected = tuple(s * self.vae_scale_factor for s in self.model_frame_size)
        if tuple(video.shape[-2:]) != expected:
            raise ValueError(
                f"`source_video` frames must be {expected[0]}x{expected[1]} (H x W) for this model (sample_size "
                f"{self.model_frame_size} x vae_scale_factor {self.vae_scale_factor}), got "
                f"{video.shape[-2]}x{video.shape[-1]}; resize the frames before calling the pipeline."
            )
        channels = self.transformer.config.in_channels
        if self.vae is None and channels != 3:
            raise ValueError(
                f"A pixel-space pipeline (vae=None) needs a transformer with in_channels=3, got {channels}."
            )

    @staticmethod
    def _batch_poses(poses: torch.Tensor, name: str, batch: int, frames: int) -> torch.Tensor:
        from ..camera import validate_poses  # pure torch, imported with the pose path only

        if not isinstance(poses, torch.Tensor):
            raise ValueError(f"`{name}` must be a torch.Tensor of shape ({frames}, 16) or ({batch}, {frames}, 16), "
                             f"got {type(poses).__name__}.")
        if poses.ndim == 2:
            poses = poses[None].expand(batch, -1, -1)
        if poses.ndim != 3 or tuple(poses.shape) != (batch, frames, 16):
            raise ValueError(
                f"`{name}` must have shape ({frames}, 16) or ({batch}, {frames}, 16), got {tuple(poses.shape)}."
            )
        validate_poses(poses, name)
        return poses.double()

    # ------------------------------------------------------------------------------------------------ poses
    def _sequence_poses(self, layout: SequenceLayout, source_poses, target_poses, transition_poses, batch: int
                        ) -> torch.Tensor:
        """`(B, F, 16)` float64 poses in sequence order (`SequenceLayout.poses`, as in training)."""
        if source_poses is None or target_poses is None:
            raise ValueError(
                f"This transformer is pose-conditioned (camera_ray_type={self.transformer.config.camera_ray_type!r}): "
                "`source_poses` and `target_poses` are required, got "
                f"source_poses={'None' if source_poses is None else 'tensor'}, "
                f"target_poses={'None' if target_poses is None else 'tensor'}."
            )
        num_source = layout.num_exo if layout.source == "exo" else layout.num_ego
        num_target = layout.num_frames - num_source - layout.num_transition
        poses = {
            layout.source: self._batch_poses(source_poses, "source_poses", batch, num_source),
            layout.target: self._batch_poses(target_poses, "target_poses", batch, num_target),
        }
        if transition_poses is not None:
            if layout.mode != "video+pose":
                raise ValueError(f"`transition_poses` are only used in mode 'video+pose', got mode {layout.mode!r}.")
            transition_poses = self._batch_poses(transition_poses, "transition_poses", batch, layout.num_transition)
        return layout.poses(poses["exo"], poses["ego"], transition_poses)

    # ------------------------------------------------------------------------------------------------ sampling
    def _denoise_window(
        self,
        window: torch.Tensor,
        level_matrix: torch.Tensor,
        branches: GuidanceBranches,
        camera_rays: torch.Tensor | None,
        pose_valid: torch.Tensor | None,
        eta: float,
        generator,
        progress_bar,
        step_offset: int,
        callback_on_step_end: Callable | None,
        callback_on_step_end_tensor_inputs: Sequence[str],
        attention_kwargs: dict | None = None,
    ) -> torch.Tensor:
        """Denoise the generated frames of one window; its first `H` frames are history and are never modified.

        Args:
            window: `(B, C, F, h, w)` float32: `H` history frames then `F - H` frames at full noise.
            level_matrix: `(R, F - H)` per-iteration levels of the generated frames (scheduling matrix).
            branches: history-guidance branches for the `H` history frames.
            camera_rays, pose_valid: `(B, C_ray, F, h, w)` and `(B, F)` for pose-conditioned models, else None.
        Returns:
            the window with its generated frames at level -1.
        """
        batch, _, frames = window.shape[:3]
        num_history = branches.history_levels.shape[1]
        nb, device, dtype = branches.num_branches, window.device, self.transformer.dtype
        clean_history = window[:, :, :num_history].clone()
        history_levels = branches.history_levels.to(device)
        renoise_history = bool((history_levels >= 0).any())
        # Branch-major layout (branch j, sample b) -> row j * B + b of the single batched forward.
        model_history_levels = history_levels[:, None, :].expand(nb, batch, num_history)
        rays_in = rays_mask = None
        if camera_rays is not None:
            keep = ~branches.drop_conditions.to(device)
            rays_in = camera_rays.to(device).repeat(nb, 1, 1, 1, 1)
            rays_mask = (keep[:, None, None] & pose_valid.to(device)[None]).reshape(nb * batch, frames)

        latents = window
        for row in range(level_matrix.shape[0] - 1):
            current, following = level_matrix[row], level_matrix[row + 1]
            # 1. Inputs of every branch: history at the branch's level (re-noised with fresh noise), same x_t.
            history_in = clean_history.unsqueeze(0).expand(nb, *clean_history.shape)
            if renoise_history:
                noise = randn_tensor((batch, nb, *clean_history.shape[1:]), generator=generator, device=device,
                                     dtype=torch.float32).transpose(0, 1)
                history_in = self.scheduler.add_noise(
                    history_in.reshape(nb * batch, *clean_history.shape[1:]),
                    noise.reshape(nb * batch, *clean_history.shape[1:]),
                    model_history_levels.reshape(nb * batch, num_history),
                ).view(nb, *clean_history.shape)
            generated_in = latents[:, :, num_history:].unsqueeze(0).expand(nb, *latents[:, :, num_history:].shape)
            model_in = torch.cat([history_in, generated_in], dim=3).flatten(0, 1)
            levels = torch.cat(
                [model_history_levels, current.to(device)[None, None].expand(nb, batch, -1)], dim=2
            ).reshape(nb * batch, frames)

            # 2. ONE transformer forward for all branches, then the guidance composition.
            prediction = self.transformer(
                hidden_states=model_in.to(dtype),
                timestep=self.scheduler.model_timesteps(levels),
                camera_rays=None if rays_in is None else rays_in.to(dtype),
                camera_rays_mask=rays_mask,
                attention_kwargs=attention_kwargs,
                return_dict=False,
            )[0]
            prediction = compose_guidance(prediction.unflatten(0, (nb, batch)), branches.weights)

            # 3. DDIM step of the generated frames only; history frames never go through the step.
            generated = self.scheduler.step(
                prediction[:, :, num_history:],
                current[None],
                latents[:, :, num_history:],
                next_timestep=following[None],
                eta=eta,
                generator=generator,
            ).prev_sample
            latents = torch.cat([clean_history, generated], dim=2)

            if callback_on_step_end is not None:
                callback_kwargs = {"latents": latents} if "latents" in callback_on_step_end_tensor_inputs else {}
                callback_outputs = callback_on_step_end(self, step_offset + row, current, callback_kwargs) or {}
                latents = callback_outputs.pop("latents", latents).float()
                latents[:, :, :num_history] = clean_history  # restore history, whatever the callback did
            progress_bar.update()
        return latents

    @torch.no_grad()
    @replace_example_docstring(EXAMPLE_DOC_STRING)
    def __call__(
        self,
        source_video: VideoInput,
        source_poses: torch.Tensor | None = None,
        target_poses: torch.Tensor | None = None,
        num_frames: int | None = None,
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
        transition_poses: torch.Tensor | None = None,
        eta: float = 0.0,
        generator: torch.Generator | list[torch.Generator] | None = None,
        latents: torch.Tensor | None = None,
        output_type: str = "np",
        return_dict: bool = True,
        return_transition: bool = False,
        callback_on_step_end: Callable[[Any, int, torch.Tensor, dict], dict] | None = None,
        callback_on_step_end_tensor_inputs: Sequence[str] = ("latents",),
        attention_kwargs: dict | None = None,
    ):
        r"""
        Generate the target view of `source_video` (ego from exo, or exo from ego).

        Args:
            source_video: the clean source clip, at least 2 frames, **already at the model resolution**
                (`sample_size * vae_scale_factor`; frames are not resized, other sizes raise): tensor `(F, 3, H, W)` /
                `(B, F, 3, H, W)` or array `(F, H, W, 3)` / `(B, F, H, W, 3)`, uint8 or float in [0, 1]; a list of
                PIL images; or a video file path.
            source_poses, target_poses: pose-conditioned models only: `(F, 16)` or `(B, F, 16)` camera poses of the
                source frames and of the target frames, natural time order, DFoT convention (fx, fy, px, py
                normalised by image size, then row-major world-to-camera [R|T]). Ray maps are built at the model
                resolution by `data.windows.window_camera_rays`, relative to each window's first frame with a
                known pose, exactly as in training.
            num_frames: number of target frames (default: `len(target_poses)` if given, else the source length).
            num_transition_frames: transition frames generated between source and target, discarded unless
                `return_transition=True` (default: the pipeline's `config.num_transition_frames`; 0 in `"jump"` mode).
            mode: Syn2Seq mode (default: the pipeline's `config.mode`, the one the model was trained with):
                `"jump"` (no transition), `"video"` (transition frames without poses: their pose embedding is
                dropped), `"video+pose"` (transition frames on the SLERP camera path from the last source to the first
                target camera, or `transition_poses`).
            direction: `"exo2ego"` (source = exo clip) or `"ego2exo"` (source = ego clip; the model runs on the
                reversed sequence, outputs are returned in natural time order).
            reversal: Ego2Exo sequence order, `"full"` or `"segments"` (default: the pipeline's `config.reversal`).
            num_inference_steps: DDIM steps per frame (levels `-1, 19, ..., 999` for 50).
            schedule: `"full_sequence"`, `"autoregressive"` or `"pyramid"` (scheduling matrix of each window).
            uncertainty_scale: pyramid only: delay (in steps) between consecutive frames' denoising.
            history_guidance: None, `"vanilla"`, `"fractional"` or `"temporal"` (see `history_guidance.py`).
            guidance_scale: `w` of vanilla / fractional guidance (>= 1; 1 disables); temporal guidance without
                `history_weights` gives each subset `w / #subsets`.
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
            generator: a generator, or one per batch element (each element then draws all its noise from its own).
            latents: initial noise of the generated frames, `(B, C, Ni + Nf, h, w)` in sequence order.
            output_type: `"np"`, `"pt"`, `"pil"` or `"latent"` (see [`Syn2SeqPipelineOutput`]).
            return_dict: return a [`Syn2SeqPipelineOutput`] instead of a tuple `(frames,)` /
                `(frames, transition_frames)`.
            return_transition: also return the transition frames.
            callback_on_step_end: `callback(pipe, i, t, callback_kwargs) -> dict` after every denoising iteration;
                `i` counts iterations over all windows, `t` holds the generated frames' levels `(G,)` before the step,
                `callback_kwargs["latents"]` is the window `(B, C, F, h, w)`; returning a modified `latents` replaces
                it (history frames are restored afterwards).
            callback_on_step_end_tensor_inputs: tensors passed to the callback (subset of `["latents"]`).
            attention_kwargs: forwarded to the transformer (e.g. `{"scale": 0.5}` for LoRA layers).

        Examples:
        """
        # 0. Checks and inputs; the Syn2Seq settings default to the pipeline's configuration.
        mode = self.config.mode if mode is None else mode
        reversal = self.config.reversal if reversal is None else reversal
        if num_transition_frames is None:
            num_transition_frames = 0 if mode == "jump" else self.config.num_transition_frames
        self.check_inputs(
            mode, reversal, direction, schedule, uncertainty_scale, history_guidance, guidance_scale,
            fractional_level, stabilization_level, num_inference_steps, num_frames, num_transition_frames, eta,
            output_type, transition_poses, callback_on_step_end_tensor_inputs,
        )
        device = self._execution_device
        video = video_to_tensor(source_video)  # (B, F, 3, H, W) in [-1, 1]
        self._check_frames(video)
        batch, num_source = video.shape[:2]
        ray_type = getattr(self.transformer.config, "camera_ray_type", None)
        if ray_type is None and any(p is not None for p in (source_poses, target_poses, transition_poses)):
            raise ValueError("`source_poses` / `target_poses` were given but the transformer has no camera "
                             "conditioning (camera_ray_type=None); poses (transition_poses too) need a "
                             "pose-conditioned transformer.")
        if num_frames is None:
            num_frames = int(target_poses.shape[-2]) if isinstance(target_poses, torch.Tensor) else num_source
        if isinstance(generator, list) and len(generator) != batch:
            raise ValueError(f"`generator` list must have one generator per video ({batch}), got {len(generator)}.")
        num_generate = num_transition_frames + num_frames
        lengths = {"exo": num_source, "ego": num_frames} if direction == "exo2ego" else \
            {"exo": num_frames, "ego": num_source}
        layout = SequenceLayout(lengths["exo"], num_transition_frames, lengths["ego"], mode, direction, reversal)

        # 1. Source -> model space; the sequence [source | transition | target] in model (sampling) order, laid out
        # by the same `SequenceLayout` training uses.
        source = self.encode_video(video.to(device).transpose(1, 2))  # (B, C, Ns, h, w)
        source = layout.source_in_sequence_order(source, dim=2)
        channels, (height, width) = source.shape[1], source.shape[-2:]
        noise_shape = (batch, channels, num_generate, height, width)
        if latents is None:
            latents = randn_tensor(noise_shape, generator=generator, device=device, dtype=torch.float32)
        elif tuple(latents.shape) != noise_shape:
            raise ValueError(f"`latents` must have shape {noise_shape} (B, C, transition + target frames, h, w), got "
                             f"{tuple(latents.shape)}.")
        sequence = torch.cat([source.float(), latents.to(device, torch.float32)], dim=2)
        roles = [GROUND_TRUTH_HISTORY] * num_source + [GENERATE] * num_generate
        poses = pose_mask = None
        if ray_type is not None:
            poses = self._sequence_poses(layout, source_poses, target_poses, transition_poses, batch).to(device)
            pose_mask = layout.pose_mask.to(device).expand(batch, -1)

        # 2. Windows and their scheduling matrices.
        windows = plan_windows(
            num_source, num_generate, self.transformer.config.max_frames, context_frames, sliding_window
        )
        T = self.scheduler.config.num_train_timesteps
        self.scheduler.set_timesteps(num_inference_steps, device=device)
        matrices = [
            self.scheduler.scheduling_matrix(g, num_inference_steps, schedule, uncertainty_scale).to(device)
            for _, _, g in windows
        ]
        self._num_timesteps = sum(m.shape[0] - 1 for m in matrices)
        levels = dict(
            guidance=history_guidance, guidance_scale=guidance_scale,
            fractional_level=fraction_to_level(fractional_level, T),
            stabilization_level=fraction_to_level(stabilization_level, T), masked_level=T - 1,
            history_subsets=history_subsets, history_weights=history_weights,
        )

        # 3. Sample window after window; generated frames become (stabilised) history for the next windows.
        step_offset = 0
        with self.progress_bar(total=self._num_timesteps) as progress_bar:
            for (start, num_hist, num_gen), matrix in zip(windows, matrices):
                end = start + num_hist + num_gen
                branches = history_guidance_branches(roles[start : start + num_hist], **levels)
                rays = rays_mask = None
                if poses is not None:  # the conditioning training uses for the same window
                    rays, rays_mask = window_camera_rays(poses[:, start:end], pose_mask[:, start:end], height,
                                                         width, ray_type)
                window = self._denoise_window(
                    sequence[:, :, start:end], matrix, branches, rays, rays_mask, eta, generator, progress_bar,
                    step_offset, callback_on_step_end, callback_on_step_end_tensor_inputs, attention_kwargs,
                )
                sequence[:, :, start + num_hist : end] = window[:, :, num_hist:]
                roles[start + num_hist : end] = [GENERATED_HISTORY] * num_gen
                step_offset += matrix.shape[0] - 1

        # 4. Split into segments in natural time order, decode.
        segments = layout.split(sequence, dim=2)
        frames = self._to_output(segments[layout.target], output_type)
        transition_frames = None
        if return_transition and num_transition_frames > 0:
            transition_frames = self._to_output(segments["transition"], output_type)

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
