# SPDX-License-Identifier: Apache-2.0
"""No code runs from a checkpoint, no file outside a dataset is read, no checkpoint is lost or listed incomplete.

Crafted pickles that write a marker file when unpickled are planted where a checkpoint holds pickles; resuming must
never create the marker. Dataset tables pointing outside their root (`..`, absolute paths, symlinks) are refused.
Checkpoint folders in every state a kill can leave them in (half-written, renamed for deletion, half-deleted, without
the completion marker) are never listed or resumed as complete.
"""

import errno
import json
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from accelerate import Accelerator
from diffusers.training_utils import EMAModel
from script_loading import REPO, load_script

from diffusers_syn2seq.cli_support import run_tool
from diffusers_syn2seq.data import Syn2SeqClipDataset, load_metadata
from diffusers_syn2seq.data.dataset import collect_clip_rows, write_metadata
from diffusers_syn2seq.safe_io import default_file_mode
from diffusers_syn2seq.training_utils import (
    CHECKPOINT_MARKER,
    EMA_WEIGHTS_NAME,
    checkpoint_steps,
    load_ema_state,
    loadable_checkpoint,
    prune_checkpoints,
    resolve_checkpoint,
    save_checkpoint_atomically,
    save_ema_state,
)

RES, FRAMES, TRANSITION = 16, 6, 4


class _WritesMarker:
    """Unpickling this runs code (it writes `marker`); a safe loader must refuse it."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').write('code ran')",))


def plant_pickle(path: Path, marker: Path) -> None:
    torch.save(_WritesMarker(marker), path)


def test_the_crafted_pickle_runs_code_when_unpickled(tmp_path):
    """The payload is real: unrestricted unpickling writes the marker, so the tests below can fail."""
    marker = tmp_path / "marker"
    plant_pickle(tmp_path / "payload.pkl", marker)
    torch.load(tmp_path / "payload.pkl", weights_only=False)
    assert marker.read_text() == "code ran"


# ------------------------------------------------------------------------------------------------ training resume
@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data") / "synth"
    load_script("training/make_synthetic_dataset.py").main([
        "--output", str(root), "--num_train", "2", "--num_validation", "0", "--num_test", "0", "--num_frames",
        str(FRAMES), "--resolution", str(RES), "--transition_frames", str(TRANSITION)])
    return root


def _train_args(dataset: Path, output: Path, *extra) -> list[str]:
    return ["--dataset_dir", str(dataset), "--output_dir", str(output), "--model_preset", "dit-tiny", "--max_frames",
            "8", "--report_to", "none", "--mixed_precision", "no", "--train_batch_size", "2", "--max_train_steps",
            "2", "--checkpointing_steps", "1", "--use_ema", "--ema_decay", "0.9", *map(str, extra)]


@pytest.fixture(scope="module")
def trained(dataset, tmp_path_factory) -> Path:
    output = tmp_path_factory.mktemp("run") / "out"
    load_script("training/train.py", "syn2seq_train_security").main(_train_args(dataset, output))
    return output


def _copy_run(trained: Path, tmp_path: Path) -> Path:
    import shutil

    copy = tmp_path / "out"
    shutil.copytree(trained, copy)
    return copy


def _resume(dataset: Path, output: Path, checkpoint: str = "checkpoint-1"):
    train = load_script("training/train.py", "syn2seq_train_security")
    return train.main(_train_args(dataset, output, "--resume_from_checkpoint", checkpoint))


def test_checkpoints_hold_ema_safetensors_and_no_pickle(trained):
    for step in (1, 2):
        folder = trained / f"checkpoint-{step}"
        assert (folder / EMA_WEIGHTS_NAME).is_file() and (folder / CHECKPOINT_MARKER).is_file()
        assert not list(folder.glob("custom_checkpoint_*"))
    assert checkpoint_steps(trained) == [1, 2]


def test_weights_are_written_with_the_default_file_mode(trained):
    weights = sorted(trained.rglob("*.safetensors"))
    assert len(weights) >= 5  # final transformer, two checkpoints' transformer and EMA
    assert {oct(stat.S_IMODE(p.stat().st_mode)) for p in weights} == {oct(default_file_mode())}


def test_a_pickle_planted_in_a_checkpoint_is_never_unpickled(dataset, trained, tmp_path):
    output, marker = _copy_run(trained, tmp_path), tmp_path / "marker"
    plant_pickle(output / "checkpoint-1" / "custom_checkpoint_0.pkl", marker)
    with pytest.raises(ValueError, match=r"holds pickled state \['custom_checkpoint_0.pkl'\] that train.py does not "
                                         r"write; pickles are never loaded"):
        _resume(dataset, output)
    assert not marker.exists()


def test_an_older_checkpoint_with_a_crafted_ema_pickle_is_refused(dataset, trained, tmp_path):
    """A checkpoint of a train.py before ema.safetensors (no marker, EMA in custom_checkpoint_0.pkl): its pickle is
    read only with torch's restricted loader, which refuses the payload."""
    output, marker = _copy_run(trained, tmp_path), tmp_path / "marker"
    folder = output / "checkpoint-1"
    (folder / CHECKPOINT_MARKER).unlink()
    (folder / EMA_WEIGHTS_NAME).unlink()
    plant_pickle(folder / "custom_checkpoint_0.pkl", marker)
    with pytest.raises(ValueError, match=r"custom_checkpoint_0.pkl': refused by the restricted loader"):
        _resume(dataset, output, str(folder))
    assert not marker.exists()


