# SPDX-License-Identifier: Apache-2.0
"""SkyReels-V2 / Wan LoRA files travel both ways between `Syn2SeqPipeline` and diffusers' own pipelines
(`SkyReelsV2DiffusionForcingPipeline`, `WanPipeline`), original-format Wan LoRAs load through diffusers' converter,
and a LoRA that adapts nothing is an error."""

import copy

import pytest
import torch
from diffusers import SkyReelsV2DiffusionForcingPipeline, WanPipeline
from peft.utils import get_peft_model_state_dict
from safetensors import safe_open
from safetensors.torch import save_file
from test_lora_loader import random_lora
from test_lora_wan import tiny_wrapper

from diffusers_syn2seq import FlowMatchDiffusionForcingScheduler, Syn2SeqPipeline
from diffusers_syn2seq.training_utils import default_lora_targets

DIFFUSERS_PIPELINES = {"skyreels-v2-df": SkyReelsV2DiffusionForcingPipeline, "wan": WanPipeline}


def syn2seq_pipeline(backbone: str) -> Syn2SeqPipeline:
    return Syn2SeqPipeline(transformer=tiny_wrapper(backbone), scheduler=FlowMatchDiffusionForcingScheduler(),
                           mode="video")


def diffusers_pipeline(backbone: str):
    """diffusers' own pipeline around the same backbone weights (text encoder, VAE and scheduler play no part in
    loading a LoRA)."""
    transformer = copy.deepcopy(tiny_wrapper(backbone).backbone)
    return DIFFUSERS_PIPELINES[backbone](tokenizer=None, text_encoder=None, vae=None, scheduler=None,
                                         transformer=transformer)


def backbone_forward(backbone_model, backbone: str) -> torch.Tensor:
    """One forward of a bare SkyReels-V2 / Wan transformer with per-frame timesteps (as the wrapper calls it)."""
    generator = torch.Generator().manual_seed(5)
    latents = torch.randn(2, 4, 3, 8, 8, generator=generator)
    text = torch.randn(2, 7, 16, generator=generator)
    timestep = torch.tensor([[0.0, 300.0, 900.0]] * 2)
    kwargs = {}
    if backbone == "skyreels-v2-df":
        kwargs = {"enable_diffusion_forcing": True, "fps": [0]}
    else:
        timestep = timestep.repeat_interleave(16, dim=1)  # per-token timesteps: (8 / 2) ** 2 tokens per frame
    with torch.no_grad():
        return backbone_model(hidden_states=latents, timestep=timestep, encoder_hidden_states=text,
                              return_dict=False, **kwargs)[0]


