# SPDX-License-Identifier: Apache-2.0
"""`benchmarks/gpu_foundation.py` (the prepared 1.3B SkyReels-V2 DF GPU measurement) in its CPU `--tiny` mode."""

import json
import math

import pytest
import torch
from script_loading import load_script

foundation = load_script("benchmarks/gpu_foundation.py", "syn2seq_gpu_foundation")


def test_tiny_mode_trains_lora_and_samples(tmp_path, capsys):
    # --json into a folder that does not exist yet (runs/... of a fresh clone): created before the run
    results = foundation.main(["--tiny", "--train_steps", "2", "--steps", "3", "--json",
                               str(tmp_path / "runs" / "r.json")])
    train = results["train"]
    assert train["latents"] == [9, 8, 8] and train["tokens"] == 9 * 16 and train["rank"] == 64
    assert all(math.isfinite(loss) for loss in train["losses"]) and len(train["losses"]) == 3
    assert train["lora_b_norm"] > 0  # the LoRA layers received gradients through gradient checkpointing
    assert [run["shape"] for run in results["sampling"]] == [[1, 16, 5, 8, 8]] * 2
    assert [run["branches"] for run in results["sampling"]] == [1, 3]
    assert json.loads((tmp_path / "runs" / "r.json").read_text())["backbone"] == "skyreels-v2-df"
    assert "| LoRA step (rank 64" in capsys.readouterr().out


def test_the_real_configuration_is_the_1_3b_model():
    from diffusers_syn2seq.models import SKYREELS_V2_DF_1_3B_CONFIG, WanDFoTTransformer3DModel

    with torch.device("meta"):  # shapes only: no memory, no initialisation
        model = WanDFoTTransformer3DModel(**SKYREELS_V2_DF_1_3B_CONFIG)
    assert 1.3e9 < sum(p.numel() for p in model.parameters()) < 1.5e9
    assert model.backbone.blocks[0].ffn.net[0].proj.out_features == 8960


@pytest.mark.parametrize("argv, message", [
    (["--tiny", "--frames", "32"], "--frames: expected 1 + 4k pixel frames"),
    (["--tiny", "--height", "470"], "--height / --width: expected multiples of 16"),
    (["--tiny", "--rank", "0"], "--rank: expected an integer >= 1, got 0"),
    (["--tiny", "--json", "benchmarks"], "--json: expected a file path, got 'benchmarks', which is a folder"),
])
def test_bad_arguments_name_the_flag(argv, message, capsys):
    """Checked before any model is built; `--json` too (its folder created up front, a folder path refused)."""
    with pytest.raises(SystemExit):
        foundation.parse_args(argv)
    assert message in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA GPU is present")
def test_without_cuda_the_real_run_fails_clearly(capsys):
    with pytest.raises(SystemExit):
        foundation.parse_args([])
    assert "needs a CUDA GPU (torch.cuda.is_available() is False); run with --tiny" in capsys.readouterr().err
