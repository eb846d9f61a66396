# SPDX-License-Identifier: Apache-2.0
"""Bad input to every command-line tool: one line `<tool>: error: <message>` naming the flag, the expected and the
received value, exit status 2, no traceback (unless `--debug` / SYN2SEQ_DEBUG=1), nothing half-written.

Tables of bad inputs with the exact message fragment each must produce: every numeric flag of `train.py`, `--config`
files, `make_synthetic_dataset.py`, `prepare_egoexo4d.py`, `cache_transitions.py`, `syn2seq` and
`syn2seq-convert-dfot`. The tools run in this process through the wrapper their `__main__` uses (`run_tool`); one test
runs some of them as real processes to check the exit status and the single stderr line.
"""

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from accelerate.utils import LoggerType
from script_loading import REPO, load_script

from diffusers_syn2seq.cli import convert_dfot_command
from diffusers_syn2seq.cli import main as syn2seq_main
from diffusers_syn2seq.cli_support import run_tool
from diffusers_syn2seq.data import load_metadata, render_synthetic_clip, write_video
from diffusers_syn2seq.safe_io import default_file_mode

TRAIN = load_script("training/train.py", "syn2seq_train_cli_errors")
MAKE = load_script("training/make_synthetic_dataset.py")
PREPARE = load_script("training/prepare_egoexo4d.py")
CACHE = load_script("training/cache_transitions.py")


def run(prog: str, main, argv: list[str], capsys) -> tuple[int, list[str]]:
    """Exit status and stderr lines of `main(argv)` run the way its `__main__` runs it."""
    try:
        code = run_tool(prog, main, argv)
    except SystemExit as exit_:  # argparse usage errors
        code = exit_.code
    return code, capsys.readouterr().err.strip().splitlines()


def assert_one_line_error(code: int, lines: list[str], prog: str, fragment: str) -> None:
    assert code == 2, lines
    assert len(lines) == 1 and lines[0].startswith(f"{prog}: error: "), lines
    assert fragment in lines[0], lines[0]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data") / "synth"
    MAKE.main(["--output", str(root), "--num_train", "2", "--num_validation", "0", "--num_test", "2", "--num_frames",
               "6", "--resolution", "16", "--transition_frames", "4", "--lossless"])
    return root


