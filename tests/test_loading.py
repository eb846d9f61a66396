# SPDX-License-Identifier: Apache-2.0
"""load_transformer: pipeline folders, transformer folders of both backbones, official checkpoints, and its errors."""

import json
import logging

import pytest
import torch
import yaml
from safetensors.torch import save_file
from script_loading import load_script

from diffusers_syn2seq import bundled_model_path
from diffusers_syn2seq.models import DFoTTransformer3DModel, DFoTUViT3DModel, load_transformer
from diffusers_syn2seq.pipelines import Syn2SeqPipeline
from diffusers_syn2seq.schedulers import DiffusionForcingScheduler

DIT = dict(in_channels=3, sample_size=8, max_frames=4, num_layers=2, num_attention_heads=2, attention_head_dim=16,
           camera_ray_type="plucker")
UVIT = dict(in_channels=3, sample_size=16, max_frames=3, block_out_channels=[16, 32],
            block_types=["ResBlock", "TransformerBlock"], block_dropouts=[0.0, 0.0], layers_per_block=[1],
            num_mid_blocks=1, num_attention_heads=2, emb_channels=32, norm_num_groups=8, camera_ray_type="plucker")


def randomized(model: torch.nn.Module) -> torch.nn.Module:
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.1 * torch.randn(param.shape, generator=generator))
    return model


def assert_same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    state_a, state_b = a.state_dict(), b.state_dict()
    assert state_a.keys() == state_b.keys()
    for key in state_a:
        assert torch.equal(state_a[key], state_b[key]), key


PARITY = load_script("scripts/check_dfot_parity.py")
load_fixture, official_output = PARITY.load_fixture, PARITY.official_output


# ----------------------------------------------------------------------------------------------------------------
# Folders
# ----------------------------------------------------------------------------------------------------------------
def test_pipeline_folder_loads_its_transformer(tmp_path):
    transformer = randomized(DFoTTransformer3DModel(**DIT))
    Syn2SeqPipeline(transformer=transformer, scheduler=DiffusionForcingScheduler()).save_pretrained(tmp_path)
    loaded = load_transformer(tmp_path)
    assert type(loaded) is DFoTTransformer3DModel and not loaded.training
    assert_same_weights(loaded, transformer)


@pytest.mark.parametrize("cls,config", [(DFoTTransformer3DModel, DIT), (DFoTUViT3DModel, UVIT)])
def test_transformer_folder_dispatches_on_class_name(tmp_path, cls, config):
    model = randomized(cls(**config))
    model.save_pretrained(tmp_path)
    loaded = load_transformer(str(tmp_path))
    assert type(loaded) is cls and not loaded.training
    assert_same_weights(loaded, model)
    # kwargs go to from_pretrained: bf16 storage with the float32 modules kept.
    low = load_transformer(tmp_path, dtype=torch.bfloat16)
    dtypes = {param.dtype for param in low.parameters()}
    assert dtypes == {torch.bfloat16, torch.float32}


def test_bundled_pipeline_loads_without_warnings():
    records = []
    handler = logging.Handler(level=logging.WARNING)
    handler.emit = records.append
    loggers = [logging.getLogger("diffusers"), logging.getLogger("diffusers_syn2seq")]
    for logger in loggers:
        logger.addHandler(handler)
    try:
        model = load_transformer(bundled_model_path())
    finally:
        for logger in loggers:
            logger.removeHandler(handler)
    assert isinstance(model, DFoTTransformer3DModel)
    assert "camera_dropout" not in model.config
    assert not records, [record.getMessage() for record in records]


# ----------------------------------------------------------------------------------------------------------------
# Official checkpoints
# ----------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("config_form", ["dict", "json", "yaml"])
def test_official_checkpoint_file(dfot_fixtures_dir, tmp_path, config_form):
    tensors, config, state_dict = load_fixture(dfot_fixtures_dir, "dit3d_external_cond")
    checkpoint = tmp_path / "dfot.ckpt"
    torch.save({"state_dict": {f"diffusion_model.model.{k}": v for k, v in state_dict.items()}}, checkpoint)
    if config_form == "json":
        (tmp_path / "backbone.json").write_text(json.dumps(config))
        config = tmp_path / "backbone.json"
    elif config_form == "yaml":
        (tmp_path / "backbone.yaml").write_text(yaml.safe_dump(config))
        config = str(tmp_path / "backbone.yaml")
    model = load_transformer(checkpoint, config)
    assert type(model) is DFoTTransformer3DModel and not model.training
    assert (official_output(model, tensors) - tensors["output"]).abs().max().item() < 1e-4


