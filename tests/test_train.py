# SPDX-License-Identifier: Apache-2.0
"""End-to-end tests of `training/train.py` through `accelerate launch` on CPU with tiny models and synthetic data.

Launches (each ~5-10 s, shared by the tests of a module-scoped fixture):
full A (straight, validation, card, hub dry run) | full B (killed while writing a checkpoint) | full C (B resumed)
| LoRA D (latent space, cached latents, bf16) | LoRA E (D's half-way checkpoint resumed).
The two-process run is marked slow: `python -m pytest -m slow tests/test_train.py`.
"""

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from diffusers import AutoencoderKL
from huggingface_hub import ModelCard
from peft import LoraConfig
from safetensors.torch import load_file
from script_loading import load_script

from diffusers_syn2seq.hub import files_to_upload
from diffusers_syn2seq.models import DIT_PRESETS, DFoTTransformer3DModel
from diffusers_syn2seq.objective import diffusion_forcing_loss
from diffusers_syn2seq.pipelines import Syn2SeqPipeline
from diffusers_syn2seq.schedulers import DiffusionForcingScheduler
from diffusers_syn2seq.training_utils import (
    model_inputs,
    resolve_checkpoint,
)

REPO = Path(__file__).resolve().parents[1]
TRAIN = REPO / "training" / "train.py"
ACCELERATE = Path(sys.executable).parent / "accelerate"
RES, FRAMES, TRANSITION = 16, 6, 4


def _env(**extra) -> dict:
    # One thread per process: the CI machine has 2 cores shared with other jobs; OpenMP spinning across oversubscribed
    # threads made a tiny step 25x slower in measurement.
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    env.update(extra)
    return env


def _command(args: list, num_processes: int = 1, mixed_precision: str = "no") -> list:
    return [str(ACCELERATE), "launch", "--cpu", "--num_processes", str(num_processes), "--num_machines", "1",
            "--mixed_precision", mixed_precision, "--dynamo_backend", "no", str(TRAIN), *map(str, args)]