# ------------------------------------------------------------------------------------------------ train.py flags
TRAIN_FLAGS = [
    ("--patch_size", "0", "--patch_size: expected an integer >= 1, got 0."),
    ("--max_frames", "-1", "--max_frames: expected an integer >= 1, got -1."),
    ("--num_clip_frames", "0", "--num_clip_frames: expected an integer >= 1 or nothing, got 0."),
    ("--window_frames", "0", "--window_frames: expected an integer >= 1 or nothing, got 0."),
    ("--dataloader_num_workers", "-1", "--dataloader_num_workers: expected an integer >= 0, got -1."),
    ("--num_context_frames", "-2", "--num_context_frames: expected an integer >= 0, got -2."),
    ("--rank", "0", "--rank: expected an integer >= 1, got 0."),
    ("--lora_alpha", "0", "--lora_alpha: expected an integer >= 1 or nothing, got 0."),
    ("--seed", "-1", "--seed: expected an integer in [0, 4294967295], got -1."),
    ("--seed", str(2**32), f"--seed: expected an integer in [0, 4294967295], got {2**32}."),
    ("--train_batch_size", "0", "--train_batch_size: expected an integer >= 1, got 0."),
    ("--max_train_steps", "0", "--max_train_steps: expected an integer >= 1, got 0."),
    ("--gradient_accumulation_steps", "0", "--gradient_accumulation_steps: expected an integer >= 1, got 0."),
    ("--lr_warmup_steps", "-5", "--lr_warmup_steps: expected an integer >= 0, got -5."),
    ("--checkpointing_steps", "0", "--checkpointing_steps: expected an integer >= 1, got 0."),
    ("--checkpoints_total_limit", "0", "--checkpoints_total_limit: expected an integer >= 1 or nothing, got 0."),
    ("--checkpoints_total_limit", "-1", "--checkpoints_total_limit: expected an integer >= 1 or nothing, got -1."),
    ("--validation_steps", "0", "--validation_steps: expected an integer >= 1 or nothing, got 0."),
    ("--num_validation_videos", "0", "--num_validation_videos: expected an integer >= 1, got 0."),
    ("--validation_inference_steps", "0", "--validation_inference_steps: expected an integer >= 1, got 0."),
    ("--validation_num_frames", "0", "--validation_num_frames: expected an integer >= 1 or nothing, got 0."),
    ("--validation_num_samples", "0", "--validation_num_samples: expected an integer >= 1, got 0."),
    ("--reverse_prob", "1.5", "--reverse_prob: expected a number in [0, 1], got 1.5."),
    ("--reverse_prob", "nan", "--reverse_prob: expected a number in [0, 1], got nan."),
    ("--camera_dropout", "-0.1", "--camera_dropout: expected a number in [0, 1], got -0.1."),
    ("--learning_rate", "0", "--learning_rate: expected a finite number > 0, got 0.0."),
    ("--learning_rate", "-1e-4", "--learning_rate: expected a finite number > 0, got -0.0001."),
    ("--learning_rate", "nan", "--learning_rate: expected a finite number > 0, got nan."),
    ("--learning_rate", "inf", "--learning_rate: expected a finite number > 0, got inf."),
    ("--adam_beta1", "1", "--adam_beta1: expected a number in [0, 1), got 1.0."),
    ("--adam_beta2", "-0.1", "--adam_beta2: expected a number in [0, 1), got -0.1."),
    ("--adam_weight_decay", "-1", "--adam_weight_decay: expected a finite number >= 0, got -1.0."),
    ("--adam_weight_decay", "inf", "--adam_weight_decay: expected a finite number >= 0, got inf."),
    ("--adam_epsilon", "0", "--adam_epsilon: expected a finite number > 0, got 0.0."),
    ("--max_grad_norm", "-1", "--max_grad_norm: expected a finite number > 0, got -1.0."),
    ("--max_grad_norm", "0", "--max_grad_norm: expected a finite number > 0, got 0.0."),
    ("--max_grad_norm", "nan", "--max_grad_norm: expected a finite number > 0, got nan."),
    ("--ema_decay", "2", "--ema_decay: expected a number in (0, 1), got 2.0."),
    ("--ema_decay", "1", "--ema_decay: expected a number in (0, 1), got 1.0."),
    ("--ema_decay", "0", "--ema_decay: expected a number in (0, 1), got 0.0."),
    ("--max_train_minutes", "-3", "--max_train_minutes: expected a finite number > 0, got -3.0."),
    ("--max_train_minutes", "inf", "--max_train_minutes: expected a finite number > 0, got inf."),
    ("--num_transition_frames", "-3", "--num_transition_frames: expected an integer >= 1 with --mode video+pose, got "
                                      "-3."),
    ("--num_transition_frames", "0", "--num_transition_frames: expected an integer >= 1 with --mode video+pose, got "
                                     "0."),
    ("--lora_layers", " , ", "--lora_layers: expected comma-separated module names, got ' , '."),
    # issue 24: blamed --dataset_dir / raised accelerate's "Unsupported logging capability"
    ("--validation_split", "bogus", "--validation_split: expected one of ['train', 'validation', 'test'], got "
                                    "'bogus'."),
    ("--report_to", "bogus_tracker", f"--report_to: expected one of {['none', *(t.value for t in LoggerType)]}, got "
                                     "'bogus_tracker'."),
]


@pytest.mark.parametrize("flag, value, message", TRAIN_FLAGS, ids=[f"{f}={v}" for f, v, _ in TRAIN_FLAGS])
def test_every_numeric_train_flag_is_range_checked_before_anything_heavy(dataset, tmp_path, flag, value, message):
    output = tmp_path / "out"
    with pytest.raises(ValueError) as error:
        TRAIN.main(["--dataset_dir", str(dataset), "--output_dir", str(output), f"{flag}={value}"])
    assert str(error.value) == message
    assert not output.exists()  # refused before the output folder, the data or a model is touched


def test_matched_fractions_nan_is_refused(dataset, tmp_path):
    with pytest.raises(ValueError, match=r"--matched_fractions: expected two fractions >= 0 summing to at most 1, got "
                                         r"nan 0.0"):
        TRAIN.main(["--dataset_dir", str(dataset), "--output_dir", str(tmp_path), "--matched_fractions", "nan", "0"])


