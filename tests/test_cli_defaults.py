# SPDX-License-Identifier: Apache-2.0
"""The `syn2seq` defaults a first-time user meets: the thread count, `evaluate` scoring the bundled model when no
`--model` is given, `--quiet` hiding every progress bar, and help texts."""

import json
import os

import pytest
import torch
from script_loading import load_script

from diffusers_syn2seq import bundled_model_path, threads
from diffusers_syn2seq.cli import build_parser, main


@pytest.fixture
def restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("load, expected", [(0.0, 2), (0.6, 1), (1.4, 1), (3.7, 1)])
def test_default_threads_leave_busy_cores_alone(monkeypatch, load, expected):
    monkeypatch.setattr(threads, "physical_cores", lambda: 2)
    monkeypatch.setattr(threads.os, "getloadavg", lambda: (load, load, load))
    assert threads.default_num_threads() == expected


def test_physical_cores_counts_usable_cores():
    assert 1 <= threads.physical_cores() <= len(os.sched_getaffinity(0))


def test_configure_threads_order_of_precedence(monkeypatch, restore_threads):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(threads, "default_num_threads", lambda: 1)
    assert threads.configure_threads(None) == 1
    assert threads.configure_threads(2) == 2
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    torch.set_num_threads(2)
    assert threads.configure_threads(None) == 2  # the environment's choice is kept
    for bad in (0, True, 1.5):
        with pytest.raises(ValueError, match=r"--threads: expected an integer >= 1"):
            threads.configure_threads(bad)


def test_cli_threads_flag(monkeypatch, restore_threads, capsys):
    assert main(["evaluate", "--data", "missing", "--threads", "0"]) == 2
    assert "--threads: expected an integer >= 1, got 0" in capsys.readouterr().err
    assert main(["evaluate", "--data", "missing", "--threads", "1"]) == 2  # fails later, on the missing data
    assert torch.get_num_threads() == 1


def test_help_texts():
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices
    evaluate_help = commands["evaluate"].format_help()
    assert "95% interval" in evaluate_help and "%%" not in evaluate_help
    assert "without --model the bundled model is scored" in " ".join(evaluate_help.split())
    for command in ("evaluate", "demo"):
        actions = {a.dest: a for a in commands[command]._actions}
        assert actions["direction"].help and "exo2ego" in actions["direction"].help
    assert "split" in {a.dest: a for a in commands["evaluate"]._actions}["split"].help
    for command in ("evaluate", "demo", "generate"):
        assert "--threads" in commands[command].format_help()


def _helps(command: str) -> dict[str, str]:
    """`dest -> help text` of a command's flags, whitespace collapsed."""
    commands = build_parser()._subparsers._group_actions[0].choices
    return {a.dest: " ".join((a.help or "").split()) for a in commands[command]._actions}


@pytest.mark.parametrize("command, flag, default", [
    ("demo", "output_dir", "outputs/demo"), ("demo", "steps", "25"), ("demo", "scene", "0"), ("demo", "seed", "0"),
    ("generate", "steps", "25"), ("generate", "fps", "10"), ("evaluate", "steps", "25"), ("app", "port", "7860"),
    ("app", "host", "127.0.0.1"),
])
def test_help_texts_show_defaults(command, flag, default):
    parser_default = {a.dest: a.default for a in build_parser()._subparsers._group_actions[0].choices[command]._actions}
    assert str(parser_default[flag]).removesuffix(".0") == default  # the help says what argparse really uses
    assert f"default: {default}" in _helps(command)[flag]


def test_seed_help_mentions_evaluate_scenes_only_for_evaluate():
    for command in ("demo", "generate"):
        assert _helps(command)["seed"] == "sampling seed (default: 0)"
    assert "scene i uses seed + i" in _helps("evaluate")["seed"]


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    """2 test takes at the bundled model's 32x32 (4 exo + 4 transition + 4 ego frames), 1 training take."""
    root = tmp_path_factory.mktemp("eval_defaults") / "synth"
    load_script("training/make_synthetic_dataset.py").main([
        "--output", str(root), "--num_train", "1", "--num_validation", "0", "--num_test", "2", "--num_frames", "4",
        "--resolution", "32", "--transition_frames", "4", "--lossless"])
    return root


def test_evaluate_without_model_scores_the_bundled_model_and_quiet_hides_every_bar(scenes, tmp_path, capsys):
    out = tmp_path / "bundled.json"
    assert main(["evaluate", "--data", str(scenes), "--steps", "2", "--num_samples", "1", "--no_exo_dependence",
                 "--quiet", "--output", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["models"] == [str(bundled_model_path())] and "baselines" not in report
    captured = capsys.readouterr()
    assert "Loading pipeline components" not in captured.err and "it/s" not in captured.err
    assert main(["evaluate", "--data", str(scenes), "--baselines_only", "--quiet", "--output", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["models"] == [] and sorted(report["baselines"]) == ["copy_source", "mean_frame"]
