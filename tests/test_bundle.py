# SPDX-License-Identifier: Apache-2.0
"""The bundled model and pretrained base: `scripts/bundle_model.py` (selection, assembly, checks, atomic replace), the
package-data declaration that ships them, and the shipped folders themselves (offline loading, size, card,
settings)."""

import fnmatch
import json
from pathlib import Path

import pytest
import torch
from script_loading import REPO, load_script

from diffusers_syn2seq import Syn2SeqPipeline, bundled_base_path, bundled_model_path
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
    bundled = [p for name in ("bundled_model", "bundled_base") for p in (package / name).rglob("*") if p.is_file()]
    assert {p.relative_to(package).parts[0] for p in bundled} == {"bundled_model", "bundled_base"}
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
    assert summary["scene_style"] == "flat_uniform" and pipe.transformer.config.sample_size == 32
    assert 2 * 4 + pipe.config.num_transition_frames <= pipe.transformer.config.max_frames  # 4 exo + 4 ego frames
    assert "## Test scores" in (folder / "README.md").read_text()
    assert Path(bundled_model_path()) == REPO / "diffusers_syn2seq" / "bundled_model"


def test_the_bundled_base_is_a_pretraining_run_of_the_bundled_architecture_and_both_fit():
    """Issue 22: the stage-1 prior ships beside the bundled model (together at most 20 MB), loads offline, was
    pretrained with DFoT's own task, and has the bundled model's architecture, so a fine-tune from it is comparable."""
    base, model = bundled_base_path(), bundled_model_path()
    size = sum(p.stat().st_size for folder in (base, model) for p in folder.rglob("*") if p.is_file())
    assert size <= 20 * 1024 * 1024
    assert not [p for p in base.rglob("*") if p.suffix in (".bin", ".pt", ".ckpt", ".pkl")]
    pipe = Syn2SeqPipeline.from_pretrained(str(base), use_safetensors=True)
    summary = json.loads((base / "training_summary.json").read_text())
    assert summary["task"] == "pretrain" and summary["scene_style"] == "flat_uniform"
    bundled = json.loads((model / "transformer" / "config.json").read_text())
    architecture = ("num_layers", "num_attention_heads", "attention_head_dim", "patch_size", "sample_size",
                    "camera_ray_type", "in_channels")
    assert {k: pipe.transformer.config[k] for k in architecture} == {k: bundled[k] for k in architecture}
    card = (base / "README.md").read_text()
    assert "bundled_base_path()" in card and "synthetic_cpu_pretrain.yaml" in card
    assert "/work/" not in card and "/tmp/" not in card  # no trainer's absolute paths


def test_a_fine_tune_of_the_bundled_base_names_it_on_its_card():
    from diffusers_syn2seq.model_card import _portable_argument, base_model_names

    shown, code, hub_id = base_model_names(bundled_base_path())
    assert code == "bundled_base_path()" and "bundled pretrained base" in shown and hub_id is None
    argument = _portable_argument(f"--pretrained_model_name_or_path={bundled_base_path()}")
    assert "print(s.bundled_base_path())" in argument


def test_bundling_a_pretrained_base_refuses_a_syn2seq_run(experiment, tmp_path):
    bundle = load_script("scripts/bundle_model.py")
    run = tmp_path / "models" / "video_pose-s0"
    (run / "training_summary.json").write_text(json.dumps({"task": "syn2seq"}))
    with pytest.raises(SystemExit, match="--pretrained_base: expected a pretraining run .* got task 'syn2seq'"):
        bundle.main(["--pretrained_base", str(run), "--output", str(tmp_path / "out")])
    assert not (tmp_path / "out").exists()


# train.py flags that make the recipe (not where the data or the outputs live, nor the time budget)
RECIPE_FLAGS = ("patch_size", "max_frames", "window_frames", "camera_ray_type", "mode", "reverse_prob",
                "transition_source", "num_transition_frames", "noise_level_sampling", "loss_weighting",
                "camera_dropout", "train_batch_size", "max_train_steps", "learning_rate", "lr_scheduler",
                "lr_warmup_steps", "adam_beta1", "adam_beta2", "max_grad_norm", "use_ema", "ema_decay",
                "mixed_precision", "seed", "model_preset")