CONFIGS = [
    ("bad yaml", "learning_rate: [1, 2\n", "--config: expected a YAML file of flag values, got '{path}', which does "
                                            "not parse"),
    ("a list", "- 1\n- 2\n", "--config: expected a YAML mapping of flag names to values, got a list in '{path}'"),
    ("list lr", "learning_rate: [1, 2]\n", "--learning_rate: expected a number, got [1, 2]"),
    ("float steps", "max_train_steps: 1.5\n", "--max_train_steps: expected an integer, got 1.5"),
    ("bool steps", "max_train_steps: true\n", "--max_train_steps: expected an integer, got True"),
    ("bad choice", "mode: sideways\n", "--mode: expected one of ['jump', 'video', 'video+pose'], got 'sideways'"),
    ("text flag", "use_ema: maybe\n", "--use_ema: expected true or false, got 'maybe'"),
    ("nan lr", "learning_rate: .nan\n", "--learning_rate: expected a finite number > 0, got nan."),
    ("unknown key", "learning_rat: 1e-4\n", "unknown keys ['learning_rat']; expected flag names"),
    ("string number", "learning_rate: abc\n", "argument --learning_rate: invalid float value: 'abc'"),
]


@pytest.mark.parametrize("case, text, message", CONFIGS, ids=[c[0] for c in CONFIGS])
def test_bad_config_files_are_one_line_errors(dataset, tmp_path, capsys, case, text, message):
    config = tmp_path / "config.yaml"
    config.write_text(text)
    code, lines = run("train.py", TRAIN.main, ["--config", str(config), "--dataset_dir", str(dataset),
                                               "--output_dir", str(tmp_path / "out")], capsys)
    assert_one_line_error(code, lines, "train.py", message.replace("{path}", str(config)))


@pytest.fixture()
def file_in_the_way(tmp_path) -> Path:
    path = tmp_path / "a-file"
    path.write_text("not a folder")
    return path


def test_train_paths_are_one_line_errors(dataset, tmp_path, file_in_the_way, capsys):
    typo = tmp_path / "typo.json"
    typo.write_text('{"num_layerz": 2}')
    base = ["--dataset_dir", str(dataset), "--report_to", "none", "--model_preset", "dit-tiny", "--max_frames", "8"]
    cases = [
        (["--dataset_dir", str(tmp_path / "nowhere")], f"--dataset_dir: expected an existing Syn2Seq dataset folder, "
                                                       f"got '{tmp_path / 'nowhere'}' (does not exist)."),
        (["--output_dir", str(file_in_the_way)], f"--output_dir: expected a folder, got '{file_in_the_way}', which "
                                                 "is a file"),
        (["--output_dir", str(file_in_the_way / "sub")], f"--output_dir: expected a folder path, got "
                                                         f"'{file_in_the_way / 'sub'}' (a parent is a file)"),
        (["--model_config", str(tmp_path / "none.json")], f"--model_config: expected an existing file, got "
                                                          f"'{tmp_path / 'none.json'}'."),
        (["--model_config", str(file_in_the_way)], "--model_config: expected a JSON file of DFoTTransformer3DModel "
                                                   f"arguments, got '{file_in_the_way}'"),
        (["--config", str(tmp_path / "none.yaml")], f"--config: expected a YAML file, got '{tmp_path / 'none.yaml'}' "
                                                    "(does not exist)"),
        # issue 24: diffusers' "unexpected keyword argument", and "couldn't connect to https://huggingface.co"
        (["--model_config", str(typo)], f"--model_config: expected DFoTTransformer3DModel arguments in '{typo}', got "
                                        "unknown keys ['num_layerz']; accepted: ['attention_head_dim', "),
        (["--vae_name_or_path", str(tmp_path / "none")], "--vae_name_or_path: expected a local folder or a Hub repo id "
                                                         f"(user/name), got '{tmp_path / 'none'}': no such folder, and "
                                                         "not a Hub repo id either."),
        (["--vae_name_or_path", "no-such-user/no-such-vae"], "--vae_name_or_path: 'no-such-user/no-such-vae' is not a "
                                                             "local folder (no such folder), and loading it as a Hub "
                                                             "repo id failed: "),
    ]
    for extra, message in cases:
        code, lines = run("train.py", TRAIN.main, base + ["--output_dir", str(tmp_path / "out")] + extra, capsys)
        assert_one_line_error(code, lines, "train.py", message)


