# SPDX-License-Identifier: Apache-2.0
"""Repository-level files: what git ignores (generated data, not the package's `data` code)."""

import shutil
import subprocess

import pytest
from script_loading import REPO


def _ignored(path: str) -> bool:
    result = subprocess.run(["git", "check-ignore", "--no-index", "-q", path], cwd=REPO)
    assert result.returncode in (0, 1), f"git check-ignore failed for {path}"
    return result.returncode == 0


@pytest.mark.skipif(shutil.which("git") is None or not (REPO / ".git").exists(), reason="needs a git checkout")
def test_gitignore_keeps_generated_data_out_and_code_in():
    for generated in ("data/synth32/metadata.parquet", "syn2seq-output/model_index.json", "outputs/demo/ego.mp4",
                      "runs/x/config.json"):
        assert _ignored(generated), generated
    for code in ("diffusers_syn2seq/data/__init__.py", "diffusers_syn2seq/data/choices.py", "tests/data/clip.mp4",
                 "app.py"):
        assert not _ignored(code), code




def test_make_synthetic_dataset_help_shows_every_default(capsys):
    from script_loading import load_script

    with pytest.raises(SystemExit):
        load_script("training/make_synthetic_dataset.py").parse_args(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    for flag, default in (("num-train", "100"), ("num-validation", "10"), ("num-test", "10"), ("seed-offset", "0"),
                          ("num-frames", "16"), ("resolution", "64"), ("transition-frames", "4"), ("fps", "10"),
                          ("style", "textured"), ("checkpoint-every", "50")):
        described = text.rsplit(f"--{flag} ", 1)[1].split(" --")[0]  # the option's line, not the usage
        assert described.endswith(f"default: {default})"), (flag, described)
