# SPDX-License-Identifier: Apache-2.0
"""Upload of a training output folder to the Hugging Face Hub, or its dry run.

Training state, logs and caches never leave the machine (`HUB_IGNORE_PATTERNS`); the dry run copies exactly the files
an upload would send to a local folder, with a manifest, and touches no network.
"""

from __future__ import annotations

import fnmatch
import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["HUB_IGNORE_PATTERNS", "files_to_upload", "push_folder_to_hub"]

# Never uploaded: training state, logs, the dry-run copy itself.
HUB_IGNORE_PATTERNS = ["checkpoint-*", "checkpoint-*/*", ".checkpoint-*", ".checkpoint-*/*", "logs/*", "hub_dry_run/*",
                       "latent_cache*", "*.tmp"]


def files_to_upload(folder: str | os.PathLike, ignore_patterns: Sequence[str] = HUB_IGNORE_PATTERNS) -> list[str]:
    """Relative POSIX paths under `folder` that `upload_folder(..., ignore_patterns=...)` would send, sorted."""
    root = Path(folder)
    files = []
    for path in sorted(root.rglob("*")):
        if not path.is_file():
            continue
        rel = path.relative_to(root).as_posix()
        if any(fnmatch.fnmatch(rel, pattern) for pattern in ignore_patterns):
            continue
        files.append(rel)
    return files


def push_folder_to_hub(
    folder: str | os.PathLike,
    repo_id: str,
    token: str | None = None,
    private: bool = False,
    commit_message: str = "Upload Syn2Seq training output",
    dry_run_dir: str | os.PathLike | None = None,
    ignore_patterns: Sequence[str] = HUB_IGNORE_PATTERNS,
) -> dict[str, Any]:
    """Upload `folder` to the Hub model repo `repo_id` (`create_repo` then `upload_folder`), or, with `dry_run_dir`,
    copy exactly the files that would be uploaded to `dry_run_dir/files/` and write `dry_run_dir/upload_manifest.json`
    (repo, files, sizes), touching no network.

    Returns:
        the manifest dict (`repo_id`, `files`, `dry_run`, and `commit_url` for a real upload).
    """
    if not repo_id or os.path.isdir(repo_id) or repo_id.count("/") > 1:
        raise ValueError(f"--hub_model_id must be a Hub repo id like 'user/name', got {repo_id!r}.")
    files = files_to_upload(folder, ignore_patterns)
    manifest: dict[str, Any] = {
        "repo_id": repo_id,
        "repo_type": "model",
        "private": private,
        "commit_message": commit_message,
        "files": [{"path": f, "size": (Path(folder) / f).stat().st_size} for f in files],
        "ignore_patterns": list(ignore_patterns),
        "dry_run": dry_run_dir is not None,
    }
    if dry_run_dir is not None:
        target = Path(dry_run_dir)
        if target.exists():
            shutil.rmtree(target)
        for rel in files:
            (target / "files" / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(Path(folder) / rel, target / "files" / rel)
        target.mkdir(parents=True, exist_ok=True)
        manifest["dry_run_dir"] = str(target)
        (target / "upload_manifest.json").write_text(json.dumps(manifest, indent=2))
        return manifest
    from huggingface_hub import create_repo, upload_folder

    repo_id = create_repo(repo_id, exist_ok=True, token=token, private=private).repo_id
    commit = upload_folder(repo_id=repo_id, folder_path=str(folder), commit_message=commit_message, token=token,
                           ignore_patterns=list(ignore_patterns))
    manifest["repo_id"] = repo_id
    manifest["commit_url"] = str(getattr(commit, "commit_url", commit))
    return manifest


def describe_upload(manifest: dict[str, Any]) -> str:
    """One line for the log of `push_folder_to_hub`'s result: what was uploaded where, or, for a dry run, that nothing
    was uploaded and where the files that would have been are."""
    n, repo = len(manifest["files"]), manifest["repo_id"]
    if manifest["dry_run"]:
        target = Path(manifest["dry_run_dir"])
        return (f"hub dry run: nothing was uploaded; the {n} files that would go to {repo} are in {target / 'files'} "
                f"(list and sizes: {target / 'upload_manifest.json'})")
    return f"uploaded {n} files to {repo} ({manifest.get('commit_url', 'no commit URL')})"
