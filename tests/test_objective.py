# SPDX-License-Identifier: Apache-2.0
"""Tests of the diffusion-forcing objective: noise-level sampling, loss weights and `diffusion_forcing_loss`."""

import pytest
import torch

from diffusers_syn2seq.models import DFoTTransformer3DModel
from diffusers_syn2seq.objective import diffusion_forcing_loss, loss_weights, sample_noise_levels
from diffusers_syn2seq.schedulers import DiffusionForcingScheduler

PREDICTION_TYPES = ["v_prediction", "epsilon", "sample"]


def continuous_scheduler(**kwargs) -> DiffusionForcingScheduler:
    return DiffusionForcingScheduler(noise_schedule="cosine_simple_diffusion", shift=0.125, **kwargs)


# ------------------------------------------------------------------------------------------------ noise levels
def test_sample_noise_levels_strategies():
    scheduler = DiffusionForcingScheduler()
    g = torch.Generator().manual_seed(0)
    iid = sample_noise_levels(scheduler, 64, 8, generator=g)
    assert iid.dtype == torch.long and iid.min() >= 0 and iid.max() <= 999
    assert (iid != iid[:, :1]).any(dim=1).all()
    fut = sample_noise_levels(scheduler, 16, 8, "uniform_future", num_context_frames=3, generator=g)
    assert (fut[:, 3:] == fut[:, 3:4]).all() and (fut[:, :3] != fut[:, 3:4]).any()
    mask = torch.ones(16, 8, dtype=torch.bool)
    mask[:, -2:] = False
    masked = sample_noise_levels(scheduler, 16, 8, frame_mask=mask, generator=g)
    assert (masked[:, -2:] == 999).all()
    cont = sample_noise_levels(continuous_scheduler(), 4, 5, continuous=True, generator=g)
    assert cont.is_floating_point() and cont.min() >= 0 and cont.max() <= 1
    with pytest.raises(ValueError, match="continuous=True"):
        sample_noise_levels(scheduler, 2, 2, continuous=True)


# ------------------------------------------------------------------------------------------------ loss weights
# (fused min-SNR converts with the *fused* SNR, as DFoT does, so it is not space-invariant by design)
@pytest.mark.parametrize("strategy", ["sigmoid", "min_snr"])
def test_loss_weights_are_the_same_loss_in_every_prediction_space(strategy):
    levels = torch.tensor([[5, 200, 600, 950], [990, 10, 400, 100]])
    x0, noise = torch.randn(2, 3, 4, 4, 4), torch.randn(2, 3, 4, 4, 4)
    losses = []
    for kind in PREDICTION_TYPES:
        scheduler = DiffusionForcingScheduler(prediction_type=kind)
        xt = scheduler.add_noise(x0, noise, levels)
        wrong_x0 = x0 + 0.1 * torch.randn(2, 3, 4, 4, 4, generator=torch.Generator().manual_seed(3))
        # Build the prediction a model that estimates `wrong_x0` would output in this space.
        a = scheduler.alphas_cumprod_at(levels)[:, None, :, None, None]
        eps_hat = (xt - a.sqrt() * wrong_x0) / (1 - a).sqrt()
        pred = scheduler.convert_to_prediction(wrong_x0, eps_hat, xt, levels)
        target = scheduler.get_target(x0, noise, levels)
        mse = ((pred - target) ** 2).mean(dim=(1, 3, 4))
        losses.append(mse * loss_weights(scheduler, levels, strategy))
    torch.testing.assert_close(losses[0], losses[1], rtol=1e-3, atol=1e-6)
    torch.testing.assert_close(losses[0], losses[2], rtol=1e-3, atol=1e-6)


def test_loss_weight_formulas():
    scheduler = DiffusionForcingScheduler(prediction_type="epsilon")
    levels = torch.tensor([[0, 300, 700, 999]])
    a = scheduler.alphas_cumprod[levels[0]].double()
    snr = a / (1 - a)
    expected_min_snr = (snr.clamp(max=5) / snr.clamp(min=1e-8)).float()
    torch.testing.assert_close(loss_weights(scheduler, levels, "min_snr")[0], expected_min_snr)
    torch.testing.assert_close(
        loss_weights(scheduler, levels, "sigmoid", sigmoid_bias=-1.0)[0], torch.sigmoid(-1 - torch.log(snr)).float()
    )
    single = levels[:, 1:2]
    fused = loss_weights(scheduler, single, "fused_min_snr")
    torch.testing.assert_close(fused, loss_weights(scheduler, single, "min_snr"))
    causal = loss_weights(scheduler, levels, "fused_min_snr", causal=True)
    both = loss_weights(scheduler, levels, "fused_min_snr")
    assert not torch.allclose(causal, both)
    assert torch.equal(loss_weights(scheduler, levels, "uniform"), torch.ones(1, 4))


# ------------------------------------------------------------------------------------------------ the loss
def posed_model() -> DFoTTransformer3DModel:
    """A tiny pose-conditioned DFoT with non-zero weights everywhere (AdaLN-zero init would output 0)."""
    torch.manual_seed(1)
    model = DFoTTransformer3DModel(in_channels=3, sample_size=8, max_frames=4, patch_size=2, num_layers=1,
                                   num_attention_heads=2, attention_head_dim=16, noise_embedding_dim=32,
                                   camera_ray_type="plucker")
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=generator) * 0.05)
    return model.eval()


def posed_batch(batch: int = 4):
    generator = torch.Generator().manual_seed(2)
    x0 = torch.randn(batch, 3, 4, 8, 8, generator=generator)
    rays = torch.randn(batch, 6, 4, 8, 8, generator=generator)
    return x0, torch.ones(batch, 4, dtype=torch.bool), rays


