# SPDX-License-Identifier: Apache-2.0
"""DFoT's official VAEs in diffusers: parity of the converted ImageVAE (`AutoencoderKL`) and VideoVAE
(`AutoencoderKLDFoTVideo`) with the official classes (`tests/fixtures/dfot_vae`), save/load round trips, latent
statistics in the pipeline, whole converted pipeline folders generating, and the conversion's errors."""

import json

import pytest
import torch
from conftest import REPO_ROOT
from diffusers import AutoencoderKL, DiffusionPipeline
from safetensors.torch import load_file, save_file
from script_loading import load_script

from diffusers_syn2seq import (
    DFOT_VAE_PRESETS,
    AutoencoderKLDFoTVideo,
    Syn2SeqPipeline,
    convert_dfot_checkpoint,
    convert_dfot_vae,
)
from diffusers_syn2seq.cli import convert_dfot_command
from diffusers_syn2seq.latents import vae_scale_factors
from diffusers_syn2seq.models.conversion_vae_dfot import video_vae_config
from diffusers_syn2seq.pipelines.conversion_dfot_pipeline import convert_dfot_pipeline

FIXTURES = REPO_ROOT / "tests" / "fixtures" / "dfot_vae"
MAKER = load_script("scripts/make_dfot_vae_fixtures.py")
PARITY = load_script("scripts/check_dfot_parity.py")
TOLERANCE = 1e-4


def official(name: str) -> tuple[dict, dict, dict]:
    """`(tensors, settings, official state dict)` of a VAE fixture, the weights rebuilt from their seed."""
    config = json.loads((FIXTURES / f"{name}.json").read_text())
    weights = MAKER.official_random_weights({k: v["shape"] for k, v in config["weights"].items()}, config["seed"])
    return load_file(FIXTURES / f"{name}.safetensors"), config, weights


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return float((a - b).abs().max())


@pytest.mark.parametrize("name", ["image_vae", "video_vae"])
def test_rebuilt_weights_are_the_ones_the_official_outputs_came_from(name):
    _, config, weights = official(name)
    for key, summary in config["weights"].items():
        assert list(weights[key].shape) == summary["shape"]
        assert float(weights[key].flatten()[0]) == summary["first"], key
        assert abs(float(weights[key].double().sum()) - summary["sum"]) < 1e-9, key


@pytest.mark.parametrize("name, cls", [("image_vae", AutoencoderKL), ("video_vae", AutoencoderKLDFoTVideo)])
def test_converted_vae_matches_the_official_encode_and_decode(name, cls):
    tensors, config, weights = official(name)
    vae = convert_dfot_vae(weights, config)
    assert type(vae) is cls and not vae.training
    with torch.no_grad():
        posterior = vae.encode(tensors["input.x"]).latent_dist
        decoded = vae.decode(tensors["input.z"]).sample
    assert max_diff(posterior.mean, tensors["output.posterior_mean"]) <= TOLERANCE
    assert max_diff(posterior.std, tensors["output.posterior_std"]) <= TOLERANCE
    assert max_diff(decoded, tensors["output.decoded"]) <= TOLERANCE
    if name == "video_vae":  # a shorter causal clip (5 frames -> 3 latents), and the 9 -> 5 / 5 -> 9 frame counts
        with torch.no_grad():
            short = vae.encode(tensors["input.x"][:, :, :5]).latent_dist.mean
        assert max_diff(short, tensors["output.posterior_mean_first5"]) <= TOLERANCE
        assert posterior.mean.shape[2] == 5 and decoded.shape[2] == 9


def test_video_vae_config_states_its_compression_and_the_pipeline_reads_it():
    _, config, weights = official("video_vae")
    vae = convert_dfot_vae(weights, config)
    assert (vae.config.temporal_compression_ratio, vae.config.spatial_compression_ratio) == (2, 4)
    assert vae_scale_factors(vae) == (2, 4)
    preset = AutoencoderKLDFoTVideo(**video_vae_config(DFOT_VAE_PRESETS["kinetics_600"]))
    assert vae_scale_factors(preset) == (4, 8) and preset.config.latent_channels == 16  # Kinetics-600: 17 -> 5