def _replant(folder: Path, name: str, marker: Path) -> None:
    """A crafted file under a name accelerate loads itself, with the completion marker updated to match."""
    plant_pickle(folder / name, marker)
    listing = json.loads((folder / CHECKPOINT_MARKER).read_text())
    listing["files"][name] = (folder / name).stat().st_size
    (folder / CHECKPOINT_MARKER).write_text(json.dumps(listing))


def test_accelerate_state_files_are_loaded_with_the_restricted_loader(dataset, trained, tmp_path):
    output, marker = _copy_run(trained, tmp_path), tmp_path / "marker"
    _replant(output / "checkpoint-1", "optimizer.bin", marker)
    with pytest.raises(ValueError, match=r"--resume_from_checkpoint '.*checkpoint-1': a file was refused by torch's "
                                         r"restricted loader \(weights_only=True\) and is never loaded: Weights only"):
        _resume(dataset, output)
    assert not marker.exists()
    # accelerate skips random states its loader refuses without a word; they are checked first, loudly
    output = _copy_run(trained, tmp_path / "rng")
    _replant(output / "checkpoint-1", "random_states_0.pkl", marker)
    with pytest.raises(ValueError, match=r"random_states_0.pkl': refused by accelerate's restricted loader"):
        _resume(dataset, output)
    assert not marker.exists()


def test_an_older_checkpoint_with_a_plain_ema_pickle_still_resumes(trained, tmp_path):
    """The restricted loader reads an honest EMA pickle of an older train.py (tensors and numbers) exactly."""
    output = _copy_run(trained, tmp_path)
    folder = output / "checkpoint-1"
    ema = EMAModel([torch.nn.Parameter(torch.randn(3, 2)), torch.nn.Parameter(torch.randn(4))], decay=0.9)
    ema.optimization_step = 17
    torch.save(ema.state_dict(), folder / "custom_checkpoint_0.pkl")
    (folder / CHECKPOINT_MARKER).unlink()
    (folder / EMA_WEIGHTS_NAME).unlink()
    assert resolve_checkpoint(output, str(folder)) == folder  # an older checkpoint: every file is there
    restored = EMAModel([torch.nn.Parameter(torch.zeros(3, 2)), torch.nn.Parameter(torch.zeros(4))], decay=0.5)
    with loadable_checkpoint(folder, use_ema=True) as view:
        assert not (view / "custom_checkpoint_0.pkl").exists()  # accelerate never sees the pickle
        load_ema_state(restored, view)
    assert restored.optimization_step == 17 and restored.decay == 0.9
    for a, b in zip(restored.shadow_params, ema.shadow_params):
        assert torch.equal(a, b)


