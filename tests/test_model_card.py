# SPDX-License-Identifier: Apache-2.0
"""Tests of the model-card generator."""

import pytest
from huggingface_hub import ModelCard

from diffusers_syn2seq.model_card import metrics_table, model_card_tags, save_model_card

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


def test_local_base_model_is_named_not_pathed_and_usage_matches_the_run(tmp_path):
    base = tmp_path / "deep" / "private" / "syn2seq-base"
    base.mkdir(parents=True)
    out = tmp_path / "lora-run"
    save_model_card(out, {**RUN, "base_model": str(base), "repo_id": None, "num_transition_frames": 4,
                          "syn2seq_mode": "video+pose"})
    text = (out / "README.md").read_text()
    assert str(tmp_path) not in text  # no absolute path of the trainer's machine
    assert "| Base model | local folder `syn2seq-base` |" in text
    assert 'Syn2SeqPipeline.from_pretrained("path/to/syn2seq-base")' in text
    assert 'pipe.load_lora_weights("path/to/lora-run")' in text
    assert 'mode="video+pose",\n             num_transition_frames=4' in text
    full = tmp_path / "full-run"
    save_model_card(full, {**RUN, "training_mode": "full", "repo_id": "someone/full", "num_transition_frames": 4})
    text = (full / "README.md").read_text()
    assert 'Syn2SeqPipeline.from_pretrained("someone/full")' in text
    assert "num_transition_frames=" not in text  # the pipeline's configuration carries the trained settings


@pytest.mark.parametrize("env, expected", [
    ({}, "python training/train.py --x '1 2'"),
    ({"ACCELERATE_MIXED_PRECISION": "no", "ACCELERATE_USE_CPU": "true", "WORLD_SIZE": "2", "LOCAL_RANK": "0"},
     "accelerate launch --cpu --mixed_precision no --num_processes 2 training/train.py --x '1 2'"),
])
def test_training_command_keeps_the_launcher_flags(monkeypatch, env, expected):
    """Outside a real `accelerate launch` (no launcher among the ancestors), the flags come from the environment."""
    from diffusers_syn2seq import model_card

    for name in ("ACCELERATE_MIXED_PRECISION", "ACCELERATE_USE_CPU", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(model_card, "_launcher_command_line", lambda: None)
    assert model_card.training_command("training/train.py", ["--x", "1 2"]) == expected


def test_front_matter_names_the_base_hub_ids_as_base_model_others_beside_it(tmp_path):
    from diffusers_syn2seq import bundled_model_path

    save_model_card(tmp_path / "hub", RUN)
    data = ModelCard.load(tmp_path / "hub" / "README.md").data.to_dict()
    assert (data["pipeline_tag"], data["base_model_relation"]) == ("video-to-video", "adapter")
    assert "syn2seq_base_model" not in data
    save_model_card(tmp_path / "bundled", {**RUN, "base_model": str(bundled_model_path()), "repo_id": None})
    card = ModelCard.load(tmp_path / "bundled" / "README.md")
    data = card.data.to_dict()
    # the Hub accepts only Hub ids as `base_model`: the bundled model is named by the call that loads it
    assert "base_model" not in data and data["syn2seq_base_model"] == "diffusers_syn2seq.bundled_model_path()"
    assert "from diffusers_syn2seq import Syn2SeqPipeline, bundled_model_path" in card.text
    assert "pipe = Syn2SeqPipeline.from_pretrained(bundled_model_path())" in card.text
    assert "| Base model | the bundled model (`diffusers_syn2seq.bundled_model_path()`) |" in card.text
    assert str(bundled_model_path()) not in card.text


def test_every_command_of_a_resumed_run_is_shown(tmp_path):
    commands = ["python training/train.py --max_train_steps 2", "python training/train.py --max_train_steps 4 "
                "--resume_from_checkpoint latest"]
    save_model_card(tmp_path, {**RUN, "command": None, "commands": commands})
    text = (tmp_path / "README.md").read_text()
    assert "Exact commands (one per training segment: the first run, then each resume):" in text
    assert "```bash\n" + "\n".join(commands) + "\n```" in text


def test_scheduler_expression_rebuilds_the_scheduler():
    from diffusers_syn2seq import DiffusionForcingScheduler, FlowMatchDiffusionForcingScheduler
    from diffusers_syn2seq.model_card import scheduler_expression

    namespace = {cls.__name__: cls for cls in (DiffusionForcingScheduler, FlowMatchDiffusionForcingScheduler)}
    for scheduler in (DiffusionForcingScheduler(), DiffusionForcingScheduler(noise_schedule="cosine_simple_diffusion",
                                                                             shift=0.5),
                      FlowMatchDiffusionForcingScheduler(shift=3.0)):
        rebuilt = eval(scheduler_expression(scheduler), namespace)  # noqa: S307 (our own expression)
        assert type(rebuilt) is type(scheduler) and dict(rebuilt.config) == dict(scheduler.config)
    assert scheduler_expression(DiffusionForcingScheduler()) == "DiffusionForcingScheduler()"  # defaults: nothing


def test_lora_on_a_bare_transformer_builds_its_pipeline_with_what_the_run_loaded(tmp_path):
    checkpoint, settings, vae = tmp_path / "private" / "dfot.ckpt", tmp_path / "private" / "dfot.yaml", tmp_path / "v"
    checkpoint.parent.mkdir()
    checkpoint.touch(), settings.touch(), vae.mkdir()
    run = {**RUN, "base_model": str(checkpoint), "repo_id": None, "usage": "transformer_lora",
           "scheduler_code": 'DiffusionForcingScheduler(noise_schedule="cosine_simple_diffusion")',
           "dfot_config": str(settings), "vae_name_or_path": str(vae), "vae_subfolder": "vae", "reversal": "segments",
           "num_transition_frames": 4}
    save_model_card(tmp_path / "out", run)
    card = ModelCard.load(tmp_path / "out" / "README.md")
    usage = card.text.split("## Usage")[1]
    assert "base_model" not in card.data.to_dict()  # a file is never a Hub id
    assert "from diffusers_syn2seq import DiffusionForcingScheduler, Syn2SeqPipeline, load_transformer" in usage
    assert "from diffusers_syn2seq.latents import load_vae" in usage
    assert 'load_transformer("path/to/dfot.ckpt", dfot_config="path/to/dfot.yaml")' in usage
    assert 'vae=load_vae("path/to/v", subfolder="vae"), mode="video"' in usage
    assert 'num_transition_frames=4, reversal="segments"' in usage and "from_pretrained" not in usage
    assert str(tmp_path) not in card.text
    with pytest.raises(ValueError, match=r"run\['usage'\] must be one of \['pipeline', 'lora', 'transformer_lora', "
                                         r"'foundation_lora'\], got 'checkpoint'"):
        save_model_card(tmp_path / "bad", {**run, "usage": "checkpoint"})
    with pytest.raises(ValueError, match=r"expected run\['base_model'\] and run\['scheduler_code'\], got .* and None"):
        save_model_card(tmp_path / "bad", {**run, "scheduler_code": None})
