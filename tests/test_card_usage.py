# SPDX-License-Identifier: Apache-2.0
"""The model card `training/train.py` writes loads its model from the card: the usage example is executed as written
(from a folder where `path/to/<name>` is the written run, as a reader's checkout would be) for a full DFoT run, a
DFoT LoRA on the bundled model, on a bare transformer folder and on an official DFoT checkpoint, and a LoRA on a
SkyReels-V2 DF checkpoint; a resumed run keeps every segment's validation rows and commands. Tiny runs of
`train.main`, in process."""

import json
import os
import re
import shutil
from pathlib import Path

import pytest
import torch
from diffusers import SkyReelsV2DiffusionForcingPipeline, SkyReelsV2Transformer3DModel
from huggingface_hub import ModelCard
from safetensors.torch import load_file, save_file
from script_loading import load_script

from diffusers_syn2seq import bundled_model_path

TINY_SKYREELS = dict(patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12, in_channels=3,
                     out_channels=3, text_dim=16, freq_dim=256, ffn_dim=32, num_layers=2, rope_max_seq_len=32,
                     inject_sample_info=True)
QUIET = ["--report_to", "none", "--mixed_precision", "no", "--train_batch_size", "2", "--learning_rate", "1e-3"]


def train(argv: list) -> dict:
    return load_script("training/train.py", "syn2seq_train_card_usage").main([str(a) for a in argv])


def dataset(root: Path, frames: int, resolution: int, transition: int, style: str) -> Path:
    load_script("training/make_synthetic_dataset.py").main([
        "--output", str(root), "--num-train", "2", "--num-validation", "1", "--num-test", "0", "--num-frames",
        str(frames), "--resolution", str(resolution), "--transition-frames", str(transition), "--style", style])
    return root


@pytest.fixture(scope="module")
def data32(tmp_path_factory) -> Path:
    """Takes like the bundled model's: 4 exo + 4 transition + 4 ego frames of 32x32 flat_uniform rooms."""
    return dataset(tmp_path_factory.mktemp("data") / "synth32", 4, 32, 4, "flat_uniform")


def run_usage_example(run: Path, reader: Path, **links: Path) -> dict:
    """Execute the ```python block of the card's "Usage" section in `reader`, where `path/to/<name>` is the run
    folder (and any other `links`, such as a local base); returns the example's variables."""
    text = (run / "README.md").read_text()
    code = re.search(r"## Usage\n\n```python\n(.*?)```", text, re.S).group(1)
    (reader / "path" / "to").mkdir(parents=True)
    for name, target in {run.name: run, **links}.items():
        (reader / "path" / "to" / name).symlink_to(target, target_is_directory=target.is_dir())
    namespace: dict = {}
    cwd = Path.cwd()
    try:
        os.chdir(reader)
        exec(compile(code, str(run / "README.md"), "exec"), namespace)
    finally:
        os.chdir(cwd)
    return namespace


def test_full_run_resumed_keeps_history_and_its_card_example_runs(data32, tmp_path):
    out = tmp_path / "dit-run"
    common = ["--dataset_dir", data32, "--output_dir", out, "--model_preset", "dit-tiny", "--patch_size", 4,
              "--max_frames", 12, "--checkpointing_steps", 2, "--validation_steps", 1, "--num_validation_videos", 1,
              "--validation_inference_steps", 1, "--validation_num_samples", 1, *QUIET]
    train(common + ["--max_train_steps", 2])
    summary = train(common + ["--max_train_steps", 4, "--resume_from_checkpoint", "latest"])
    # every segment's validation rows and commands, in the summary and in the card
    assert [row["step"] for row in summary["validation"]] == [1, 2, 3, 4]
    saved = json.loads((out / "training_summary.json").read_text())
    assert saved["validation"] == summary["validation"] and len(saved["commands"]) == 2
    assert "--max_train_steps 2" in saved["commands"][0] and "--resume_from_checkpoint latest" in saved["commands"][1]
    card = ModelCard.load(out / "README.md")
    assert "\n".join(saved["commands"]) in card.text
    assert [int(line.split("|")[1]) for line in card.text.split("## Metrics")[1].split("## Samples")[0].splitlines()
            if re.match(r"\| \d", line)] == [1, 2, 3, 4]
    assert card.data.pipeline_tag == "video-to-video"
    assert "| Segment lengths (exo / transition / ego) | 4 / 4 / 4 frames |" in card.text
    assert str(tmp_path) not in card.text  # no absolute path of the trainer's machine

    example = run_usage_example(out, tmp_path / "reader")
    frames = example["frames"]
    assert frames.shape == (1, 4, 32, 32, 3) and ((0 <= frames) & (frames <= 1)).all()
    assert example["pipe"].config.num_transition_frames == 4