@pytest.mark.parametrize("name", ["image_vae", "video_vae"])
def test_save_pretrained_round_trip_keeps_weights_statistics_and_outputs(name, tmp_path):
    tensors, config, weights = official(name)
    stats = {"latents_mean": [0.5, -0.25, 1.0, 0.0], "latents_std": [2.0, 4.0, 0.5, 1.0]}
    vae = convert_dfot_vae(weights, {**config, **stats})
    vae.save_pretrained(tmp_path)
    assert (tmp_path / "diffusion_pytorch_model.safetensors").is_file()
    loaded = type(vae).from_pretrained(tmp_path).eval()
    assert list(loaded.config.latents_mean) == stats["latents_mean"]
    assert list(loaded.config.latents_std) == stats["latents_std"]
    with torch.no_grad():
        assert torch.equal(loaded.decode(tensors["input.z"]).sample, vae.decode(tensors["input.z"]).sample)
        assert torch.equal(loaded.encode(tensors["input.x"]).latent_dist.mean,
                           vae.encode(tensors["input.x"]).latent_dist.mean)


# ------------------------------------------------------------------------------------------ whole pipelines
def pipeline_from_official(name: str) -> Syn2SeqPipeline:
    """The official discrete DiT3D fixture (4 latent channels, 16x16, 5 frames) with a fixture VAE, converted as one
    pipeline; the VAE carries made-up statistics so that scaling errors show."""
    _, dit_config, dit_weights = PARITY.load_fixture(REPO_ROOT / "tests" / "fixtures" / "dfot_reference",
                                                     "dit3d_discrete")
    _, vae_config, vae_weights = official(name)
    vae_config = {**vae_config, "latents_mean": [0.3, -0.2, 0.1, 0.0], "latents_std": [1.5, 0.5, 2.0, 1.0]}
    pipe = convert_dfot_pipeline(dit_weights, dit_config, vae_weights, vae_config)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def clip(frames: int, size: int) -> torch.Tensor:
    return torch.rand(frames, 3, size, size, generator=torch.Generator().manual_seed(frames))


@pytest.mark.parametrize("name", ["image_vae", "video_vae"])
def test_pipeline_scales_latents_with_the_official_statistics(name):
    pipe = pipeline_from_official(name)
    size = 16 * pipe.vae_scale_factor
    video = clip(5, size).transpose(0, 1)[None] * 2 - 1  # (1, 3, 5, H, W) in [-1, 1]
    mean = torch.tensor(pipe.vae.config.latents_mean).view(1, 4, 1, 1, 1)
    std = torch.tensor(pipe.vae.config.latents_std).view(1, 4, 1, 1, 1)
    with torch.no_grad():
        if name == "image_vae":
            z = pipe.vae.encode(video[0].transpose(0, 1)).latent_dist.mode().transpose(0, 1)[None]
        else:
            z = pipe.vae.encode(video).latent_dist.mode()
        model_space = pipe.encode_video(video)
        # DFoT's `_normalize_x` / `_unnormalize_x`: (z - mean) / std on the way in, x * std + mean on the way out
        assert max_diff(model_space, (z - mean) / std) < 1e-5
        decoded = pipe.decode_latents(model_space)
        if name == "image_vae":
            expected = pipe.vae.decode((model_space * std + mean)[0].transpose(0, 1)).sample.transpose(0, 1)[None]
        else:
            expected = pipe.vae.decode(model_space * std + mean).sample
    assert max_diff(decoded, expected) < 1e-5


