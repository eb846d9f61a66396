# SPDX-License-Identifier: Apache-2.0
"""Tests of `Syn2SeqLoraLoaderMixin`: diffusers key format, metadata round trip, load / fuse / unfuse / unload."""

import json

import pytest
import torch
from peft import LoraConfig
from peft.utils import get_peft_model_state_dict
from safetensors import safe_open

from diffusers_syn2seq.loaders import Syn2SeqLoraLoaderMixin
from diffusers_syn2seq.models import DFoTTransformer3DModel
from diffusers_syn2seq.pipelines import Syn2SeqPipeline
from diffusers_syn2seq.schedulers import DiffusionForcingScheduler

SIZE = 8
TARGETS = ["to_q", "to_k", "to_v", "to_out.0", "ff.net.0.proj", "ff.net.2"]

if issubclass(Syn2SeqPipeline, Syn2SeqLoraLoaderMixin):
    _Pipe = Syn2SeqPipeline
else:  # until the lead adds the mixin to the pipeline's bases

    class _Pipe(Syn2SeqPipeline, Syn2SeqLoraLoaderMixin):
        pass


def tiny_transformer(seed: int = 0) -> DFoTTransformer3DModel:
    torch.manual_seed(seed)
    model = DFoTTransformer3DModel(
        in_channels=3, sample_size=SIZE, max_frames=6, patch_size=2, num_layers=2, num_attention_heads=2,
        attention_head_dim=8, noise_embedding_dim=16,
    )
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():  # AdaLN-zero would make every output 0 and hide LoRA effects
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=generator) * 0.1)
    return model.eval()


def random_lora(model: torch.nn.Module, targets: list[str], seed: int = 1, alpha: int = 8, rank: int = 4
                ) -> LoraConfig:
    """Add an adapter whose B matrices are non-zero (as after training, so it changes the output); its config."""
    config = LoraConfig(r=rank, lora_alpha=alpha, init_lora_weights=True, target_modules=targets)
    model.add_adapter(config)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=generator) * 0.2)
    return config


def lora_file(tmp_path, rank: int = 4, alpha: int = 8, seed: int = 1):
    """Train-free LoRA: add an adapter, give its B matrices non-zero values, save it through the mixin."""
    model = tiny_transformer()
    config = random_lora(model, TARGETS, seed, alpha, rank)
    state = get_peft_model_state_dict(model)
    Syn2SeqLoraLoaderMixin.save_lora_weights(
        tmp_path, transformer_lora_layers=state, transformer_lora_adapter_metadata=config.to_dict()
    )
    return tmp_path / "pytorch_lora_weights.safetensors", model


def pipeline() -> _Pipe:
    pipe = _Pipe(transformer=tiny_transformer(), scheduler=DiffusionForcingScheduler())
    pipe.set_progress_bar_config(disable=True)
    return pipe


def forward(pipe, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(1, 3, 4, SIZE, SIZE, generator=generator)
    with torch.no_grad():
        return pipe.transformer(x, torch.tensor([[0, 200, 500, 900]]), return_dict=False)[0]


def test_file_format_keys_and_metadata(tmp_path):
    path, model = lora_file(tmp_path, rank=4, alpha=8)
    assert path.is_file()
    with safe_open(path, "pt") as f:
        keys = list(f.keys())
        metadata = f.metadata()
    assert keys and all(k.startswith("transformer.") for k in keys)
    assert "transformer.transformer_blocks.0.attn.to_q.lora_A.weight" in keys
    assert "transformer.transformer_blocks.1.ff.net.2.lora_B.weight" in keys
    saved = json.loads(metadata["lora_adapter_metadata"])
    assert saved["transformer.r"] == 4 and saved["transformer.lora_alpha"] == 8
    state, meta = _Pipe.lora_state_dict(tmp_path, return_lora_metadata=True)
    assert set(state) == set(keys) and meta["transformer.r"] == 4


def test_load_matches_trained_model_and_fuse_unfuse(tmp_path):
    _, trained = lora_file(tmp_path)
    pipe = pipeline()
    base = forward(pipe)
    pipe.load_lora_weights(tmp_path, adapter_name="syn2seq")
    assert pipe.get_active_adapters() == ["syn2seq"]
    with_lora = forward(pipe)
    assert not torch.allclose(with_lora, base, atol=1e-4), "LoRA had no effect"
    with torch.no_grad():
        expected = trained(torch.randn(1, 3, 4, SIZE, SIZE, generator=torch.Generator().manual_seed(0)),
                           torch.tensor([[0, 200, 500, 900]]), return_dict=False)[0]
    torch.testing.assert_close(with_lora, expected, atol=1e-5, rtol=1e-5)

    pipe.fuse_lora(lora_scale=1.0)
    torch.testing.assert_close(forward(pipe), with_lora, atol=1e-5, rtol=1e-5)
    pipe.unfuse_lora()
    torch.testing.assert_close(forward(pipe), with_lora, atol=1e-5, rtol=1e-5)  # adapter still active

    pipe.set_adapters("syn2seq", adapter_weights=0.0)
    torch.testing.assert_close(forward(pipe), base, atol=1e-5, rtol=1e-5)
    pipe.set_adapters("syn2seq", adapter_weights=1.0)
    pipe.unload_lora_weights()
    torch.testing.assert_close(forward(pipe), base, atol=1e-6, rtol=1e-6)
    assert not any("lora" in name for name, _ in pipe.transformer.named_parameters())


def test_fuse_scale_and_generation_runs(tmp_path):
    lora_file(tmp_path)
    pipe = pipeline()
    pipe.load_lora_weights(tmp_path)
    pipe.fuse_lora(lora_scale=0.5)
    pipe.unload_lora_weights()  # fused weights stay
    video = torch.rand(1, 2, 3, SIZE, SIZE)
    frames = pipe(video, num_frames=2, num_transition_frames=1, num_inference_steps=2, output_type="pt").frames
    assert frames.shape[:2] == (1, 2) and torch.isfinite(frames).all()


def test_bad_inputs(tmp_path):
    pipe = pipeline()
    with pytest.raises(ValueError, match="contain 'lora'"):
        pipe.load_lora_weights({"transformer.proj_out.weight": torch.zeros(1)})
    with pytest.raises(ValueError, match="transformer_lora_layers"):
        _Pipe.save_lora_weights(tmp_path, transformer_lora_layers={})
