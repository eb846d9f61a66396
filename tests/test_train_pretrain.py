# SPDX-License-Identifier: Apache-2.0
"""`train.py`'s pretraining task on continuous-camera clips, and fine-tuning that starts from a pretrained folder."""

import json

import pytest
import torch
from script_loading import load_script
from test_train import launch

from diffusers_syn2seq.models import DFoTTransformer3DModel

RES = 16


def _make(root, continuous: bool):
    args = ["--output", str(root), "--num-train", "4", "--num-validation", "1", "--num-test", "0", "--num-frames", "3",
            "--resolution", str(RES), "--transition-frames", "2", "--lossless", "--style", "flat_uniform"]
    load_script("training/make_synthetic_dataset.py").main(args + (["--continuous"] if continuous else []))
    return root


@pytest.fixture(scope="module")
def corpora(tmp_path_factory):
    root = tmp_path_factory.mktemp("pretrain")
    return _make(root / "continuous", True), _make(root / "pairs", False), root


def _args(dataset, output, steps: int, lr: float) -> list:
    return ["--dataset_dir", dataset, "--output_dir", output, "--model_preset", "dit-tiny", "--max_frames", 8,
            "--patch_size", 4, "--train_batch_size", 4, "--max_train_steps", steps, "--learning_rate", lr,
            "--lr_warmup_steps", 0, "--checkpointing_steps", 1000, "--seed", 0, "--report_to", "none"]


@pytest.fixture(scope="module")
def pretrained(corpora):
    continuous, _, root = corpora
    out = root / "base"
    launch(_args(continuous, out, 30, 3e-3) + ["--reverse_prob", 0, "--validation_steps", 30,
                                               "--num_validation_videos", 1, "--validation_inference_steps", 2])
    return out


def test_pretraining_is_picked_from_the_data_and_learns(pretrained):
    summary = json.loads((pretrained / "training_summary.json").read_text())
    assert summary["task"] == "pretrain"
    # the loss on one fixed batch (same windows, noise and levels) falls: the task is learnt, not just run
    assert summary["fixed_batch_loss_end"] < 0.8 * summary["fixed_batch_loss_start"]
    assert summary["validation"] and "val/psnr" in summary["validation"][-1]
    card = (pretrained / "README.md").read_text()
    assert "pretraining on continuous-camera clips" in card


def test_fine_tuning_starts_from_the_pretrained_weights(corpora, pretrained, tmp_path):
    _, pairs, _ = corpora
    out = tmp_path / "ft"
    # one step at a negligible learning rate: the result is the base itself, to float32 rounding
    launch(_args(pairs, out, 1, 1e-12) + ["--pretrained_model_name_or_path", pretrained, "--mode", "video"])
    base = DFoTTransformer3DModel.from_pretrained(pretrained, subfolder="transformer").state_dict()
    tuned = DFoTTransformer3DModel.from_pretrained(out, subfolder="transformer").state_dict()
    assert base.keys() == tuned.keys()
    for key in base:
        torch.testing.assert_close(tuned[key], base[key], atol=1e-6, rtol=0, msg=key)
    summary = json.loads((out / "training_summary.json").read_text())
    assert summary["task"] == "syn2seq" and summary["reverse_prob"] == 0.0  # the base's Exo2Ego-only setting


def test_pretraining_refuses_settings_that_cut_the_clip(corpora, tmp_path):
    continuous, pairs, _ = corpora
    train = load_script("training/train.py")
    with pytest.raises(ValueError, match=r"--mode: expected video\+pose with --task pretrain .*got jump"):
        train.main([str(a) for a in _args(continuous, tmp_path / "a", 1, 1e-3)] + ["--mode", "jump"])
    with pytest.raises(ValueError, match=r"--reverse_prob: expected 0.0 with --task pretrain .*got 0.5"):
        train.main([str(a) for a in _args(continuous, tmp_path / "b", 1, 1e-3)] + ["--reverse_prob", "0.5"])
    with pytest.raises(ValueError, match=r"--task pretrain: expected continuous-camera takes .*got categories "
                                         r"\['synthetic'\]"):
        train.main([str(a) for a in _args(pairs, tmp_path / "c", 1, 1e-3)] + ["--task", "pretrain"])
