# SPDX-License-Identifier: Apache-2.0
"""Tests of `diffusers_syn2seq.metrics`: per-frame PSNR / SSIM and the interval statistics on known inputs."""

import math

import numpy as np
import pytest
import torch

from diffusers_syn2seq.metrics import mean_ci, psnr, ssim, student_t_cdf, student_t_ppf, summarize


# --------------------------------------------------------------------------------------------------- image metrics
def test_psnr_and_ssim_on_known_images():
    generator = torch.Generator().manual_seed(0)
    x, y = torch.rand(2, 2, 3, 16, 16, generator=generator), torch.rand(2, 2, 3, 16, 16, generator=generator)
    torch.testing.assert_close(psnr(x, x + 0.1), torch.full((2, 2), 20.0))  # MSE 0.01 at range 1 -> 20 dB
    torch.testing.assert_close(ssim(x, x), torch.ones(2, 2))
    assert (ssim(x, y) < 0.5).all()  # independent noise images are structurally unrelated


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
