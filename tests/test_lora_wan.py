# SPDX-License-Identifier: Apache-2.0
"""LoRA on `WanDFoTTransformer3DModel`: per-backbone targets (`ffn.net`), save / load / fuse / unfuse / unload."""

import pytest
import torch
from peft import LoraConfig
from peft.utils import get_peft_model_state_dict
from safetensors import safe_open

from diffusers_syn2seq import FlowMatchDiffusionForcingScheduler, Syn2SeqPipeline, WanDFoTTransformer3DModel
from diffusers_syn2seq.models import DFoTTransformer3DModel
from diffusers_syn2seq.models.transformer_wan_dfot import WAN_LORA_TARGETS
from diffusers_syn2seq.training_utils import DEFAULT_LORA_TARGETS, default_lora_targets

TINY = dict(patch_size=2, num_attention_heads=2, attention_head_dim=12, in_channels=4, out_channels=4, text_dim=16,
            freq_dim=256, ffn_dim=32, num_layers=2, rope_max_seq_len=32, sample_size=8, max_frames=6,
            prompt_length=7)


def tiny_wrapper(backbone: str) -> WanDFoTTransformer3DModel:
    torch.manual_seed(0)
    model = WanDFoTTransformer3DModel(backbone_type=backbone, inject_sample_info=backbone == "skyreels-v2-df", **TINY)
    model.set_prompt_embeds(torch.randn(5, 16))
    return model.eval()


def pipeline(backbone: str) -> Syn2SeqPipeline:
    return Syn2SeqPipeline(transformer=tiny_wrapper(backbone), scheduler=FlowMatchDiffusionForcingScheduler(),
                           mode="video")


def forward(pipe: Syn2SeqPipeline) -> torch.Tensor:
    generator = torch.Generator().manual_seed(5)
    latents = torch.randn(2, 4, 3, 8, 8, generator=generator)
    with torch.no_grad():
        return pipe.transformer(latents, torch.tensor([[0.0, 300.0, 900.0]] * 2), return_dict=False)[0]


def test_default_targets_follow_the_backbone():
    assert default_lora_targets(tiny_wrapper("wan")) == WAN_LORA_TARGETS
    assert "ffn.net.0.proj" in WAN_LORA_TARGETS and "ff.net.0.proj" not in WAN_LORA_TARGETS
    dit = DFoTTransformer3DModel(in_channels=3, sample_size=8, max_frames=4, patch_size=2, num_layers=1,
                                 num_attention_heads=2, attention_head_dim=8, noise_embedding_dim=16)
    assert default_lora_targets(dit) == DEFAULT_LORA_TARGETS


@pytest.mark.parametrize("backbone", ["skyreels-v2-df", "wan"])
def test_lora_save_load_fuse_round_trip(tmp_path, backbone):
    trained = tiny_wrapper(backbone)
    config = LoraConfig(r=4, lora_alpha=8, init_lora_weights=True, target_modules=default_lora_targets(trained))
    trained.add_adapter(config)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():  # as after training: non-zero B matrices
        for name, parameter in trained.named_parameters():
            if "lora_B" in name:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.2)
    state = get_peft_model_state_dict(trained)
    # self- and cross-attention and the feed-forward of every block are adapted
    for module in ("attn1.to_q", "attn2.to_k", "attn1.to_out.0", "ffn.net.0.proj", "ffn.net.2"):
        assert any(f"blocks.1.{module}.lora_A" in key for key in state), module
    Syn2SeqPipeline.save_lora_weights(tmp_path, transformer_lora_layers=state,
                                      transformer_lora_adapter_metadata=config.to_dict())
    with safe_open(str(tmp_path / "pytorch_lora_weights.safetensors"), "pt") as f:
        # the backbone's own names: the file diffusers' SkyReels-V2 / Wan pipelines read (tests/test_lora_travel.py)
        assert all(key.startswith("transformer.blocks.") for key in f.keys())

    pipe = pipeline(backbone)
    base = forward(pipe)
    pipe.load_lora_weights(tmp_path, adapter_name="camera")
    with_lora = forward(pipe)
    with torch.no_grad():
        expected = trained(torch.randn(2, 4, 3, 8, 8, generator=torch.Generator().manual_seed(5)),
                           torch.tensor([[0.0, 300.0, 900.0]] * 2)).sample
    torch.testing.assert_close(with_lora, expected, atol=1e-5, rtol=1e-5)
    assert (with_lora - base).abs().max() > 1e-3
    pipe.fuse_lora()
    torch.testing.assert_close(forward(pipe), with_lora, atol=1e-5, rtol=1e-5)
    pipe.unfuse_lora()
    torch.testing.assert_close(forward(pipe), with_lora, atol=1e-5, rtol=1e-5)
    pipe.unload_lora_weights()
    torch.testing.assert_close(forward(pipe), base, atol=1e-6, rtol=1e-6)
