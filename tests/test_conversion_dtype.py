# SPDX-License-Identifier: Apache-2.0
"""`convert_dfot_checkpoint(..., torch_dtype)` and `syn2seq-convert-dfot --dtype` cast like
`from_pretrained(dtype=...)`: norms, modulation and embeddings stay float32, and no "should be kept in float32" warning
is printed."""

import pytest
import torch
from log_capture import diffusers_warnings
from safetensors.torch import load_file
from script_loading import load_script

from diffusers_syn2seq.cli import convert_dfot_command
from diffusers_syn2seq.models import convert_dfot_checkpoint

PARITY = load_script("scripts/check_dfot_parity.py")
KEPT = {"dit3d_discrete": "transformer_blocks.0.norm1.linear.weight", "uvit3d_pose": "mid_blocks.0.norm.linear.weight"}
CAST = {"dit3d_discrete": "transformer_blocks.0.attn.to_q.weight", "uvit3d_pose": "mid_blocks.0.attn.to_q.weight"}


@pytest.mark.parametrize("name", ["dit3d_discrete", "uvit3d_pose"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_conversion_dtype_keeps_fp32_modules_without_a_warning(dfot_fixtures_dir, name, dtype):
    _, config, state_dict = PARITY.load_fixture(dfot_fixtures_dir, name)
    with diffusers_warnings() as warnings:
        model = convert_dfot_checkpoint(state_dict, config, torch_dtype=dtype)
    assert not any("should be kept in float32" in w for w in warnings)
    dtypes = {key: p.dtype for key, p in model.named_parameters()}
    assert dtypes[KEPT[name]] == torch.float32 and dtypes[CAST[name]] == dtype


def test_converter_command_writes_bfloat16_with_fp32_norms(dfot_fixtures_dir, tmp_path):
    _, _, state_dict = PARITY.load_fixture(dfot_fixtures_dir, "dit3d_discrete")
    checkpoint = tmp_path / "dfot.ckpt"
    torch.save({"state_dict": {f"diffusion_model.model.{k}": v for k, v in state_dict.items()}}, checkpoint)
    config = dfot_fixtures_dir / "dit3d_discrete.json"
    assert convert_dfot_command(["--checkpoint", str(checkpoint), "--config", str(config), "--output_dir",
                                 str(tmp_path / "out"), "--dtype", "bfloat16"]) == 0
    weights = load_file(tmp_path / "out" / "diffusion_pytorch_model.safetensors")
    assert weights[KEPT["dit3d_discrete"]].dtype == torch.float32
    assert weights[CAST["dit3d_discrete"]].dtype == torch.bfloat16
