# SPDX-License-Identifier: Apache-2.0
"""`benchmarks/two_stage_experiment.py` (issue 22): the verdicts on known numbers, and the whole two-stage pipeline
(corpus -> pretraining -> lr search on validation -> fine-tunes from scratch, from the base and as a LoRA -> test
scores -> JSON / report / plot) end to end at `--smoke` scale, resumed."""

import json

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file
from script_loading import load_script

from diffusers_syn2seq.metrics import summarize

two_stage = load_script("benchmarks/two_stage_experiment.py")


def _row(psnr, ids=("a", "b", "c", "d")):
    result = {"scene_ids": list(ids), "psnr": list(psnr), "ssim": [0.5] * len(psnr),
              "per_frame_psnr": [[p, p] for p in psnr], "per_frame_ssim": [[0.5, 0.5]] * len(psnr)}
    return {"summary": summarize([result])}


def _table(offsets: dict[str, float]) -> dict:
    base = [20.0, 21.0, 19.5, 20.5]
    return {name: _row([b + off + 0.01 * i for i, b in enumerate(base)]) for name, off in offsets.items()}


def test_verdicts_are_computed_from_the_paired_numbers():
    table = _table({"scratch · jump": 0.0, "scratch · video": -1.0, "scratch · video+pose": -1.0,
                    "scratch · video+pose (crossfade)": -1.0, "pretrained · jump": 0.5, "pretrained · video": 1.4,
                    "pretrained · video+pose": 1.5, "pretrained · video+pose (crossfade)": 1.0})
    p1, p2, p3, p4 = two_stage.verdicts({"100": table})
    assert p1["holds"] and "`video` minus `jump` +0.90 dB" in p1["text"] and "interval above 0" in p1["text"]
    assert p2["holds"] is None and "only N = 100" in p2["text"]
    assert p3["holds"] and p3["evidence"]["video"]["mean"] == pytest.approx(2.4)
    assert p4["holds"] and "90%" in p4["text"]  # video gets 0.9 of video+pose's 1.0 dB
    # a prior that does not help `jump`, and a transition that loses: P1 and P3 fail, P4 has nothing to share
    worse = _table({"scratch · jump": 0.0, "scratch · video": 0.0, "scratch · video+pose": 0.0,
                    "scratch · video+pose (crossfade)": 0.0, "pretrained · jump": 0.0, "pretrained · video": -0.5,
                    "pretrained · video+pose": -0.4, "pretrained · video+pose (crossfade)": 0.2})
    p1, _, p3, p4 = two_stage.verdicts({"100": worse})
    assert not p1["holds"] and "worse, interval below 0" in p1["text"]
    assert not p3["holds"] and p4["holds"] is None and "not testable" in p4["text"]
    # two N: P2 compares the pretrained video+pose advantage at both
    _, p2, _, _ = two_stage.verdicts({"100": table, "2000": worse})
    assert p2["holds"] and "at N = 100" in p2["text"] and "at N = 2000" in p2["text"]


def test_bundle_verdict_picks_the_best_candidate_on_validation_and_needs_an_interval_above_zero():
    bundled = _row([20.0, 21.0, 19.5, 20.5])["summary"]
    close = {"jump": _row([19.0, 20.0, 18.5, 19.5])["summary"], "video+pose": _row([20.1, 20.9, 19.6, 20.5])["summary"]}
    verdict = two_stage.bundle_verdict(close, bundled)
    assert verdict["best"] == "video+pose" and verdict["candidates"]["jump"] == pytest.approx(19.25)
    assert verdict["difference"]["mean"] == pytest.approx(0.025) and not verdict["beats_bundled"]  # interval has 0
    better = {"video": _row([21.0, 22.1, 20.4, 21.6])["summary"]}
    verdict = two_stage.bundle_verdict(better, bundled)
    assert verdict["beats_bundled"] and verdict["difference"]["low"] > 0


def test_dry_run_plans_pretrained_rows_from_the_base_and_scratch_rows_from_the_architecture(capsys, tmp_path):
    plan = two_stage.main(["--dry_run", "--work_dir", str(tmp_path), "--base", str(tmp_path / "b")])
    out = capsys.readouterr().out.splitlines()
    scratch = [c for c in out if "-scratch-" in c]
    pretrained = [c for c in out if "-pretrained-" in c and "train.py" in c]
    lora = [c for c in out if "-lora-" in c]
    assert len(scratch) == 8 and len(lora) == 2 and plan["config"]["num_train"] == [100]
    assert all("--model_config" in c and "--pretrained_model_name_or_path" not in c for c in scratch)
    assert all(f"--pretrained_model_name_or_path {tmp_path / 'b'}" in c and "--model_config" not in c
               for c in pretrained + lora)
    assert all("--train_mode lora" in c and "--use_ema" not in c for c in lora)
    assert all("--max_train_steps 1000" in c for c in scratch + pretrained + lora)  # equal fine-tuning steps
    assert any("--continuous" in c for c in out) and any("synthetic_cpu_pretrain.yaml" in c for c in out)


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    root = tmp_path_factory.mktemp("two_stage")
    argv = ["--smoke", "--seeds", "0", "--work_dir", str(root / "work"), "--results_dir", str(root / "results")]
    return root, argv, two_stage.main(argv)


def test_smoke_run_pretrains_searches_fine_tunes_and_reports(smoke):
    root, _, results = smoke
    data = json.loads((root / "results" / "two_stage_experiment.json").read_text())
    rows = data["tables"]["4"]
    models = [k for k, e in rows.items() if e["kind"] == "model"]
    assert len(models) == 9 and {"pretrained · video+pose", "scratch · jump", "lora · video+pose (LoRA)"} <= set(models)
    assert {"baseline: mean training ego frame", "baseline: copy last exo frame"} <= set(rows)
    for name in models:
        s = rows[name]["summary"]
        assert s["num_scenes"] == 3 and len(s["mean_of_n_psnr_per_scene"]) == len(s["exo_dependence_per_scene"]) == 3
    assert set(data["search"]) == {"0.001", "0.0003"} and data["pretrained_lr"] in (1e-3, 3e-4)
    assert data["base_summary"]["task"] == "pretrain" and data["base_summary"]["global_step"] == 4
    assert [v["id"] for v in data["verdicts"]] == ["P1", "P2", "P3", "P4"]
    report = (root / "results" / "TWO_STAGE_REPORT.md").read_text()
    assert "## Predictions (written before any fine-tuning ran)" in report and "**P3**" in report
    assert "| pretrained · video+pose |" in report and "Smoke run" in report
    with Image.open(root / "results" / "two_stage_psnr_vs_n.png") as image:
        assert image.format == "PNG" and image.size == (960, 520)


def test_smoke_lora_is_fused_into_the_base_and_changes_it(smoke):
    root, _, _ = smoke
    work = root / "work"
    fused = load_file(next((work / "models" / "n4-lora-video_pose-LoRA-lr0.001-s0" / "fused" / "transformer")
                           .glob("*.safetensors")))
    base = load_file(next((work / "base" / "transformer").glob("*.safetensors")))
    assert fused.keys() == base.keys()  # no adapter layers left in the saved weights
    assert any(not torch.equal(fused[k], base[k]) for k in base)  # the LoRA delta is in them


def test_smoke_rerun_resumes_without_training(smoke, capsys):
    root, argv, _ = smoke
    (root / "work" / "eval" / "test-n4-scratch-video.json").unlink()
    capsys.readouterr()
    two_stage.main(argv)
    out = capsys.readouterr().out
    assert "start train" not in out and "start pretrain" not in out
    assert out.count("start test") == 1 and "start test n4 scratch · video " in out
