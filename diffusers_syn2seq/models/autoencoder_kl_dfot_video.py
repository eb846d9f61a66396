# SPDX-License-Identifier: Apache-2.0
"""DFoT's causal video VAE (the `VideoVAE` of the official code, used by the Kinetics-600 model) as a diffusers model.

The network is the Stable Diffusion KL autoencoder grown into time, as in Open-Sora-Plan's causal VAE: per level,
resnet blocks that either act on each frame alone (2D) or see time through causal 3x3x3 convolutions (3D), a
downsampling that halves space, or space and time; a mid block with per-frame self-attention; mirrored decoder. Time
is causal in the convolutions (the first frame is repeated in front, never a later one), so a clip of `1 + t a`
frames gives `1 + a` latents: frame 0 alone, then one latent per `t` frames. Two details of the official network are
kept because checkpoints depend on them, and they make it only *mostly* causal: the GroupNorm of 3D blocks pools its
statistics over all frames of the clip, and the decoder's temporal upsampling is trilinear (an output frame mixes two
neighbouring latents). A prefix of a clip therefore encodes to latents close to, not equal to, the prefix of the
clip's latents; encode and decode whole sequences, as `latents.encode_video` does.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.autoencoders.vae import AutoencoderMixin, DecoderOutput, DiagonalGaussianDistribution
from diffusers.models.modeling_outputs import AutoencoderKLOutput
from diffusers.models.modeling_utils import ModelMixin
from diffusers.utils.accelerate_utils import apply_forward_hook
from torch import nn

from .._version import __version__


def _per_frame(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Apply a 2D `module` to every frame of `(B, C, T, H, W)`, as one `(B T, C, H, W)` batch."""
    batch, frames = x.shape[0], x.shape[2]
    out = module(x.transpose(1, 2).flatten(0, 1))
    return out.unflatten(0, (batch, frames)).transpose(1, 2)