# ------------------------------------------------------------------------------------------------ dataset writers
def _dead_pid() -> int:
    return int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True).stdout)


def test_make_synthetic_dataset_errors(tmp_path, file_in_the_way, capsys):
    out = str(tmp_path / "data")
    cases = [
        (["--num_train", "0", "--num_validation", "0", "--num_test", "0"],
         "--num-train, --num-validation, --num-test: expected at least one take in all, got 0"),
        (["--fps", "0"], "--fps: expected a finite number > 0, got 0.0"),
        (["--fps", "nan"], "--fps: expected a finite number > 0, got nan"),
        (["--num_frames", "0"], "--num-frames must be >= 1, got 0"),
        (["--resolution", "-16"], "--resolution must be >= 1, got -16"),
        (["--num_train", "-1"], "--num-train must be >= 0, got -1"),
        (["--style", "neon"], "argument --style: invalid choice: 'neon'"),
        (["--seed_offset", "999999"], "split 'train' holds 1000000 seeds; offset 999999 + num 100 does not fit"),
    ]
    for extra, message in cases:
        code, lines = run("make_synthetic_dataset.py", MAKE.main, ["--output", out, *extra], capsys)
        assert_one_line_error(code, lines, "make_synthetic_dataset.py", message)
    assert not Path(out, "metadata.parquet").exists()
    code, lines = run("make_synthetic_dataset.py", MAKE.main, ["--output", str(file_in_the_way)], capsys)
    assert_one_line_error(code, lines, "make_synthetic_dataset.py",
                          f"--output: expected a folder, got '{file_in_the_way}', which is a file")


def test_resume_removes_what_a_killed_writer_left(tmp_path, capsys):
    root = tmp_path / "data"
    args = ["--output", str(root), "--num_train", "2", "--num_validation", "0", "--num_test", "0", "--num_frames",
            "2", "--resolution", "8", "--transition_frames", "0"]
    assert MAKE.main(args) == 0
    dead = _dead_pid()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        stale = [root / "clips" / f".tmp-synth-0000001-{dead}", root / "clips" / f".old-synth-0000000-{dead}",
                 root / f".metadata.parquet.{dead}.tmp", root / "clips" / "synth-0000000" / f".exo.mp4.{dead}.tmp"]
        for path in stale[:2]:
            path.mkdir()
            (path / "exo.mp4").write_bytes(b"half")
        for path in stale[2:]:
            path.write_bytes(b"half")
        running = root / "clips" / f".tmp-synth-0000009-{live.pid}"  # a writer that is still running: kept
        running.mkdir()
        capsys.readouterr()
        assert MAKE.main(args + ["--resume"]) == 0
        assert not any(path.exists() for path in stale) and running.is_dir()
        out = capsys.readouterr().out
        assert all(f"removed {path} (left by a killed run)" in out for path in stale)
        assert "2 kept from an earlier run" in out and len(load_metadata(root)) == 2
    finally:
        live.kill()
        live.wait()


def test_prepare_egoexo4d_errors(tmp_path, capsys):
    from test_prepare_egoexo4d import ARGS, make_take, write_takes

    root, out = tmp_path / "egoexo", str(tmp_path / "out")
    take = make_take(root, "good_1", "uid-good")
    write_takes(root, [take])
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "takes.json").write_text("{not json")
    mapping = tmp_path / "mapping"
    mapping.mkdir()
    (mapping / "takes.json").write_text('{"takes": []}')
    (tmp_path / "rgb.json").write_text("[1, 2, 3]")
    cases = [
        (["--root", str(tmp_path / "nowhere")], f"'{tmp_path / 'nowhere' / 'takes.json'}' does not exist: --root "
                                                "must be an Ego-Exo4D download"),
        (["--root", str(broken)], f"'{broken / 'takes.json'}' is not readable JSON"),
        (["--root", str(mapping)], "expected a JSON list of take objects, got dict"),
        (["--root", str(root), "--take", "nope_1"], "--take: expected names of takes in"),
        (["--root", str(root), "--stride", "0"], "--stride must be >= 1, got 0"),
        (["--root", str(root), "--start_frame", "-1"], "--start_frame must be >= 0, got -1"),
        (["--root", str(root), "--ego_intrinsics", "0", "0.3", "0.5", "0.5"],
         "--ego_intrinsics: expected finite fx fy px py with fx, fy > 0, got [0.0, 0.3, 0.5, 0.5]"),
        (["--root", str(root), "--ego_poses", "mps"], "--ego_poses mps needs --device_to_rgb"),
        (["--root", str(root), "--start_frame", "15", "--skip_bad"], "no clip written (1 of 1 takes skipped as bad"),
    ]
    for extra, message in cases:
        code, lines = run("prepare_egoexo4d.py", PREPARE.main, ["--output", out, *ARGS, *extra], capsys)
        lines = [line for line in lines if "%|" not in line]  # (progress bars share stderr)
        assert_one_line_error(code, lines, "prepare_egoexo4d.py", message)
    assert not Path(out, "metadata.parquet").exists()  # no dataset of zero takes


