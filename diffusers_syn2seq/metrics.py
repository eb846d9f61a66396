# SPDX-License-Identifier: Apache-2.0
"""Video metrics and their statistics: per-frame PSNR / SSIM / layout PSNR, and intervals over scenes and seeds.

Beyond single-sample PSNR / SSIM, three scores separate "knows the scene" from "draws plausible noise" (the
generation that feeds them is in `diffusers_syn2seq.evaluation`):

- `layout_psnr`: PSNR after replacing every pixel of both clips by the mean of its `block x block` block
  (`block_average`), so the placement of colour and geometry counts and the phase of texture does not.
- `mean_of_samples_psnr`: PSNR of the pixel-wise mean of N samples (a posterior-mean estimate): a sampler of the
  right posterior loses about 3 dB against the truth per sample, its mean does not.
- `exo_dependence`: PSNR with the scene's own source clip minus PSNR with another scene's source clip, same seed; a
  model that ignores its input scores exactly 0.

A row of the benchmark (one model configuration, several training seeds) is scored per scene; `summarize` averages
each scene over seeds and gives the mean over scenes with a 95% Student-t (or percentile bootstrap) interval, and
`paired_difference` compares two rows scene by scene. The Student-t quantiles are computed here (regularised
incomplete beta, bisection), so the intervals need no SciPy.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from .validation import check_positive_int

__all__ = [
    "SCENE_METRICS",
    "block_average",
    "default_layout_block",
    "exo_dependence",
    "layout_psnr",
    "mean_ci",
    "mean_of_samples_psnr",
    "paired_difference",
    "psnr",
    "ssim",
    "student_t_cdf",
    "student_t_ppf",
    "summarize",
]


# ----------------------------------------------------------------------------------------------------------------
# Per-frame image metrics
# ----------------------------------------------------------------------------------------------------------------
def psnr(pred: torch.Tensor, target: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Per-frame PSNR in dB of `(..., C, H, W)` images in `[0, data_range]` -> `(...)`."""
    mse = ((pred.float() - target.float()) ** 2).flatten(-3).mean(-1)
    return 10.0 * torch.log10(data_range**2 / mse.clamp(min=1e-12))


