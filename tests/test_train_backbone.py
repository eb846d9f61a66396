# SPDX-License-Identifier: Apache-2.0
"""Training SkyReels-V2 DF / Wan wrappers: the flow objective overfits a tiny set (full and LoRA), and
`train.py --backbone skyreels-v2-df|wan` runs end to end (from scratch in pixels; LoRA on a SkyReels-V2 checkpoint
folder in latent space), writing what the pipeline loads."""

import json
import math

import pytest
import torch
from diffusers import AutoencoderKL, DiffusionPipeline, SkyReelsV2Transformer3DModel
from peft import LoraConfig
from safetensors.torch import load_file, save_file
from script_loading import load_script
from test_train import RES, _lines, launch

from diffusers_syn2seq import FlowMatchDiffusionForcingScheduler, Syn2SeqPipeline, WanDFoTTransformer3DModel
from diffusers_syn2seq.objective import diffusion_forcing_loss
from diffusers_syn2seq.training_utils import default_lora_targets

TINY = dict(patch_size=2, num_attention_heads=2, attention_head_dim=12, text_dim=16, freq_dim=256, ffn_dim=32,
            num_layers=2, rope_max_seq_len=32, prompt_length=7)
FRAMES, TRANSITION = 6, 2


def fixed_loss(model, scheduler, x0, noise, levels) -> float:
    with torch.no_grad():
        loss, _ = diffusion_forcing_loss(model, scheduler, x0, torch.ones(x0.shape[:1] + x0.shape[2:3], dtype=bool),
                                         noise=noise, levels=levels, loss_weighting="uniform")
    return float(loss)


@pytest.mark.parametrize("backbone, train_mode, steps, ratio", [("skyreels-v2-df", "full", 100, 0.75),
                                                                 ("wan", "lora", 60, 0.9)])
def test_flow_objective_overfits_a_tiny_set(backbone, train_mode, steps, ratio):
    """Fixed-batch loss (fixed noise and levels) before and after a few seconds of training; a frozen random tiny
    backbone learns more slowly through its LoRA layers, hence the smaller decrease asked of it."""
    torch.manual_seed(0)
    model = WanDFoTTransformer3DModel(backbone_type=backbone, in_channels=4, out_channels=4, sample_size=8,
                                      max_frames=4, inject_sample_info=backbone == "skyreels-v2-df", **TINY)
    scheduler = FlowMatchDiffusionForcingScheduler()
    generator = torch.Generator().manual_seed(1)
    x0 = torch.randn(2, 4, 4, 8, 8, generator=generator)  # two "latent clips"
    noise, levels = torch.randn(x0.shape, generator=generator), torch.randint(0, 1000, (2, 4), generator=generator)
    if train_mode == "lora":
        model.requires_grad_(False)
        model.add_adapter(LoraConfig(r=8, lora_alpha=8, target_modules=default_lora_targets(model)))
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-2)
    start = fixed_loss(model, scheduler, x0, noise, levels)
    for step in range(steps):
        loss, _ = diffusion_forcing_loss(model, scheduler, x0, torch.ones(2, 4, dtype=bool), loss_weighting="uniform",
                                         generator=torch.Generator().manual_seed(step))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    end = fixed_loss(model, scheduler, x0, noise, levels)
    assert math.isfinite(start) and end < ratio * start, (start, end)


# ------------------------------------------------------------------------------------------------ train.py
@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("data") / "synth"
    load_script("training/make_synthetic_dataset.py").main([
        "--output", str(root), "--num-train", "2", "--num-validation", "1", "--num-test", "0", "--num-frames",
        str(FRAMES), "--resolution", str(RES), "--transition-frames", str(TRANSITION)])
    return root


def test_train_from_scratch_full_in_pixels(dataset, tmp_path):
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps({**TINY, "inject_sample_info": False}))
    out = tmp_path / "run"
    launch(["--backbone", "wan", "--dataset_dir", dataset, "--output_dir", out, "--model_config", config,
            "--max_frames", 8, "--mode", "video+pose", "--train_batch_size", 2, "--max_train_steps", 3,
            "--checkpointing_steps", 3, "--learning_rate", 1e-3, "--seed", 1, "--report_to", "none",
            "--validation_steps", 3, "--num_validation_videos", 1, "--validation_inference_steps", 2,
            "--validation_num_frames", 2, "--validation_num_samples", 1, "--gradient_checkpointing"])
    assert all(math.isfinite(x["train/loss"]) for x in _lines(out / "logs" / "train_log.jsonl"))
    summary = json.loads((out / "training_summary.json").read_text())
    assert math.isfinite(summary["validation"][-1]["val/psnr"])
    pipe = Syn2SeqPipeline.from_pretrained(out)
    assert isinstance(pipe.transformer, WanDFoTTransformer3DModel) and pipe.transformer.config.backbone_type == "wan"
    assert isinstance(pipe.scheduler, FlowMatchDiffusionForcingScheduler) and pipe.scheduler.config.shift == 5.0
    assert pipe.transformer.config.camera_ray_type == "plucker" and pipe.transformer.config.in_channels == 3
    assert "rectified flow" in (out / "README.md").read_text()


