# SPDX-License-Identifier: Apache-2.0
"""Make the whole-sampler fixture (`tests/fixtures/dfot_sampling`) by running the official DFoT sampler on CPU.

    git clone https://github.com/ktncktnc/diffusion-forcing-transformer /tmp/dfot && git -C /tmp/dfot checkout 816de0c
    python -m venv --system-site-packages /tmp/dfot_venv && echo "torch==2.13.0" > /tmp/constraints.txt
    /tmp/dfot_venv/bin/pip install -c /tmp/constraints.txt lightning wandb omegaconf einops matplotlib \
        rotary_embedding_torch && /tmp/dfot_venv/bin/pip install --no-deps timm
    /tmp/dfot_venv/bin/python scripts/make_dfot_sampling_fixture.py --upstream /tmp/dfot

(made with lightning 2.6.6, wandb 0.31.0, omegaconf 2.3.1, einops 0.8.2, matplotlib 3.11.2, timm 1.0.31, torch
2.13.0+cpu; torch, diffusers, transformers, tqdm and colorama come from the system site-packages). The official
`DFoTVideo` (a Lightning module) is built from the official YAML files, merged in the order of their Hydra defaults
lists (base algorithm, `dfot_video.yaml`, the DiT3D backbone, the Minecraft dataset and experiment files, the
continuous-diffusion shortcut: what the Minecraft model was trained with, `dataset=minecraft algorithm=dfot_video
@diffusion/continuous`) with a tiny size (instead of `@DiT/B`) on top; `DFoTVideo._predict_sequence` ->
`_sample_sequence` runs unchanged with real Lightning, wandb, matplotlib, OmegaConf, einops and timm. Stand-ins,
none of them on the sampling path:

- `torchvision` (no CPU build here), only while timm is imported and removed right after (so Lightning and
  torchmetrics see no torchvision): an import-only stand-in whose every attribute is a class that raises when
  called. timm imports it for its data transforms and FrozenBatchNorm; the timm classes DiT3D uses (`PatchEmbed`,
  `Mlp`, timm's own code) are plain Conv2d / Linear / GELU modules that never touch it, so no number comes from it;
- the `algorithms` package `__init__` files (they import every algorithm), the metrics package, the VAE classes
  and `utils.logging_utils` (torchmetrics, LPIPS, FID, video logging): used only by validation / logging and by
  `_load_vae`, which latents given directly (`latent.type: pre_sample`, as the Minecraft model is trained and
  evaluated) never call.

Every draw of `torch.randn` / `torch.randn_like` during sampling is recorded (the initial noise, `q_sample`'s noise
for the history of the guidance branch without history, DDIM's noise, which eta = 0 multiplies by 0), with the
whole trajectory (`return_all=True`). The weights are random (seeded), stored with the inputs and outputs.
"""

import argparse
import importlib.abc
import importlib.machinery
import inspect
import json
import sys
import types
from pathlib import Path

import torch
from safetensors.torch import save_file

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_dfot_vae_fixtures import UPSTREAM_COMMIT, UPSTREAM_REPO, _stub, official_random_weights  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
OUTPUT = REPO / "tests" / "fixtures" / "dfot_sampling"

# Minecraft's setting at a tiny size: 4-channel 8x8 latents (64 px / 8), 3 context + 3 generated frames filling
# `max_frames` (the official sampler pads a shorter window with pure-noise frames, the pipeline does not), 4-d
# actions stacked over frame_skip 2 (8-d conditions), mask_first, 4 DDIM steps.
DATASET = {"resolution": 64, "max_frames": 6, "n_frames": 6, "context_length": 3}
ALGORITHM = {
    "compile": False,  # the Minecraft experiment compiles for training speed; sampling is the same without it
    "backbone": {"hidden_size": 32, "depth": 2, "num_heads": 2},
    "diffusion": {"sampling_timesteps": 4},
    "tasks": {"prediction": {"enabled": False}, "interpolation": {"enabled": False}},  # no metrics to build
}
BATCH, GUIDANCE_SCALE, SEED = 2, 2.0, 2027
# Two sliding windows of 3 history + 3 generated frames (9 frames), as Minecraft's long rollouts slide 25 + 25.
SLIDING_LENGTH, STABILIZATION = 9, 0.02


