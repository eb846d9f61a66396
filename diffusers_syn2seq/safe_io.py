# SPDX-License-Identifier: Apache-2.0
"""Safe file handling shared by the data layer and the command-line tools: containment of table paths under a root,
safe names, output checks before heavy work, atomic writes, file modes and leftovers of killed writers.

- `resolve_inside(root, relative, what)`: a path read from a table (or any untrusted file) joined to its root,
  resolved with symlinks, and refused unless it stays under the resolved root.
- `check_safe_name(value, what)`: a single folder-name component (no separators, no leading dot).
- `check_output_dir` / `check_output_file`: an output can be created and written, checked before hours of work.
- `atomic_write_text` / `publish_folder`: nothing half-written is ever visible under the final name.
- `fix_weight_modes`: safetensors' `save_file` (0.8 here) creates its files with mode 0600 whatever the umask; weights
  written here get the mode every other output file gets (0644 under the usual umask 022).
- `remove_stale_temporaries`: temporary files and folders of killed writers (named with their process id) whose
  process is gone.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import uuid
from collections.abc import Iterable
from pathlib import Path

__all__ = [
    "atomic_write_bytes",
    "atomic_write_text",
    "check_output_dir",
    "check_output_file",
    "check_safe_name",
    "default_file_mode",
    "fix_weight_modes",
    "publish_folder",
    "remove_stale_temporaries",
    "resolve_inside",
]

# One path component: letters, digits, `_`, `-`, `.` and `+`, not starting with a dot (no hidden or `..` names).
_SAFE_NAME = re.compile(r"[A-Za-z0-9_+\-][A-Za-z0-9_.+\-]{0,199}")


def check_safe_name(value: object, what: str) -> str:
    """`value` if it is a safe single folder name (the pattern above, at most 200 characters), else `ValueError`
    naming `what`."""
    if not isinstance(value, str) or not _SAFE_NAME.fullmatch(value):
        raise ValueError(f"{what}: expected a folder name of letters, digits, '_', '-', '.', '+' that does not start "
                         f"with '.' (at most 200 characters), got {value!r}")
    return value


def resolve_inside(root: str | os.PathLike, relative: object, what: str) -> Path:
    """`root / relative` with symlinks resolved, refused (`ValueError` naming `what`) unless it stays under the
    resolved `root`: absolute paths, `..` escapes and symlinks that point outside are never opened."""
    if not isinstance(relative, str) or not relative or "\x00" in relative:
        raise ValueError(f"{what}: expected a relative path inside {str(root)!r}, got {relative!r}")
    if os.path.isabs(relative) or relative.startswith(("/", "\\")):
        raise ValueError(f"{what}: expected a path relative to {str(root)!r}, got the absolute path {relative!r}")
    base = Path(root).resolve()
    path = (base / relative).resolve()
    if path != base and base not in path.parents:
        raise ValueError(f"{what}: {relative!r} resolves to {str(path)!r}, outside {str(base)!r}; files outside "
                         "the root are never read")
    return path


def _check_writable_folder(folder: Path, flag: str) -> None:
    probe = folder / f".syn2seq-write-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise OSError(error.errno, f"{flag}: expected a writable folder, got {str(folder)!r} ({error.strerror})",
                      str(folder)) from None


def check_output_dir(path: str | os.PathLike, flag: str) -> Path:
    """Create the output folder `path` (with parents) and check that files can be written into it; errors name the
    flag and the path (`ValueError` for a file in the way, `OSError` for read-only or missing permissions)."""
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{flag}: expected a folder, got {str(folder)!r}, which is a file")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise ValueError(f"{flag}: expected a folder path, got {str(folder)!r} (a parent is a file)") from None
    except OSError as error:
        raise OSError(error.errno, f"{flag}: cannot create the folder {str(folder)!r} ({error.strerror})",
                      str(folder)) from None
    _check_writable_folder(folder, flag)
    return folder


def check_output_file(path: str | os.PathLike, flag: str) -> Path:
    """Check that the output file `path` can be written (its folder is created): not a folder, folder writable."""
    file = Path(path)
    if file.is_dir():
        raise ValueError(f"{flag}: expected a file path, got {str(file)!r}, which is a folder")
    check_output_dir(file.parent, flag)
    return file


def default_file_mode() -> int:
    """The mode a new file gets from `open()` under the current umask (0o644 under umask 022)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def fix_weight_modes(paths: Iterable[str | os.PathLike]) -> None:
    """Give `*.safetensors` files under `paths` (files or folders) the default file mode when they have the private
    mode 0600 that safetensors' `save_file` gives them (other modes are left alone)."""
    mode = default_file_mode()
    for path in map(Path, paths):
        files = path.rglob("*.safetensors") if path.is_dir() else [path]
        for file in files:
            if file.is_file() and stat.S_IMODE(file.stat().st_mode) == 0o600 and mode != 0o600:
                file.chmod(mode)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write `data` to `path` through a temporary file in the same folder and a rename: on any error (disk full,
    read-only) the old file stays as it was and the temporary file is removed; a reader never sees a partial file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """`atomic_write_bytes` of `text` encoded as UTF-8."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def publish_folder(staging: Path, destination: Path, last: str | None = None) -> None:
    """Move every entry of the complete folder `staging` into `destination` (replacing entries of the same name),
    `last` after all others, then remove `staging`. When `staging` has `last` (e.g. `model_index.json`), the old one is
    removed from `destination` first, so a reader never sees it next to a mix of old and new entries."""
    if last is not None and (staging / last).exists() and (destination / last).exists():
        (destination / last).unlink()
    entries = sorted(staging.iterdir(), key=lambda p: p.name == last)
    for entry in entries:
        target = destination / entry.name
        if target.is_dir() and not target.is_symlink():
            old = destination / f".{entry.name}.old-{os.getpid()}"
            os.replace(target, old)
            os.replace(entry, target)
            shutil.rmtree(old)
        else:
            os.replace(entry, target)
    staging.rmdir()


_PID_NAMES = (
    re.compile(r"\.tmp-.+-(\d+)"),  # clip folder being written (`write_clip`)
    re.compile(r"\.old-.+-(\d+)"),  # clip folder being replaced (`write_clip`)
    re.compile(r"\..+\.(\d+)\.tmp"),  # file being written (`write_video`, `write_metadata`, `atomic_write_text`)
)


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def remove_stale_temporaries(folders: Iterable[str | os.PathLike]) -> list[Path]:
    """Remove the temporary files and folders (names above, with the writer's process id) directly inside `folders`
    whose process is no longer running: what a killed writer leaves. Returns what was removed."""
    removed = []
    for folder in map(Path, folders):
        if not folder.is_dir():
            continue
        for entry in sorted(folder.iterdir()):
            match = next((m for pattern in _PID_NAMES if (m := pattern.fullmatch(entry.name))), None)
            if match is None or _process_alive(int(match.group(1))):
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
            removed.append(entry)
    return removed