def test_train_lora_on_a_skyreels_checkpoint_in_latent_space(dataset, tmp_path):
    torch.manual_seed(0)
    checkpoint = tmp_path / "skyreels"  # a diffusers SkyReels-V2 DF checkpoint folder (transformer/ only)
    SkyReelsV2Transformer3DModel(patch_size=(1, 2, 2), in_channels=4, out_channels=4, inject_sample_info=True,
                                 **{k: v for k, v in TINY.items() if k not in ("patch_size", "prompt_length")}
                                 ).save_pretrained(checkpoint / "transformer")
    vae = tmp_path / "vae"
    AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 2,
                  up_block_types=("UpDecoderBlock2D",) * 2, block_out_channels=(8, 16), latent_channels=4,
                  norm_num_groups=8, layers_per_block=1, sample_size=RES).save_pretrained(vae)
    prompt = tmp_path / "prompt.safetensors"
    save_file({"prompt_embeds": torch.randn(1, 5, 16)}, prompt)
    out = tmp_path / "lora"
    launch(["--backbone", "skyreels-v2-df", "--pretrained_model_name_or_path", checkpoint, "--train_mode", "lora",
            "--rank", 4, "--vae_name_or_path", vae, "--cache_latents", "--prompt_embeds", prompt, "--dataset_dir",
            dataset, "--output_dir", out, "--max_frames", 8, "--mode", "video", "--camera_ray_type", "none",
            "--train_batch_size", 2,
            "--max_train_steps", 3, "--checkpointing_steps", 3, "--learning_rate", 1e-2, "--report_to", "none"])
    state = load_file(out / "pytorch_lora_weights.safetensors")
    assert any(".ffn.net.0.proj.lora_A" in key for key in state) and any(".attn2.to_k.lora_B" in key for key in state)
    summary = json.loads((out / "training_summary.json").read_text())
    assert math.isfinite(summary["fixed_batch_loss_start"]) and math.isfinite(summary["fixed_batch_loss_end"])
    # the LoRA loads onto the same wrapped checkpoint
    model = WanDFoTTransformer3DModel.from_pretrained_backbone(str(checkpoint), sample_size=RES // 2, max_frames=8,
                                                               prompt_length=7)
    pipe = Syn2SeqPipeline(transformer=model, scheduler=FlowMatchDiffusionForcingScheduler(), mode="video")
    pipe.load_lora_weights(out)
    assert pipe.transformer.peft_config


@pytest.mark.parametrize("extra, message", [
    (["--backbone", "wan", "--noise_schedule", "cosine_simple_diffusion"],
     "--dfot_config / --noise_schedule: expected with --backbone dfot only, got --backbone wan"),
    (["--backbone", "wan", "--flow_shift", "0"], "--flow_shift: expected a finite number > 0, got 0.0."),
    (["--backbone", "gan"], "train.py: error: argument --backbone: invalid choice: 'gan'"),
    # issue 24: accepted and ignored before
    (["--flow_shift", "3"], "--flow_shift: expected with --backbone skyreels-v2-df or wan only (a DFoT backbone has no "
                            "text condition and a DDIM scheduler), got --backbone dfot."),
    (["--prompt_embeds", "{prompt}"], "--prompt_embeds: expected with --backbone skyreels-v2-df or wan only"),
    # issue 24: a KeyError after the model was built before
    (["--backbone", "wan", "--prompt_embeds", "{other}"], "--prompt_embeds: expected a safetensors file with the key "
                                                           "'prompt_embeds' (models.encode_prompt_embeds), got "
                                                           "'{other}' with keys ['embeds']."),
])
def test_bad_backbone_flags(dataset, tmp_path, capsys, extra, message):
    train = load_script("training/train.py", "syn2seq_train_backbone")
    save_file({"prompt_embeds": torch.zeros(1, 2, 16)}, tmp_path / "prompt.safetensors")
    save_file({"embeds": torch.zeros(1, 2, 16)}, tmp_path / "other.safetensors")
    names = {"{prompt}": str(tmp_path / "prompt.safetensors"), "{other}": str(tmp_path / "other.safetensors")}
    extra = [names.get(value, value) for value in extra]
    message = message.replace("{other}", names["{other}"])
    try:
        train.check_args(train.parse_args(["--dataset_dir", str(dataset), "--output_dir", str(tmp_path / "x"),
                                           *extra]))
    except ValueError as error:
        assert message in str(error)
    except SystemExit as error:
        assert error.code == 2 and message in capsys.readouterr().err
    else:
        pytest.fail(f"{extra} was accepted")