def recipe_yamls() -> list[Path]:
    """The shipped recipe's stage files, first to last: synthetic_cpu_recipe.yaml, then ..._stage2.yaml and on."""
    configs = REPO / "training" / "configs"
    stages = [configs / "synthetic_cpu_recipe.yaml"]
    while (configs / f"synthetic_cpu_recipe_stage{len(stages) + 1}.yaml").is_file():
        stages.append(configs / f"synthetic_cpu_recipe_stage{len(stages) + 1}.yaml")
    return stages


def test_the_shipped_recipe_yamls_are_the_bundled_models_stages():
    import shlex

    train = load_script("training/train.py")
    bundle = load_script("scripts/bundle_model.py")
    card = (bundled_model_path() / "README.md").read_text()
    final, _, earlier = card.partition("## Earlier stages of the recipe")
    commands = [bundle.training_command(part) for part in earlier.split("### Stage ")[1:]] + [
        bundle.training_command(final)]
    yamls = recipe_yamls()
    assert len(commands) == len(yamls) > 1, "one shipped YAML per stage of the bundled model's recipe"
    shipped = [train.parse_args(["--config", str(yaml)]) for yaml in yamls]
    for command, stage, yaml in zip(commands, shipped, yamls):
        bundled = train.build_parser().parse_args(shlex.split(command)[2:])
        for flag in RECIPE_FLAGS:
            assert getattr(stage, flag) == getattr(bundled, flag), (yaml.name, flag)
    assert shipped[0].pretrained_model_name_or_path is None  # stage 1 trains from scratch
    for previous, stage in zip(shipped, shipped[1:]):
        assert stage.pretrained_model_name_or_path == previous.output_dir  # each stage continues the previous one
    dit = json.loads((REPO / shipped[0].model_config).read_text())
    trained = json.loads((bundled_model_path() / "transformer" / "config.json").read_text())
    assert dit == {key: trained[key] for key in dit} == {"num_layers": 4, "num_attention_heads": 2,
                                                          "attention_head_dim": 64}  # the bundled 4 x 128 DiT


def _evaluation_report(model: Path) -> dict:
    """A `syn2seq evaluate --baselines --output` report of `model` (its summaries made by the real `summarize`)."""
    from diffusers_syn2seq.metrics import paired_difference, summarize

    def result(psnr, extra=True):
        r = {"scene_ids": ["a", "b", "c"], "psnr": psnr, "ssim": [0.4, 0.5, 0.6], "layout_psnr": [20.0, 21.0, 22.0],
             "per_frame_psnr": [[p] for p in psnr], "per_frame_ssim": [[0.5]] * 3}
        if extra:
            r.update(mean_of_n_psnr=[p + 1 for p in psnr], exo_dependence=[1.0, 2.0, 3.0])
        return r

    row = summarize([result([20.0, 21.0, 22.0])])
    baseline = summarize([result([18.0, 19.0, 21.0], extra=False)])
    return {"data": "runs/data/flat", "split": "test", "direction": "exo2ego", "steps": 25, "seed": 0,
            "ci_method": "t", "num_samples": 4, "models": [str(model)], "summary": row,
            "baselines": {"mean_frame": {"summary": baseline}},
            "row_minus_baseline": {"mean_frame": {m: paired_difference(row, baseline, m)
                                                  for m in ("psnr", "ssim", "layout_psnr")}}}


