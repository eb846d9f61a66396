# SPDX-License-Identifier: Apache-2.0
"""The bundled model: `scripts/bundle_model.py` (selection, assembly, checks, atomic replace), the package-data
declaration that ships it, and the shipped model itself (offline loading, size, card, settings)."""

import fnmatch
import json
from pathlib import Path

import pytest
import torch
from script_loading import REPO, load_script

from diffusers_syn2seq import Syn2SeqPipeline, bundled_model_path
from diffusers_syn2seq.models import DFoTTransformer3DModel
from diffusers_syn2seq.schedulers import DiffusionForcingScheduler


def _scores(psnr: list[float]) -> dict:
    n = len(psnr)
    return {"scene_ids": [f"s{i}" for i in range(n)], "psnr": psnr, "ssim": [0.5] * n,
            "per_frame_psnr": [[p] for p in psnr], "per_frame_ssim": [[0.5]] * n}


def _summary(psnr: float) -> dict:
    return {"num_seeds": 2, "num_scenes": 2, "psnr": {"mean": psnr, "low": psnr - 1, "high": psnr + 1},
            "ssim": {"mean": 0.5, "low": 0.4, "high": 0.6}}


@pytest.fixture
def experiment(tmp_path):
    """Two tiny trained-looking `video+pose` runs (seed 1 scores better) and the results JSON that records them."""
    runs = []
    for seed in (0, 1):
        folder = tmp_path / "models" / f"video_pose-s{seed}"
        torch.manual_seed(seed)
        transformer = DFoTTransformer3DModel(in_channels=3, sample_size=16, max_frames=8, patch_size=4, num_layers=1,
                                             num_attention_heads=1, attention_head_dim=16, noise_embedding_dim=16,
                                             camera_ray_type="plucker")
        Syn2SeqPipeline(transformer=transformer, scheduler=DiffusionForcingScheduler(),
                        num_transition_frames=2).save_pretrained(folder)
        (folder / "README.md").write_text(f"# trained card\n\ncommand: python {REPO}/training/train.py --seed {seed}\n")
        (folder / "training_summary.json").write_text("{}")
        (folder / "checkpoint-400").mkdir()  # training state: must not travel
        (folder / "checkpoint-400" / "optimizer.bin").write_bytes(b"x" * 10)
        runs.append({"row": "video+pose", "seed": seed, "output": str(folder)})
    runs.append({"row": "jump", "seed": 0, "output": str(tmp_path / "models" / "jump-s0")})
    results = {
        "config": {"resolution": 16, "frames": 3, "transition_frames": 2, "num_test": 2, "inference_steps": 5},
        "runs": runs,
        "table": {
            "exo2ego": {
                "jump": {"kind": "model", "seeds": [0], "per_seed": [_scores([30.0, 30.0])], "summary": _summary(30)},
                "video+pose": {"kind": "model", "seeds": [0, 1], "per_seed": [_scores([10.0, 12.0]),
                                                                               _scores([13.0, 14.0])],
                               "summary": _summary(12.25)},
                "baseline: copy last exo frame": {"kind": "baseline", "summary": _summary(9.0)},
            },
            "ego2exo": {},
        },
    }
    path = tmp_path / "syn2seq_experiment.json"
    path.write_text(json.dumps(results))
    return path, results


def test_selects_the_best_video_pose_run_not_other_rows(experiment):
    bundle = load_script("scripts/bundle_model.py")
    _, results = experiment
    chosen = bundle.select_run(results)
    assert (chosen["row"], chosen["seed"], chosen["psnr"]) == ("video+pose", 1, 13.5)  # jump's 30 dB is not eligible
    del results["table"]["exo2ego"]["video+pose"]
    with pytest.raises(ValueError, match="none of the rows"):
        bundle.select_run(results)


def test_bundle_copies_the_pipeline_only_and_round_trips(experiment, tmp_path):
    bundle = load_script("scripts/bundle_model.py")
    path, results = experiment
    out = bundle.main(["--results", str(path), "--output", str(tmp_path / "bundled")])
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert files == ["README.md", "model_index.json", "scheduler/scheduler_config.json",
                     "training_summary.json", "transformer/config.json",
                     "transformer/diffusion_pytorch_model.safetensors"]
    source = Syn2SeqPipeline.from_pretrained(results["runs"][1]["output"])
    shipped = Syn2SeqPipeline.from_pretrained(str(out))
    assert (shipped.config.mode, shipped.config.num_transition_frames) == ("video+pose", 2)
    for (name, a), b in zip(source.transformer.state_dict().items(), shipped.transformer.state_dict().values()):
        assert torch.equal(a, b), name
    card = (out / "README.md").read_text()
    assert "--seed 1" in card and str(REPO) not in card  # the chosen run's card, paths made relative
    assert "| this model | exo2ego | 13.50 | 0.500 |" in card
    assert "training seed 1" in card and "bundled_model_path()" in card
    assert not (tmp_path / "bundled.tmp").exists()


def test_failed_bundle_leaves_the_previous_one(experiment, tmp_path):
    bundle = load_script("scripts/bundle_model.py")
    path, _ = experiment
    out = tmp_path / "bundled"
    out.mkdir()
    (out / "previous.txt").write_text("kept")
    bundle.MAX_BYTES = 1000
    with pytest.raises(ValueError, match="at most 1000 bytes allowed"):
        bundle.main(["--results", str(path), "--output", str(out)])
    assert (out / "previous.txt").read_text() == "kept"
    assert not (tmp_path / "bundled.tmp").exists()
    with pytest.raises(SystemExit, match="is not one of the runs"):
        bundle.main(["--results", str(path), "--output", str(out), "--model", str(tmp_path)])


def test_package_data_declares_every_bundled_file():
    """A non-editable install ships exactly what pyproject's package-data globs match: every bundled file must."""
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    patterns = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"][
        "diffusers_syn2seq"]
    package = REPO / "diffusers_syn2seq"
    bundled = [p for p in (package / "bundled_model").rglob("*") if p.is_file()]
    assert bundled, "no model is bundled"
    for file in bundled:
        relative = str(file.relative_to(package))
        # setuptools globs do not cross "/": compare path depth as well as the pattern
        assert any(fnmatch.fnmatch(relative, pat) and relative.count("/") == pat.count("/") for pat in patterns), \
            relative


def test_the_bundled_model_loads_offline_and_is_small():
    folder = bundled_model_path()
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    assert size <= 20 * 1024 * 1024
    assert not [p for p in folder.rglob("*") if p.suffix in (".bin", ".pt", ".ckpt", ".pkl")]
    assert not (folder / "syn2seq_settings.json").exists()  # the settings are pipeline configuration
    pipe = Syn2SeqPipeline.from_pretrained(str(folder), use_safetensors=True)
    assert pipe.config.mode in ("video", "video+pose") and pipe.config.reversal == "full"
    summary = json.loads((folder / "training_summary.json").read_text())
    assert pipe.transformer.config.sample_size == summary["experiment"]["resolution"]
    frames = summary["experiment"]["num_frames"]
    assert 2 * frames + pipe.config.num_transition_frames <= pipe.transformer.config.max_frames
    assert "## Benchmark" in (folder / "README.md").read_text()
    assert Path(bundled_model_path()) == REPO / "diffusers_syn2seq" / "bundled_model"