def test_lora_on_the_bundled_model_names_it_and_its_card_example_runs(data32, tmp_path):
    out = tmp_path / "bundled-lora"
    train(["--train_mode", "lora", "--pretrained_model_name_or_path", bundled_model_path(), "--rank", 2,
           "--dataset_dir", data32, "--output_dir", out, "--max_train_steps", 1, "--checkpointing_steps", 1,
           "--mode", "video+pose", *QUIET])
    card = ModelCard.load(out / "README.md")
    assert card.data.to_dict()["syn2seq_base_model"] == "diffusers_syn2seq.bundled_model_path()"
    assert "pipe = Syn2SeqPipeline.from_pretrained(bundled_model_path())" in card.text
    assert str(bundled_model_path()) not in card.text  # the exact command names the base by its path, though
    example = run_usage_example(out, tmp_path / "reader")
    assert example["frames"].shape == (1, 4, 32, 32, 3)
    assert example["pipe"].get_active_adapters()  # the LoRA is loaded


def test_lora_on_a_transformer_folder_builds_its_pipeline_and_its_card_example_runs(data32, tmp_path):
    base = tmp_path / "dfot-base"  # the bundled model's transformer/ alone: no model_index.json, no scheduler
    shutil.copytree(bundled_model_path() / "transformer", base)
    out = tmp_path / "folder-lora"
    train(["--train_mode", "lora", "--pretrained_model_name_or_path", base, "--rank", 2, "--dataset_dir", data32,
           "--output_dir", out, "--max_train_steps", 1, "--checkpointing_steps", 1, "--mode", "video+pose",
           "--num_transition_frames", 4, *QUIET])
    card = ModelCard.load(out / "README.md")
    assert card.data.to_dict()["syn2seq_base_model"] == "local folder dfot-base" and card.data.base_model is None
    usage = card.text.split("## Usage")[1]
    assert 'transformer = load_transformer("path/to/dfot-base")' in usage and "from_pretrained" not in usage
    assert str(tmp_path) not in card.text
    example = run_usage_example(out, tmp_path / "reader", **{"dfot-base": base})
    pipe = example["pipe"]
    assert example["frames"].shape == (1, 4, 32, 32, 3) and ((0 <= example["frames"]) & (example["frames"] <= 1)).all()
    assert pipe.get_active_adapters() and (pipe.config.mode, pipe.config.num_transition_frames) == ("video+pose", 4)
    # the scheduler it was trained with: the default one of a sinusoidal-embedding DiT, as train.py built it
    assert type(pipe.scheduler).__name__ == "DiffusionForcingScheduler"
    assert pipe.scheduler.config.noise_schedule == "cosine"


def test_lora_on_an_official_checkpoint_names_it_and_its_settings_and_its_card_example_runs(dfot_fixtures_dir,
                                                                                          tmp_path):
    data = dataset(tmp_path / "synth16", 2, 16, 2, "flat")
    _, _, state_dict = load_script("scripts/check_dfot_parity.py").load_fixture(dfot_fixtures_dir, "dit3d_continuous")
    checkpoint, settings = tmp_path / "dfot.pt", tmp_path / "dfot.json"  # 3x16x16 pixels, 4 frames, no camera
    torch.save({"state_dict": {f"diffusion_model.model.{k}": v for k, v in state_dict.items()}}, checkpoint)
    settings.write_text((dfot_fixtures_dir / "dit3d_continuous.json").read_text())
    out = tmp_path / "ckpt-lora"
    train(["--train_mode", "lora", "--pretrained_model_name_or_path", checkpoint, "--dfot_config", settings,
           "--rank", 2, "--dataset_dir", data, "--output_dir", out, "--max_train_steps", 1, "--checkpointing_steps",
           1, "--mode", "video", "--num_transition_frames", 2, *QUIET])
    card = ModelCard.load(out / "README.md")
    assert card.data.base_model is None  # a local file is no Hub id
    assert card.data.to_dict()["syn2seq_base_model"] == "local checkpoint file dfot.pt"
    usage = card.text.split("## Usage")[1]
    assert 'load_transformer("path/to/dfot.pt", dfot_config="path/to/dfot.json")' in usage
    assert 'DiffusionForcingScheduler(noise_schedule="cosine_simple_diffusion")' in usage  # its Fourier embedding
    assert "source_poses" not in usage and str(tmp_path) not in card.text
    example = run_usage_example(out, tmp_path / "reader", **{"dfot.pt": checkpoint, "dfot.json": settings})
    pipe = example["pipe"]
    assert example["frames"].shape == (1, 2, 16, 16, 3)
    assert type(pipe.transformer).__name__ == "DFoTTransformer3DModel" and pipe.get_active_adapters()
    assert (pipe.config.mode, pipe.config.num_transition_frames) == ("video", 2)