def test_bundle_any_folder_with_its_evaluation_report(experiment, tmp_path):
    bundle = load_script("scripts/bundle_model.py")
    _, results = experiment
    model = Path(results["runs"][0]["output"])
    report = tmp_path / "test.json"
    report.write_text(json.dumps(_evaluation_report(model)))
    out = bundle.main(["--model", str(model), "--evaluation", str(report), "--output", str(tmp_path / "bundled")])
    card = (out / "README.md").read_text()
    assert "3 held-out `test` scenes of `runs/data/flat`, exo2ego, 25 denoising steps" in card
    assert "| this model | 21.00 [18.52, 23.48] | 0.500 [0.252, 0.748] | 21.00 [18.52, 23.48] | 22.00" in card
    assert "| baseline `mean_frame` | 19.33 [15.54, 23.13] |" in card
    assert "| `mean_frame` | +1.67 [+0.23, +3.10] | +0.000 [+0.000, +0.000] | +0.00 [+0.00, +0.00] |" in card
    other = _evaluation_report(tmp_path / "another_model")
    report.write_text(json.dumps(other))
    with pytest.raises(ValueError, match="expected a `syn2seq evaluate --baselines` report of exactly"):
        bundle.main(["--model", str(model), "--evaluation", str(report), "--output", str(tmp_path / "b2")])
    with pytest.raises(SystemExit, match="--evaluation needs --model"):
        bundle.main(["--evaluation", str(report), "--output", str(tmp_path / "b3")])
    assert not (tmp_path / "b2").exists() and not (tmp_path / "b2.tmp").exists()


def test_the_card_follows_the_whole_chain_of_local_base_models(tmp_path):
    bundle = load_script("scripts/bundle_model.py")
    commands = {}
    base = None
    for stage in (1, 2, 3):
        folder = tmp_path / f"stage{stage}"
        folder.mkdir()
        commands[stage] = (f"python training/train.py --output_dir {folder} --seed {stage}"
                           + (f" --pretrained_model_name_or_path {base}" if base else ""))
        (folder / "README.md").write_text(f"# stage {stage}\n\n```bash\n{commands[stage]}\n```\n")
        base = folder
    card = f"# final\n\npython training/train.py --seed 4 --pretrained_model_name_or_path {base}\n"
    assert bundle.base_chain(card) == [(str(tmp_path / f"stage{s}"), commands[s]) for s in (1, 2, 3)]
    section = bundle.base_model_section(card)
    assert section.startswith("## Earlier stages of the recipe\n\nThis model is stage 4 of 4")
    stages = section.split("### Stage ")[1:]
    assert [bundle.training_command(part) for part in stages] == [commands[s] for s in (1, 2, 3)]
    assert "(from scratch)" in stages[0] and "(from stage 2)" in stages[2]
    assert bundle.base_model_section("python training/train.py --seed 0\n") == ""  # trained from scratch
    hub = "python training/train.py --pretrained_model_name_or_path someone/syn2seq-base\n"
    assert bundle.base_model_section(hub) == ""  # not a local folder with a card: nothing to follow

    (tmp_path / "stage1" / "README.md").write_text(commands[1] + " --pretrained_model_name_or_path gone/base\n")
    assert "### Stage 1: `" + str(tmp_path / "stage1") + "` (from `gone/base`, whose card is not at hand)" in (
        bundle.base_model_section(card))  # a chain that ends before a from-scratch model says so
    (tmp_path / "stage1" / "README.md").write_text(
        f"python training/train.py --pretrained_model_name_or_path {tmp_path / 'stage2'}\n")
    with pytest.raises(ValueError, match="cyclic or longer than 16"):
        bundle.base_chain(card)


def test_an_evaluation_report_that_is_not_json_is_one_line(tmp_path):
    """Issue 24: a non-JSON `--evaluation` file raised a JSONDecodeError traceback; nothing is assembled."""
    bundle = load_script("scripts/bundle_model.py")
    report = tmp_path / "report.json"
    report.write_text("PSNR 21.3 dB")
    with pytest.raises(SystemExit) as error:
        bundle.main(["--model", str(tmp_path), "--evaluation", str(report), "--output", str(tmp_path / "b")])
    assert str(error.value) == (f"--evaluation: expected a JSON report, got {report}, which does not parse: Expecting "
                                "value: line 1 column 1 (char 0)")
    report.write_text("[1, 2]")
    with pytest.raises(SystemExit, match=f"--evaluation: expected a JSON object, got a list in {report}"):
        bundle.main(["--model", str(tmp_path), "--evaluation", str(report), "--output", str(tmp_path / "b")])
    assert not (tmp_path / "b").exists()