def test_ema_state_round_trips_exactly_and_checks_its_file(tmp_path):
    params = [torch.nn.Parameter(torch.randn(5, 3)), torch.nn.Parameter(torch.randn(7))]
    ema = EMAModel(params, decay=0.95, use_ema_warmup=True, power=0.75)
    for _ in range(3):
        for p in params:
            p.data.add_(torch.randn_like(p))
        ema.step(params)
    save_ema_state(ema, tmp_path)
    other = EMAModel([torch.nn.Parameter(torch.zeros(5, 3)), torch.nn.Parameter(torch.zeros(7))])
    load_ema_state(other, tmp_path)
    assert other.state_dict().keys() == ema.state_dict().keys()
    for key, value in ema.state_dict().items():
        if key == "shadow_params":
            assert all(torch.equal(a, b) for a, b in zip(other.shadow_params, value))
        else:
            assert other.state_dict()[key] == value and type(other.state_dict()[key]) is type(value), key
    wrong = EMAModel([torch.nn.Parameter(torch.zeros(5, 3))])
    with pytest.raises(ValueError, match=r"ema.safetensors': expected 1 EMA tensors \(shadow_params.0..\), got 2"):
        load_ema_state(wrong, tmp_path)
    with pytest.raises(ValueError, match=r"expected the EMA weights ema.safetensors \(this run uses --use_ema\)"):
        load_ema_state(wrong, tmp_path / "nowhere")


# ------------------------------------------------------------------------------------------------ checkpoint states
class _Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(3, 2)


@pytest.fixture()
def accelerator():
    accelerator = Accelerator(cpu=True)
    accelerator.prepare(_Tiny())
    yield accelerator
    accelerator._save_model_state_pre_hook.clear()


def test_total_limit_keeps_the_newest_and_never_the_one_just_written(accelerator, tmp_path):
    for step in (1, 2, 3, 4):
        save_checkpoint_atomically(accelerator, tmp_path, step, total_limit=2)
    assert checkpoint_steps(tmp_path) == [3, 4]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-3", "checkpoint-4"]  # nothing hidden left
    save_checkpoint_atomically(accelerator, tmp_path, 2, total_limit=2)  # resumed onto an earlier step
    assert checkpoint_steps(tmp_path) == [2, 4]  # the new one stays although it is the oldest; checkpoint-3 went
    for limit in (0, -1, True, 1.5):
        with pytest.raises(ValueError, match=r"--checkpoints_total_limit: expected an integer >= 1 or nothing"):
            prune_checkpoints(tmp_path, limit)
    assert checkpoint_steps(tmp_path) == [2, 4]


def test_every_state_a_kill_can_leave_is_never_listed_as_complete(accelerator, tmp_path):
    for step in (1, 2, 3):
        save_checkpoint_atomically(accelerator, tmp_path, step)
    # killed while deleting checkpoint-1 (renamed away first, then partly deleted)
    os.replace(tmp_path / "checkpoint-1", tmp_path / ".checkpoint-1.deleting-4242")
    (tmp_path / ".checkpoint-1.deleting-4242" / "model.safetensors").unlink()
    # checkpoint-3 half-deleted in place (as the old rmtree-only pruning left it): a listed file is gone
    (tmp_path / "checkpoint-3" / "model.safetensors").unlink()
    # checkpoint-4: written without the completion marker (killed before it, or an older train.py)
    save_checkpoint_atomically(accelerator, tmp_path, 4)
    (tmp_path / "checkpoint-4" / CHECKPOINT_MARKER).unlink()
    assert checkpoint_steps(tmp_path) == [2]
    assert resolve_checkpoint(tmp_path, "latest") == tmp_path / "checkpoint-2"
    with pytest.raises(ValueError, match=r"checkpoint-3' is an incomplete checkpoint .* it lacks model.safetensors"):
        resolve_checkpoint(tmp_path, "checkpoint-3")
    with pytest.raises(ValueError, match=r"checkpoint-4' is an incomplete checkpoint .* it lacks its completion "
                                         r"marker syn2seq_checkpoint.json .*optimizer.bin"):
        resolve_checkpoint(tmp_path, str(tmp_path / "checkpoint-4"))
    save_checkpoint_atomically(accelerator, tmp_path, 5)  # the next save clears what killed runs left
    assert not list(tmp_path.glob(".checkpoint-*")) and checkpoint_steps(tmp_path) == [2, 5]


def test_latest_with_only_incomplete_checkpoints_is_an_error(accelerator, tmp_path):
    save_checkpoint_atomically(accelerator, tmp_path, 7)
    (tmp_path / "checkpoint-7" / CHECKPOINT_MARKER).unlink()
    with pytest.raises(ValueError, match=r"latest: expected a complete checkpoint in .* found only incomplete ones: "
                                         r"checkpoint-7 lacks its completion marker"):
        resolve_checkpoint(tmp_path, "latest")
    assert resolve_checkpoint(tmp_path / "empty", "latest") is None  # no checkpoint at all: a fresh run


