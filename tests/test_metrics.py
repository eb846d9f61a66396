# SPDX-License-Identifier: Apache-2.0
"""Tests of `diffusers_syn2seq.metrics`: per-frame PSNR / SSIM / layout PSNR, mean-of-N, exo-dependence and the
interval statistics on known inputs."""

import math

import numpy as np
import pytest
import torch

from diffusers_syn2seq.metrics import (
    block_average,
    default_layout_block,
    exo_dependence,
    layout_psnr,
    mean_ci,
    mean_of_samples_psnr,
    psnr,
    ssim,
    student_t_cdf,
    student_t_ppf,
    summarize,
)

CLIP_DB = 120.0  # psnr clamps the MSE at 1e-12: 10 log10(1 / 1e-12), exact in float32


# --------------------------------------------------------------------------------------------------- image metrics
def test_psnr_and_ssim_on_known_images():
    generator = torch.Generator().manual_seed(0)
    x, y = torch.rand(2, 2, 3, 16, 16, generator=generator), torch.rand(2, 2, 3, 16, 16, generator=generator)
    torch.testing.assert_close(psnr(x, x + 0.1), torch.full((2, 2), 20.0))  # MSE 0.01 at range 1 -> 20 dB
    torch.testing.assert_close(ssim(x, x), torch.ones(2, 2))
    assert (ssim(x, y) < 0.5).all()  # independent noise images are structurally unrelated