def test_loss_weighting_default_follows_the_backbone(dataset, tmp_path):
    train = load_script("training/train.py", "syn2seq_train_backbone")
    common = ["--dataset_dir", str(dataset), "--output_dir", str(tmp_path / "x")]
    assert train.parse_args(common).loss_weighting == "sigmoid"
    assert train.parse_args(common + ["--backbone", "wan"]).loss_weighting == "uniform"
    assert train.parse_args(common + ["--backbone", "wan", "--loss_weighting", "min_snr"]).loss_weighting == "min_snr"


def test_model_loading_errors_name_the_flag(dataset, tmp_path):
    train = load_script("training/train.py", "syn2seq_train_backbone")
    torch.manual_seed(0)
    SkyReelsV2Transformer3DModel(patch_size=(1, 2, 2), in_channels=3, out_channels=3,
                                 **{k: v for k, v in TINY.items() if k not in ("patch_size", "prompt_length")}
                                 ).save_pretrained(tmp_path / "ckpt" / "transformer")
    common = ["--dataset_dir", str(dataset), "--output_dir", str(tmp_path / "x")]
    args = train.parse_args(common + ["--backbone", "skyreels-v2-df", "--train_mode", "lora",
                                      "--pretrained_model_name_or_path", str(tmp_path / "ckpt")])
    with pytest.raises(ValueError, match="--camera_ray_type: expected none with --train_mode lora on the "
                                         "skyreels-v2-df checkpoint"):
        train.load_models(args, (RES, RES))
    wrapper = WanDFoTTransformer3DModel(backbone_type="skyreels-v2-df", in_channels=3, out_channels=3,
                                        sample_size=RES, **TINY)
    wrapper.save_pretrained(tmp_path / "wrapper")
    Syn2SeqPipeline(transformer=wrapper, scheduler=FlowMatchDiffusionForcingScheduler()).save_pretrained(tmp_path / "p")
    for backbone, folder in (("wan", "wrapper"), ("dfot", "wrapper"), ("wan", "p"), ("dfot", "p")):
        args = train.parse_args(common + ["--backbone", backbone, "--pretrained_model_name_or_path",
                                          str(tmp_path / folder)])
        with pytest.raises(ValueError, match=f"--backbone: expected .*'skyreels-v2-df'.*, got '{backbone}'"):
            train.load_models(args, (RES, RES))
    # issue 24: a DFoT pipeline with a foundation backbone named the flag, not the scheduler's prediction_type
    from diffusers_syn2seq import DFoTTransformer3DModel, DiffusionForcingScheduler

    dfot = DFoTTransformer3DModel(in_channels=3, sample_size=RES, max_frames=4, patch_size=4, num_layers=1,
                                  num_attention_heads=1, attention_head_dim=8, noise_embedding_dim=8)
    Syn2SeqPipeline(transformer=dfot, scheduler=DiffusionForcingScheduler()).save_pretrained(tmp_path / "dfot")
    args = train.parse_args(common + ["--backbone", "skyreels-v2-df", "--pretrained_model_name_or_path",
                                      str(tmp_path / "dfot")])
    with pytest.raises(ValueError) as error:
        train.load_models(args, (RES, RES))
    assert str(error.value) == f"--backbone: expected the backbone of {str(tmp_path / 'dfot')!r}, 'dfot', got " \
                               "'skyreels-v2-df'."


def test_shipped_1_3b_lora_config_parses():
    train = load_script("training/train.py", "syn2seq_train_backbone")
    args = train.parse_args(["--config", "training/configs/skyreels_v2_df_1.3b_lora.yaml"])
    assert (args.backbone, args.train_mode, args.rank, args.mixed_precision) == ("skyreels-v2-df", "lora", 64, "bf16")
    assert args.gradient_checkpointing and args.camera_ray_type == "none" and args.loss_weighting == "uniform"
    assert args.lora_layers.split(",") == default_lora_targets(WanDFoTTransformer3DModel)