def test_a_failed_checkpoint_write_names_it_and_leaves_nothing(accelerator, tmp_path):
    save_checkpoint_atomically(accelerator, tmp_path, 1)

    def disk_full(models, weights, folder):  # the disk fills up while the state is written
        (Path(folder) / "partial.bin").write_bytes(b"x" * 100)
        raise OSError(errno.ENOSPC, "No space left on device", str(Path(folder) / "partial.bin"))

    accelerator.register_save_state_pre_hook(disk_full)
    with pytest.raises(OSError, match=r"could not write the checkpoint '.*checkpoint-2' \(.* bytes free there; is the "
                                      r"disk full or read-only\?\).*No space left on device"):
        save_checkpoint_atomically(accelerator, tmp_path, 2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-1"]


def _file_size_limited(limit: int):
    def apply():
        import resource

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG, as on a full disk
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


@pytest.mark.skipif(sys.platform == "win32", reason="RLIMIT_FSIZE is POSIX")
def test_training_on_a_full_disk_prints_one_line_and_keeps_nothing_half_written(dataset, tmp_path):
    output = tmp_path / "out"
    result = subprocess.run([sys.executable, str(REPO / "training" / "train.py"), *_train_args(dataset, output)],
                            capture_output=True, text=True, cwd=REPO, preexec_fn=_file_size_limited(20_000),
                            env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}, timeout=300)
    errors = [line for line in result.stderr.splitlines() if "error:" in line]  # (progress bars share stderr)
    assert result.returncode == 2, result.stderr[-3000:]
    assert len(errors) == 1 and errors[0].startswith("train.py: error: could not write the checkpoint ")
    assert "File too large" in errors[0] and "is the disk full or read-only?" in errors[0]
    assert "Traceback" not in result.stderr
    assert not list(output.glob(".checkpoint-*")) and not list(output.glob("checkpoint-*"))


@pytest.mark.skipif(sys.platform == "win32", reason="RLIMIT_FSIZE is POSIX")
def test_writing_a_dataset_on_a_full_disk_names_the_file_and_leaves_no_half_written_take(tmp_path):
    output = tmp_path / "data"
    result = subprocess.run([sys.executable, str(REPO / "training" / "make_synthetic_dataset.py"), "--output",
                             str(output), "--num_train", "2", "--num_validation", "0", "--num_test", "0",
                             "--num_frames", "4", "--resolution", "32", "--transition_frames", "0"],
                            capture_output=True, text=True, cwd=REPO, preexec_fn=_file_size_limited(1024),
                            env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}, timeout=300)
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert result.returncode == 2 and len(errors) == 1, result.stderr[-3000:]
    assert errors[0].startswith(f"make_synthetic_dataset.py: error: could not write the video '{output}/clips/")
    assert errors[0].endswith("exo.mp4': File too large")
    assert [p.name for p in output.rglob("*")] == ["clips"]  # no clip folder, temporary file or table


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc is Linux's")
def test_an_output_folder_that_cannot_be_written_is_refused_before_training(dataset, capsys):
    train = load_script("training/train.py", "syn2seq_train_security")
    assert run_tool("train.py", train.main, _train_args(dataset, Path("/proc"))) == 2
    line = capsys.readouterr().err.strip()
    assert line.startswith("train.py: error: --output_dir: expected a writable folder, got '/proc' (")


# ------------------------------------------------------------------------------------------------ dataset containment
@pytest.fixture()
def table_root(dataset, tmp_path) -> Path:
    import shutil

    root = tmp_path / "data"
    shutil.copytree(dataset, root)
    (tmp_path / "outside.mp4").write_bytes((root / collect_clip_rows(root)[0]["exo_video"]).read_bytes())
    return root


def _set(root: Path, column: str, value: str, row: int = 0) -> None:
    rows = collect_clip_rows(root)
    rows[row][column] = value
    write_metadata(root, rows)