def test_identical_frames_score_the_clip_value():
    x = torch.rand(2, 4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    assert psnr(x, x.clone()).tolist() == [[CLIP_DB] * 4] * 2
    assert layout_psnr(x, x.clone()).tolist() == [[CLIP_DB] * 4] * 2
    assert layout_psnr(x, x.clone(), block=3).tolist() == [[CLIP_DB] * 4] * 2  # 32 = 10 blocks of 3 + one of 2


def test_layout_psnr_of_known_block_means():
    # 4x4 frames, 2x2 blocks whose means are 0.1, 0.2, 0.3, 0.4 (texture inside each block), prediction all zero:
    # layout MSE = (0.01 + 0.04 + 0.09 + 0.16) / 4 = 0.075 -> 10 log10(1 / 0.075) = 10 log10(40 / 3) dB
    means = torch.tensor([[0.1, 0.2], [0.3, 0.4]])
    texture = torch.tensor([[0.05, -0.05], [-0.05, 0.05]])
    target = (means.repeat_interleave(2, 0).repeat_interleave(2, 1) + texture.repeat(2, 2)).expand(3, 4, 4)
    torch.testing.assert_close(block_average(target, 2), means.repeat_interleave(2, 0).repeat_interleave(2, 1)
                               .expand(3, 4, 4))
    expected = 10 * math.log10(40 / 3)  # 11.2494 dB
    assert layout_psnr(torch.zeros(3, 4, 4), target, block=2).item() == pytest.approx(expected, abs=1e-5)
    assert default_layout_block(4, 4) == 1 and default_layout_block(32, 32) == 4 and default_layout_block(64, 48) == 6
    # a side that is not a multiple of the block: the edge blocks average the pixels they hold
    ramp = torch.arange(25.0).reshape(1, 1, 5, 5)
    assert block_average(ramp, 2)[0, 0, :, 4].tolist() == [6.5, 6.5, 16.5, 16.5, 24.0]
    with pytest.raises(ValueError, match="`block` must be a positive integer, got 0"):
        block_average(ramp, 0)


def test_right_layout_wrong_texture_scores_high_layout_low_psnr():
    # truth: a 0/1 checkerboard (every 4x4 block has mean 0.5); prediction: flat 0.5 (right block means, no texture)
    checker = ((torch.arange(32)[:, None] + torch.arange(32)[None, :]) % 2).float().expand(2, 3, 32, 32)
    flat = torch.full_like(checker, 0.5)
    assert layout_psnr(flat, checker).tolist() == [CLIP_DB, CLIP_DB]  # block means equal exactly
    torch.testing.assert_close(psnr(flat, checker), torch.full((2,), 10 * math.log10(4)))  # MSE 0.25: 6.02 dB
    # texture phase does not count: the checkerboard moved by one pixel has the same block means (layout PSNR at the
    # clip value) and the worst pixel PSNR (MSE 1: 0 dB)
    shifted = torch.roll(checker, 1, dims=-1)
    assert layout_psnr(shifted, checker).tolist() == [CLIP_DB, CLIP_DB]
    assert psnr(shifted, checker).tolist() == [0.0, 0.0]


def test_mean_of_identical_samples_is_the_single_sample_psnr():
    generator = torch.Generator().manual_seed(1)
    sample, truth = torch.rand(4, 3, 8, 8, generator=generator), torch.rand(4, 3, 8, 8, generator=generator)
    for n in (1, 3, 4, 7):
        assert torch.equal(mean_of_samples_psnr(sample.expand(n, -1, -1, -1, -1), truth), psnr(sample, truth))
    # two samples symmetric around the truth average to it (up to float32 rounding, far below the MSE clamp)
    noise = torch.full_like(truth, 0.125)
    assert mean_of_samples_psnr(torch.stack([truth + noise, truth - noise]), truth).tolist() == [CLIP_DB] * 4


def test_exo_dependence_of_identical_generations_is_exactly_zero():
    generator = torch.Generator().manual_seed(2)
    own, other, truth = (torch.rand(3, 3, 8, 8, generator=generator) for _ in range(3))
    assert exo_dependence(own, own.clone(), truth).tolist() == [0.0, 0.0, 0.0]
    assert exo_dependence(truth + 0.1, truth + 0.2, truth).mean().item() == pytest.approx(20 - 10 * math.log10(25),
                                                                                          abs=1e-4)  # 20 - 13.98 dB
    torch.testing.assert_close(exo_dependence(own, other, truth), psnr(own, truth) - psnr(other, truth))


# --------------------------------------------------------------------------------------------------- statistics
@pytest.mark.parametrize("df, expected", [(1, 12.7062047), (2, 4.3026527), (9, 2.2621572), (30, 2.0422725),
                                          (1000, 1.9623391)])
def test_student_t_quantile_matches_tables(df, expected):
    assert student_t_ppf(0.975, df) == pytest.approx(expected, abs=1e-6)
    assert student_t_ppf(0.025, df) == pytest.approx(-expected, abs=1e-6)
    assert student_t_cdf(expected, df) == pytest.approx(0.975, abs=1e-7)  # table values have 7 decimals


def test_mean_ci_t_interval_on_known_values():
    ci = mean_ci([1, 2, 3, 4, 5])
    half = 2.7764451 * math.sqrt(2.5) / math.sqrt(5)  # t_{0.975,4} * s / sqrt(n)
    assert ci["mean"] == 3.0 and ci["n"] == 5 and ci["method"] == "t"
    assert ci["low"] == pytest.approx(3 - half, abs=1e-6) and ci["high"] == pytest.approx(3 + half, abs=1e-6)
    single = mean_ci([7.0])
    assert single["mean"] == 7.0 and math.isnan(single["low"]) and math.isnan(single["high"])
    with pytest.raises(ValueError, match="method"):
        mean_ci([1, 2], method="nope")


def test_mean_ci_bootstrap_is_reproducible_and_brackets_the_mean():
    x = np.random.default_rng(0).normal(10, 2, size=200)
    a, b = mean_ci(x, method="bootstrap", seed=3), mean_ci(x, method="bootstrap", seed=3)
    assert a == b
    t = mean_ci(x)
    assert a["low"] < a["mean"] < a["high"]
    # for a large normal sample the bootstrap and t intervals agree closely
    assert a["low"] == pytest.approx(t["low"], abs=0.1) and a["high"] == pytest.approx(t["high"], abs=0.1)


def _result(psnr, ssim, ids=("a", "b", "c")):
    return {"scene_ids": list(ids), "psnr": list(psnr), "ssim": list(ssim),
            "per_frame_psnr": [[p - 1, p + 1] for p in psnr], "per_frame_ssim": [[s, s] for s in ssim]}


def test_summarize_averages_seeds_per_scene_then_scenes():
    s = summarize([_result([10, 20, 30], [0.1, 0.2, 0.3]), _result([12, 22, 32], [0.3, 0.4, 0.5])])
    assert s["num_seeds"] == 2 and s["num_scenes"] == 3
    assert s["psnr_per_scene"] == [11, 21, 31] and s["psnr"]["mean"] == pytest.approx(21)
    assert s["psnr_per_seed"] == [20, 22]
    assert s["ssim"]["mean"] == pytest.approx(0.3)
    assert s["per_frame_psnr"] == pytest.approx([20, 22])
    with pytest.raises(ValueError, match="same scenes"):
        summarize([_result([1, 2, 3], [0, 0, 0]), _result([1, 2, 3], [0, 0, 0], ids=("a", "c", "b"))])
    assert "layout_psnr" not in s and "exo_dependence" not in s  # evaluations from before these scores


def test_summarize_aggregates_the_new_scores_when_every_seed_has_them():
    a, b = _result([10, 20, 30], [0.1, 0.2, 0.3]), _result([12, 22, 32], [0.3, 0.4, 0.5])
    a.update(layout_psnr=[14, 24, 34], mean_of_n_psnr=[11, 21, 31], exo_dependence=[1.0, 0.0, -1.0])
    b.update(layout_psnr=[16, 26, 36], mean_of_n_psnr=[13, 23, 33], exo_dependence=[3.0, 2.0, 1.0])
    s = summarize([a, b])
    assert s["layout_psnr_per_scene"] == [15, 25, 35] and s["layout_psnr_per_seed"] == [24, 26]
    assert s["layout_psnr"] == mean_ci([15, 25, 35])
    assert s["mean_of_n_psnr_per_scene"] == [12, 22, 32] and s["mean_of_n_psnr"]["mean"] == pytest.approx(22)
    assert s["exo_dependence_per_scene"] == [2.0, 1.0, 0.0] and s["exo_dependence"] == mean_ci([2.0, 1.0, 0.0])
    del b["exo_dependence"]  # one seed without it (e.g. evaluated with --no_exo_dependence): left out, not half-done
    s = summarize([a, b])
    assert "exo_dependence" not in s and "exo_dependence_per_scene" not in s and "layout_psnr" in s
