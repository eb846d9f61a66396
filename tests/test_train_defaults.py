# SPDX-License-Identifier: Apache-2.0
"""`training/train.py` defaults and flag combinations checked without launching a run: the Ego2Exo reversal
probability inherited from the base pipeline, `--hub_dry_run` alone, and the frozen LoRA base cast."""

import json

import pytest
import torch
from log_capture import diffusers_warnings
from script_loading import load_script


@pytest.fixture(scope="module")
def train():
    return load_script("training/train.py", "syn2seq_train_defaults")


def _base(tmp_path, reverse_prob):
    folder = tmp_path / "base"
    folder.mkdir()
    (folder / "model_index.json").write_text("{}")
    if reverse_prob is not None:
        (folder / "training_summary.json").write_text(json.dumps({"reverse_prob": reverse_prob}))
    return folder


@pytest.mark.parametrize("recorded, flag, expected", [
    (0.0, None, 0.0),   # a LoRA on an Exo2Ego-only base stays Exo2Ego
    (0.5, None, 0.5),
    (None, None, 0.5),  # the base does not say: the from-scratch default
    (0.0, "0.3", 0.3),  # the command line wins
])
def test_reverse_prob_defaults_to_the_base_pipeline(train, tmp_path, recorded, flag, expected):
    argv = ["--dataset_dir", str(tmp_path), "--train_mode", "lora",
            "--pretrained_model_name_or_path", str(_base(tmp_path, recorded))]
    args = train.parse_args(argv + (["--reverse_prob", flag] if flag else []))
    assert args.reverse_prob == expected


def test_reverse_prob_default_from_scratch(train, tmp_path):
    assert train.parse_args(["--dataset_dir", str(tmp_path)]).reverse_prob == 0.5


def test_hub_dry_run_needs_push_to_hub(train, tmp_path):
    # an explicit --output_dir: check_args creates the folder (the default would land in the repository root)
    output = ["--output_dir", str(tmp_path / "out")]
    args = train.parse_args(["--dataset_dir", str(tmp_path), "--hub_dry_run", *output])
    with pytest.raises(ValueError, match=r"--hub_dry_run: expected together with --push_to_hub .*got it alone"):
        train.check_args(args)
    assert not (tmp_path / "out").exists()  # refused before the output folder is created
    train.check_args(train.parse_args(["--dataset_dir", str(tmp_path), "--hub_dry_run", "--push_to_hub",
                                       "--hub_model_id", "someone/x", *output]))


def test_the_warning_is_seen_when_casting_with_to():
    from diffusers_syn2seq import DFoTTransformer3DModel

    with diffusers_warnings() as warnings:
        DFoTTransformer3DModel(in_channels=3, sample_size=8, max_frames=4, patch_size=2, num_layers=1,
                               num_attention_heads=2, attention_head_dim=16).to(dtype=torch.float32)
    assert any("should be kept in float32" in w for w in warnings)


class _FakeAccelerator:
    def __init__(self, mixed_precision):
        self.mixed_precision, self.device = mixed_precision, torch.device("cpu")


@pytest.mark.parametrize("precision, expected", [("no", torch.float32), ("bf16", torch.bfloat16)])
def test_lora_base_cast_keeps_fp32_modules_without_a_warning(train, tmp_path, precision, expected):
    from diffusers_syn2seq import DFoTTransformer3DModel

    model = DFoTTransformer3DModel(in_channels=3, sample_size=8, max_frames=4, patch_size=2, num_layers=1,
                                   num_attention_heads=2, attention_head_dim=16, noise_embedding_dim=32)
    args = train.parse_args(["--dataset_dir", str(tmp_path), "--train_mode", "lora", "--pretrained_model_name_or_path",
                             str(tmp_path), "--rank", "2"])
    with diffusers_warnings() as warnings:
        train.prepare_transformer(args, _FakeAccelerator(precision), model, None)
    assert not any("should be kept in float32" in w for w in warnings)
    dtypes = {name: p.dtype for name, p in model.named_parameters()}
    assert dtypes["transformer_blocks.0.attn.to_q.base_layer.weight"] == expected
    assert dtypes["transformer_blocks.0.norm1.linear.weight"] == torch.float32
    assert dtypes["transformer_blocks.0.attn.to_q.lora_A.default.weight"] == torch.float32