@pytest.mark.parametrize("column", ["exo_video", "ego_video", "transition_video"])
@pytest.mark.parametrize("value, message", [
    ("../outside.mp4", r"'\.\./outside\.mp4' resolves to '.*/outside\.mp4', outside '.*/data'"),
    ("clips/../../outside.mp4", r"resolves to '.*/outside\.mp4', outside"),
    ("../../../../../../../../etc/passwd", r"resolves to '/etc/passwd', outside"),
    ("/etc/passwd", r"expected a path relative to '.*', got the absolute path '/etc/passwd'"),
    ("{outside}", r"got the absolute path '.*/outside\.mp4'"),
])
def test_table_paths_outside_the_root_are_refused(table_root, column, value, message):
    value = value.replace("{outside}", str(table_root.parent / "outside.mp4"))
    _set(table_root, column, value)
    where = rf"row 0 \(take 'synth-\d+'\) column {column}: .*"
    with pytest.raises(ValueError, match=where + message):
        load_metadata(table_root)
    if column != "transition_video":
        with pytest.raises(ValueError, match=where + message):  # also when the table is not validated up front
            Syn2SeqClipDataset(table_root, validate=False)[0]
    else:
        with pytest.raises(ValueError, match=where + message):
            Syn2SeqClipDataset(table_root, validate=False, load_transition=True)[0]


def test_symlinks_out_of_the_root_are_refused_and_inside_it_followed(table_root):
    row = collect_clip_rows(table_root)[0]
    video = table_root / row["exo_video"]
    original = video.read_bytes()
    video.unlink()
    video.symlink_to(table_root.parent / "outside.mp4")
    with pytest.raises(ValueError, match=r"column exo_video: 'clips/synth-\d+/exo\.mp4' resolves to "
                                         r"'.*/outside\.mp4', outside '.*/data'"):
        load_metadata(table_root)
    with pytest.raises(ValueError, match="outside"):
        Syn2SeqClipDataset(table_root, validate=False)[0]
    inside = table_root / "clips" / "stored.mp4"
    inside.write_bytes(original)
    video.unlink()
    video.symlink_to(inside)  # a link that stays in the dataset is fine
    assert Syn2SeqClipDataset(table_root)[0]["exo"].shape == (FRAMES, RES, RES, 3)


@pytest.mark.parametrize("take_id", ["../evil", "a/b", ".hidden", "", "..", "a\\b", "x" * 201])
def test_unsafe_take_ids_are_refused(table_root, take_id):
    _set(table_root, "take_id", take_id)
    with pytest.raises(ValueError, match=r"row 0 column take_id: expected a folder name of letters, digits"):
        load_metadata(table_root)


def test_cache_transitions_refuses_a_table_pointing_outside(table_root, tmp_path):
    _set(table_root, "ego_video", "../outside.mp4", row=1)
    cache = load_script("training/cache_transitions.py")
    assert run_tool("cache_transitions.py", cache.main, ["--data", str(table_root), "--source", "crossfade"]) == 2
    assert not list(table_root.rglob("transition_crossfade.mp4"))


@pytest.mark.parametrize("field, value, message", [
    ("root_dir", "../outside", r"take 'good_1' cam02 video: '\.\./outside/frame_aligned_videos/cam02\.mp4' "
                               r"resolves to .* outside"),
    ("root_dir", "/etc", r"got the absolute path '/etc/frame_aligned_videos/cam02\.mp4'"),
    ("take_name", "../good_1", r"takes.json take_name: expected a folder name"),
    ("video", "../../../outside.mp4", r"cam02 video: '.*\.\./\.\./\.\./outside\.mp4' resolves to .* outside"),
])
def test_prepare_egoexo4d_refuses_paths_outside_its_root(tmp_path, field, value, message):
    from test_prepare_egoexo4d import ARGS, make_take, write_takes

    root = tmp_path / "egoexo"
    take = make_take(root, "good_1", "uid-good")
    if field == "video":
        take["frame_aligned_videos"] = {"cam02": {"0": {"relative_path": value}}}
    else:
        take[field] = value
    write_takes(root, [take])
    prep = load_script("training/prepare_egoexo4d.py")
    with pytest.raises(ValueError, match=message):
        prep.main(["--root", str(root), "--output", str(tmp_path / "out"), *ARGS])
    assert not (tmp_path / "out" / "metadata.parquet").exists()


