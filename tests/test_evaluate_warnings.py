# SPDX-License-Identifier: Apache-2.0
"""`syn2seq evaluate` warns when the data is of another SynthEgoExo style or resolution than the model was trained
on (the bundled model: flat_uniform scenes at 32x32), and says nothing when they match."""

import pytest
from script_loading import load_script

from diffusers_syn2seq.cli import main

MAKE = load_script("training/make_synthetic_dataset.py")


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    root = tmp_path_factory.mktemp("evaluate_warnings")
    made = {}
    for name, style, resolution in (("textured32", "textured", 32), ("flat16", "flat_uniform", 16),
                                    ("flat32", "flat_uniform", 32)):
        MAKE.main(["--output", str(root / name), "--num_train", "0", "--num_validation", "0", "--num_test", "1",
                   "--num_frames", "2", "--resolution", str(resolution), "--transition_frames", "4", "--style", style,
                   "--lossless"])
        made[name] = root / name
    return made


def _evaluate(data, capsys) -> str:
    capsys.readouterr()
    assert main(["evaluate", "--data", str(data), "--steps", "1", "--num_samples", "1", "--no_exo_dependence",
                 "--quiet"]) == 0
    return " ".join(capsys.readouterr().out.split())


def test_evaluate_warns_for_another_scene_style(datasets, capsys):
    out = _evaluate(datasets["textured32"], capsys)
    assert (f"was trained on flat_uniform SynthEgoExo scenes; the takes of {datasets['textured32']} are textured "
            "scenes, out of its training distribution") in out
    assert "resized" not in out


def test_evaluate_warns_for_another_resolution(datasets, capsys):
    out = _evaluate(datasets["flat16"], capsys)
    assert (f"warning: the takes of {datasets['flat16']} have 16x16 frames and ") in out
    assert "was trained at 32x32: they are resized (bicubic)" in out
    assert "SynthEgoExo scenes;" not in out


def test_evaluate_on_the_training_distribution_says_nothing(datasets, capsys):
    assert "warning:" not in _evaluate(datasets["flat32"], capsys)
