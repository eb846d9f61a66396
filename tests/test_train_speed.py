# SPDX-License-Identifier: Apache-2.0
"""Training-speed changes that must not change the numbers (issue 15; issue 12 item 4): decoded takes kept in memory
(`train.py --cache_data`), the loss read back in bulk, and the step's optimiser settings."""

import json
import logging
import math
from pathlib import Path

import pytest
import torch
from script_loading import load_script

from diffusers_syn2seq.data import (
    EpochShuffleSampler,
    InMemoryTakes,
    Syn2SeqClipDataset,
    Syn2SeqTrainingWindows,
    collate_syn2seq,
    decoded_take_bytes,
)
from diffusers_syn2seq.data.transitions import CrossfadeTransition

RES, FRAMES, TRANSITION = 16, 4, 2


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data") / "synth"
    load_script("training/make_synthetic_dataset.py").main(
        ["--output", str(root), "--num-train", "3", "--num-validation", "1", "--num-test", "0", "--num-frames",
         str(FRAMES), "--resolution", str(RES), "--transition-frames", str(TRANSITION), "--lossless"])
    return root


@pytest.fixture(scope="module")
def train():
    return load_script("training/train.py", "syn2seq_train_speed")


def _batches(takes, epochs: int = 2) -> list[dict]:
    windows = Syn2SeqTrainingWindows(takes, "video+pose", 8, reverse_prob=0.5, transition_fn=CrossfadeTransition(),
                                     num_transition_frames=TRANSITION, seed=3)
    sampler = EpochShuffleSampler(len(windows), seed=3)
    loader = torch.utils.data.DataLoader(windows, batch_size=2, sampler=sampler,
                                         collate_fn=lambda b: collate_syn2seq(b, pad_to=8))
    out = []
    for epoch in range(epochs):
        sampler.select_epoch(epoch)
        windows.select_epoch(epoch)
        out += list(loader)
    return out


def test_in_memory_takes_give_the_batches_of_per_batch_decoding(dataset):
    takes = Syn2SeqClipDataset(dataset, "train")
    cached = InMemoryTakes(takes)
    decoded, from_memory = _batches(takes), _batches(cached)
    assert len(decoded) == len(from_memory) == 4
    for a, b in zip(decoded, from_memory):
        assert a.keys() == b.keys()
        for key in a:
            if isinstance(a[key], torch.Tensor):
                assert torch.equal(a[key], b[key]), key
            else:
                assert a[key] == b[key], key
    # Reading the cache twice (two epochs above) left its items as decoded: nothing downstream writes into them.
    for i in range(len(takes)):
        for key in ("exo", "ego", "transition", "exo_poses", "transition_poses"):
            assert (cached[i][key] == takes[i][key]).all(), (i, key)
    with pytest.raises(IndexError, match="index 3 out of range for 3 takes"):
        cached[3]


@pytest.mark.parametrize("num_frames, load_transition", [(None, True), (None, False), (3, False)])
def test_decoded_take_bytes_is_what_the_decoded_items_hold(dataset, num_frames, load_transition):
    takes = Syn2SeqClipDataset(dataset, "train", num_frames=num_frames, load_transition=load_transition)
    held = sum(value.nbytes for item in InMemoryTakes(takes) for value in item.values() if hasattr(value, "nbytes"))
    assert decoded_take_bytes(takes) == held > 0


def _argv(dataset: Path, output: Path, *extra) -> list[str]:
    return ["--dataset_dir", str(dataset), "--output_dir", str(output), "--model_preset", "dit-tiny",
            "--max_frames", "8", "--report_to", "none", "--mixed_precision", "no", "--train_batch_size", "2",
            "--max_train_steps", "3", "--checkpointing_steps", "100", "--learning_rate", "1e-3", "--use_ema",
            "--ema_decay", "0.9", "--seed", "5", *map(str, extra)]


def _losses(output: Path) -> list[float]:
    lines = (output / "logs" / "train_log.jsonl").read_text().splitlines()
    return [json.loads(line)["train/loss"] for line in lines]


def test_cache_data_trains_exactly_like_per_batch_decoding(dataset, tmp_path, train, caplog):
    with caplog.at_level(logging.INFO):
        cached = train.main(_argv(dataset, tmp_path / "cached", "--cache_data", "always", "--logging_steps", "2"))
    assert "--cache_data always: decoding 3 training takes once into memory" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.INFO):  # over budget: falls back to decoding every batch, and says so
        decoded = train.main(_argv(dataset, tmp_path / "decoded", "--cache_data_max_mb", "0.01"))
    assert "--cache_data auto: not caching the training takes" in caplog.text
    assert "over --cache_data_max_mb=0.01); every batch decodes its clips" in caplog.text
    losses = _losses(tmp_path / "cached")
    assert len(losses) == 3 and all(math.isfinite(x) for x in losses)
    # the same batches, bit for bit; the losses read back every 2 steps (cached) or once at the end (decoded)
    assert losses == _losses(tmp_path / "decoded")
    assert cached["fixed_batch_loss_end"] == decoded["fixed_batch_loss_end"]


@pytest.mark.parametrize(
    "extra, match",
    [
        (["--cache_data", "always", "--cache_data_max_mb", "0.01"],
         r"--cache_data always: expected the decoded training takes to fit --cache_data_max_mb=0.01 MiB, got "
         r"0\.\d MiB for 3 takes; raise --cache_data_max_mb or use --cache_data auto"),
        (["--cache_data_max_mb", "-1"], r"--cache_data_max_mb: expected a finite number >= 0, got -1.0"),
        (["--cache_data", "sometimes"], None),
    ],
)
def test_cache_data_flag_errors(dataset, tmp_path, train, extra, match):
    output = tmp_path / "out"
    if match is None:  # argparse's choices
        with pytest.raises(SystemExit):
            train.main(_argv(dataset, output, *extra))
        return
    with pytest.raises(ValueError, match=match):
        train.main(_argv(dataset, output, *extra))
    assert not (output / "logs" / "train_log.jsonl").exists() and not list(output.glob("checkpoint-*"))


def test_loss_log_reads_back_in_bulk_and_stops_at_a_non_finite_loss(tmp_path, train):
    from accelerate import Accelerator
    from tqdm.auto import tqdm

    path = tmp_path / "train_log.jsonl"
    log = train.LossLog(Accelerator(cpu=True), tqdm(disable=True), path)
    for step, value in ((1, 0.5), (2, 0.25)):
        log.add_micro_step(step, step - 1, torch.tensor(value))
        log.add_step(step, torch.tensor(value), 1e-3 * step)
    assert not path.exists()  # nothing read back before the flush
    log.flush()
    assert [json.loads(line) for line in path.read_text().splitlines()] == [
        {"step": 1, "train/loss": 0.5, "train/lr": 1e-3}, {"step": 2, "train/loss": 0.25, "train/lr": 2e-3}]
    log.add_micro_step(3, 4, torch.tensor(0.1))
    log.add_micro_step(3, 5, torch.tensor(float("nan")))  # an accumulated micro-batch, not the logged one
    log.add_step(3, torch.tensor(0.1), 3e-3)
    with pytest.raises(FloatingPointError, match=r"non-finite loss nan at step 3 \(micro-step 5\); lower "
                                                 r"--learning_rate or use --mixed_precision no"):
        log.flush()
    assert len(path.read_text().splitlines()) == 2  # the failing flush logs nothing
