# SPDX-License-Identifier: Apache-2.0
"""Tests of the model-card generator and the Hub upload helper (no network: dry run and monkeypatched hub calls)."""

import json

import huggingface_hub
import pytest
from huggingface_hub import ModelCard

from diffusers_syn2seq.model_card import metrics_table, model_card_tags, save_model_card
from diffusers_syn2seq.training_utils import HUB_IGNORE_PATTERNS, files_to_upload, push_folder_to_hub

RUN = {
    "training_mode": "lora", "base_model": "someone/syn2seq-base", "repo_id": "someone/syn2seq-cooking-lora",
    "rank": 16, "lora_alpha": 16, "lora_layers": "to_q,to_k", "syn2seq_mode": "video", "segment_lengths": "16 / 8 / 16",
    "transition_source": "render", "dataset": "synthetic", "command": "accelerate launch training/train.py --x 1",
    "metrics": [{"step": 100, "psnr": 14.5, "ssim": 0.41}], "samples": ["validation/step-100/sample-0.png"],
}


def test_card_parses_with_yaml_fields(tmp_path):
    save_model_card(tmp_path, RUN)
    card = ModelCard.load(tmp_path / "README.md")
    data = card.data.to_dict()
    assert data["library_name"] == "diffusers" and data["license"] == "apache-2.0"
    assert data["base_model"] == "someone/syn2seq-base"
    assert set(data["tags"]) >= {"diffusers", "diffusers-syn2seq", "exo2ego", "lora"}
    text = card.text
    for expected in ("`video`", "16 / 8 / 16", "render", "accelerate launch training/train.py --x 1",
                     "| 100 | 14.5000 | 0.4100 |", "validation/step-100/sample-0.png", "rank 16",
                     'pipe.load_lora_weights("someone/syn2seq-cooking-lora")'):
        assert expected in text, expected


def test_full_card_has_no_lora_tag_and_local_base_is_not_yaml(tmp_path):
    save_model_card(tmp_path, {**RUN, "training_mode": "full", "base_model": str(tmp_path)})
    data = ModelCard.load(tmp_path / "README.md").data.to_dict()
    assert "lora" not in data["tags"] and "base_model" not in data  # a local folder is not a Hub base model
    assert model_card_tags("full") == ["diffusers", "diffusers-syn2seq", "exo2ego", "video-generation",
                                       "diffusion-forcing"]


def test_card_errors_and_empty_metrics(tmp_path):
    with pytest.raises(ValueError, match="training_mode"):
        save_model_card(tmp_path, {"training_mode": "partial"})
    with pytest.raises(FileNotFoundError, match="template"):
        save_model_card(tmp_path, RUN, template_path=tmp_path / "missing.md")
    assert metrics_table(None) == "No validation metrics were recorded."


def _output_folder(root):
    (root / "transformer").mkdir(parents=True)
    (root / "transformer" / "config.json").write_text("{}")
    (root / "README.md").write_text("card")
    (root / "checkpoint-10").mkdir()
    (root / "checkpoint-10" / "optimizer.bin").write_text("x")
    (root / ".checkpoint-20.tmp").mkdir()
    (root / ".checkpoint-20.tmp" / "optimizer.bin").write_text("x")
    (root / "logs").mkdir()
    (root / "logs" / "events").write_text("x")
    return root


def test_dry_run_writes_exactly_the_upload(tmp_path, monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("the dry run touched the hub")

    monkeypatch.setattr(huggingface_hub, "create_repo", no_network)
    monkeypatch.setattr(huggingface_hub, "upload_folder", no_network)
    folder = _output_folder(tmp_path / "out")
    manifest = push_folder_to_hub(folder, "someone/repo", dry_run_dir=tmp_path / "dry")
    assert sorted(f["path"] for f in manifest["files"]) == ["README.md", "transformer/config.json"]
    copied = sorted(p.relative_to(tmp_path / "dry" / "files").as_posix()
                    for p in (tmp_path / "dry" / "files").rglob("*") if p.is_file())
    assert copied == ["README.md", "transformer/config.json"]
    assert json.loads((tmp_path / "dry" / "upload_manifest.json").read_text())["repo_id"] == "someone/repo"


def test_push_calls_create_repo_and_upload_folder(tmp_path, monkeypatch):
    calls = {}

    class Repo:
        repo_id = "someone/repo"

    def create_repo(repo_id, **kwargs):
        calls["create"] = (repo_id, kwargs)
        return Repo()

    def upload_folder(**kwargs):
        calls["upload"] = kwargs
        return "https://hub/commit/1"

    monkeypatch.setattr(huggingface_hub, "create_repo", create_repo)
    monkeypatch.setattr(huggingface_hub, "upload_folder", upload_folder)
    folder = _output_folder(tmp_path / "out")
    manifest = push_folder_to_hub(folder, "someone/repo", private=True)
    assert calls["create"] == ("someone/repo", {"exist_ok": True, "token": None, "private": True})
    assert calls["upload"]["folder_path"] == str(folder) and calls["upload"]["ignore_patterns"] == HUB_IGNORE_PATTERNS
    assert manifest["commit_url"] == "https://hub/commit/1" and not manifest["dry_run"]
    # the ignore patterns really exclude the training state (same matching rule as huggingface_hub)
    from huggingface_hub.utils import filter_repo_objects

    all_files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    assert sorted(filter_repo_objects(all_files, ignore_patterns=HUB_IGNORE_PATTERNS)) == files_to_upload(folder)


def test_bad_repo_id(tmp_path):
    with pytest.raises(ValueError, match="--hub_model_id must be a Hub repo id"):
        push_folder_to_hub(tmp_path, str(tmp_path), dry_run_dir=tmp_path / "dry")
