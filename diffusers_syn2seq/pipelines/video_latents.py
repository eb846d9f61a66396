# SPDX-License-Identifier: Apache-2.0
"""How `Syn2SeqPipeline` moves between the caller's frames and the transformer's: source encoding, per-frame poses,
the initial noise, decoding of the generated frames, for pixel models, per-frame image VAEs and causal video VAEs.

With a per-frame VAE (or none) a model frame is a video frame: the source is encoded frame by frame, an Ego2Exo
reversal flips its latents and the generated segments are split, flipped back and decoded on their own, as the
pipeline always did. A causal video VAE (`AutoencoderKLWan`, time compressed `t` times: frame 0 alone, then chunks
of `t`) needs the sequence on latent boundaries (`data.sequence.LatentLayout`): `source_video` of `1 + t a` frames,
`num_transition_frames = t b`, `num_frames = t c` (pixel frames), giving `1 + a | b | c` latent frames. The source is
reversed in PIXEL space and then encoded as one clip (`enc(flip(x)) != flip(enc(x))`, and a clip encoded alone would
start with an image latent); the generated latents are decoded after the source latents (the whole latent sequence
is decoded from its first latent and the target frames kept), so the causal decoder sees the context they were
generated in. Latent frame `j` carries the pose of pixel frame `t j` of the sequence (`LatentLayout.pixel_index`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from diffusers.utils.torch_utils import randn_tensor

from ..data.sequence import LatentLayout, SequenceLayout
from ..latents import decode_video, encode_video, is_video_vae, vae_scale_factors
from ..validation import check_finite
from .video_input import videos_to_tensor


@dataclass(frozen=True)
class SourceClip:
    """The source of one call in natural time order: model space `(B, C, F, h, w)`, or, for a causal video VAE,
    the pixels `(B, 3, F, H, W)` in [-1, 1] waiting to be encoded once the sequence order is known."""

    frames: torch.Tensor
    is_pixels: bool
    temporal_compression: int = 1

    @property
    def batch(self) -> int:
        return self.frames.shape[0]

    @property
    def num_frames(self) -> int:
        """Source length in the caller's frames (pixel frames; `1 + t (F - 1)` for latents of a video VAE)."""
        frames = self.frames.shape[2]
        return frames if self.is_pixels or self.temporal_compression == 1 else 1 + self.temporal_compression * (
            frames - 1)


def read_source(pipe, source_video, source_latents, height: int | None, width: int | None, device) -> SourceClip:
    """The `source_video` (resized to `height` x `width`, default the model resolution; encoded frame by frame by a
    per-frame VAE) or the `source_latents` of a call, checked."""
    if (source_video is None) == (source_latents is None):
        raise ValueError("pass exactly one of `source_video` (pixels) and `source_latents` (model space), got "
                         f"{'both' if source_video is not None else 'neither'}.")
    channels = pipe.transformer.config.in_channels
    temporal = vae_scale_factors(pipe.vae)[0]
    if source_latents is not None:
        if isinstance(source_latents, (list, tuple)) and source_latents \
                and all(isinstance(x, torch.Tensor) and x.ndim == 4 for x in source_latents) \
                and len({x.shape for x in source_latents}) == 1:
            source_latents = torch.stack(list(source_latents))  # a list of (C, F, h, w) latents is a batch
        if not isinstance(source_latents, torch.Tensor) or source_latents.ndim not in (4, 5) \
                or source_latents.shape[-4] != channels or source_latents.shape[-3] < 2:
            got = tuple(source_latents.shape) if isinstance(source_latents, torch.Tensor) else \
                type(source_latents).__name__
            raise ValueError(f"`source_latents` must be a tensor (C, F, h, w) or (B, C, F, h, w) with C = "
                             f"in_channels = {channels} and F >= 2, got {got}.")
        latents = check_finite("source_latents", source_latents).float()
        latents = latents[None] if latents.ndim == 4 else latents
        if height is not None or width is not None:
            expected = tuple(s * pipe.vae_scale_factor for s in latents.shape[-2:])
            if (height or expected[0], width or expected[1]) != expected:
                raise ValueError(f"`height` x `width` must match `source_latents` ({expected[0]}x{expected[1]} "
                                 f"pixels) or be None, got {height}x{width}.")
        return SourceClip(latents.to(device), False, temporal)
    if pipe.vae is None and channels != 3:
        raise ValueError(f"This pipeline has no `vae` but its transformer works in a {channels}-channel latent "
                         "space: pass `source_latents` (B, C, F, h, w) instead of `source_video`, or load the "
                         "pipeline with its vae.")
    model_h, model_w = pipe.model_frame_size
    size = (height or model_h * pipe.vae_scale_factor, width or model_w * pipe.vae_scale_factor)
    multiple = pipe._spatial_multiple()
    if size[0] % multiple or size[1] % multiple:
        raise ValueError(f"`height` and `width` must be multiples of {multiple} (vae_scale_factor x the "
                         f"transformer's downsampling), got {size[0]}x{size[1]}.")
    video = videos_to_tensor(source_video, size).to(device).transpose(1, 2)  # (B, 3, F, H, W) in [-1, 1]
    if is_video_vae(pipe.vae):
        return SourceClip(video, True, temporal)
    return SourceClip(encode_video(pipe.vae, video).float(), False)


