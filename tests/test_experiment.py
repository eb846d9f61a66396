# SPDX-License-Identifier: Apache-2.0
"""`benchmarks/syn2seq_experiment.py`: the report logic on known summaries, and the whole pipeline end to end at
`--smoke` scale (data -> training -> evaluation -> JSON / REPORT.md / PNG), resumed."""

import json

import numpy as np
import pytest
from PIL import Image
from script_loading import load_script

from diffusers_syn2seq.metrics import paired_difference, summarize

experiment = load_script("benchmarks/syn2seq_experiment.py")


# --------------------------------------------------------------------------------------------------- report logic
def _result(psnr, ssim, ids=("a", "b", "c")):
    return {"scene_ids": list(ids), "psnr": list(psnr), "ssim": list(ssim),
            "per_frame_psnr": [[p - 1, p + 1] for p in psnr], "per_frame_ssim": [[s, s] for s in ssim]}


def test_paired_difference_and_verdict_are_computed_from_the_numbers():
    jump = summarize([_result([10, 11, 12], [0.1, 0.1, 0.1])])
    better = summarize([_result([12, 13.5, 14], [0.2, 0.3, 0.2])])
    worse = summarize([_result([9, 10.5, 11], [0.1, 0.1, 0.1])])
    d = paired_difference(better, jump)
    assert d["mean"] == pytest.approx(13.1666667 - 11) and d["low"] > 0
    table = {"exo2ego": {"jump": {"kind": "model", "summary": jump}, "video": {"kind": "model", "summary": better},
                         "video+pose": {"kind": "model", "summary": worse}}}
    comparisons = experiment.compare_to_jump(table, {"ci": "t"})
    by_row = {c["row"]: c for c in comparisons}
    assert by_row["video"]["beats_jump_psnr"] and by_row["video"]["significant_psnr"]
    assert not by_row["video+pose"]["beats_jump_psnr"]
    text = experiment.verdict(comparisons)
    assert "**does not hold**" in text
    assert "`video` beats `jump`: PSNR +2.17 dB" in text and "`video+pose` does not beat `jump`: PSNR -0.83 dB" in text
    table["exo2ego"]["video+pose"]["summary"] = better
    assert "**holds**" in experiment.verdict(experiment.compare_to_jump(table, {"ci": "t"}))


