# SPDX-License-Identifier: Apache-2.0
"""Every Python snippet of README.md runs as written (offline, in a fresh namespace and an empty folder).

The files a snippet names as the output of an earlier step are made here first: `dfot.ckpt` (an official-layout
Lightning checkpoint, from the reference fixture the snippet's config describes), `dfot-mcraft` (a converted
action-conditioned pipeline: the official-layout DiT3D with an 8-d condition and the ImageVAE fixture, converted with
`mask_first` as Minecraft is) and `runs/bundled-lora` (a LoRA adapter of the bundled model, as the README's
`train.py --train_mode lora` command writes it; that the command and this snippet agree is tested with the real run in
test_readme_commands.py).
"""

import re

import pytest
import torch
from conftest import IN_REPO_FIXTURES, REPO_ROOT
from script_loading import load_script

README = (REPO_ROOT / "README.md").read_text()
PYTHON_BLOCK = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)


def readme_snippets() -> list[tuple[str, int, str]]:
    """`(section heading, line number, code)` of each Python block of README.md."""
    snippets = []
    for match in PYTHON_BLOCK.finditer(README):
        line = README.count("\n", 0, match.start()) + 1
        headings = re.findall(r"^#+ (.+)$", README[: match.start()], re.MULTILINE)
        snippets.append((headings[-1] if headings else "top", line, match.group(1)))
    return snippets


def make_official_checkpoint(path) -> None:
    _, _, state_dict = load_script("scripts/check_dfot_parity.py").load_fixture(IN_REPO_FIXTURES, "dit3d_discrete")
    torch.save({"state_dict": {f"diffusion_model.model.{k}": v for k, v in state_dict.items()}}, path)


def make_condition_pipeline(folder) -> None:
    from test_autoencoder_dfot import official

    from diffusers_syn2seq.pipelines.conversion_dfot_pipeline import convert_dfot_pipeline

    _, dit_config, dit_weights = load_script("scripts/check_dfot_parity.py").load_fixture(IN_REPO_FIXTURES,
                                                                                          "dit3d_external_cond")
    _, vae_config, vae_weights = official("image_vae")
    dit_config = {**dit_config, "external_cond_processing": "mask_first"}
    convert_dfot_pipeline(dit_weights, dit_config, vae_weights, vae_config).save_pretrained(folder)


def make_lora_run(folder) -> None:
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    from diffusers_syn2seq import Syn2SeqPipeline, bundled_model_path

    transformer = Syn2SeqPipeline.from_pretrained(bundled_model_path()).transformer
    config = LoraConfig(r=2, lora_alpha=2, target_modules=["to_q", "to_v"], init_lora_weights=False)
    transformer.add_adapter(config)
    Syn2SeqPipeline.save_lora_weights(folder, transformer_lora_layers=get_peft_model_state_dict(transformer),
                                      transformer_lora_adapter_metadata=config.to_dict())


def test_the_readme_has_the_snippets_this_test_prepares_for():
    codes = [code for _, _, code in readme_snippets()]
    assert len(codes) >= 6
    assert any('"dfot.ckpt"' in code for code in codes) and any('"runs/bundled-lora"' in code for code in codes)
    assert not any("export_to_video" in code for code in codes)  # needs OpenCV or imageio, not installed


@pytest.mark.parametrize("section, line, code", [
    pytest.param(section, line, code, id=f"line{line}-{section}") for section, line, code in readme_snippets()])
def test_readme_snippet_runs(section, line, code, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    if '"dfot.ckpt"' in code:
        make_official_checkpoint(tmp_path / "dfot.ckpt")
    if '"dfot-mcraft"' in code:
        make_condition_pipeline(tmp_path / "dfot-mcraft")
    if '"runs/bundled-lora"' in code:
        make_lora_run(tmp_path / "runs" / "bundled-lora")
    threads = torch.get_num_threads()
    try:
        exec(compile(code, f"README.md:{line} ({section})", "exec"), {"__name__": "__readme__"})
    finally:
        torch.set_num_threads(threads)
