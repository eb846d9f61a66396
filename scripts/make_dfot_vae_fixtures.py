# SPDX-License-Identifier: Apache-2.0
"""Make the DFoT VAE parity fixtures (`tests/fixtures/dfot_vae`) by running the official ImageVAE and VideoVAE.

    git clone https://github.com/ktncktnc/diffusion-forcing-transformer /tmp/dfot && git -C /tmp/dfot checkout 816de0c
    pip install --target /tmp/dfot_deps einops omegaconf
    PYTHONPATH=/tmp/dfot_deps python scripts/make_dfot_vae_fixtures.py --upstream /tmp/dfot

The official classes (`algorithms/vae/image_vae/trainer.py::ImageVAE`, `algorithms/vae/video_vae/model.py::VideoVAE`)
are imported from the checkout with their unrelated imports (Lightning, metrics, losses, checkpoint download helpers)
replaced by empty stand-ins; the network code runs unchanged. Their weights are filled by `official_random_weights`,
which the tests call again to rebuild the same state dict (a few hundred thousand numbers do not belong in the
repository): the JSON stores each tensor's shape, sum and first value, so that a change in the generator is caught
instead of silently comparing different weights. Inputs and outputs are stored in full.
"""

import argparse
import json
import sys
import types
from pathlib import Path

import torch
from safetensors.torch import save_file

REPO = Path(__file__).resolve().parents[1]
OUTPUT = REPO / "tests" / "fixtures" / "dfot_vae"
UPSTREAM_REPO = "https://github.com/ktncktnc/diffusion-forcing-transformer"
UPSTREAM_COMMIT = "816de0c9574a0b73dc339a48b6aaf55237732178"

# Small networks: 32 channels is the least GroupNorm(32) allows; two / three levels exercise every block kind.
IMAGE_VAE_CONFIG = {
    "embed_dim": 4,
    "ddconfig": {"double_z": True, "z_channels": 4, "resolution": 16, "in_channels": 3, "out_ch": 3, "ch": 32,
                 "ch_mult": [1, 1], "num_res_blocks": 1, "attn_resolutions": [], "dropout": 0.0},
}
# The official defaults (what the Kinetics-600 VideoVAE uses) at a small size: level 0 downsamples space only with
# 2D resnets, level 1 downsamples space and time, level 2 has 3D resnets; causal, 4x4 spatial and 2x temporal.
VIDEO_VAE_CONFIG = {
    "hidden_size": 32, "z_channels": 4, "embed_dim": 4, "hidden_size_mult": [1, 1, 1], "attn_resolutions": [],
    "resolution": 16, "temporal_length": 9, "num_res_blocks": 1, "is_causal": True,
    "encoder_resnet_blocks": ["ResnetBlock2D", "ResnetBlock2D", "ResnetBlock3D"],
    "encoder_spatial_downsample": ["Downsample", "Spatial2xTime2x3DDownsample", ""],
    "encoder_temporal_downsample": ["", "", ""],
    "decoder_resnet_blocks": ["ResnetBlock3D", "ResnetBlock3D", "ResnetBlock3D"],
    "decoder_spatial_upsample": ["", "SpatialUpsample2x", "Spatial2xTime2x3DUpsample"],
    "decoder_temporal_upsample": ["", "", ""],
}
SEEDS = {"image_vae": 2025, "video_vae": 2026}


def official_random_weights(shapes: dict[str, list[int]], seed: int) -> dict[str, torch.Tensor]:
    """Random float32 weights for the official key -> shape table, in sorted key order from one CPU generator.

    Nothing is zero (a wrong key mapping cannot hide behind a zero-initialised layer); weights are scaled by
    1/sqrt(fan-in) and norm scales sit around 1, so activations stay O(1) through the network.
    """
    generator = torch.Generator().manual_seed(seed)
    weights = {}
    for key in sorted(shapes):
        shape = shapes[key]
        noise = torch.randn(shape, generator=generator, dtype=torch.float32)
        if len(shape) > 1:
            fan_in = 1
            for size in shape[1:]:
                fan_in *= size
            weights[key] = noise / fan_in**0.5
        elif key.endswith("weight"):  # GroupNorm scale
            weights[key] = 1.0 + 0.1 * noise
        else:
            weights[key] = 0.1 * noise
    return weights


def weight_summary(weights: dict[str, torch.Tensor]) -> dict[str, dict]:
    """Per-key shape, sum and first value: enough to prove `official_random_weights` rebuilt the same tensors."""
    return {k: {"shape": list(v.shape), "sum": float(v.double().sum()), "first": float(v.flatten()[0])}
            for k, v in sorted(weights.items())}


def _stub(name: str, **attributes) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__dict__.update(attributes)
    sys.modules[name] = module
    return module