def launch(args: list, num_processes: int = 1, mixed_precision: str = "no", **env) -> subprocess.CompletedProcess:
    result = subprocess.run(_command(args, num_processes, mixed_precision), env=_env(**env), cwd=REPO,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"training failed:\n{result.stdout[-3000:]}\n{result.stderr[-6000:]}"
    return result


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    module = load_script("training/make_synthetic_dataset.py")
    root = tmp_path_factory.mktemp("data") / "synth"
    module.main(["--output", str(root), "--num-train", "2", "--num-validation", "1", "--num-test", "0",
                 "--num-frames", str(FRAMES), "--resolution", str(RES), "--transition-frames", str(TRANSITION)])
    return root


def full_args(dataset: Path, output: Path) -> list:
    return ["--dataset_dir", dataset, "--output_dir", output, "--model_preset", "dit-tiny", "--max_frames", 8,
            "--mode", "video+pose", "--reverse_prob", 0.5, "--train_batch_size", 2, "--max_train_steps", 6,
            "--checkpointing_steps", 3, "--learning_rate", 2e-3, "--lr_warmup_steps", 1, "--seed", 7,
            "--use_ema", "--ema_decay", 0.9]


@pytest.fixture(scope="module")
def full_runs(dataset, tmp_path_factory):
    root = tmp_path_factory.mktemp("full")
    a, b = root / "a", root / "b"
    launch(full_args(dataset, a) + ["--validation_steps", 6, "--num_validation_videos", 1,
                                    "--validation_inference_steps", 2, "--validation_num_frames", 3, "--report_to",
                                    "tensorboard", "--push_to_hub", "--hub_model_id", "someone/syn2seq-test",
                                    "--hub_dry_run"])

    # B: same run, killed (SIGKILL) while checkpoint-6 is being written (the test hook pauses inside the write).
    proc = subprocess.Popen(_command(full_args(dataset, b) + ["--report_to", "none"]), cwd=REPO,
                            env=_env(SYN2SEQ_TEST_PAUSE_CHECKPOINT_STEP="6"), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)
    paused = b / ".checkpoint-6.tmp" / "PAUSED"
    deadline = time.time() + 300
    while not paused.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    stderr = proc.stderr.read()[-3000:] if proc.poll() is not None else ""
    assert paused.exists(), f"run B never reached the checkpoint pause: {stderr}"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    killed_state = {"checkpoint": resolve_checkpoint(b, "latest"), "tmp_exists": paused.parent.exists(),
                    "final_exists": (b / "checkpoint-6").exists(), "pipeline_exists": (b / "model_index.json").exists()}
    ckpt3_b = load_file(b / "checkpoint-3" / "transformer" / "diffusion_pytorch_model.safetensors")

    # C: resume B from `latest` to the end.
    launch(full_args(dataset, b) + ["--report_to", "none", "--resume_from_checkpoint", "latest"])
    return {"a": a, "b": b, "killed": killed_state, "ckpt3_b": ckpt3_b}


def _lines(path: Path) -> list:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_full_training_finite_and_overfits(full_runs):
    a = full_runs["a"]
    log = _lines(a / "logs" / "train_log.jsonl")
    assert [entry["step"] for entry in log] == list(range(1, 7))
    assert all(math.isfinite(entry["train/loss"]) for entry in log)
    summary = json.loads((a / "training_summary.json").read_text())
    start, end = summary["fixed_batch_loss_start"], summary["fixed_batch_loss_end"]
    assert math.isfinite(start) and math.isfinite(end)
    assert end < 0.9 * start, f"fixed-batch loss did not decrease enough: {start} -> {end}"


def test_checkpoints_validation_and_tracker(full_runs, dataset):
    a = full_runs["a"]
    assert (a / "checkpoint-3" / "transformer" / "config.json").is_file()
    assert (a / "checkpoint-6" / "optimizer.bin").is_file()
    assert not list(a.glob(".checkpoint-*"))
    assert resolve_checkpoint(a, "latest") == a / "checkpoint-6"
    step_dir = a / "validation" / "step-6"
    assert (step_dir / "sample-0.mp4").stat().st_size > 0 and (step_dir / "sample-0.png").is_file()
    from PIL import Image

    width, height = Image.open(step_dir / "sample-0.png").size
    assert (width, height) == (3 * RES, 3 * RES)  # source | generated | ground truth, 3 frames stacked
    metrics = json.loads((a / "training_summary.json").read_text())["validation"][-1]
    assert math.isfinite(metrics["val/psnr"]) and -1 <= metrics["val/ssim"] <= 1
    assert set(metrics) == {"step", "val/psnr", "val/ssim", "val/layout_psnr", "val/psnr_mean_of_n"}
    # the numbers are `syn2seq evaluate`'s: the saved pipeline holds the EMA weights validated at step 6; the take is
    # generated as in validation (seed 7 + 0, its cached 4-frame transition, 2 steps, 3 frames, 2 samples by default)
    from diffusers_syn2seq.data import Syn2SeqClipDataset
    from diffusers_syn2seq.evaluation import evaluate_scene, new_scores

    pipe = Syn2SeqPipeline.from_pretrained(a)
    pipe.set_progress_bar_config(disable=True)
    scores = new_scores()
    evaluate_scene(pipe, Syn2SeqClipDataset(dataset, "validation")[0], scores, "video+pose", "exo2ego",
                   TRANSITION, 2, 7, 3, num_samples=2)
    for key, name in (("psnr", "psnr"), ("ssim", "ssim"), ("layout_psnr", "layout_psnr"),
                      ("mean_of_n_psnr", "psnr_mean_of_n")):
        assert metrics[f"val/{name}"] == pytest.approx(scores[key][0], abs=1e-3), name  # other thread count
    assert list((a / "logs").rglob("events.out.tfevents.*")), "no tensorboard event file"


def test_saved_pipeline_loads_and_generates(full_runs):
    pipe = Syn2SeqPipeline.from_pretrained(full_runs["a"])
    pipe.set_progress_bar_config(disable=True)
    assert isinstance(pipe.transformer, DFoTTransformer3DModel)
    exo = torch.rand(4, 3, RES, RES)
    poses = torch.tensor([0.9, 0.9, 0.5, 0.5, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0.0]).repeat(4, 1)
    frames = pipe(exo, source_poses=poses, target_poses=poses[:2], num_transition_frames=2, num_inference_steps=2,
                  output_type="pt").frames
    assert frames.shape == (1, 2, 3, RES, RES) and torch.isfinite(frames).all()


def test_model_card_and_hub_dry_run(full_runs):
    a = full_runs["a"]
    card = ModelCard.load(a / "README.md")
    data = card.data.to_dict()
    assert data["library_name"] == "diffusers" and data["license"] == "apache-2.0"
    assert {"diffusers", "diffusers-syn2seq", "exo2ego"} <= set(data["tags"]) and "lora" not in data["tags"]
    assert "video+pose" in card.text
    # the exact command keeps accelerate's own flags, and the precision that ran is reported
    assert ("accelerate launch --cpu --num_processes 1 --num_machines 1 --mixed_precision no --dynamo_backend no "
            "training/train.py --dataset_dir") in card.text
    assert "| Mixed precision | no |" in card.text
    assert "validation/step-6/sample-0.png" in card.text and "psnr" in card.text
    manifest = json.loads((a / "hub_dry_run" / "upload_manifest.json").read_text())
    assert manifest["repo_id"] == "someone/syn2seq-test" and manifest["dry_run"]
    uploaded = sorted(f["path"] for f in manifest["files"])
    copied = sorted(p.relative_to(a / "hub_dry_run" / "files").as_posix()
                    for p in (a / "hub_dry_run" / "files").rglob("*") if p.is_file())
    assert uploaded == copied
    assert {"README.md", "model_index.json", "transformer/diffusion_pytorch_model.safetensors"} <= set(uploaded)
    assert not any(p.startswith(("checkpoint-", "logs/", "hub_dry_run")) for p in uploaded)
    assert set(uploaded) <= set(files_to_upload(a))


def test_kill_during_checkpoint_keeps_previous(full_runs):
    killed = full_runs["killed"]
    assert killed["tmp_exists"] and not killed["final_exists"] and not killed["pipeline_exists"]
    assert killed["checkpoint"] == full_runs["b"] / "checkpoint-3"  # `latest` -> the complete one
    ckpt3_a = load_file(full_runs["a"] / "checkpoint-3" / "transformer" / "diffusion_pytorch_model.safetensors")
    for key, value in ckpt3_a.items():  # the surviving checkpoint is complete and equal to the straight run's
        torch.testing.assert_close(full_runs["ckpt3_b"][key], value, rtol=0, atol=0)
    assert not list(full_runs["b"].glob(".checkpoint-*")), "the resumed run must clear the stale temporary folder"


def test_resume_is_exact_full(full_runs):
    straight = load_file(full_runs["a"] / "transformer" / "diffusion_pytorch_model.safetensors")
    resumed = load_file(full_runs["b"] / "transformer" / "diffusion_pytorch_model.safetensors")
    assert straight.keys() == resumed.keys()
    for key in straight:
        torch.testing.assert_close(resumed[key], straight[key], rtol=0, atol=1e-6)


# ---------------------------------------------------------------------------------------------------------------- LoRA
def _tiny_vae() -> AutoencoderKL:
    torch.manual_seed(0)
    return AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 2,
                         up_block_types=("UpDecoderBlock2D",) * 2, block_out_channels=(8, 16), latent_channels=4,
                         norm_num_groups=8, layers_per_block=1, sample_size=RES)