def test_poses_that_are_not_rotations_are_refused(table_root, tmp_path):
    from diffusers_syn2seq.data.dataset import validate_poses_array

    poses = np.asarray(collect_clip_rows(table_root)[0]["exo_poses"])
    scaled = poses.copy()
    scaled[2, 4:7] *= 1.5  # first row of R stretched
    with pytest.raises(ValueError, match=r"x: pose row 2 does not hold a rotation: expected R R\^T = I within 0.001 "
                                         r"and det R = \+1"):
        validate_poses_array(scaled, None, "x")
    mirrored = poses.copy()
    mirrored[0, 4:7] *= -1  # a reflection: orthonormal, determinant -1
    with pytest.raises(ValueError, match=r"pose row 0 does not hold a rotation: .*det R = -1"):
        validate_poses_array(mirrored, None, "x")
    flat = poses.copy()
    flat[1, 0] = 0.0
    with pytest.raises(ValueError, match=r"pose row 1: expected positive focal lengths fx, fy, got \[0.0, "):
        validate_poses_array(flat, None, "x")


def test_publish_folder_replaces_entries_and_keeps_the_rest(tmp_path):
    from diffusers_syn2seq.safe_io import publish_folder

    out, staging = tmp_path / "out", tmp_path / "out" / ".final.tmp"
    for folder, text in ((out, "old"), (staging, "new")):
        (folder / "transformer").mkdir(parents=True)
        (folder / "transformer" / "config.json").write_text(text)
        (folder / "model_index.json").write_text(text)
    (out / "checkpoint-3").mkdir()
    publish_folder(staging, out, last="model_index.json")
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint-3", "model_index.json", "transformer"]
    assert (out / "model_index.json").read_text() == (out / "transformer" / "config.json").read_text() == "new"
    lora = out / ".lora.tmp"
    lora.mkdir()
    (lora / "pytorch_lora_weights.safetensors").write_text("w")
    publish_folder(lora, out, last="model_index.json")  # a staging folder without `last` leaves it alone
    assert (out / "model_index.json").read_text() == "new" and (out / "pytorch_lora_weights.safetensors").is_file()


# ------------------------------------------------------------------------------------------------ safetensors only
def _pickled_pipeline(folder: Path, marker: Path) -> Path:
    """A Syn2Seq pipeline folder saved with pickled weights, its transformer's file replaced by a crafted pickle."""
    from diffusers_syn2seq.models import DFoTTransformer3DModel
    from diffusers_syn2seq.pipelines import Syn2SeqPipeline
    from diffusers_syn2seq.schedulers import DiffusionForcingScheduler

    transformer = DFoTTransformer3DModel(in_channels=3, sample_size=8, max_frames=4, patch_size=4, num_layers=1,
                                         num_attention_heads=1, attention_head_dim=8, noise_embedding_dim=8)
    Syn2SeqPipeline(transformer=transformer, scheduler=DiffusionForcingScheduler()).save_pretrained(
        folder, safe_serialization=False)
    plant_pickle(folder / "transformer" / "diffusion_pytorch_model.bin", marker)
    return folder


def test_model_and_pipeline_folders_with_pickled_weights_are_refused(tmp_path):
    """Issue 24: `load_transformer` and the pipeline loading of `syn2seq` (`evaluation.load_pipeline`) pass
    `use_safetensors=True`; a folder with pickled weights only is refused with the line that converts it, and the
    crafted pickle never runs."""
    from diffusers_syn2seq.evaluation import load_pipeline
    from diffusers_syn2seq.models import load_transformer

    marker = tmp_path / "marker"
    folder = _pickled_pipeline(tmp_path / "pipe", marker)
    with pytest.raises(ValueError) as error:
        load_transformer(folder)
    transformer = folder / "transformer"
    assert str(error.value) == (
        f"`path_or_checkpoint`: '{transformer}' holds pickled weights only (diffusion_pytorch_model.bin), which are "
        "never loaded here (unpickling a file can run code); convert them once, where you trust the file: "
        f"DFoTTransformer3DModel.from_pretrained('{transformer}', use_safetensors=False).save_pretrained("
        f"'{transformer}') writes safetensors beside them.")
    with pytest.raises(ValueError, match=f"--model: '{folder}' holds pickled weights only \\("
                                         r"transformer/diffusion_pytorch_model.bin\), which are never .*: "
                                         r"Syn2SeqPipeline.from_pretrained\("):
        load_pipeline(folder)
    assert not marker.exists()