def ssim(pred: torch.Tensor, target: torch.Tensor, data_range: float = 1.0, window: int = 11,
         sigma: float = 1.5) -> torch.Tensor:
    """Per-frame SSIM (Wang et al. 2004; Gaussian window 11, sigma 1.5, channel mean) of `(..., C, H, W)` images in
    `[0, data_range]` -> `(...)`. The window shrinks to the image side for tiny frames."""
    lead, (c, h, w) = pred.shape[:-3], pred.shape[-3:]
    x, y = pred.float().reshape(-1, c, h, w), target.float().reshape(-1, c, h, w)
    size = min(window, h, w)
    size -= 1 - size % 2  # odd, so the window has a centre
    coords = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    g = (g / g.sum()).to(x.device)
    kernel = (g[:, None] * g[None, :]).expand(c, 1, size, size)

    def blur(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(t, kernel, groups=c)

    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mu_x, mu_y = blur(x), blur(y)
    sxx, syy, sxy = blur(x * x) - mu_x**2, blur(y * y) - mu_y**2, blur(x * y) - mu_x * mu_y
    value = ((2 * mu_x * mu_y + c1) * (2 * sxy + c2)) / ((mu_x**2 + mu_y**2 + c1) * (sxx + syy + c2))
    return value.flatten(1).mean(-1).reshape(lead)


def default_layout_block(height: int, width: int) -> int:
    """Default layout block side in pixels: `min(height, width) // 8` (at least 1), an 8x8 grid of blocks on a square
    frame: 4 pixels at 32x32, 8 at 64x64, 32 at 256x256."""
    return max(1, min(height, width) // 8)


def block_average(x: torch.Tensor, block: int) -> torch.Tensor:
    """`(..., C, H, W)` images with every pixel replaced by the mean of its `block x block` block (blocks tile the
    frame from the top-left corner; where a side is not a multiple of `block` the last row / column of blocks is
    narrower and averages the pixels it holds). Same shape as `x`, float32."""
    block = check_positive_int("block", block)
    lead, (c, h, w) = x.shape[:-3], x.shape[-3:]
    flat = x.float().reshape(-1, c, h, w)
    means = F.avg_pool2d(flat, block, stride=block, ceil_mode=True)  # partial edge blocks: mean of their own pixels
    up = means.repeat_interleave(block, dim=-2).repeat_interleave(block, dim=-1)[..., :h, :w]
    return up.reshape(*lead, c, h, w)


def layout_psnr(pred: torch.Tensor, target: torch.Tensor, block: int | None = None, data_range: float = 1.0
                ) -> torch.Tensor:
    """Per-frame layout PSNR in dB of `(..., C, H, W)` images: `psnr(block_average(pred), block_average(target))`.
    `block` defaults to `default_layout_block(H, W)`. With `H` and `W` multiples of `block` this is the PSNR of the
    two `(H / block) x (W / block)` images of block means."""
    if block is None:
        block = default_layout_block(*target.shape[-2:])
    return psnr(block_average(pred, block), block_average(target, block), data_range)


def mean_of_samples_psnr(samples: torch.Tensor, target: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Per-frame PSNR of the pixel-wise mean of N samples `(N, ..., C, H, W)` against `target` `(..., C, H, W)`. The
    mean is taken in float64, so N identical samples give exactly the PSNR of one."""
    return psnr(samples.double().mean(0), target, data_range)


def exo_dependence(own: torch.Tensor, swapped: torch.Tensor, target: torch.Tensor, data_range: float = 1.0
                   ) -> torch.Tensor:
    """Per-frame `psnr(own, target) - psnr(swapped, target)`: `own` generated from the scene's source clip, `swapped`
    from another scene's, with the same seed. Identical generations (a model that ignores its input) give exactly 0."""
    return psnr(own, target, data_range) - psnr(swapped, target, data_range)


# ----------------------------------------------------------------------------------------------------------------
# Statistics over scenes and seeds
# ----------------------------------------------------------------------------------------------------------------
def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the regularised incomplete beta function (modified Lentz)."""
    tiny, qab, qap, qam = 1e-300, a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c if abs(1.0 + aa / c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c if abs(1.0 + aa / c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-15:
            break
    return h


def _betainc(a: float, b: float, x: float) -> float:
    """Regularised incomplete beta function `I_x(a, b)` (continued fraction on the side where it converges)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def student_t_cdf(t: float, df: float) -> float:
    """CDF of Student's t distribution with `df` degrees of freedom."""
    x = df / (df + t * t)
    tail = 0.5 * _betainc(df / 2.0, 0.5, x)
    return 1.0 - tail if t > 0 else tail


def student_t_ppf(p: float, df: float) -> float:
    """Quantile of Student's t (bisection on the CDF; |error| < 1e-10)."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must be in (0, 1), got {p}")
    lo, hi = -1e6, 1e6
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if student_t_cdf(mid, df) < p:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-10:
            break
    return 0.5 * (lo + hi)


def mean_ci(values, level: float = 0.95, method: str = "t", num_bootstrap: int = 10000, seed: int = 0) -> dict:
    """Mean of `values` and its `level` interval: `"t"` = Student-t interval `mean +- t_{(1+level)/2, n-1} s/sqrt(n)`
    (s: sample standard deviation), `"bootstrap"` = percentile bootstrap of the mean (`num_bootstrap` resamples).
    With one value the interval is (nan, nan)."""
    x = np.asarray(values, dtype=np.float64).ravel()
    n = len(x)
    if n == 0:
        raise ValueError("mean_ci needs at least one value")
    mean = float(x.mean())
    out = {"mean": mean, "n": n, "level": level, "method": method, "low": float("nan"), "high": float("nan"),
           "std": float(x.std(ddof=1)) if n > 1 else float("nan")}
    if n < 2:
        return out
    if method == "t":
        half = student_t_ppf(0.5 + level / 2.0, n - 1) * out["std"] / np.sqrt(n)
        out.update(low=float(mean - half), high=float(mean + half))
    elif method == "bootstrap":
        rng = np.random.default_rng(seed)
        means = x[rng.integers(0, n, size=(num_bootstrap, n))].mean(axis=1)
        out.update(low=float(np.quantile(means, (1 - level) / 2)), high=float(np.quantile(means, (1 + level) / 2)))
    else:
        raise ValueError(f"method must be 't' or 'bootstrap', got {method!r}")
    return out


# Per-scene scores `summarize` aggregates: the first two are in every evaluation, the others when every evaluation of
# the row has them (they were added later, and a baseline has no mean-of-N or exo-dependence).
SCENE_METRICS = ("psnr", "ssim", "layout_psnr", "mean_of_n_psnr", "exo_dependence")


def summarize(per_seed: list[dict], level: float = 0.95, method: str = "t") -> dict:
    """Aggregate the evaluations of one row (one dict per training seed, same scenes in the same order): each
    scene's score is averaged over seeds, then mean and interval over scenes; per-frame PSNR averaged likewise.
    `psnr` and `ssim` are required; `layout_psnr`, `mean_of_n_psnr` and `exo_dependence` are aggregated the same way
    when every evaluation has them, and left out otherwise."""
    ids = per_seed[0]["scene_ids"]
    for r in per_seed[1:]:
        if r["scene_ids"] != ids:
            raise ValueError("the evaluations of one row must cover the same scenes in the same order")
    out = {"num_seeds": len(per_seed), "num_scenes": len(ids)}
    for metric in SCENE_METRICS:
        if metric not in ("psnr", "ssim") and not all(metric in r for r in per_seed):
            continue
        scene_means = np.mean([r[metric] for r in per_seed], axis=0)
        out[metric] = mean_ci(scene_means, level, method)
        out[f"{metric}_per_seed"] = [float(np.mean(r[metric])) for r in per_seed]
        out[f"{metric}_per_scene"] = scene_means.tolist()
    out["per_frame_psnr"] = np.mean([np.mean(r["per_frame_psnr"], axis=0) for r in per_seed], axis=0).tolist()
    return out


def paired_difference(a: dict, b: dict, metric: str = "psnr", level: float = 0.95, method: str = "t") -> dict:
    """Mean and interval of the per-scene difference `a - b` (summaries from `summarize`, same scenes)."""
    diff = np.asarray(a[f"{metric}_per_scene"]) - np.asarray(b[f"{metric}_per_scene"])
    return mean_ci(diff, level, method)