def _base_transformer() -> DFoTTransformer3DModel:
    torch.manual_seed(1)
    model = DFoTTransformer3DModel(in_channels=4, sample_size=RES // 2, max_frames=8, patch_size=2,
                                   camera_ray_type="plucker", **DIT_PRESETS["dit-tiny"])
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():  # a "pretrained" base: non-zero everywhere (AdaLN-zero init would output 0)
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=generator) * 0.05)
    return model


@pytest.fixture(scope="module")
def lora_runs(dataset, tmp_path_factory):
    root = tmp_path_factory.mktemp("lora")
    base = root / "base"
    Syn2SeqPipeline(transformer=_base_transformer(), scheduler=DiffusionForcingScheduler(), vae=_tiny_vae()) \
        .save_pretrained(base)
    d, e = root / "d", root / "e"

    def args(output):
        return ["--dataset_dir", dataset, "--output_dir", output, "--train_mode", "lora",
                "--pretrained_model_name_or_path", base, "--rank", 4, "--lora_alpha", 8, "--cache_latents",
                "--mode", "video", "--train_batch_size", 2, "--max_train_steps", 4, "--checkpointing_steps", 2,
                "--learning_rate", 1e-2, "--seed", 3, "--report_to", "none", "--mixed_precision", "bf16"]

    launch(args(d), mixed_precision="bf16")
    e.mkdir()
    shutil.copytree(d / "checkpoint-2", e / "checkpoint-2")
    launch(args(e) + ["--resume_from_checkpoint", "latest"], mixed_precision="bf16")
    return {"base": base, "d": d, "e": e}