def import_official(upstream: Path):
    """`(ImageVAE, VideoVAE)` from the checkout, with unrelated imports replaced by stand-ins."""
    sys.path.insert(0, str(upstream))
    # Skip the packages' __init__ files, which import every trainer and preprocessor.
    for package in ("algorithms", "algorithms.vae", "algorithms.vae.image_vae", "algorithms.vae.video_vae"):
        _stub(package, __path__=[str(upstream / package.replace(".", "/"))])
    nothing = lambda *args, **kwargs: None  # noqa: E731
    _stub("utils", __path__=[])
    _stub("utils.ckpt_utils", is_wandb_run_path=nothing, is_hf_path=nothing, wandb_to_local_path=nothing,
          download_pretrained=nothing)
    _stub("utils.logging_utils", log_video=nothing, get_validation_metrics_for_videos=nothing)
    _stub("lightning", __path__=[])
    _stub("lightning.pytorch", LightningModule=torch.nn.Module)
    _stub("torchmetrics", __path__=[])
    _stub("torchmetrics.image", FrechetInceptionDistance=object)
    _stub("algorithms.vae.common.losses", LPIPSWithDiscriminator=object, warmup=nothing)
    from algorithms.vae.image_vae.trainer import ImageVAE
    from algorithms.vae.video_vae.model import VideoVAE

    return ImageVAE, VideoVAE


def _fill(model: torch.nn.Module, seed: int) -> dict[str, torch.Tensor]:
    shapes = {k: list(v.shape) for k, v in model.state_dict().items()}
    weights = official_random_weights(shapes, seed)
    model.load_state_dict(weights, strict=True)
    return weights


@torch.no_grad()
def image_vae_fixture(image_vae_cls) -> tuple[dict, dict]:
    cfg = types.SimpleNamespace(ddconfig=dict(IMAGE_VAE_CONFIG["ddconfig"]), embed_dim=IMAGE_VAE_CONFIG["embed_dim"])
    model = image_vae_cls(cfg).eval()
    weights = _fill(model, SEEDS["image_vae"])
    generator = torch.Generator().manual_seed(1)
    x = torch.rand(2, 3, 16, 16, generator=generator) * 2 - 1  # pixels in [-1, 1], as DFoT feeds them
    z = torch.randn(2, 4, 8, 8, generator=generator)
    posterior = model.encode(x)
    tensors = {"input.x": x, "output.posterior_mean": posterior.mean, "output.posterior_std": posterior.std,
               "input.z": z, "output.decoded": model.decode(z)}
    return tensors, {"official_class": "algorithms/vae/image_vae/trainer.py::ImageVAE", **IMAGE_VAE_CONFIG,
                     "seed": SEEDS["image_vae"], "weights": weight_summary(weights)}


@torch.no_grad()
def video_vae_fixture(video_vae_cls) -> tuple[dict, dict]:
    config = {k: tuple(v) if isinstance(v, list) else v for k, v in VIDEO_VAE_CONFIG.items()}
    model = video_vae_cls(**config).eval()
    weights = _fill(model, SEEDS["video_vae"])
    generator = torch.Generator().manual_seed(2)
    x = torch.rand(1, 3, 9, 16, 16, generator=generator) * 2 - 1  # (B, C, T, H, W), T = 1 + 2 * 4
    z = torch.randn(1, 4, 5, 4, 4, generator=generator)
    posterior = model.encode(x)
    x_short = x[:, :, :5]  # a shorter causal clip: 1 + 2 * 2 frames -> 3 latents
    tensors = {"input.x": x, "output.posterior_mean": posterior.mean, "output.posterior_std": posterior.std,
               "output.posterior_mean_first5": model.encode(x_short).mean,
               "input.z": z, "output.decoded": model.decode(z)}
    return tensors, {"official_class": "algorithms/vae/video_vae/model.py::VideoVAE", "model_cfg": VIDEO_VAE_CONFIG,
                     "seed": SEEDS["video_vae"], "weights": weight_summary(weights)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--upstream", required=True, type=Path, help=f"checkout of {UPSTREAM_REPO} at 816de0c")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args()
    image_vae_cls, video_vae_cls = import_official(args.upstream.resolve())
    args.output.mkdir(parents=True, exist_ok=True)
    for name, make in (("image_vae", lambda: image_vae_fixture(image_vae_cls)),
                       ("video_vae", lambda: video_vae_fixture(video_vae_cls))):
        tensors, config = make()
        config = {"upstream": UPSTREAM_REPO, "commit": UPSTREAM_COMMIT, **config}
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(args.output / f"{name}.safetensors"))
        (args.output / f"{name}.json").write_text(json.dumps(config, indent=1) + "\n")
        print(name, {k: tuple(v.shape) for k, v in tensors.items()})


if __name__ == "__main__":
    main()
