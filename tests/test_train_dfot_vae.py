# SPDX-License-Identifier: Apache-2.0
"""`train.py --vae_name_or_path` on converted DFoT VAEs: a tiny run on their latents, and the pipeline it saves."""

import json

import pytest
from script_loading import load_script
from test_autoencoder_dfot import official
from test_train import launch

from diffusers_syn2seq.models import convert_dfot_vae
from diffusers_syn2seq.pipelines import Syn2SeqPipeline

# name -> (exo / ego frames per take: a causal 2x-in-time VAE needs 1 + 2k, model window in latent frames, patch)
CASES = {"image_vae": (3, 8, 2), "video_vae": (5, 6, 1)}


@pytest.mark.parametrize("name", sorted(CASES))
def test_training_on_dfot_vae_latents_saves_a_pipeline_with_that_vae(name, tmp_path):
    frames, window, patch = CASES[name]
    _, config, weights = official(name)
    vae = convert_dfot_vae(weights, config)
    vae.register_to_config(latents_mean=[0.1, -0.2, 0.0, 0.3], latents_std=[1.5, 0.5, 1.0, 2.0])
    vae.save_pretrained(tmp_path / "vae")
    data = tmp_path / "data"
    load_script("training/make_synthetic_dataset.py").main(
        ["--output", str(data), "--num-train", "2", "--num-validation", "0", "--num-test", "0", "--num-frames",
         str(frames), "--resolution", "16", "--transition-frames", "2", "--lossless"])
    out = tmp_path / "run"
    launch(["--dataset_dir", data, "--output_dir", out, "--vae_name_or_path", tmp_path / "vae", "--cache_latents",
            "--model_preset", "dit-tiny", "--max_frames", window, "--patch_size", patch, "--mode", "video+pose",
            "--reverse_prob", 0, "--train_batch_size", 2, "--max_train_steps", 3, "--checkpointing_steps", 100,
            "--learning_rate", 1e-3, "--report_to", "none"])
    summary = json.loads((out / "training_summary.json").read_text())
    assert summary["global_step"] == 3
    pipe = Syn2SeqPipeline.from_pretrained(out)
    assert type(pipe.vae).__name__ == type(vae).__name__
    assert pipe.vae.config.latents_std == [1.5, 0.5, 1.0, 2.0]  # the statistics travel with the pipeline
    assert pipe.transformer.config.in_channels == vae.config.latent_channels