def test_lora_training_overfits_and_writes_lora(lora_runs):
    d = lora_runs["d"]
    summary = json.loads((d / "training_summary.json").read_text())
    assert all(math.isfinite(x["train/loss"]) for x in _lines(d / "logs" / "train_log.jsonl"))
    assert summary["fixed_batch_loss_end"] < summary["fixed_batch_loss_start"]
    assert (d / "pytorch_lora_weights.safetensors").is_file() and not (d / "model_index.json").exists()
    state = load_file(d / "pytorch_lora_weights.safetensors")
    assert state and all(k.startswith("transformer.") and ".lora_" in k for k in state)
    card = ModelCard.load(d / "README.md")
    assert "lora" in card.data.tags and card.data.library_name == "diffusers"


def test_resume_is_exact_lora(lora_runs):
    straight = load_file(lora_runs["d"] / "pytorch_lora_weights.safetensors")
    resumed = load_file(lora_runs["e"] / "pytorch_lora_weights.safetensors")
    assert straight.keys() == resumed.keys()
    for key in straight:
        torch.testing.assert_close(resumed[key], straight[key], rtol=0, atol=1e-6)


def test_lora_output_loads_fuses_and_unfuses(lora_runs):
    pipe = Syn2SeqPipeline.from_pretrained(lora_runs["base"])
    x = torch.randn(1, 4, 4, RES // 2, RES // 2, generator=torch.Generator().manual_seed(0))
    rays = torch.randn(1, 6, 4, RES // 2, RES // 2, generator=torch.Generator().manual_seed(1))
    t = torch.tensor([[0, 300, 600, 999]])

    def run():
        with torch.no_grad():
            return pipe.transformer(x, t, camera_rays=rays, return_dict=False)[0]

    base = run()
    pipe.load_lora_weights(lora_runs["d"])
    with_lora = run()
    assert (with_lora - base).abs().max() > 1e-4, "trained LoRA has no effect"
    pipe.fuse_lora()
    torch.testing.assert_close(run(), with_lora, atol=1e-5, rtol=1e-5)
    pipe.unfuse_lora()
    torch.testing.assert_close(run(), with_lora, atol=1e-5, rtol=1e-5)
    pipe.unload_lora_weights()
    torch.testing.assert_close(run(), base, atol=1e-6, rtol=1e-6)


def test_lora_step_changes_only_lora_parameters():
    """The LoRA set-up of train.py (frozen base, adapter on DEFAULT_LORA_TARGETS, AdamW on trainable params)."""
    model = _base_transformer()
    model.requires_grad_(False)
    model.add_adapter(LoraConfig(r=4, lora_alpha=4, init_lora_weights=True,
                                 target_modules=["to_q", "to_k", "to_v", "to_out.0", "ff.net.0.proj", "ff.net.2"]))
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    params = [p for p in model.parameters() if p.requires_grad]
    assert params and all("lora" in n for n, p in model.named_parameters() if p.requires_grad)
    optimizer = torch.optim.AdamW(params, lr=1e-2, betas=(0.9, 0.99))
    batch = {"frames": torch.randn(2, 4, 4, RES // 2, RES // 2), "frame_mask": torch.ones(2, 4, dtype=torch.bool),
             "pose_mask": torch.ones(2, 4, dtype=torch.bool),
             "poses": torch.tensor([0.9, 0.9, 0.5, 0.5, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0.0]).repeat(2, 4, 1)}
    inputs = model_inputs(batch, model.config)
    for _ in range(2):
        loss, _ = diffusion_forcing_loss(model, DiffusionForcingScheduler(), inputs["x0"], inputs["frame_mask"],
                                         inputs["camera_rays"], inputs["pose_mask"])
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all("lora" in k for k in changed)
    assert any("lora_B" in k for k in changed)


# ------------------------------------------------------------------------------------------------------- bad inputs
def _train_module():
    return load_script("training/train.py", "syn2seq_train_script")


@pytest.mark.parametrize(
    "case, extra, match",
    [
        ("missing dataset", ["--dataset_dir", "{tmp}/nope"], r"--dataset_dir: expected an existing .*does not exist"),
        ("empty split", ["--train_split", "test"], r"--train_split: expected a split with at least one take.*'test'"),
        ("clip shorter than window", ["--mode", "jump", "--max_frames", "16"],
         r"--window_frames: .*16 frames but take .* gives 12 .*shorter than the window"),
        ("resolution vs patch", ["--patch_size", "3"], r"divisible by patch_size .* = 3 .*got 16x16"),
        ("lora without base", ["--train_mode", "lora"], r"--train_mode lora: expected a base model"),
        ("matched fractions", ["--matched_fractions", "0.8", "0.4"],
         r"--matched_fractions: expected two fractions >= 0 summing to at most 1, got 0.8 0.4"),
        ("no validation sample", ["--validation_num_samples", "0"],
         r"--validation_num_samples: expected an integer >= 1, got 0"),
    ],
)
def test_bad_inputs_fail_before_training(dataset, tmp_path, case, extra, match):
    train = _train_module()
    output = tmp_path / "out"
    argv = ["--dataset_dir", str(dataset), "--output_dir", str(output), "--model_preset", "dit-tiny",
            "--max_frames", "8", "--report_to", "none", "--mixed_precision", "no"]
    argv += [a.replace("{tmp}", str(tmp_path)) for a in extra]
    with pytest.raises(ValueError, match=match):
        train.main(argv)
    assert not (output / "logs" / "train_log.jsonl").exists() and not list(output.glob("checkpoint-*"))


def test_inference_matched_training_runs_and_saves_its_settings(dataset, tmp_path):
    train = _train_module()
    output = tmp_path / "matched"
    summary = train.main(["--dataset_dir", str(dataset), "--output_dir", str(output), "--model_preset", "dit-tiny",
                          "--max_frames", "8", "--report_to", "none", "--mixed_precision", "no", "--mode", "video",
                          "--noise_level_sampling", "inference_matched", "--matched_fractions", "0.6", "0.2",
                          "--train_batch_size", "2", "--max_train_steps", "3", "--checkpointing_steps", "3",
                          "--learning_rate", "1e-3"])
    assert all(math.isfinite(entry["train/loss"]) for entry in _lines(output / "logs" / "train_log.jsonl"))
    assert math.isfinite(summary["fixed_batch_loss_start"]) and math.isfinite(summary["fixed_batch_loss_end"])
    index = json.loads((output / "model_index.json").read_text())
    assert (index["mode"], index["reversal"]) == ("video", "full") and summary["mode"] == "video"
    assert summary["num_transition_frames"] == index["num_transition_frames"] == TRANSITION  # the cached length
    assert summary["scene_style"] == "textured"  # the dataset's SynthEgoExo style, which `syn2seq demo` renders


def test_dataset_scene_style_and_trained_scene_style(tmp_path):
    from diffusers_syn2seq.bundled import dataset_scene_style, trained_scene_style

    synthetic = {"source": "synthetic"}
    assert dataset_scene_style([{**synthetic, "style": "flat"}] * 2) == "flat"
    assert dataset_scene_style([{**synthetic, "style": None}]) == "textured"  # written before styles existed
    assert dataset_scene_style([{**synthetic, "style": "flat"}, {**synthetic, "style": "textured"}]) is None
    assert dataset_scene_style([{"source": "egoexo4d", "style": None}]) is None and dataset_scene_style([]) is None
    assert trained_scene_style(tmp_path) is None  # no training_summary.json
    for summary, style in (({"scene_style": "flat"}, "flat"), ({"experiment": {"row": "video"}}, "textured"),
                           ({"experiment": {"style": "flat"}}, "flat"), ({"reverse_prob": 0.5}, None)):
        (tmp_path / "training_summary.json").write_text(json.dumps(summary))
        assert trained_scene_style(tmp_path) == style


def test_time_budget_stops_training_and_saves(dataset, tmp_path):
    train = _train_module()
    output = tmp_path / "budget"
    summary = train.main(["--dataset_dir", str(dataset), "--output_dir", str(output), "--model_preset", "dit-tiny",
                          "--max_frames", "8", "--report_to", "none", "--mixed_precision", "no",
                          "--train_batch_size", "2", "--max_train_steps", "50", "--max_train_minutes", "1e-6"])
    assert summary["stopped_by_time_budget"] and summary["global_step"] == 1  # the first step already took longer
    assert len(_lines(output / "logs" / "train_log.jsonl")) == 1 and (output / "model_index.json").is_file()
    with pytest.raises(ValueError, match="--max_train_minutes: expected a finite number > 0, got 0.0"):
        train.main(["--dataset_dir", str(dataset), "--max_train_minutes", "0"])


def test_condition_dropout_is_a_deprecated_name_of_camera_dropout(tmp_path, caplog):
    train = _train_module()
    assert train.parse_args([]).camera_dropout == 0.1 and "condition_dropout" not in vars(train.parse_args([]))
    with caplog.at_level("WARNING"):
        args = train.parse_args(["--condition_dropout", "0.3"])
    assert args.camera_dropout == 0.3 and "condition_dropout" not in vars(args)
    assert "'--condition_dropout' is deprecated" in caplog.text and "'--camera_dropout'" in caplog.text
    assert caplog.text.count("deprecated") == 1  # parsed twice (--config pass), warned once
    config = tmp_path / "old.yaml"
    config.write_text("condition_dropout: 0.2\n")
    caplog.clear()
    with caplog.at_level("WARNING"):
        assert train.parse_args(["--config", str(config)]).camera_dropout == 0.2
        assert train.parse_args(["--config", str(config), "--camera_dropout", "0.4"]).camera_dropout == 0.4
    assert "key 'condition_dropout' is deprecated" in caplog.text
    config.write_text("condition_dropout: 0.2\ncamera_dropout: 0.1\n")
    with pytest.raises(SystemExit):
        train.parse_args(["--config", str(config)])


def test_load_models_from_pipeline_folder_transformer_folder_and_checkpoint(dfot_fixtures_dir, tmp_path):
    train = _train_module()

    def load(*flags):
        return train.load_models(train.parse_args(["--dataset_dir", str(tmp_path), *map(str, flags)]), (RES, RES))

    # A pipeline folder brings its scheduler and VAE along with the transformer.
    scheduler = DiffusionForcingScheduler(noise_schedule="cosine_simple_diffusion", shift=0.5)
    pipe = Syn2SeqPipeline(transformer=_base_transformer(), scheduler=scheduler, vae=_tiny_vae())
    pipe.save_pretrained(tmp_path / "p")
    transformer, scheduler, vae, vae_factor = load("--pretrained_model_name_or_path", tmp_path / "p")
    assert isinstance(transformer, DFoTTransformer3DModel) and scheduler.config.shift == 0.5
    assert isinstance(vae, AutoencoderKL) and vae_factor == 2
    # An official checkpoint with its backbone settings; the scheduler follows the noise embedding.
    _, _, state_dict = load_script("scripts/check_dfot_parity.py").load_fixture(dfot_fixtures_dir, "uvit3d_pose")
    torch.save({"state_dict": state_dict}, tmp_path / "dfot.pt")
    (tmp_path / "dfot.json").write_text((dfot_fixtures_dir / "uvit3d_pose.json").read_text())
    transformer, scheduler, vae, _ = load("--pretrained_model_name_or_path", tmp_path / "dfot.pt",
                                          "--dfot_config", tmp_path / "dfot.json")
    assert type(transformer).__name__ == "DFoTUViT3DModel" and vae is None
    assert scheduler.config.noise_schedule == "cosine_simple_diffusion"
    # A transformer folder of the other backbone.
    transformer.save_pretrained(tmp_path / "uvit")
    assert type(load("--pretrained_model_name_or_path", tmp_path / "uvit")[0]).__name__ == "DFoTUViT3DModel"
    with pytest.raises(ValueError, match=r"--pretrained_model_name_or_path / --dfot_config: `path_or_checkpoint` must "
                                         r"be a Syn2Seq pipeline folder .*, which does not exist"):
        load("--pretrained_model_name_or_path", tmp_path / "nope")


@pytest.mark.slow
def test_compile_flag_trains_like_eager(dataset, tmp_path):
    """`--compile` (regional compilation; ~2 min of Inductor on the 2-core CI machine): the losses of an eager run
    within float tolerance, and a pipeline folder with the usual weight names."""
    train = _train_module()
    common = ["--dataset_dir", str(dataset), "--model_preset", "dit-tiny", "--max_frames", "8", "--report_to", "none",
              "--mixed_precision", "no", "--train_batch_size", "2", "--max_train_steps", "2",
              "--checkpointing_steps", "100", "--learning_rate", "1e-3", "--use_ema", "--ema_decay", "0.9"]
    eager = train.main(common + ["--output_dir", str(tmp_path / "eager")])
    compiled = train.main(common + ["--output_dir", str(tmp_path / "compiled"), "--compile"])
    losses = [[entry["train/loss"] for entry in _lines(tmp_path / name / "logs" / "train_log.jsonl")]
              for name in ("eager", "compiled")]
    torch.testing.assert_close(losses[1], losses[0], rtol=1e-4, atol=1e-6)
    assert compiled["fixed_batch_loss_end"] == pytest.approx(eager["fixed_batch_loss_end"], rel=1e-4)
    weights = [load_file(tmp_path / name / "transformer" / "diffusion_pytorch_model.safetensors")
               for name in ("eager", "compiled")]
    assert list(weights[1]) == list(weights[0])
    for key, value in weights[0].items():
        torch.testing.assert_close(weights[1][key], value, rtol=1e-3, atol=1e-5, msg=key)


# --------------------------------------------------------------------------------------------------- two processes
@pytest.mark.slow
def test_two_processes_gloo(dataset, tmp_path):
    out = tmp_path / "ddp"
    launch(["--dataset_dir", dataset, "--output_dir", out, "--model_preset", "dit-tiny", "--max_frames", 8,
            "--train_batch_size", 1, "--max_train_steps", 2, "--checkpointing_steps", 2, "--report_to", "none",
            "--learning_rate", 1e-3], num_processes=2)
    assert (out / "checkpoint-2" / "random_states_0.pkl").is_file()
    assert (out / "checkpoint-2" / "optimizer.bin").is_file()
    assert [p.name for p in out.glob("checkpoint-*")] == ["checkpoint-2"] and not list(out.glob(".checkpoint-*"))
    assert len(_lines(out / "logs" / "train_log.jsonl")) == 2  # one writer
    pipe = Syn2SeqPipeline.from_pretrained(out)
    ckpt = load_file(out / "checkpoint-2" / "transformer" / "diffusion_pytorch_model.safetensors")
    for key, value in pipe.transformer.state_dict().items():
        torch.testing.assert_close(value, ckpt[key], rtol=0, atol=0)