class _Refuse(type):
    """A torchvision stand-in attribute: a class whose attributes are more of the same and which refuses to be
    instantiated, so that any use of torchvision by the code that runs would fail loudly."""

    def __getattr__(cls, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return _Refuse(name, (), {"__init__": _refuse})


def _refuse(*args, **kwargs):
    raise RuntimeError("torchvision stand-in: torchvision is not available in the fixture venv")


class _TorchvisionStandIn(types.ModuleType):
    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return _Refuse(name, (), {"__init__": _refuse})


class _TorchvisionFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Serves `torchvision` and any submodule as a `_TorchvisionStandIn` package."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname.split(".")[0] != "torchvision":
            return None
        return importlib.machinery.ModuleSpec(fullname, self, is_package=True)

    def create_module(self, spec):
        module = _TorchvisionStandIn(spec.name)
        module.__path__, module.__version__ = [], "0.0.0"
        return module

    def exec_module(self, module):
        pass


def import_timm_without_torchvision() -> None:
    """Import timm's `vision_transformer` (DiT3D's `PatchEmbed` and `Mlp`) with torchvision served by stand-ins,
    then take the stand-ins away again, so that Lightning / torchmetrics see no torchvision at all."""
    finder = _TorchvisionFinder()
    sys.meta_path.insert(0, finder)
    try:
        import timm.models.vision_transformer  # noqa: F401
    finally:
        sys.meta_path.remove(finder)
        for name in [n for n in sys.modules if n.split(".")[0] == "torchvision"]:
            del sys.modules[name]


def install_stand_ins(upstream: Path) -> None:
    """timm imported without torchvision, and stand-ins for the validation-only modules (see the module docstring)."""
    sys.path.insert(0, str(upstream))
    import_timm_without_torchvision()
    # Skip the packages' __init__ files, which import every algorithm, trainer and metric.
    for package in ("algorithms", "algorithms.common", "algorithms.dfot"):
        _stub(package, __path__=[str(upstream / package.replace(".", "/"))])
    _stub("algorithms.common.metrics", __path__=[])
    _stub("algorithms.common.metrics.video", VideoMetric=object, SharedVideoMetricModelRegistry=object)
    _stub("algorithms.vae", ImageVAE=object, VideoVAE=object)
    _stub("utils.logging_utils", log_video=lambda *args, **kwargs: None)


def official_config(upstream: Path):
    """The algorithm config as Hydra composes it for Minecraft (`dataset=minecraft algorithm=dfot_video
    experiment=video_generation @diffusion/continuous @DiT/B`), made tiny by DATASET / ALGORITHM."""
    from omegaconf import OmegaConf

    conf = upstream / "configurations"

    def load(path: str, key: str | None = None):
        node = OmegaConf.load(conf / path)
        node = node[key] if key else node
        return OmegaConf.masked_copy(node, [k for k in node if k != "defaults"])

    algorithm = OmegaConf.merge(load("algorithm/base_algo.yaml"), load("algorithm/base_pytorch_algo.yaml"),
                                load("algorithm/dfot_video.yaml"),
                                {"backbone": load("algorithm/backbone/dit3d.yaml")},
                                load("dataset_experiment/minecraft_video_generation.yaml", "algorithm"),
                                load("shortcut/diffusion/continuous.yaml", "algorithm"), ALGORITHM)
    dataset = OmegaConf.merge(load("dataset/base_video.yaml"), load("dataset/minecraft.yaml"),
                              load("dataset_experiment/minecraft_video_generation.yaml", "dataset"), DATASET)
    root = OmegaConf.create({"debug": False, "experiment": {"training": {"lr": 1e-4}}})
    root.dataset, root.algorithm = dataset, algorithm
    OmegaConf.resolve(root)
    return root.algorithm


def build_official(upstream: Path):
    """The official `DFoTVideo`, eval mode, its DiT3D filled with seeded random weights; returns (algo, weights)."""
    install_stand_ins(upstream)
    from algorithms.dfot.dfot_video import DFoTVideo

    torch.manual_seed(SEED)  # the Fourier embedding's frequencies and phases are drawn at construction: kept
    algo = DFoTVideo(official_config(upstream)).eval()
    backbone = algo.diffusion_model.model
    state = backbone.state_dict()
    fourier = {k: v for k, v in state.items() if k.endswith((".freqs", ".phases"))}
    shapes = {k: list(v.shape) for k, v in state.items() if k not in fourier}
    weights = {**official_random_weights(shapes, SEED), **fourier}
    backbone.load_state_dict(weights, strict=True)
    return algo, weights


class NoiseRecorder:
    """Records every `torch.randn` / `torch.randn_like` draw with the official function that asked for it."""

    def __init__(self):
        self.draws: list[tuple[str, torch.Tensor]] = []
        self._originals = (torch.randn, torch.randn_like)

    def _wrap(self, original):
        def draw(*args, **kwargs):
            out = original(*args, **kwargs)
            self.draws.append((inspect.stack()[1].function, out.clone()))
            return out
        return draw

    def __enter__(self):
        torch.randn, torch.randn_like = (self._wrap(f) for f in self._originals)
        return self

    def __exit__(self, *exc):
        torch.randn, torch.randn_like = self._originals

    def by_caller(self, caller: str) -> list[torch.Tensor]:
        return [t for name, t in self.draws if name == caller]


@torch.no_grad()
def sample(algo, context: torch.Tensor, conditions: torch.Tensor, guidance, length: int) -> tuple[dict, dict]:
    """One official `_predict_sequence` call and the noise it drew. One window (`length == max_tokens`) also gives
    its trajectory (`return_all`); a longer one slides with `sliding_context_len` = the context length, windows that
    fill `max_tokens` (no padding frames) and hold only generated frames as history after the first."""
    one_window = length == algo.max_tokens
    with NoiseRecorder() as noise:
        xs, record = algo._predict_sequence(context, length=length, conditions=conditions, history_guidance=guidance,
                                            sliding_context_len=None if one_window else context.shape[1],
                                            return_all=one_window)
    initial = torch.stack(noise.by_caller("_sample_sequence"))  # (windows, B, T, C, H, W), before clamping
    assert initial.abs().max() < algo.clip_noise, "clamping changed the initial noise: record it after clamping"
    tensors = {"initial_noise": initial, "output": xs}
    num_context = context.shape[1]
    if record is not None:  # the context never changes (checked): only the generated frames are kept
        assert torch.equal(record[:, :, :num_context], context.expand(record.shape[0], *context.shape))
        tensors["trajectory"] = record[:, :, num_context:]
    renoise = noise.by_caller("q_sample")
    if renoise:  # (steps, B, T, C, H, W) draws; only their history frames (the window's first ones) can count
        tensors["history_noise"] = torch.stack(renoise)[:, :, :num_context]
    counts = {name: sum(1 for n, _ in noise.draws if n == name) for name, _ in noise.draws}
    return tensors, counts


def runs(algo, context: torch.Tensor, conditions: torch.Tensor) -> tuple[dict, dict]:
    """The recorded runs, each from `torch.manual_seed(SEED + 2)`: one window unguided / vanilla (w = 2), and two
    sliding windows with `conditional` and with `stabilized_vanilla` (w = 2, level 0.02: the official long-video
    command)."""
    from algorithms.dfot.history_guidance import HistoryGuidance

    T, one, two = algo.timesteps, algo.max_tokens, conditions.shape[1]
    settings = {
        "unguided": (None, one),
        "vanilla": (HistoryGuidance.vanilla(GUIDANCE_SCALE, timesteps=T, visualize=False), one),
        "sliding": (HistoryGuidance.conditional(timesteps=T, visualize=False), two),
        "sliding_vanilla": (HistoryGuidance.stabilized_vanilla(GUIDANCE_SCALE, STABILIZATION, timesteps=T,
                                                               visualize=False), two),
    }
    tensors, draws = {}, {}
    for name, (guidance, length) in settings.items():
        torch.manual_seed(SEED + 2)  # the same initial noise for every run: the guidance is the only difference
        run, draws[name] = sample(algo, context, conditions[:, :length], guidance, length)
        tensors.update({f"{name}.{k}": v for k, v in run.items()})
    return tensors, draws


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--upstream", required=True, type=Path, help=f"checkout of {UPSTREAM_REPO} at 816de0c")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args()
    algo, weights = build_official(args.upstream.resolve())
    from omegaconf import OmegaConf

    generator = torch.Generator().manual_seed(SEED + 1)
    num_context = algo.n_context_tokens
    context = torch.randn(BATCH, num_context, *algo.x_shape, generator=generator)  # normalised latents
    conditions = torch.randn(BATCH, algo.max_tokens, algo.external_cond_dim, generator=generator)
    more = torch.randn(BATCH, SLIDING_LENGTH - algo.max_tokens, algo.external_cond_dim, generator=generator)
    conditions = torch.cat([conditions, more], dim=1)  # one vector per frame of the whole sliding sequence
    tensors, draws = runs(algo, context, conditions)
    tensors.update({"input.context": context, "input.conditions": conditions,
                    **{f"state_dict.{k}": v for k, v in weights.items()}})
    cfg = OmegaConf.to_container(algo.cfg, resolve=True)
    config = {
        "upstream": UPSTREAM_REPO, "commit": UPSTREAM_COMMIT,
        "official_call": "DFoTVideo._predict_sequence(context, length, conditions, history_guidance, "
                         "sliding_context_len, return_all) -> DFoTVideo._sample_sequence per window",
        "backbone_config": cfg["backbone"], "x_shape": list(algo.x_shape), "max_tokens": algo.max_tokens,
        "external_cond_dim": algo.external_cond_dim, "external_cond_processing": algo.cfg.external_cond_processing,
        "num_context": num_context, "sampling_timesteps": algo.sampling_timesteps, "timesteps": algo.timesteps,
        "diffusion": {k: v for k, v in cfg["diffusion"].items() if k not in ("loss_weighting", "training_schedule")},
        "vanilla_guidance_scale": GUIDANCE_SCALE, "stabilization_level": STABILIZATION, "seed": SEED,
        "sliding_length": SLIDING_LENGTH, "sliding_context_len": num_context, "noise_draws": draws,
    }
    args.output.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(args.output / "dit3d_minecraft_like.safetensors"))
    (args.output / "dit3d_minecraft_like.json").write_text(json.dumps(config, indent=1) + "\n")
    print({k: tuple(v.shape) for k, v in tensors.items() if not k.startswith("state_dict.")}, draws)


if __name__ == "__main__":
    main()