def test_pil_plot_writes_a_png(tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name.startswith("matplotlib"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    backend = experiment.plot_curves({"jump": [10, 9, 8], "baseline: x": [7, 7, 7]}, tmp_path / "p.png", "t")
    assert backend == "PIL"
    with Image.open(tmp_path / "p.png") as image:
        assert image.size == (900, 520)
        assert len(np.unique(np.asarray(image.convert("RGB")).reshape(-1, 3), axis=0)) > 5  # lines in several colours


def test_dry_run_plans_every_row_with_identical_architecture(capsys):
    plan = experiment.main(["--dry-run"])
    commands = [c for c in plan["commands"] if "train.py" in c]
    assert len(commands) == 4 * 2 + 1  # 4 rows x 2 seeds + the both-directions model
    assert plan["estimated_seconds"] < 2.5 * 3600
    for flag in ("--model_config", "--max_frames 12", "--max_train_steps 1000", "--train_batch_size 4",
                 "--learning_rate 0.001", "--lr_scheduler cosine", "--lr_warmup_steps 200"):
        assert all(flag in c for c in commands)
    assert sum("--mode jump " in c for c in commands) == 2
    assert sum("--reverse_prob 0.5" in c for c in commands) == 1
    assert sum("data/crossfade" in c for c in commands) == 2


def test_estimate_scales_with_steps_and_is_dropped_for_a_new_step_size():
    full = experiment.main(["--dry-run"])["estimated_seconds"]
    half = experiment.main(["--dry-run", "--steps", "500"])["estimated_seconds"]
    assert half < 0.75 * full  # training dominates; the evaluation part does not shrink
    # evaluation: 10 evaluations x 32 scenes x (num_samples + 1 swapped-exo) generations x 25 steps x 0.09 s, 2 jobs
    one = experiment.main(["--dry-run", "--num_samples", "1"])["estimated_seconds"]
    assert full - one == pytest.approx(10 * 32 * 3 * 25 * 0.09 / 2)
    assert experiment.main(["--dry-run", "--batch-size", "8"])["estimated_seconds"] is None


def test_style_is_passed_to_the_data_generation():
    plan = experiment.main(["--dry-run"])
    assert "--style flat_uniform" in plan["commands"][0] and plan["config"]["style"] == "flat_uniform"
    plan = experiment.main(["--dry-run", "--style", "flat"])
    assert "make_synthetic_dataset.py" in plan["commands"][0] and "--style flat" in plan["commands"][0]
    assert plan["config"]["style"] == "flat" and plan["estimated_seconds"] is not None  # same step size


# ---------------------------------------------------------------------------------------------- end to end (smoke)
@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    root = tmp_path_factory.mktemp("experiment")
    argv = ["--smoke", "--work-dir", str(root / "work"), "--results-dir", str(root / "results")]
    results = experiment.main(argv)
    return root, argv, results


def test_smoke_run_writes_json_report_and_plot(smoke):
    root, _, _ = smoke
    data = json.loads((root / "results" / "syn2seq_experiment.json").read_text())
    exo = data["table"]["exo2ego"]
    expected_rows = {"jump", "video", "video+pose", "video+pose (crossfade)", "video+pose (both directions)",
                     "baseline: mean training ego frame", "baseline: copy last exo frame"}
    assert set(exo) == expected_rows
    assert set(data["table"]["ego2exo"]) == {"video+pose (both directions)", "baseline: mean training exo frame",
                                             "baseline: copy first ego frame"}
    num_test, frames = data["config"]["num_test"], data["config"]["frames"]
    for name in ("jump", "video", "video+pose", "video+pose (crossfade)"):
        entry = exo[name]
        assert entry["seeds"] == [0, 1] and entry["summary"]["num_seeds"] == 2
        assert entry["summary"]["num_scenes"] == num_test and len(entry["summary"]["per_frame_psnr"]) == frames
        s = entry["summary"]["psnr"]
        assert s["low"] <= s["mean"] <= s["high"] and 0 < s["mean"] < 100
        assert -1 <= entry["summary"]["ssim"]["mean"] <= 1
    assert {c["row"] for c in data["comparisons"]} == {"video", "video+pose", "video+pose (crossfade)",
                                                      "video+pose (both directions)"}
    assert len(data["runs"]) == 9 and all("train.py" in r["command"] for r in data["runs"])
    assert any("cache_transitions.py" in c and "crossfade" in c for c in data["commands"])
    for name, entry in exo.items():  # the scores that separate "knows the scene" from "draws plausible noise"
        s = entry["summary"]
        assert len(s["layout_psnr_per_scene"]) == num_test and s["layout_psnr"]["mean"] > 0
        if entry["kind"] == "model":
            assert len(s["mean_of_n_psnr_per_scene"]) == len(s["exo_dependence_per_scene"]) == num_test
            assert entry["per_seed"][0]["num_samples"] == data["config"]["num_samples"] == 2
        else:
            assert "mean_of_n_psnr" not in s and "exo_dependence" not in s
    report = (root / "results" / "REPORT.md").read_text()
    assert "| jump |" in report and "| video+pose (crossfade) |" in report and "## Ego2Exo" in report
    assert "| layout PSNR (dB) | mean-of-N PSNR (dB) | exo-dependence (dB) |" in report and "N = 2 samples" in report
    jump_row = next(line for line in report.splitlines() if line.startswith("| jump |"))
    assert "n/a" not in jump_row and jump_row.count("|") == 10
    baseline_row = next(line for line in report.splitlines() if line.startswith("| baseline: copy last exo frame |"))
    assert baseline_row.split(" | ")[3] != "n/a" and baseline_row.split(" | ")[4:6] == ["n/a", "n/a"]
    assert "Smoke run" in report and "beat `jump`" in report and "syn2seq_per_frame_psnr.png" in report
    with Image.open(root / "results" / "syn2seq_per_frame_psnr.png") as image:
        assert image.format == "PNG" and image.size[0] > 100
    # each model folder records its Syn2Seq settings (pipeline configuration) for `syn2seq evaluate` / `generate`
    for name, mode, transition in (("jump-s0", "jump", 0), ("video_pose-s0", "video+pose", 2)):
        index = json.loads((root / "work" / "models" / name / "model_index.json").read_text())
        assert (index["mode"], index["num_transition_frames"], index["reversal"]) == (mode, transition, "full")
        assert not (root / "work" / "models" / name / "syn2seq_settings.json").exists()


def test_smoke_rerun_resumes_without_retraining(smoke, capsys):
    root, argv, _ = smoke
    work = root / "work"
    weights = sorted((work / "models").glob("*/transformer/*.safetensors"))
    stamps = {p: p.stat().st_mtime_ns for p in weights}
    (work / "eval" / "video-s1-exo2ego.json").unlink()  # one evaluation lost: only it is redone
    capsys.readouterr()
    experiment.main(argv)
    out = capsys.readouterr().out
    assert out.count("(model exists)") == 9
    assert "start train" not in out
    assert out.count("start evaluate") == 1 and "start evaluate video-s1-exo2ego" in out
    assert {p: p.stat().st_mtime_ns for p in weights} == stamps
    assert (work / "eval" / "video-s1-exo2ego.json").is_file()


def test_report_only_rewrites_the_report_from_the_json(smoke):
    root, _, _ = smoke
    report = root / "results" / "REPORT.md"
    before = report.read_text()
    report.write_text("stale")
    experiment.main(["--report-only", "--results-dir", str(root / "results")])
    assert report.read_text() == before


def test_report_only_reproduces_the_committed_report_and_shows_na_for_missing_scores(tmp_path):
    committed = experiment.REPO / "benchmarks" / "results" / "syn2seq_experiment.json"
    before = committed.read_bytes()
    (tmp_path / committed.name).write_bytes(before)  # a copy: the committed results are not rewritten
    experiment.main(["--report-only", "--results-dir", str(tmp_path)])
    assert (tmp_path / "REPORT.md").read_text() == (committed.parent / "REPORT.md").read_text()
    assert committed.read_bytes() == before
    # results from before the layout / mean-of-N / exo-dependence scores existed
    results = json.loads(before)
    for table in results["table"].values():
        for entry in table.values():
            for metric in ("layout_psnr", "mean_of_n_psnr", "exo_dependence"):
                for suffix in ("", "_per_seed", "_per_scene"):
                    entry["summary"].pop(metric + suffix, None)
    (tmp_path / committed.name).write_text(json.dumps(results))
    experiment.main(["--report-only", "--results-dir", str(tmp_path)])
    jump = results["table"]["exo2ego"]["jump"]["summary"]
    psnr, ssim = jump["psnr"], jump["ssim"]
    row = (f"| jump | {psnr['mean']:.2f} [{psnr['low']:.2f}, {psnr['high']:.2f}] | "
           f"{ssim['mean']:.3f} [{ssim['low']:.3f}, {ssim['high']:.3f}] | n/a | n/a | n/a |")
    assert row in (tmp_path / "REPORT.md").read_text()


def test_sanity_floor_explains_a_failure_and_paths_are_portable(tmp_path):
    def row(mean, low, high):
        return {"summary": {"psnr": {"mean": mean, "low": low, "high": high}}}

    table = {"exo2ego": {"video+pose": row(17.0, 16.0, 18.0), "baseline: mean training ego frame": row(18.5, 18, 19),
                         "baseline: copy last exo frame": row(15.0, 14.0, 14.5)}}
    text = experiment.sanity_floor(table)
    assert "-1.50 dB (WORSE than this trivial baseline" in text and "+2.00 dB (clear margin" in text
    assert experiment.FLOOR_NOTE in text
    table["exo2ego"]["baseline: mean training ego frame"] = row(12.0, 11.0, 12.5)
    assert experiment.FLOOR_NOTE not in experiment.sanity_floor(table)
    assert experiment._relative(experiment.REPO / "runs" / "x") == "runs/x"
    assert experiment._relative(tmp_path) == str(tmp_path.resolve())


def test_run_commands_in_parallel_subprocesses_and_failure_report(tmp_path):
    script = tmp_path / "child.py"
    script.write_text("import os, sys\nopen(sys.argv[1], 'w').write(os.environ['OMP_NUM_THREADS'])\n"
                      "print('child log line')\nsys.exit(int(sys.argv[2]))\n")
    cfg = {"in_process": False, "jobs": 2, "threads": 1, "device": "cpu"}
    experiment.run_commands([(f"job{i}", [str(script), str(tmp_path / f"out{i}"), "0"], tmp_path / f"log{i}.txt")
                             for i in range(3)], cfg)
    assert [(tmp_path / f"out{i}").read_text() for i in range(3)] == ["1", "1", "1"]
    with pytest.raises(RuntimeError, match="(?s)bad failed \\(exit 3\\).*child log line"):
        experiment.run_commands([("bad", [str(script), str(tmp_path / "x"), "3"], tmp_path / "bad.txt")], cfg)


@pytest.mark.slow
def test_smoke_run_with_subprocesses(tmp_path):
    """The real execution path: every script a subprocess, two at a time (~2 min on 2 cores)."""
    results = experiment.main(["--smoke", "--subprocess", "--jobs", "2", "--work-dir", str(tmp_path / "work"),
                               "--results-dir", str(tmp_path / "results")])
    assert len(results["runs"]) == 9 and not results["config"]["in_process"]
    assert (tmp_path / "results" / "REPORT.md").is_file()
    assert (tmp_path / "work" / "logs" / "train_jump-s0.log").is_file()
