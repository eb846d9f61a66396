# SPDX-License-Identifier: Apache-2.0
"""History guidance: branch construction, composition formulas of dfot.md, one batched forward per step; windows."""

import pytest
import torch
from test_pipeline import MixingDenoiser, gen, make_pipeline, random_video

from diffusers_syn2seq.data import plan_windows
from diffusers_syn2seq.pipelines import compose_guidance, fraction_to_level, history_guidance_branches

GT, GEN = 1, 2


def test_fraction_to_level_matches_dfot():
    assert [fraction_to_level(f) for f in (0.0, 0.02, 0.4, 0.8, 1.0)] == [-1, 19, 399, 799, 999]
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        fraction_to_level(1.5)


def test_branches_of_each_guidance():
    none = history_guidance_branches([GT, GEN])
    assert none.history_levels.tolist() == [[-1, 19]] and none.weights.tolist() == [1.0]

    vanilla = history_guidance_branches([GT, GEN], "vanilla", guidance_scale=1.5)
    assert vanilla.history_levels.tolist() == [[-1, 19], [999, 999]]
    assert vanilla.drop_conditions.tolist() == [False, True]
    assert vanilla.weights.tolist() == [1.5, -0.5]

    frac = history_guidance_branches([GT, GEN], "fractional", guidance_scale=3.0, fractional_level=399)
    assert frac.history_levels.tolist() == [[-1, 19], [399, 399], [999, 999]]
    assert frac.drop_conditions.tolist() == [False, False, True]
    assert frac.weights.tolist() == [1.0, 2.0, -2.0]

    temporal = history_guidance_branches([GT, GT, GEN], "temporal", history_subsets=[[0], [-1, -2]],
                                         history_weights=[0.5, 1.0])
    assert temporal.history_levels.tolist() == [[-1, 999, 999], [999, -1, 19], [999, 999, 999]]
    assert temporal.weights.tolist() == [0.5, 1.0, -0.5]
    default_weights = history_guidance_branches([GT, GT], "temporal", guidance_scale=2.0, history_subsets=[[0], [1]])
    assert default_weights.weights.tolist() == [1.0, 1.0, -1.0]


def test_branches_merge_and_drop_zero_weights():
    for guidance in ("vanilla", "fractional"):  # w = 1 is plain conditional sampling: a single forward
        branches = history_guidance_branches([GT, GT], guidance, guidance_scale=1.0)
        assert branches.num_branches == 1 and branches.history_levels.tolist() == [[-1, -1]]
    # two subsets that both cover the whole history are the same branch
    merged = history_guidance_branches([GT, GT], "temporal", history_subsets=[[0, 1], [1, 0]], history_weights=[1, 1])
    assert merged.num_branches == 2 and merged.weights.tolist() == [2.0, -1.0]
    for guidance, kwargs in (("vanilla", {}), ("fractional", {}), ("temporal", {"history_subsets": [[0]]})):
        branches = history_guidance_branches([GT, GEN], guidance, guidance_scale=2.5, **kwargs)
        assert branches.weights.sum().item() == pytest.approx(1.0)


def test_compose_guidance_is_the_weighted_sum():
    preds = torch.randn(3, 2, 4, 5)
    weights = torch.tensor([1.0, 2.0, -2.0], dtype=torch.float64)
    torch.testing.assert_close(compose_guidance(preds, weights), preds[0] + 2 * (preds[1] - preds[2]))
    with pytest.raises(ValueError, match="3 branches"):
        compose_guidance(preds, weights[:2])


def branch_outputs(call, history_patterns):
    """Pick the recorded output rows whose history timesteps equal each pattern."""
    steps = call["timestep"]
    rows = {}
    for name, pattern in history_patterns.items():
        matches = [r for r in range(steps.shape[0]) if steps[r, : len(pattern)].tolist() == pattern]
        assert len(matches) == 1, f"branch {name} must appear exactly once, rows: {steps.tolist()}"
        rows[name] = call["output"][matches[0]]
    return rows


@pytest.mark.parametrize("guidance", ["vanilla", "fractional", "temporal"])
def test_pipeline_composes_guidance_as_in_dfot_md_with_one_forward_per_step(guidance):
    model = MixingDenoiser()
    pipe = make_pipeline(model)
    w = 2.5
    kwargs = {"vanilla": {}, "fractional": {"fractional_level": 0.8},
              "temporal": {"history_subsets": [[0], [1]], "history_weights": [1.5, 0.7]}}[guidance]
    out = pipe(random_video(2), num_frames=3, num_inference_steps=1, history_guidance=guidance, guidance_scale=w,
               generator=gen(0), output_type="latent", **kwargs)
    assert len(model.calls) == 1
    call = model.calls[0]
    if guidance == "vanilla":
        s = branch_outputs(call, {"H": [0, 0], "empty": [999, 999]})
        expected = s["empty"] + w * (s["H"] - s["empty"])
    elif guidance == "fractional":
        s = branch_outputs(call, {"H": [0, 0], "Hk": [799, 799], "empty": [999, 999]})
        expected = s["H"] + (w - 1) * (s["Hk"] - s["empty"])
    else:
        s = branch_outputs(call, {"H1": [0, 999], "H2": [999, 0], "empty": [999, 999]})
        expected = s["empty"] + 1.5 * (s["H1"] - s["empty"]) + 0.7 * (s["H2"] - s["empty"])
    assert call["hidden_states"].shape[0] == len(s)  # all branches in the batch of one forward
    # Masked history is pure noise in its branches; clean history is the source itself.
    source = random_video(2).transpose(0, 1) * 2 - 1
    h_rows = [r for r in range(call["timestep"].shape[0]) if call["timestep"][r, 0] == 0]
    for r in h_rows:
        assert torch.equal(call["hidden_states"][r, :, 0], source[:, 0])
    # One DDIM step from level 999 (alpha = 0) to -1 returns x0 = -v: the composed prediction itself.
    torch.testing.assert_close(out.frames[0], -expected[:, 2:], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("guidance,branches", [(None, 1), ("vanilla", 2), ("fractional", 3), ("temporal", 4)])
def test_one_transformer_call_per_step_whatever_the_branch_count(guidance, branches):
    model = MixingDenoiser(max_frames=6)
    pipe = make_pipeline(model)
    extra = {"history_subsets": [[0], [1], [-1]]} if guidance == "temporal" else {}
    pipe(random_video(3), num_frames=5, num_inference_steps=3, history_guidance=guidance,
         guidance_scale=2.0 if guidance else 1.0, generator=gen(0), output_type="latent", **extra)
    assert len(model.calls) == pipe.num_timesteps == 3 * 2  # two windows of 3 steps
    assert all(call["hidden_states"].shape[0] == branches for call in model.calls)


def test_plan_windows():
    assert plan_windows(3, 4, 8) == [(0, 3, 4)]
    assert plan_windows(4, 10, 8) == [(0, 4, 4), (4, 4, 4), (8, 4, 2)]
    assert plan_windows(4, 10, 8, context_frames=2) == [(2, 2, 6), (8, 2, 4)]
    assert plan_windows(10, 3, 8, sliding_window=False) == [(5, 5, 3)]
    with pytest.raises(ValueError, match="sliding_window=True"):
        plan_windows(2, 8, 8, sliding_window=False)
    for windows in (plan_windows(5, 17, 6, 3), plan_windows(2, 9, 4, 1)):
        covered = [f for start, h, g in windows for f in range(start + h, start + h + g)]
        assert covered == list(range(windows[0][0] + windows[0][1], windows[-1][0] + windows[-1][1] + windows[-1][2]))
        assert all(h + g <= 6 for _, h, g in windows)