def initial_noise(latents: torch.Tensor | None, shape: tuple[int, ...], generator, device, num_frames: int,
                  num_transition: int) -> torch.Tensor:
    """The float32 noise `shape` `(B, C, transition + target frames, h, w)` the generated frames start from: the
    caller's `latents`, checked, or drawn from `generator`."""
    if latents is None:
        try:
            return randn_tensor(shape, generator=generator, device=device, dtype=torch.float32)
        except (RuntimeError, MemoryError) as error:  # e.g. num_frames=10**9: name the argument, not the allocator
            if "alloc" not in str(error) and not isinstance(error, (MemoryError, torch.OutOfMemoryError)):
                raise
            raise ValueError(
                f"`num_frames` ({num_frames}) + `num_transition_frames` ({num_transition}) generated frames need "
                f"{4 * math.prod(shape) / 2**30:.1f} GiB for their noise {shape} alone, more than {device} could "
                "allocate; generate fewer frames.") from error
    if not isinstance(latents, torch.Tensor) or tuple(latents.shape) != tuple(shape):
        got = tuple(latents.shape) if isinstance(latents, torch.Tensor) else type(latents).__name__
        raise ValueError(f"`latents` must be a tensor of shape {tuple(shape)} (B, C, transition + target frames, h, "
                         f"w), got {got}.")
    return check_finite("latents", latents).to(device, torch.float32)


def check_frame_counts(temporal_compression: int, num_source: int, num_transition: int, num_frames: int,
                       source_name: str, frames_name: str) -> None:
    """Segments of a causal video VAE's sequence must lie on latent boundaries: `1 + t a` source frames, `t b`
    transition and `t c` target frames (pixel frames; the errors name the argument each count comes from)."""
    t = temporal_compression
    if t == 1:
        return
    if (num_source - 1) % t or num_source < 1 + t:
        raise ValueError(f"`{source_name}` must have 1 + {t} * a frames with a >= 1 ({1 + t}, {1 + 2 * t}, "
                         f"{1 + 3 * t}, ...: the VAE encodes frame 0 alone, then chunks of {t}), got {num_source}.")
    rules = {"num_transition_frames": f"be a multiple of {t} (transition frames",
             "num_frames": f"be a multiple of {t} (target frames",
             "target_poses": f"hold a multiple of {t} poses (one per target frame"}
    for name, count in (("num_transition_frames", num_transition), (frames_name, num_frames)):
        if count % t:
            what = rules[name]
            raise ValueError(f"`{name}` must {what}; whole latent frames of a VAE compressing time {t}x), got "
                             f"{count}.")


class SequenceFrames:
    """The frames of one call: `layout` in the caller's (pixel) frames and `model` in the transformer's frames (the
    same layout without a video VAE, its `LatentLayout` with one), and the conversions between them.

    Args:
        vae: the pipeline's VAE (None, per-frame or causal video VAE).
        layout: the call's `SequenceLayout` in pixel frames (its counts already checked by `check_frame_counts`).
    """

    def __init__(self, vae, layout: SequenceLayout):
        self.vae, self.layout = vae, layout
        self.is_video = is_video_vae(vae)
        self.model = LatentLayout(layout, vae_scale_factors(vae)[0]) if self.is_video else layout

    def source(self, source: SourceClip) -> torch.Tensor:
        """The source in model space and sequence order `(B, C, Ls, h, w)`: a causal video VAE's pixels reversed
        (when the layout plays the source backwards) and then encoded as one clip; other latents flipped as before."""
        flipped = self.layout.segments[0][2]
        if source.is_pixels:
            pixels = source.frames.flip(2) if flipped else source.frames
            return encode_video(self.vae, pixels).float()
        if self.is_video and flipped:
            raise ValueError(
                "`source_latents` cannot be used with direction='ego2exo' and reversal='full' with a causal video "
                "VAE: the latents of the reversed clip are not the reversed latents; pass `source_video` (reversed in "
                "pixel space, then encoded), or reversal='segments'.")
        return self.layout.source_in_sequence_order(source.frames, dim=2)

    def poses(self, pixel_poses: torch.Tensor) -> torch.Tensor:
        """`(B, P, 16)` poses of the pixel sequence -> `(B, L, 16)` poses of the model frames."""
        return self.model.subsample(pixel_poses, dim=1) if self.is_video else pixel_poses

    def outputs(self, sequence: torch.Tensor, output_type: str, postprocess, return_transition: bool
                ) -> tuple[object, object]:
        """`(target, transition)` of the finished model-space sequence `(B, C, L, h, w)` (transition None unless
        `return_transition` and the layout has one). Without a video VAE: segments in natural time order, decoded
        frame by frame. With one: `"latent"` gives the segments' latents in SEQUENCE order (reversed for an Ego2Exo
        `"full"` reversal; decode them after the source latents); other types decode the whole sequence from its
        first latent and split the pixels into natural time order."""
        want_transition = return_transition and self.layout.num_transition > 0
        if not self.is_video:
            segments = self.layout.split(sequence, dim=2)
        elif output_type == "latent":
            segments = self.model.slices(sequence, dim=2)
        else:
            segments = self.layout.split(decode_video(self.vae, sequence), dim=2)
        names = (self.layout.target, "transition") if want_transition else (self.layout.target,)
        out = []
        for name in names:
            part = segments[name]
            if output_type != "latent":
                part = postprocess(part if self.is_video else decode_video(self.vae, part), output_type=output_type)
            out.append(part)
        return out[0], (out[1] if want_transition else None)