def test_cache_transitions_errors(dataset, tmp_path, capsys):
    cases = [
        (["--data", str(tmp_path / "nowhere"), "--source", "crossfade"], "has no metadata.parquet"),
        (["--data", str(dataset), "--source", "crossfade", "--num_frames", "0"], "--num_frames must be >= 1, got 0"),
        (["--data", str(dataset), "--source", "crossfade", "--checkpoint_every", "0"],
         "--checkpoint_every must be >= 1, got 0"),
        (["--data", str(dataset), "--source", "flf", "--pipeline", "x", "--guidance_scale", "nan"],
         "--guidance_scale: expected a finite number, got nan"),
        (["--data", str(dataset), "--source", "crossfade_latent"], "--source crossfade_latent needs --vae"),
        (["--data", str(dataset), "--source", "magic"], "argument --source: invalid choice: 'magic'"),
    ]
    for extra, message in cases:
        code, lines = run("cache_transitions.py", CACHE.main, extra, capsys)
        assert_one_line_error(code, lines, "cache_transitions.py", message)


def test_cache_transitions_refuses_a_vae_folder_with_pickled_weights_only(dataset, tmp_path, capsys):
    """Issue 24: `--vae` loads safetensors only; a `.bin`-only folder is refused, saying how to convert it."""
    from diffusers import AutoencoderKL

    vae = tmp_path / "vae"
    AutoencoderKL(block_out_channels=(8,), norm_num_groups=8, latent_channels=4, layers_per_block=1).save_pretrained(
        vae, safe_serialization=False)
    code, lines = run("cache_transitions.py", CACHE.main, ["--data", str(dataset), "--source", "crossfade_latent",
                                                           "--vae", str(vae)], capsys)
    assert_one_line_error(code, lines, "cache_transitions.py",
                          f"--vae: '{vae}' holds pickled weights only (diffusion_pytorch_model.bin), which are never "
                          "loaded here (unpickling a file can run code); convert them once, where you trust the file: "
                          f"AutoencoderKL.from_pretrained('{vae}', use_safetensors=False).save_pretrained('{vae}') "
                          "writes safetensors beside them.")
    code, lines = run("cache_transitions.py", CACHE.main, ["--data", str(dataset), "--source", "crossfade_latent",
                                                           "--vae", str(tmp_path / "nowhere")], capsys)
    assert_one_line_error(code, lines, "cache_transitions.py", f"--vae: expected a local folder or a Hub repo id "
                          f"(user/name), got '{tmp_path / 'nowhere'}': no such folder, and not a Hub repo id either.")


# ------------------------------------------------------------------------------------------------ syn2seq
@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    from diffusers_syn2seq.models import DFoTTransformer3DModel
    from diffusers_syn2seq.pipelines import Syn2SeqPipeline
    from diffusers_syn2seq.schedulers import DiffusionForcingScheduler

    folder = tmp_path_factory.mktemp("model") / "pipe"
    transformer = DFoTTransformer3DModel(in_channels=3, sample_size=16, max_frames=8, patch_size=4, num_layers=1,
                                         num_attention_heads=1, attention_head_dim=16, noise_embedding_dim=16,
                                         camera_ray_type="plucker")
    Syn2SeqPipeline(transformer=transformer, scheduler=DiffusionForcingScheduler(), num_transition_frames=2,
                    mode="video+pose").save_pretrained(folder)
    return folder