@pytest.mark.parametrize("backbone", ["skyreels-v2-df", "wan"])
def test_our_lora_file_loads_unchanged_in_diffusers_pipelines(tmp_path, backbone):
    trained = tiny_wrapper(backbone)
    config = random_lora(trained, default_lora_targets(trained))
    Syn2SeqPipeline.save_lora_weights(tmp_path, transformer_lora_layers=get_peft_model_state_dict(trained),
                                      transformer_lora_adapter_metadata=config.to_dict())
    with safe_open(str(tmp_path / "pytorch_lora_weights.safetensors"), "pt") as f:
        keys = list(f.keys())
    assert keys and all(key.startswith("transformer.blocks.") for key in keys)  # diffusers' SkyReels / Wan names

    theirs = diffusers_pipeline(backbone)
    base = backbone_forward(theirs.transformer, backbone)
    theirs.load_lora_weights(tmp_path)
    with_lora = backbone_forward(theirs.transformer, backbone)
    expected = backbone_forward(trained.backbone, backbone)
    assert (expected - base).abs().max() > 1e-3  # the LoRA changes the output
    torch.testing.assert_close(with_lora, expected, atol=1e-5, rtol=1e-5)

    ours = syn2seq_pipeline(backbone)  # and the same file still loads here
    ours.load_lora_weights(tmp_path)
    torch.testing.assert_close(backbone_forward(ours.transformer.backbone, backbone), expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("backbone", ["skyreels-v2-df", "wan"])
def test_diffusers_lora_file_loads_in_syn2seq_pipeline(tmp_path, backbone):
    theirs = diffusers_pipeline(backbone)
    config = random_lora(theirs.transformer, ["to_q", "to_k", "to_v", "to_out.0", "ffn.net.0.proj", "ffn.net.2"])
    type(theirs).save_lora_weights(tmp_path, transformer_lora_layers=get_peft_model_state_dict(theirs.transformer),
                                   transformer_lora_adapter_metadata=config.to_dict())
    expected = backbone_forward(theirs.transformer, backbone)

    ours = syn2seq_pipeline(backbone)
    base = ours.transformer(torch.zeros(1, 4, 2, 8, 8), torch.tensor([[0.0, 500.0]])).sample
    ours.load_lora_weights(tmp_path, adapter_name="community")
    torch.testing.assert_close(backbone_forward(ours.transformer.backbone, backbone), expected, atol=1e-5, rtol=1e-5)
    # through the wrapper's own forward too, and it unloads to the base
    assert (ours.transformer(torch.zeros(1, 4, 2, 8, 8), torch.tensor([[0.0, 500.0]])).sample - base).abs().max() > 1e-4
    ours.unload_lora_weights()
    torch.testing.assert_close(ours.transformer(torch.zeros(1, 4, 2, 8, 8), torch.tensor([[0.0, 500.0]])).sample, base)


def original_format_lora(seed: int = 3) -> dict[str, torch.Tensor]:
    """A LoRA in the original Wan key format (`diffusion_model.blocks.N.self_attn.q.lora_A.weight`), on the tiny
    backbone (dim 24, ffn 32, text 16), with an `alpha` entry per module, as community trainers write it."""
    generator = torch.Generator().manual_seed(seed)
    shapes = {"self_attn.q": (24, 24), "self_attn.k": (24, 24), "self_attn.v": (24, 24), "self_attn.o": (24, 24),
              "cross_attn.q": (24, 24), "cross_attn.k": (24, 24), "ffn.0": (32, 24), "ffn.2": (24, 32)}
    state = {}
    for block in range(2):
        for module, (out_features, in_features) in shapes.items():
            key = f"diffusion_model.blocks.{block}.{module}"
            state[f"{key}.lora_A.weight"] = torch.randn(4, in_features, generator=generator) * 0.3
            state[f"{key}.lora_B.weight"] = torch.randn(out_features, 4, generator=generator) * 0.3
            state[f"{key}.alpha"] = torch.tensor(8.0)
    return state


@pytest.mark.parametrize("backbone", ["skyreels-v2-df", "wan"])
def test_original_wan_format_is_converted_as_diffusers_does(tmp_path, backbone):
    save_file(original_format_lora(), tmp_path / "wan_lora.safetensors")
    theirs = diffusers_pipeline(backbone)
    theirs.load_lora_weights(tmp_path, weight_name="wan_lora.safetensors")  # diffusers' own conversion: the reference
    expected = backbone_forward(theirs.transformer, backbone)

    ours = syn2seq_pipeline(backbone)
    base = backbone_forward(ours.transformer.backbone, backbone)
    ours.load_lora_weights(tmp_path, weight_name="wan_lora.safetensors")
    adapted = {name.split(".lora_")[0] for name, _ in ours.transformer.named_parameters() if "lora_A" in name}
    assert len(adapted) == 16 and "backbone.blocks.1.attn2.to_k" in adapted and "backbone.blocks.0.ffn.net.2" in adapted
    got = backbone_forward(ours.transformer.backbone, backbone)
    assert (got - base).abs().max() > 1e-3
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_lora_that_matches_no_module_is_an_error(tmp_path):
    pipe = syn2seq_pipeline("wan")
    foreign = {"transformer.transformer_blocks.0.attn.to_q.lora_A.weight": torch.zeros(4, 24),
               "transformer.transformer_blocks.0.attn.to_q.lora_B.weight": torch.zeros(24, 4)}  # a DFoT DiT's LoRA
    with pytest.raises(ValueError, match=r"LoRA state dict must adapt modules of the WanDFoTTransformer3DModel .*got 2 "
                                         r"keys that name none of them, such as \['backbone.transformer_blocks.0.attn"):
        pipe.load_lora_weights(foreign)
    assert not getattr(pipe.transformer, "peft_config", None)  # nothing was injected
    # an original-format Wan LoRA on a DFoT DiT adapts nothing either
    from test_lora_loader import pipeline as dfot_pipeline

    with pytest.raises(ValueError, match="name none of them, such as \\['blocks.0"):
        dfot_pipeline().load_lora_weights(original_format_lora())


def test_legacy_backbone_prefixed_files_still_load():
    """Files written before the backbone names (`transformer.backbone.blocks...`) load as before."""
    trained = tiny_wrapper("wan")
    random_lora(trained, default_lora_targets(trained), alpha=4)  # a plain dict carries no metadata: alpha = rank
    state = {f"transformer.{k}": v for k, v in get_peft_model_state_dict(trained).items()}
    assert all(key.startswith("transformer.backbone.") for key in state)
    pipe = syn2seq_pipeline("wan")
    pipe.load_lora_weights(state)
    torch.testing.assert_close(backbone_forward(pipe.transformer.backbone, "wan"),
                               backbone_forward(trained.backbone, "wan"), atol=1e-5, rtol=1e-5)