class DFoTCausalConv3d(nn.Module):
    """`Conv3d` causal in time: `kernel_t - 1` copies of the first frame are put in front (the official padding, which
    makes a lone first frame behave as a still image), and only space is zero-padded."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, int, int] = 3,
                 stride: int = 1, spatial_padding: int = 1):
        super().__init__()
        kernel = (kernel_size,) * 3 if isinstance(kernel_size, int) else tuple(kernel_size)
        self.time_padding = kernel[0] - 1
        self.conv = nn.Conv3d(in_channels, out_channels, kernel, stride=stride,
                              padding=(0, spatial_padding, spatial_padding))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.time_padding:
            x = torch.cat([x[:, :, :1].expand(-1, -1, self.time_padding, -1, -1), x], dim=2)
        return self.conv(x)


class DFoTVideoResnetBlock(nn.Module):
    """Pre-activation resnet block (GroupNorm, SiLU, conv, twice). `temporal=False`: each frame on its own (2D convs
    and per-frame norms); `temporal=True`: causal 3x3x3 convs, and norms pooled over the whole clip."""

    def __init__(self, in_channels: int, out_channels: int, temporal: bool, groups: int = 32, eps: float = 1e-6):
        super().__init__()
        self.temporal = temporal
        self.norm1 = nn.GroupNorm(groups, in_channels, eps=eps)
        self.norm2 = nn.GroupNorm(groups, out_channels, eps=eps)
        if temporal:
            self.conv1 = DFoTCausalConv3d(in_channels, out_channels)
            self.conv2 = DFoTCausalConv3d(out_channels, out_channels)
            self.conv_shortcut = DFoTCausalConv3d(in_channels, out_channels, 1, spatial_padding=0) \
                if in_channels != out_channels else None
        else:
            self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
            self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
            self.conv_shortcut = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else None

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return (x if self.conv_shortcut is None else self.conv_shortcut(x)) + h

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._forward(x) if self.temporal else _per_frame(self._forward, x)


class DFoTVideoAttention(nn.Module):
    """Single-head self-attention within each frame (no attention across time), with a residual connection; its
    GroupNorm pools over the whole clip, as the official `AttnBlock3D` does."""

    def __init__(self, channels: int, groups: int = 32, eps: float = 1e-6):
        super().__init__()
        self.group_norm = nn.GroupNorm(groups, channels, eps=eps)
        self.to_q = nn.Linear(channels, channels)
        self.to_k = nn.Linear(channels, channels)
        self.to_v = nn.Linear(channels, channels)
        self.to_out = nn.Linear(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, channels, frames, height, width = x.shape
        tokens = self.group_norm(x).permute(0, 2, 3, 4, 1).reshape(batch * frames, 1, height * width, channels)
        h = F.scaled_dot_product_attention(self.to_q(tokens), self.to_k(tokens), self.to_v(tokens))
        h = self.to_out(h).reshape(batch, frames, height, width, channels).permute(0, 4, 1, 2, 3)
        return x + h


class DFoTVideoDownsample(nn.Module):
    """Halve height and width (zero pad right and bottom, stride-2 3x3 conv), per frame or, with `temporal=True`, also
    time (causal stride-2 3x3x3 conv: `1 + 2 a` frames -> `1 + a`)."""

    def __init__(self, channels: int, temporal: bool):
        super().__init__()
        self.temporal = temporal
        self.conv = DFoTCausalConv3d(channels, channels, 3, stride=2, spatial_padding=0) if temporal \
            else nn.Conv2d(channels, channels, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, (0, 1, 0, 1))
        return self.conv(x) if self.temporal else _per_frame(self.conv, x)


class DFoTVideoUpsample(nn.Module):
    """Double height and width (nearest, then a per-frame 3x3 conv), or, with `temporal=True`, also time: trilinear
    interpolation of all frames but the first, which is only upsampled in space (`1 + a` frames -> `1 + 2 a`), then a
    causal 3x3x3 conv."""

    def __init__(self, channels: int, temporal: bool):
        super().__init__()
        self.temporal = temporal
        self.conv = DFoTCausalConv3d(channels, channels, 3 if temporal else (1, 3, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.temporal:
            return self.conv(F.interpolate(x, scale_factor=(1, 2, 2), mode="nearest"))
        first = F.interpolate(x[:, :, :1], scale_factor=(1, 2, 2), mode="trilinear")
        if x.shape[2] > 1:
            rest = F.interpolate(x[:, :, 1:], scale_factor=(2, 2, 2), mode="trilinear")
            first = torch.cat([first, rest], dim=2)
        return self.conv(first)


class DFoTVideoMidBlock(nn.Module):
    """Two 3D resnet blocks around a per-frame attention."""

    def __init__(self, channels: int, groups: int):
        super().__init__()
        self.resnets = nn.ModuleList([DFoTVideoResnetBlock(channels, channels, True, groups) for _ in range(2)])
        self.attention = DFoTVideoAttention(channels, groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.resnets[1](self.attention(self.resnets[0](x)))


class DFoTVideoEncoder(nn.Module):
    """Pixels `(B, 3, T, H, W)` -> posterior moments `(B, 2 C, T', H', W')`."""

    def __init__(self, in_channels: int, latent_channels: int, block_out_channels: tuple[int, ...],
                 layers_per_block: int, temporal_resnets: tuple[bool, ...], temporal_downsample: tuple[bool, ...],
                 groups: int):
        super().__init__()
        self.conv_in = nn.Conv2d(in_channels, block_out_channels[0], 3, padding=1)
        self.down_blocks = nn.ModuleList()
        channels = block_out_channels[0]
        for level, out_channels in enumerate(block_out_channels):
            block = nn.Module()
            block.resnets = nn.ModuleList()
            for _ in range(layers_per_block):
                block.resnets.append(DFoTVideoResnetBlock(channels, out_channels, temporal_resnets[level], groups))
                channels = out_channels
            if level < len(temporal_downsample):
                block.downsampler = DFoTVideoDownsample(channels, temporal_downsample[level])
            self.down_blocks.append(block)
        self.mid_block = DFoTVideoMidBlock(channels, groups)
        self.norm_out = nn.GroupNorm(groups, channels, eps=1e-6)
        self.conv_out = DFoTCausalConv3d(channels, 2 * latent_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = _per_frame(self.conv_in, x)
        for block in self.down_blocks:
            for resnet in block.resnets:
                h = resnet(h)
            if hasattr(block, "downsampler"):
                h = block.downsampler(h)
        h = self.mid_block(h)
        return self.conv_out(F.silu(self.norm_out(h)))


class DFoTVideoDecoder(nn.Module):
    """Latents `(B, C, T', H', W')` -> pixels `(B, 3, 1 + t (T' - 1), H, W)`; all resnets are 3D."""

    def __init__(self, out_channels: int, latent_channels: int, block_out_channels: tuple[int, ...],
                 layers_per_block: int, temporal_downsample: tuple[bool, ...], groups: int):
        super().__init__()
        channels = block_out_channels[-1]
        self.conv_in = DFoTCausalConv3d(latent_channels, channels)
        self.mid_block = DFoTVideoMidBlock(channels, groups)
        self.up_blocks = nn.ModuleList()  # deepest level first, the order they run in
        for level in reversed(range(len(block_out_channels))):
            block = nn.Module()
            block.resnets = nn.ModuleList()
            for _ in range(layers_per_block + 1):
                block.resnets.append(DFoTVideoResnetBlock(channels, block_out_channels[level], True, groups))
                channels = block_out_channels[level]
            if level > 0:  # undoes the encoder's downsampling out of level - 1
                block.upsampler = DFoTVideoUpsample(channels, temporal_downsample[level - 1])
            self.up_blocks.append(block)
        self.norm_out = nn.GroupNorm(groups, channels, eps=1e-6)
        self.conv_out = DFoTCausalConv3d(channels, out_channels)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.mid_block(self.conv_in(z))
        for block in self.up_blocks:
            for resnet in block.resnets:
                h = resnet(h)
            if hasattr(block, "upsampler"):
                h = block.upsampler(h)
        return self.conv_out(F.silu(self.norm_out(h)))


class AutoencoderKLDFoTVideo(ModelMixin, AutoencoderMixin, ConfigMixin):
    r"""DFoT's causal video VAE with a KL posterior: `(B, 3, 1 + t a, H, W)` pixels in [-1, 1] <-> `(B, C, 1 + a,
    H / s, W / s)` latents, `t = temporal_compression_ratio`, `s = spatial_compression_ratio`.

    Args:
        in_channels (`int`, defaults to 3): channels of the input video.
        out_channels (`int`, defaults to 3): channels of the decoded video.
        latent_channels (`int`, defaults to 16): channels of the latent (16 for the Kinetics-600 VAE).
        block_out_channels (`tuple[int]`, defaults to `(128, 256, 512, 512)`): channels of each level.
        layers_per_block (`int`, defaults to 2): resnet blocks per encoder level (the decoder has one more).
        temporal_resnets (`tuple[bool]`, defaults to `(False, False, True, True)`): per encoder level, whether its
            resnets see time (3D) or act on each frame (2D). Decoder resnets are all 3D.
        temporal_downsample (`tuple[bool]`, defaults to `(False, True, True)`): for each of the `levels - 1`
            downsamplings (space is halved by each), whether it also halves time; the decoder mirrors it.
        norm_num_groups (`int`, defaults to 32): GroupNorm groups.
        sample_size (`int`, defaults to 128): frame size the VAE was trained at (for information).
        sample_frames (`int`, defaults to 17): clip length the VAE was trained at (the official code refuses longer
            clips; this class accepts any `1 + t a`, which is outside what the weights were trained on).
        latents_mean, latents_std (`tuple[float]`, *optional*): per-channel statistics of the latents of the dataset
            the diffusion model was trained on; the pipeline feeds the transformer `(z - mean) / std`.
        temporal_compression_ratio, spatial_compression_ratio (`int`, *optional*): derived from the layout
            (`2 ** sum(temporal_downsample)`, `2 ** len(temporal_downsample)`); stored for pipelines, checked if given.
    """

    _supports_gradient_checkpointing = False

    @register_to_config
    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 3,
        latent_channels: int = 16,
        block_out_channels: tuple[int, ...] = (128, 256, 512, 512),
        layers_per_block: int = 2,
        temporal_resnets: tuple[bool, ...] = (False, False, True, True),
        temporal_downsample: tuple[bool, ...] = (False, True, True),
        norm_num_groups: int = 32,
        sample_size: int = 128,
        sample_frames: int = 17,
        latents_mean: tuple[float, ...] | None = None,
        latents_std: tuple[float, ...] | None = None,
        temporal_compression_ratio: int | None = None,
        spatial_compression_ratio: int | None = None,
    ):
        super().__init__()
        block_out_channels, temporal_resnets = tuple(block_out_channels), tuple(bool(t) for t in temporal_resnets)
        temporal_downsample = tuple(bool(t) for t in temporal_downsample)
        levels = len(block_out_channels)
        if levels < 1 or len(temporal_resnets) != levels or len(temporal_downsample) != levels - 1:
            raise ValueError(
                f"`temporal_resnets` must have one entry per level ({levels}) and `temporal_downsample` one per "
                f"downsampling ({levels - 1}), got {len(temporal_resnets)} and {len(temporal_downsample)}.")
        bad = [c for c in block_out_channels if c % norm_num_groups]
        if bad:
            raise ValueError(f"`block_out_channels` must be multiples of `norm_num_groups` ({norm_num_groups}), got "
                             f"{list(block_out_channels)}.")
        for name, stats in (("latents_mean", latents_mean), ("latents_std", latents_std)):
            if stats is not None and len(stats) != latent_channels:
                raise ValueError(f"`{name}` must have `latent_channels` = {latent_channels} values, got {len(stats)}.")
        derived = {"temporal_compression_ratio": 2 ** sum(temporal_downsample),
                   "spatial_compression_ratio": 2 ** len(temporal_downsample)}
        for name, given in (("temporal_compression_ratio", temporal_compression_ratio),
                            ("spatial_compression_ratio", spatial_compression_ratio)):
            if given is not None and given != derived[name]:
                raise ValueError(f"`{name}` must be {derived[name]} (from `temporal_downsample` = "
                                 f"{list(temporal_downsample)}) or None, got {given}.")
        self.register_to_config(**derived, _syn2seq_version=__version__)
        self.temporal_compression_ratio = derived["temporal_compression_ratio"]
        self.spatial_compression_ratio = derived["spatial_compression_ratio"]

        self.encoder = DFoTVideoEncoder(in_channels, latent_channels, block_out_channels, layers_per_block,
                                        temporal_resnets, temporal_downsample, norm_num_groups)
        self.decoder = DFoTVideoDecoder(out_channels, latent_channels, block_out_channels, layers_per_block,
                                        temporal_downsample, norm_num_groups)
        self.quant_conv = DFoTCausalConv3d(2 * latent_channels, 2 * latent_channels, 1, spatial_padding=0)
        self.post_quant_conv = DFoTCausalConv3d(latent_channels, latent_channels, 1, spatial_padding=0)
        self.use_slicing = False

    def _check_frames(self, name: str, frames: int, unit: str) -> None:
        if frames < 1 or (unit == "pixel" and (frames - 1) % self.temporal_compression_ratio):
            t = self.temporal_compression_ratio
            raise ValueError(f"`{name}` must have 1 + {t} * a frames (the VAE encodes frame 0 alone, then chunks of "
                             f"{t}), got {frames}." if unit == "pixel" else f"`{name}` must have >= 1 frame, got 0.")

    def _encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.quant_conv(self.encoder(x))

    @apply_forward_hook
    def encode(self, x: torch.Tensor, return_dict: bool = True
               ) -> AutoencoderKLOutput | tuple[DiagonalGaussianDistribution]:
        """Encode clips `(B, 3, 1 + t a, H, W)` in [-1, 1] to the posterior over `(B, C, 1 + a, H / s, W / s)`."""
        if x.ndim != 5:
            raise ValueError(f"`x` must be a video batch (B, C, T, H, W), got shape {tuple(x.shape)}.")
        self._check_frames("x", x.shape[2], "pixel")
        s = self.spatial_compression_ratio
        if x.shape[-1] % s or x.shape[-2] % s:
            raise ValueError(f"`x` height and width must be multiples of {s}, got {x.shape[-2]}x{x.shape[-1]}.")
        if self.use_slicing and x.shape[0] > 1:
            h = torch.cat([self._encode(clip) for clip in x.split(1)])
        else:
            h = self._encode(x)
        posterior = DiagonalGaussianDistribution(h)
        return AutoencoderKLOutput(latent_dist=posterior) if return_dict else (posterior,)

    def _decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.post_quant_conv(z))

    @apply_forward_hook
    def decode(self, z: torch.Tensor, return_dict: bool = True) -> DecoderOutput | torch.Tensor:
        """Decode latents `(B, C, F, h, w)` to pixels `(B, 3, 1 + t (F - 1), h s, w s)` in about [-1, 1]."""
        if z.ndim != 5:
            raise ValueError(f"`z` must be a latent video batch (B, C, F, h, w), got shape {tuple(z.shape)}.")
        self._check_frames("z", z.shape[2], "latent")
        if self.use_slicing and z.shape[0] > 1:
            decoded = torch.cat([self._decode(clip) for clip in z.split(1)])
        else:
            decoded = self._decode(z)
        return DecoderOutput(sample=decoded) if return_dict else (decoded,)

    def forward(self, sample: torch.Tensor, sample_posterior: bool = False, return_dict: bool = True,
                generator: torch.Generator | None = None) -> DecoderOutput | torch.Tensor:
        """Encode and decode `sample` (the posterior mode, or a draw from it with `sample_posterior`)."""
        posterior = self.encode(sample).latent_dist
        z = posterior.sample(generator=generator) if sample_posterior else posterior.mode()
        return self.decode(z, return_dict=return_dict)