def test_syn2seq_errors(dataset, model, tmp_path, capsys):
    clip = render_synthetic_clip(2_000_000, num_frames=3, resolution=16, num_transition_frames=0)
    write_video(tmp_path / "exo.mp4", clip["exo"], fps=10, lossless=True)
    (tmp_path / "poses.json").write_text(json.dumps({"exo_poses": clip["exo_poses"].tolist(),
                                                     "ego_poses": clip["ego_poses"].tolist()}))
    evaluate = ["evaluate", "--data", str(dataset), "--model", str(model), "--steps", "1", "--quiet"]
    bad_csv = model.parent / "poses.csv"  # outside tmp_path, whose contents are checked below
    rows = [f"exo,{','.join(map(str, pose))}" for pose in clip["exo_poses"].tolist()]
    bad_csv.write_text("view,v0\n" + "\n".join([rows[0], rows[1].replace(rows[1].split(",")[3], "x", 1), *rows[2:]]))
    csv_generate = ["generate", "--exo", str(tmp_path / "exo.mp4"), "--poses", str(bad_csv), "--model", str(model),
                    "--quiet", "--out", str(tmp_path / "o.mp4")]
    generate = ["generate", "--exo", str(tmp_path / "exo.mp4"), "--poses", str(tmp_path / "poses.json"), "--model",
                str(model), "--quiet", "--out"]
    cases = [
        (evaluate + ["--num_frames", "0"], "evaluate", "--num_frames: expected a positive frame count, got 0"),
        (evaluate + ["--num_frames", "99"], "evaluate",
         f"--num_frames: expected at most the ego clip length of every scene (6 frames in {dataset}), got 99"),
        (evaluate + ["--num_scenes", "0"], "evaluate", "--num_scenes: expected an integer >= 1"),
        (evaluate + ["--output", str(tmp_path)], "evaluate",
         f"--output: expected a file path, got '{tmp_path}', which is a folder"),
        (evaluate + ["--steps", "0"], "evaluate", "--steps: expected an integer >= 1, got 0"),
        (evaluate + ["--seed", "-1"], "evaluate", "--seed: expected an integer in [0, 2**63), got -1"),
        (evaluate + ["--device", "warp-drive"], "evaluate",
         "--device: expected a torch device such as cpu, cuda or cuda:1, got 'warp-drive'"),
        (evaluate + ["--num_transition_frames", "-1"], "evaluate",
         "--num_transition_frames: expected an integer >= 0, got -1"),
        (evaluate + ["--dtype", "fp8"], "evaluate", "argument --dtype: invalid choice: 'fp8'"),
        (["demo", "--model", str(model), "--scene", "-1"], "demo",
         "--scene: expected the index of a held-out test scene in [0, 99999], got -1"),
        (["demo", "--model", str(model), "--scene", "100000"], "demo",
         "--scene: expected the index of a held-out test scene in [0, 99999], got 100000"),
        (generate + [str(tmp_path / "o.mp4"), "--fps", "0"], "generate",
         "--fps: expected a finite number > 0, got 0.0"),
        (generate + [str(tmp_path)], "generate", f"--out: expected a file path, got '{tmp_path}', which is a folder"),
        (csv_generate, "generate", f"--poses: poses file '{bad_csv}' line 3 column 4: expected a number, received 'x'"),
    ]
    if not torch.cuda.is_available():
        cases.append((evaluate + ["--device", "cuda"], "evaluate",
                      "--device: expected a device this machine has, got 'cuda' (no CUDA device)"))
    for argv, command, message in cases:
        try:
            code = syn2seq_main(argv)
        except SystemExit as exit_:
            code = exit_.code
        assert_one_line_error(code, capsys.readouterr().err.strip().splitlines(), f"syn2seq {command}", message)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exo.mp4", "poses.json"]  # nothing written


# ------------------------------------------------------------------------------------------------ conversion
@pytest.fixture()
def official(tmp_path, dfot_fixtures_dir) -> tuple[Path, Path]:
    from safetensors.torch import load_file, save_file

    tensors = load_file(dfot_fixtures_dir / "dit3d_discrete.safetensors")
    checkpoint = tmp_path / "dfot.safetensors"
    save_file({k.removeprefix("state_dict."): v for k, v in tensors.items() if k.startswith("state_dict.")},
              checkpoint)
    config = tmp_path / "backbone.json"
    config.write_text((dfot_fixtures_dir / "dit3d_discrete.json").read_text())
    return checkpoint, config