@pytest.mark.parametrize("name, num_source, num_frames", [("image_vae", 3, 2), ("video_vae", 5, 4)])
def test_converted_pipeline_folder_generates_after_a_round_trip(name, num_source, num_frames, tmp_path):
    pipe = pipeline_from_official(name)
    pipe.save_pretrained(tmp_path)
    index = json.loads((tmp_path / "model_index.json").read_text())
    assert index["vae"][1] == type(pipe.vae).__name__ and index["mode"] == "jump"
    loaded = DiffusionPipeline.from_pretrained(tmp_path)
    assert type(loaded) is Syn2SeqPipeline and type(loaded.vae) is type(pipe.vae)
    assert loaded.vae_scale_factor_temporal == (2 if name == "video_vae" else 1)
    loaded.set_progress_bar_config(disable=True)
    size = 16 * loaded.vae_scale_factor
    source = clip(num_source, size)
    kwargs = dict(num_frames=num_frames, num_inference_steps=2, output_type="pt")
    out = loaded(source, generator=torch.Generator().manual_seed(0), **kwargs).frames
    again = pipe(source, generator=torch.Generator().manual_seed(0), **kwargs).frames
    assert out.shape == (1, num_frames, 3, size, size) and torch.isfinite(out).all()
    assert torch.equal(out, again)


def test_cli_writes_a_pipeline_folder_from_official_files(tmp_path, capsys):
    _, dit_config, dit_weights = PARITY.load_fixture(REPO_ROOT / "tests" / "fixtures" / "dfot_reference",
                                                     "dit3d_discrete")
    _, vae_config, vae_weights = official("image_vae")
    save_file({f"diffusion_model.model.{k}": v for k, v in dit_weights.items()}, tmp_path / "dfot.safetensors")
    torch.save({"state_dict": {**vae_weights, "loss.logvar": torch.zeros(())}}, tmp_path / "vae.ckpt")
    (tmp_path / "dit.json").write_text(json.dumps(dit_config))
    (tmp_path / "vae.json").write_text(json.dumps({**vae_config, **{k: DFOT_VAE_PRESETS["minecraft"][k] for k in (
        "latents_mean", "latents_std")}}))
    out = tmp_path / "pipe"
    assert convert_dfot_command(["--checkpoint", str(tmp_path / "dfot.safetensors"), "--config",
                                 str(tmp_path / "dit.json"), "--vae_checkpoint", str(tmp_path / "vae.ckpt"),
                                 "--vae_config", str(tmp_path / "vae.json"), "--output_dir", str(out)]) == 0
    assert "Syn2SeqPipeline" in capsys.readouterr().out
    pipe = Syn2SeqPipeline.from_pretrained(out)
    assert list(pipe.vae.config.latents_std) == DFOT_VAE_PRESETS["minecraft"]["latents_std"]
    assert pipe.scheduler.config.noise_schedule == "cosine"  # a discrete (sinusoidal) backbone


# ------------------------------------------------------------------------------------------ errors
def test_a_truncated_vae_file_names_the_file(tmp_path):
    _, config, weights = official("image_vae")
    path = tmp_path / "vae.safetensors"
    save_file(weights, path)
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(ValueError, match=r"`checkpoint` '.*vae\.safetensors' is not a readable safetensors file .*"
                       "it may be truncated or corrupt"):
        convert_dfot_vae(path, config)


def test_the_wrong_checkpoint_for_the_settings_is_refused_with_the_keys():
    _, image_config, image_weights = official("image_vae")
    _, video_config, video_weights = official("video_vae")
    with pytest.raises(ValueError, match=r"do not match the model configured from `vae_config`: missing "):
        convert_dfot_vae(video_weights, DFOT_VAE_PRESETS["kinetics_600"])  # 32-channel weights, 128-channel model
    with pytest.raises(ValueError, match=r"`checkpoint` has 16 key\(s\) that are not VideoVAE weights, e.g. "
                       r"\['decoder.mid.attn_1.k.bias'.*is this an ImageVAE checkpoint"):
        convert_dfot_vae(image_weights, video_config)  # the ImageVAE's attention projections are 4-D convs
    with pytest.raises(ValueError, match=r"do not match the model configured from `vae_config`"):
        convert_dfot_vae(video_weights, image_config)
    incomplete = dict(image_weights)
    del incomplete["decoder.conv_out.bias"]
    with pytest.raises(ValueError, match=r"missing \['decoder.conv_out.bias'\] \(1\)"):
        convert_dfot_vae(incomplete, image_config)
    with pytest.raises(ValueError, match=r"`checkpoint` holds no VAE weights: expected keys starting with encoder"):
        convert_dfot_vae({"model.weight": torch.zeros(1)}, image_config)


