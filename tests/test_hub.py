# SPDX-License-Identifier: Apache-2.0
"""Tests of the Hub upload helper (no network: dry run and monkeypatched hub calls)."""

import json

import huggingface_hub
import pytest

from diffusers_syn2seq.hub import HUB_IGNORE_PATTERNS, describe_upload, files_to_upload, push_folder_to_hub


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
    assert describe_upload(manifest) == (
        "hub dry run: nothing was uploaded; the 2 files that would go to someone/repo are in "
        f"{tmp_path / 'dry' / 'files'} (list and sizes: {tmp_path / 'dry' / 'upload_manifest.json'})")


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
    assert describe_upload(manifest) == "uploaded 2 files to someone/repo (https://hub/commit/1)"
    # the ignore patterns really exclude the training state (same matching rule as huggingface_hub)
    from huggingface_hub.utils import filter_repo_objects

    all_files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    assert sorted(filter_repo_objects(all_files, ignore_patterns=HUB_IGNORE_PATTERNS)) == files_to_upload(folder)


def test_bad_repo_id(tmp_path):
    with pytest.raises(ValueError, match="--hub_model_id must be a Hub repo id"):
        push_folder_to_hub(tmp_path, str(tmp_path), dry_run_dir=tmp_path / "dry")