def test_convert_writes_a_complete_folder_with_default_modes(official, tmp_path, capsys):
    checkpoint, config = official
    out = tmp_path / "converted"
    assert convert_dfot_command(["--checkpoint", str(checkpoint), "--config", str(config), "--output_dir",
                                 str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "diffusion_pytorch_model.safetensors"]
    assert stat.S_IMODE((out / "diffusion_pytorch_model.safetensors").stat().st_mode) == default_file_mode()


def test_convert_errors(official, tmp_path, file_in_the_way, capsys):
    from test_security import plant_pickle

    checkpoint, config = official
    marker = tmp_path / "marker"
    plant_pickle(tmp_path / "evil.ckpt", marker)
    (tmp_path / "list.json").write_text("[1]")
    out = ["--output_dir", str(tmp_path / "out")]
    cases = [
        (["--checkpoint", str(tmp_path / "none.ckpt"), "--config", str(config), *out],
         f"--checkpoint: expected an official DFoT checkpoint file, got '{tmp_path / 'none.ckpt'}' (does not exist)"),
        (["--checkpoint", str(checkpoint), "--config", str(file_in_the_way), *out],
         f"--config: expected a JSON file of backbone settings, got '{file_in_the_way}'"),
        (["--checkpoint", str(checkpoint), "--config", str(tmp_path / "list.json"), *out],
         "--config: expected a JSON object in"),
        (["--checkpoint", str(checkpoint), "--config", str(config), "--output_dir", str(file_in_the_way)],
         f"--output_dir: expected a folder, got '{file_in_the_way}', which is a file"),
        (["--checkpoint", str(tmp_path / "evil.ckpt"), "--config", str(config), *out],
         "could not be loaded with torch.load(weights_only=True)"),
        (["--config", str(config), *out], "the following arguments are required: --checkpoint"),
    ]
    for argv, message in cases:
        try:
            code = convert_dfot_command(argv)
        except SystemExit as exit_:
            code = exit_.code
        assert_one_line_error(code, capsys.readouterr().err.strip().splitlines(), "syn2seq-convert-dfot", message)
    assert not marker.exists()
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


# ------------------------------------------------------------------------------------------------ debug, processes
def test_debug_flag_and_environment_variable_show_the_traceback(tmp_path, monkeypatch, capsys):
    argv = ["--output", str(tmp_path), "--fps", "1", "--num_frames", "1", "--seed_offset", "999999"]
    assert run("make_synthetic_dataset.py", MAKE.main, argv, capsys)[0] == 2
    with pytest.raises(ValueError, match="does not fit"):
        run_tool("make_synthetic_dataset.py", MAKE.main, argv + ["--debug"])
    monkeypatch.setenv("SYN2SEQ_DEBUG", "1")
    with pytest.raises(ValueError, match="does not fit"):
        run_tool("make_synthetic_dataset.py", MAKE.main, argv)
    with pytest.raises(ValueError, match="--steps: expected an integer >= 1"):
        syn2seq_main(["demo", "--steps", "0"])


PROCESSES = [
    pytest.param("train.py", ["training/train.py", "--dataset_dir", "{tmp}/none"], id="train"),
    pytest.param("make_synthetic_dataset.py", ["training/make_synthetic_dataset.py", "--output", "{tmp}/d",
                                               "--num_train", "0", "--num_validation", "0", "--num_test", "0"],
                 id="make_synthetic_dataset"),
    pytest.param("syn2seq demo", ["-m", "diffusers_syn2seq.cli", "demo", "--scene", "-1"], id="syn2seq",
                 marks=pytest.mark.slow),  # `syn2seq`'s main returns the status itself (tested above in-process)
    pytest.param("syn2seq-convert-dfot", ["scripts/convert_dfot_checkpoint.py", "--checkpoint", "{tmp}/none",
                                          "--config", "{tmp}/none", "--output_dir", "{tmp}/o"],
                 id="convert", marks=pytest.mark.slow),
]


@pytest.mark.parametrize("name, argv", PROCESSES)
def test_tools_run_as_processes_print_one_line_and_exit_2(tmp_path, name, argv):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO), "SYN2SEQ_DEBUG": ""}
    argv = [str(REPO / a) if a.endswith(".py") else a.replace("{tmp}", str(tmp_path)) for a in argv]
    result = subprocess.run([sys.executable, *argv], env=env, cwd=tmp_path, capture_output=True, text=True,
                            timeout=300)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and lines[0].startswith(f"{name}: error: "), result.stderr