# ------------------------------------------------------------------------------------------------ with the Wan VAE
@pytest.fixture(scope="module")
def wan_data(tmp_path_factory):
    """A dataset on latent boundaries (9-frame clips, 4 transition frames, 32 px), a saved tiny causal Wan VAE and a
    SkyReels-V2 DF checkpoint folder in its 16-channel latent space."""
    from test_video_vae import PIXELS, tiny_wan

    root = tmp_path_factory.mktemp("wan")
    load_script("training/make_synthetic_dataset.py").main([
        "--output", str(root / "data"), "--num-train", "2", "--num-validation", "1", "--num-test", "0",
        "--num-frames", "9", "--resolution", str(PIXELS), "--transition-frames", "4"])
    tiny_wan().save_pretrained(root / "vae")
    torch.manual_seed(0)
    SkyReelsV2Transformer3DModel(patch_size=(1, 2, 2), in_channels=16, out_channels=16, inject_sample_info=True,
                                 **{k: v for k, v in TINY.items() if k not in ("patch_size", "prompt_length")}
                                 ).save_pretrained(root / "skyreels" / "transformer")
    save_file({"prompt_embeds": torch.randn(1, 5, 16)}, root / "prompt.safetensors")
    return root


@pytest.mark.parametrize("train_mode", ["lora", "full"])
def test_train_skyreels_with_the_causal_wan_vae(wan_data, tmp_path, train_mode):
    """Two steps of `--backbone skyreels-v2-df` on jointly encoded Wan-VAE latents (LoRA with validation on the
    whole clip, full fine-tuning); the full run's folder loads as a pipeline with the VAE."""
    from diffusers import AutoencoderKLWan

    train = load_script("training/train.py", "syn2seq_train_backbone")
    out = tmp_path / train_mode
    argv = ["--backbone", "skyreels-v2-df", "--pretrained_model_name_or_path", str(wan_data / "skyreels"),
            "--train_mode", train_mode, "--vae_name_or_path", str(wan_data / "vae"), "--cache_latents",
            "--prompt_embeds", str(wan_data / "prompt.safetensors"), "--dataset_dir", str(wan_data / "data"),
            "--output_dir", str(out), "--max_frames", "5", "--mode", "video", "--camera_ray_type", "none",
            "--reverse_prob", "0.5", "--train_batch_size", "2", "--max_train_steps", "2", "--checkpointing_steps",
            "2", "--learning_rate", "1e-3", "--report_to", "none", "--mixed_precision", "no"]
    if train_mode == "lora":
        argv += ["--rank", "4", "--validation_steps", "2", "--num_validation_videos", "1",
                 "--validation_inference_steps", "1", "--validation_num_samples", "1"]
    summary = train.main(argv)
    assert math.isfinite(summary["fixed_batch_loss_start"]) and math.isfinite(summary["fixed_batch_loss_end"])
    if train_mode == "lora":
        assert math.isfinite(summary["validation"][-1]["val/psnr"])
        assert (out / "pytorch_lora_weights.safetensors").is_file()
        return
    pipe = DiffusionPipeline.from_pretrained(out)
    assert isinstance(pipe.vae, AutoencoderKLWan) and isinstance(pipe.transformer, WanDFoTTransformer3DModel)
    assert pipe.config.num_transition_frames == 4 and pipe.transformer.config.max_frames == 5


def test_shipped_1_3b_lora_config_lies_on_wan_vae_latent_boundaries():
    """With the real Wan VAE (time 4x): transition 4b and validation target 4c pixel frames, and a window of
    `max_frames` latents the data can fill (source 1 + 4a: at least one clean latent before the generated ones)."""
    import yaml

    train = load_script("training/train.py", "syn2seq_train_backbone")
    path = "training/configs/skyreels_v2_df_1.3b_lora.yaml"
    raw = yaml.safe_load(open(path))
    args = train.parse_args(["--config", path])
    assert raw["vae_subfolder"] == "vae" and raw["cache_latents"] is True  # the checkpoint's AutoencoderKLWan
    assert args.num_transition_frames == raw["num_transition_frames"] and args.num_transition_frames % 4 == 0
    assert args.validation_num_frames is None or args.validation_num_frames % 4 == 0
    assert args.num_clip_frames is None or (args.num_clip_frames - 1) % 4 == 0
    assert args.max_frames == 9 and 1 + 4 * (args.max_frames - 1) == 33  # the window the memory estimate is for
    assert args.max_frames > args.num_transition_frames // 4 + 1  # room for a source latent and a target latent
