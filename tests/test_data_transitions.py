# SPDX-License-Identifier: Apache-2.0
"""Transition sources (crossfade pixel/latent, render, flf with a tiny random Wan pipeline) and the cache script."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from script_loading import load_script

from diffusers_syn2seq.data import Syn2SeqClipDataset, load_metadata, render_synthetic_clip
from diffusers_syn2seq.data.transitions import (
    CrossfadeTransition,
    FirstLastFrameTransition,
    RenderTransition,
    make_transition_source,
    transition_path_poses,
)


def _load_script(name: str):
    return load_script(f"training/{name}.py")


@pytest.fixture(scope="module")
def clip():
    return render_synthetic_clip(6, num_frames=4, resolution=24, num_transition_frames=5)


def test_pixel_crossfade(clip):
    first, last = clip["exo"][-1], clip["ego"][0]
    out = CrossfadeTransition()(first, last, 3)
    assert out.shape == (3, 24, 24, 3) and out.dtype == np.uint8
    for i, a in enumerate([0.25, 0.5, 0.75]):
        expected = np.round((1 - a) * first.astype(float) + a * last.astype(float))
        np.testing.assert_array_equal(out[i], expected.astype(np.uint8))
    with pytest.raises(ValueError, match="last_frame must be uint8 \\(24, 24, 3\\)"):
        CrossfadeTransition()(first, last[:10], 3)
    with pytest.raises(ValueError, match="`num_frames` must be a positive integer, got 0"):
        CrossfadeTransition()(first, last, 0)


def test_latent_crossfade_with_a_tiny_vae(clip):
    from diffusers import AutoencoderKL

    vae = AutoencoderKL(
        block_out_channels=(8,),
        down_block_types=("DownEncoderBlock2D",),
        up_block_types=("UpDecoderBlock2D",),
        latent_channels=4,
        norm_num_groups=4,
        layers_per_block=1,
    ).eval()
    first, last = clip["exo"][-1], clip["ego"][0]
    out = CrossfadeTransition(vae=vae)(first, last, 3)
    assert out.shape == (3, 24, 24, 3) and out.dtype == np.uint8
    # the middle frame decodes the mean of the two latents
    x = torch.from_numpy(np.stack([first, last])).permute(0, 3, 1, 2).float() / 127.5 - 1
    with torch.no_grad():
        z = vae.encode(x).latent_dist.mode()
        mid = vae.decode(0.5 * z[:1] + 0.5 * z[1:]).sample
    expected = ((mid.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1)[0].numpy()
    assert np.abs(out[1].astype(int) - expected).max() <= 1
    assert make_transition_source("crossfade_latent", vae=vae).name == "crossfade_latent"


def test_render_transition_is_the_true_transition(clip):
    sample = {**clip, "seed": 6}
    out = RenderTransition()(clip["exo"][-1], clip["ego"][0], 5, sample=sample)
    np.testing.assert_array_equal(out, clip["transition"])
    path = transition_path_poses(clip["exo_poses"][-1], clip["ego_poses"][0], 5)
    np.testing.assert_allclose(path, clip["transition_poses"], atol=1e-12)
    with pytest.raises(ValueError, match="needs a synthetic take with a scene seed, got take 'cam-take'"):
        RenderTransition()(clip["exo"][-1], clip["ego"][0], 5, sample={"take_id": "cam-take", "seed": -1})


class _RecordingPipeline:
    """A duck-typed first-last-frame pipeline: frame j of the video has value j / (M - 1) everywhere."""

    def __init__(self):
        self.calls = []

    def __call__(self, image, last_image, num_frames, height, width, output_type, **kwargs):
        self.calls.append(
            dict(
                image=image,
                last_image=last_image,
                num_frames=num_frames,
                height=height,
                width=width,
                output_type=output_type,
                **kwargs,
            )
        )
        video = np.broadcast_to(np.linspace(0, 1, num_frames)[:, None, None, None], (num_frames, height, width, 3))
        return SimpleNamespace(frames=[video.copy()])


def test_flf_trims_resamples_and_resizes(clip):
    pipe = _RecordingPipeline()
    source = FirstLastFrameTransition(pipe, prompt="fly", num_inference_steps=3)
    out = source(clip["exo"][-1], clip["ego"][0], 3)
    call = pipe.calls[0]
    assert call["num_frames"] == 5 and (call["height"], call["width"]) == (32, 32)  # 4k+1 >= 3+2, multiple of 16
    assert call["output_type"] == "np" and call["prompt"] == "fly" and call["num_inference_steps"] == 3
    assert call["image"].size == (32, 32)
    assert out.shape == (3, 24, 24, 3) and out.dtype == np.uint8
    # interior frames 1..3 of 5 (values 0.25, 0.5, 0.75), end frames dropped
    np.testing.assert_array_equal(out[:, 0, 0, 0], [64, 128, 191])
    out = source(
        clip["exo"][-1], clip["ego"][0], 2
    )  # 5 frames again; interior at 1/4, 2/4, 3/4 -> nearest to 1/3, 2/3
    np.testing.assert_array_equal(out[:, 0, 0, 0], [64, 191])
    with pytest.raises(ValueError, match="height must be a positive multiple of 16, got 20"):
        FirstLastFrameTransition(pipe, height=20)


def _tiny_wan_i2v_pipeline():
    """A randomly initialised Wan 2.1 first-last-frame (image-to-video) pipeline, built offline in code."""
    from diffusers import (
        AutoencoderKLWan,
        FlowMatchEulerDiscreteScheduler,
        WanImageToVideoPipeline,
        WanTransformer3DModel,
    )
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import (
        CLIPImageProcessorPil,
        CLIPVisionConfig,
        CLIPVisionModel,
        PreTrainedTokenizerFast,
        UMT5Config,
        UMT5EncoderModel,
    )

    torch.manual_seed(0)
    vocab = {
        "<pad>": 0,
        "</s>": 1,
        "<unk>": 2,
        **{w: i + 3 for i, w in enumerate("the camera moves to a head".split())},
    }
    word_level = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    word_level.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=word_level, pad_token="<pad>", eos_token="</s>", unk_token="<unk>"
    )
    text_encoder = UMT5EncoderModel(
        UMT5Config(
            vocab_size=len(vocab),
            d_model=32,
            d_kv=8,
            d_ff=37,
            num_layers=2,
            num_heads=4,
            relative_attention_num_buckets=8,
        )
    ).eval()
    vae = AutoencoderKLWan(
        base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1, temperal_downsample=[False, True, True]
    )
    # CLIP: 32x32 images, 4x4 patches -> 65 tokens per image; FLF concatenates two images -> 130 positions
    image_encoder = CLIPVisionModel(
        CLIPVisionConfig(
            hidden_size=4,
            projection_dim=4,
            num_hidden_layers=2,
            num_attention_heads=2,
            image_size=32,
            intermediate_size=16,
            patch_size=4,
        )
    ).eval()
    transformer = WanTransformer3DModel(
        patch_size=(1, 2, 2),
        num_attention_heads=2,
        attention_head_dim=12,
        in_channels=36,
        out_channels=16,
        text_dim=32,
        freq_dim=256,
        ffn_dim=32,
        num_layers=2,
        cross_attn_norm=True,
        qk_norm="rms_norm_across_heads",
        rope_max_seq_len=32,
        image_dim=4,
        pos_embed_seq_len=2 * 65,
    )
    pipe = WanImageToVideoPipeline(
        tokenizer=tokenizer,
        text_encoder=text_encoder,
        vae=vae,
        scheduler=FlowMatchEulerDiscreteScheduler(shift=7.0),
        image_processor=CLIPImageProcessorPil(crop_size=32, size=32),
        image_encoder=image_encoder,
        transformer=transformer,
    )
    pipe.set_progress_bar_config(disable=True)
    # Wan cleans prompts with `ftfy` (not a dependency of this project): encode the prompt with the pipeline's
    # own tokenizer and text encoder instead and pass the embeddings.
    ids = tokenizer(["the camera moves to the head"], padding="max_length", max_length=16, return_tensors="pt")
    with torch.no_grad():
        prompt_embeds = text_encoder(ids.input_ids, ids.attention_mask).last_hidden_state
    return pipe, prompt_embeds


def test_flf_with_a_tiny_random_wan_pipeline(clip):
    pipe, prompt_embeds = _tiny_wan_i2v_pipeline()
    source = FirstLastFrameTransition(
        pipe, prompt_embeds=prompt_embeds, num_inference_steps=2, guidance_scale=1.0, max_sequence_length=16, seed=1
    )
    first, last = clip["exo"][-1], clip["ego"][0]
    out = source(first, last, 5)  # generates 9 frames at 32x32, keeps 5 interior ones at 24x24
    assert out.shape == (5, 24, 24, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(source(first, last, 5), out)  # seeded: deterministic cache
    assert make_transition_source("flf", pipeline=pipe).name == "flf"


def test_cache_script_is_resumable(tmp_path, monkeypatch):
    make = _load_script("make_synthetic_dataset")
    cache = _load_script("cache_transitions")
    root = tmp_path / "ds"
    make.main(
        [
            "--output",
            str(root),
            "--num-train",
            "3",
            "--num-validation",
            "0",
            "--num-test",
            "0",
            "--num-frames",
            "4",
            "--resolution",
            "16",
            "--transition-frames",
            "0",
            "--lossless",
        ]
    )
    assert all(t is None for t in load_metadata(root)["transition_video"])

    real = cache.write_video
    calls = {"n": 0}

    def interrupted(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt("simulated interruption")
        return real(*args, **kwargs)

    monkeypatch.setattr(cache, "write_video", interrupted)
    args = ["--data", str(root), "--source", "render", "--num-frames", "3", "--lossless", "--checkpoint-every", "1"]
    with pytest.raises(KeyboardInterrupt):
        cache.main(args)
    table = load_metadata(root)
    assert table["transition_source"] == ["render", None, None]
    monkeypatch.setattr(cache, "write_video", real)
    computed, kept, bad = cache.cache_transitions(root, RenderTransition(), 3, lossless=True)
    assert (computed, kept, bad) == (2, 1, [])
    for item in Syn2SeqClipDataset(root):
        expected = render_synthetic_clip(int(item["take_id"].split("-")[1]), 4, 16, 3)
        np.testing.assert_array_equal(item["transition"], expected["transition"])
        np.testing.assert_allclose(item["transition_poses"], expected["transition_poses"], atol=1e-12)
    # --skip-bad: a corrupt take is reported, the others are cached
    (root / "clips" / "synth-0000001" / "ego.mp4").write_bytes(b"broken")
    computed, kept, bad = cache.cache_transitions(root, CrossfadeTransition(), 2, skip_bad=True)
    assert computed == 2 and len(bad) == 1 and "synth-0000001/ego.mp4" in bad[0]
    with pytest.raises(ValueError, match="synth-0000001/ego.mp4"):
        cache.cache_transitions(root, CrossfadeTransition(), 2, overwrite=True)