def test_official_uvit_state_dict_and_safetensors(dfot_fixtures_dir, tmp_path):
    tensors, config, state_dict = load_fixture(dfot_fixtures_dir, "uvit3d_pose")
    model = load_transformer(state_dict, config)
    assert type(model) is DFoTUViT3DModel
    assert (official_output(model, tensors) - tensors["output"]).abs().max().item() < 1e-4
    save_file({k: v.contiguous() for k, v in state_dict.items()}, str(tmp_path / "dfot.safetensors"))
    assert_same_weights(load_transformer(tmp_path / "dfot.safetensors", config), model)


def test_official_checkpoint_dtype_keeps_fp32_modules(dfot_fixtures_dir):
    _, config, state_dict = load_fixture(dfot_fixtures_dir, "dit3d_continuous")
    model = load_transformer(state_dict, config, torch_dtype=torch.bfloat16)
    dtypes = {name: param.dtype for name, param in model.named_parameters()}
    assert dtypes["transformer_blocks.0.attn.to_q.weight"] == torch.bfloat16
    assert dtypes["transformer_blocks.0.norm1.linear.weight"] == torch.float32
    assert dtypes["time_embedding.linear_1.weight"] == torch.float32
    assert model.time_proj.freqs.dtype == torch.float32


# ----------------------------------------------------------------------------------------------------------------
# Errors: the argument, what was expected, what was received
# ----------------------------------------------------------------------------------------------------------------
def test_errors(dfot_fixtures_dir, tmp_path):
    _, config, state_dict = load_fixture(dfot_fixtures_dir, "dit3d_discrete")
    with pytest.raises(ValueError, match=r"`path_or_checkpoint` must be a Syn2Seq pipeline folder .*; got .*missing"
                                         r".*, which does not exist"):
        load_transformer(tmp_path / "missing")
    with pytest.raises(ValueError, match=r"`path_or_checkpoint` must be .*; got int"):
        load_transformer(3)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"`path_or_checkpoint` must be .*; got the folder .*empty.* with neither"):
        load_transformer(tmp_path / "empty")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ValueError, match=r"`path_or_checkpoint` must be .*\.safetensors.*; got the file .*notes.txt"):
        load_transformer(tmp_path / "notes.txt", config)

    DFoTTransformer3DModel(**DIT).save_pretrained(tmp_path / "model")
    with pytest.raises(ValueError, match=r"`dfot_config` is only for official DFoT checkpoint files; expected None"):
        load_transformer(tmp_path / "model", config)
    other = json.loads((tmp_path / "model" / "config.json").read_text())
    (tmp_path / "model" / "config.json").write_text(json.dumps({**other, "_class_name": "UNet2DModel"}))
    with pytest.raises(ValueError, match=r"`_class_name` one of \['DFoTTransformer3DModel', 'DFoTUViT3DModel', "
                                         r"'WanDFoTTransformer3DModel'\], got 'UNet2DModel'"):
        load_transformer(tmp_path / "model")

    (tmp_path / "pipeline").mkdir()
    (tmp_path / "pipeline" / "model_index.json").write_text("{}")
    with pytest.raises(ValueError, match=r"pipeline folder .* must have a transformer/config.json, got none"):
        load_transformer(tmp_path / "pipeline")

    with pytest.raises(ValueError, match=r"`dfot_config`: expected the backbone settings .* got None"):
        load_transformer(state_dict)
    with pytest.raises(ValueError, match=r"`dfot_config` must be a dict or the path of a JSON/YAML file .* "
                                         r"\(no such file\)"):
        load_transformer(state_dict, tmp_path / "missing.json")
    with pytest.raises(ValueError, match=r"may only be `dtype` / `torch_dtype`, got \['device_map'\]"):
        load_transformer(state_dict, config, device_map="auto")


def test_parity_script_reports_every_backbone_within_tolerance(dfot_fixtures_dir, capsys):
    assert PARITY.main(["--fixtures", str(dfot_fixtures_dir)]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if "max abs difference" in line]
    assert len(lines) == 4 and all(float(line.rsplit(" ", 1)[-1]) < 1e-4 for line in lines)
    assert PARITY.main(["--fixtures", str(dfot_fixtures_dir), "--tolerance", "1e-9"]) == 1  # differences are real
    assert PARITY.main(["--fixtures", str(dfot_fixtures_dir / "missing")]) == 1
    assert "fixtures not found" in capsys.readouterr().err