def test_settings_without_a_diffusers_equivalent_are_refused_by_name():
    _, config, weights = official("image_vae")
    bad = {**config, "ddconfig": {**config["ddconfig"], "attn_resolutions": [8]}}
    with pytest.raises(ValueError, match=r"`vae_config\['ddconfig'\]\['attn_resolutions'\]` must be \[\] .*got \[8\]"):
        convert_dfot_vae(weights, bad)
    _, video_config, video_weights = official("video_vae")
    bad = {"model_cfg": {**video_config["model_cfg"], "is_causal": False}}
    with pytest.raises(ValueError, match=r"`vae_config\['model_cfg'\]\['is_causal'\]` must be True .*got False"):
        convert_dfot_vae(video_weights, bad)
    with pytest.raises(ValueError, match=r"`vae_config\['latents_std'\]` must hold 4 finite numbers .*got"):
        convert_dfot_vae(weights, {**config, "latents_mean": [0.0] * 4, "latents_std": [1.0] * 3})
    with pytest.raises(ValueError, match=r"must give both `latents_mean` and `latents_std` or neither"):
        convert_dfot_vae(weights, {**config, "latents_mean": [0.0] * 4})


def test_convert_dfot_checkpoint_dispatches_vae_settings():
    _, config, weights = official("image_vae")
    assert type(convert_dfot_checkpoint(weights, config)) is AutoencoderKL


def test_video_vae_refuses_frame_counts_off_the_latent_boundaries():
    vae = AutoencoderKLDFoTVideo(latent_channels=4, block_out_channels=(32, 32), layers_per_block=1,
                                 temporal_resnets=(False, True), temporal_downsample=(True,))
    with pytest.raises(ValueError, match=r"^`x` must have 1 \+ 2 \* a frames \(the VAE encodes frame 0 alone, then "
                       r"chunks of 2\), got 4\.$"):
        vae.encode(torch.zeros(1, 3, 4, 8, 8))
    with pytest.raises(ValueError, match=r"^`temporal_compression_ratio` must be 2 \(from `temporal_downsample` = "
                       r"\[True\]\) or None, got 4\.$"):
        AutoencoderKLDFoTVideo(block_out_channels=(32, 32), temporal_resnets=(False, True),
                               temporal_downsample=(True,), temporal_compression_ratio=4)


def test_cli_reports_a_truncated_vae_checkpoint_and_a_lone_vae_flag_in_one_line(tmp_path, capsys):
    _, config, weights = official("video_vae")
    path = tmp_path / "VideoVAE.ckpt"
    torch.save({"state_dict": {f"vae.{k}": v for k, v in weights.items()}}, path)
    path.write_bytes(path.read_bytes()[:20000])
    (tmp_path / "vae.json").write_text(json.dumps(config))
    args = ["--checkpoint", str(path), "--config", str(tmp_path / "vae.json"), "--output_dir", str(tmp_path / "o")]
    assert convert_dfot_command(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"syn2seq-convert-dfot: error: `checkpoint` {str(path)!r} is not a "
                                               "readable torch file")
    assert "truncated or corrupt" in err[0]
    assert convert_dfot_command(args + ["--vae_config", "kinetics_600"]) == 2
    assert capsys.readouterr().err.strip() == ("syn2seq-convert-dfot: error: --vae_checkpoint and --vae_config go "
                                               "together: expected both or neither, got only --vae_config")
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())
