# SPDX-License-Identifier: Apache-2.0
"""Files written by training and the CLI appear whole or not at all: `safe_io.atomic_write_bytes` and its users (the
model card, the validation and demo PNGs)."""

import numpy as np
import pytest
from huggingface_hub import ModelCard
from PIL import Image

from diffusers_syn2seq.evaluation import side_by_side
from diffusers_syn2seq.model_card import save_model_card
from diffusers_syn2seq.safe_io import atomic_write_bytes, atomic_write_text


def test_atomic_write_replaces_whole_files_and_leaves_nothing_on_failure(tmp_path):
    path = tmp_path / "file.bin"
    atomic_write_bytes(path, b"old")
    atomic_write_bytes(path, b"new contents")
    assert path.read_bytes() == b"new contents"
    atomic_write_text(path, "Plücker rays\n")
    assert path.read_bytes() == "Plücker rays\n".encode()  # UTF-8 whatever the locale
    folder = tmp_path / "a folder"
    folder.mkdir()
    with pytest.raises(OSError):  # the rename onto a folder fails: the folder stays, no temporary file remains
        atomic_write_bytes(folder, b"x")
    assert folder.is_dir() and sorted(p.name for p in tmp_path.iterdir()) == ["a folder", "file.bin"]


def test_model_card_is_written_atomically_with_the_bytes_card_save_writes(tmp_path):
    card = save_model_card(tmp_path / "out", {"training_mode": "full", "command": "python train.py --mode video+pose",
                                              "dataset": "Plücker-conditioned takes"})
    written = (tmp_path / "out" / "README.md").read_bytes()
    card.save(tmp_path / "reference.md")  # huggingface_hub's own writer
    assert written == (tmp_path / "reference.md").read_bytes() and "Plücker".encode() in written
    assert ModelCard.load(tmp_path / "out" / "README.md").data.pipeline_tag == "video-to-video"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["README.md"]


def test_side_by_side_png_is_written_whole(tmp_path):
    frames = np.zeros((2, 8, 8, 3), dtype=np.uint8)
    side_by_side([("exo", frames), ("generated", frames + 255)], tmp_path / "grid.png", scale=2)
    with Image.open(tmp_path / "grid.png") as image:
        assert image.format == "PNG" and image.size == (150 + 2 * (8 * 2 + 4), 2 * 8 * 2 + 4)  # 4-px gaps
    assert sorted(p.name for p in tmp_path.iterdir()) == ["grid.png"]