def seeded_loss(model, x0, frame_mask, rays, seed: int = 0, **kwargs):
    with torch.no_grad():
        return diffusion_forcing_loss(model, DiffusionForcingScheduler(), x0, frame_mask, rays,
                                      generator=torch.Generator().manual_seed(seed), **kwargs)


def test_loss_is_a_function_of_the_step_generator():
    model, (x0, mask, rays) = posed_model(), posed_batch()
    loss, info = seeded_loss(model, x0, mask, rays, camera_dropout=0.5)
    again, info_again = seeded_loss(model, x0, mask, rays, camera_dropout=0.5)
    assert torch.equal(loss, again) and torch.equal(info["levels"], info_again["levels"])  # what exact resume needs
    other, _ = seeded_loss(model, x0, mask, rays, seed=1, camera_dropout=0.5)
    assert not torch.equal(loss, other)


def test_camera_dropout_drops_whole_samples_poses():
    model, (x0, mask, rays) = posed_model(), posed_batch()
    kept, _ = seeded_loss(model, x0, mask, rays, camera_dropout=0.0)
    assert not torch.equal(kept, seeded_loss(model, x0, mask, rays + 1, camera_dropout=0.0)[0])
    # every sample dropped: the rays no longer matter, and the result is the pose-free (null embedding) loss
    dropped, _ = seeded_loss(model, x0, mask, rays, camera_dropout=1.0)
    assert torch.equal(dropped, seeded_loss(model, x0, mask, rays + 1, camera_dropout=1.0)[0])
    no_poses = torch.zeros(4, 4, dtype=torch.bool)
    torch.testing.assert_close(dropped, seeded_loss(model, x0, mask, rays, pose_mask=no_poses)[0], rtol=0, atol=0)


def test_padded_frames_are_fully_noised_and_get_no_loss():
    model, (x0, mask, rays) = posed_model(), posed_batch()
    mask[:, -1] = False
    loss, info = seeded_loss(model, x0, mask, rays)
    assert (info["levels"][:, -1] == 999).all() and (info["levels"][:, :-1] < 999).any()
    changed = x0.clone()
    changed[:, :, -1] += 5.0  # at level 999 (zero SNR) the padded frames' content never reaches the model
    torch.testing.assert_close(seeded_loss(model, changed, mask, rays)[0], loss, rtol=0, atol=0)


# ------------------------------------------------------------------------------------------------ inference matched
def test_inference_matched_levels_mix_sampling_configurations_with_iid():
    scheduler = DiffusionForcingScheduler()
    batch, frames = 4000, 8
    num_history = torch.randint(0, frames + 1, (batch,), generator=torch.Generator().manual_seed(1))
    levels = sample_noise_levels(scheduler, batch, frames, "inference_matched", generator=torch.Generator()
                                 .manual_seed(0), num_history=num_history, matched_fractions=(0.5, 0.25))
    assert levels.dtype == torch.long and levels.min() >= -1 and levels.max() <= 999
    clean = (levels == -1).any(dim=1)
    # expected history length: the window's own source frames, else uniform in [1, F - 1]
    h = torch.where((num_history >= 1) & (num_history < frames), num_history, (levels == -1).sum(dim=1))
    for i in torch.nonzero(clean).flatten().tolist():  # clean history: -1 then one shared level
        assert (levels[i, : h[i]] == -1).all() and (levels[i, h[i] :] == levels[i, -1]).all() and levels[i, -1] >= 0
    assert 1 <= (levels[clean] == -1).sum(dim=1).min() and (levels[clean] == -1).sum(dim=1).max() <= frames - 1
    two_levels = torch.tensor([len(set(row.tolist())) <= 2 for row in levels])
    noisy = ~clean & two_levels  # noisy history: one level for the history, one for the rest
    iid = ~clean & ~two_levels
    # fractions within sampling error of 0.5 / 0.25 / 0.25 (iid rows with <= 2 distinct levels are ~impossible)
    for observed, expected in ((clean, 0.5), (noisy, 0.25), (iid, 0.25)):
        assert abs(observed.float().mean().item() - expected) < 0.03
    with pytest.raises(ValueError, match="`matched_fractions` must be two fractions >= 0 summing to at most 1"):
        sample_noise_levels(scheduler, 2, 4, "inference_matched", matched_fractions=(0.8, 0.4))
    with pytest.raises(ValueError, match="needs a discrete schedule"):
        sample_noise_levels(continuous_scheduler(), 2, 4, "inference_matched", continuous=True)


def test_clean_history_frames_get_no_loss():
    model, (x0, mask, rays) = posed_model(), posed_batch()
    history = torch.full((4,), 2)
    loss, info = seeded_loss(model, x0, mask, rays, noise_level_sampling="inference_matched", num_history=history,
                             matched_fractions=(1.0, 0.0))
    assert (info["levels"][:, :2] == -1).all() and (info["levels"][:, 2:] >= 0).all()
    expected = (info["mse"] * info["weights"])[:, 2:].sum() / (4 * 2)  # only the 2 noisy frames of each sample
    torch.testing.assert_close(loss, expected, rtol=1e-6, atol=0)


def test_window_history_lengths_count_the_leading_source_frames():
    from diffusers_syn2seq.data import SEGMENT_EGO, SEGMENT_EXO, SEGMENT_TRANSITION, window_history_lengths

    exo, tr, ego = SEGMENT_EXO, SEGMENT_TRANSITION, SEGMENT_EGO
    segments = torch.tensor([[exo, exo, tr, ego], [tr, ego, ego, -1], [ego, ego, tr, exo], [exo, exo, exo, exo]])
    reversed_ = torch.tensor([False, False, True, False])
    assert window_history_lengths(segments, reversed_).tolist() == [2, 0, 2, 4]