def test_lora_on_a_skyreels_checkpoint_holds_what_sampling_needs_and_its_card_example_runs(tmp_path):
    data = dataset(tmp_path / "synth16", 6, 16, 2, "flat")
    torch.manual_seed(0)
    base = tmp_path / "skyreels"  # a diffusers SkyReels-V2 DF checkpoint folder (transformer/ only, pixel space)
    SkyReelsV2Transformer3DModel(**TINY_SKYREELS).save_pretrained(base / "transformer")
    prompt = torch.randn(1, 5, 16, generator=torch.Generator().manual_seed(3))
    save_file({"prompt_embeds": prompt}, tmp_path / "prompt.safetensors")
    out = tmp_path / "skyreels-lora"
    common = ["--backbone", "skyreels-v2-df", "--pretrained_model_name_or_path", base, "--train_mode", "lora",
              "--rank", 4, "--prompt_embeds", tmp_path / "prompt.safetensors", "--dataset_dir", data, "--output_dir",
              out, "--max_frames", 8, "--mode", "video", "--camera_ray_type", "none", "--checkpointing_steps", 1,
              "--num_transition_frames", 2, *QUIET]
    train(common + ["--max_train_steps", 1])
    train(common + ["--max_train_steps", 2, "--resume_from_checkpoint", "latest"])  # the LoRA checkpoint reloads

    settings = json.loads((out / "foundation_lora.json").read_text())
    assert settings["base_model"] == "skyreels"  # a local base by its name only
    assert settings["transformer"] == {"backbone_type": "skyreels-v2-df", "sample_size": [16, 16], "max_frames": 8,
                                       "camera_ray_type": None, "fps": 24, "prompt_length": 512}
    assert settings["pipeline"] == {"mode": "video", "num_transition_frames": 2, "reversal": "full"}
    assert settings["vae"] is None and settings["scheduler"]["shift"] == 5.0
    torch.testing.assert_close(load_file(out / "prompt_embeds.safetensors")["prompt_embeds"][:, :5], prompt)
    # the LoRA file itself is diffusers' SkyReels-V2 format
    theirs = SkyReelsV2DiffusionForcingPipeline(tokenizer=None, text_encoder=None, vae=None, scheduler=None,
                                                transformer=SkyReelsV2Transformer3DModel.from_pretrained(
                                                    base, subfolder="transformer"))
    theirs.load_lora_weights(out)
    assert theirs.transformer.peft_config

    card = ModelCard.load(out / "README.md")
    assert 'Syn2SeqPipeline.from_foundation_lora("path/to/skyreels-lora", "path/to/skyreels")' in card.text
    assert "source_poses" not in card.text.split("## Usage")[1]  # no camera input: no poses in the example
    example = run_usage_example(out, tmp_path / "reader", skyreels=base)
    assert example["frames"].shape == (1, 6, 16, 16, 3)
    pipe = example["pipe"]
    torch.testing.assert_close(pipe.transformer.prompt_embeds[:, :5], prompt)
    assert pipe.config.mode == "video" and pipe.get_active_adapters()


def test_from_foundation_lora_refuses_a_folder_without_its_settings(tmp_path):
    from diffusers_syn2seq import Syn2SeqPipeline

    with pytest.raises(ValueError, match=r"`lora_name_or_path` must be the folder of a LoRA trained on a SkyReels-V2 "
                                         r"/ Wan checkpoint \(with foundation_lora.json\), got .* which has none"):
        Syn2SeqPipeline.from_foundation_lora(tmp_path)
