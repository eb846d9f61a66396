# SPDX-License-Identifier: Apache-2.0
"""The transformer benchmarks' own logic: counted FLOPs against the model's analytic count, argument checks."""

import sys

import pytest
from script_loading import REPO, load_script

sys.path.insert(0, str(REPO / "benchmarks"))  # the scripts import `timing` and each other from their folder
bench = load_script("benchmarks/bench_transformer.py")
gpu = load_script("benchmarks/gpu_transformer.py")
training = load_script("benchmarks/bench_training.py")


def analytic_forward_flops(model, batch: int, frames: int, tokens_per_frame: int) -> int:
    """Matmul FLOPs of one forward, written out: projections and MLP, attention (QK^T and PV), per-token AdaLN
    modulation (camera rays), patch / camera embeddings, output projection, noise-level MLP."""
    cfg = model.config
    d, p, c = cfg.num_attention_heads * cfg.attention_head_dim, cfg.patch_size, cfg.in_channels
    n = frames * tokens_per_frame
    t = batch * n
    per_layer = 2 * t * (4 * d * d + 2 * d * int(d * cfg.mlp_ratio)) + 4 * batch * n * n * d + 2 * t * d * 6 * d
    embeddings = 2 * t * d * p * p * (c + 6 + c) + 2 * t * d * 2 * d  # patch, camera, output; output AdaLN
    noise_mlp = 2 * batch * frames * (cfg.noise_embedding_dim * d + d * d)
    return cfg.num_layers * per_layer + embeddings + noise_mlp


def test_counted_flops_include_cpu_flash_attention_and_per_token_modulation():
    model, inputs, tokens = bench.build_case("tiny", "cpu")
    spec = bench.CONFIGS["tiny"]
    forward, attention = bench.count_flops(bench.pass_runner(model, inputs, "forward", "fp32"))
    assert forward == analytic_forward_flops(model, spec["batch"], spec["frames"], spec["tokens"] ** 2)
    assert tokens == spec["batch"] * spec["frames"] * spec["tokens"] ** 2
    n, cfg = spec["frames"] * spec["tokens"] ** 2, model.config
    assert attention == cfg.num_layers * 4 * spec["batch"] * n * n * cfg.num_attention_heads * cfg.attention_head_dim
    backward_included, _ = bench.count_flops(bench.pass_runner(model, inputs, "fwd+bwd", "fp32"))
    assert 2.5 * forward < backward_included < 3.5 * forward  # backward ~ 2x forward


def test_attention_ceiling_is_the_time_weighted_speed():
    # 40% of 10 TFLOP in attention at 1 TFLOP/s (4 s), 60% at the 2 TFLOP/s peak (3 s): 10/7 TFLOP/s = 71% of peak
    row = bench.ceiling_row("x", "bf16", "forward", (10 * 10**12, 4 * 10**12), attention_tflops=1.0, peak_tflops=2.0)
    assert row == "| x | bf16 | forward | 40% | 1.000 | 50% | 71% |"
    assert bench.ceiling_row("x", "fp32", "forward", (10**12, 0), 1.0, 2.0).endswith("| 100% |")  # no attention


@pytest.mark.parametrize(
    "module, argv, message",
    [
        (bench, ["--clock", "cpu", "--threads", "2"], "--clock cpu: needs --device cpu --threads 1"),
        (bench, ["--configs", "dit-s,huge"], "--configs: expected names among dit-s, cpu-small"),
        (gpu, ["--configs", "huge", "--device", "cpu"], "--configs: expected names among"),
        (training, ["--clock", "cpu"], "--clock cpu: needs --threads 1"),
    ],
)
def test_bad_arguments_name_the_flag(module, argv, message, capsys):
    with pytest.raises(SystemExit):
        module.parse_args(argv)
    assert message in capsys.readouterr().err


def test_gpu_script_picks_the_nominal_peak_by_device_name():
    assert gpu.nominal_peak("cpu", None) == (None, "none on CPU")
    assert gpu.nominal_peak("cuda", 500.0) == (500.0, "--nominal_peak_tflops")
