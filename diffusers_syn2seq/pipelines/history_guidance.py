# SPDX-License-Identifier: Apache-2.0
"""History guidance (DFoT, Song et al. 2025) as small pure functions: which branches to evaluate, and how to
compose their predictions.

A *branch* is one conditional prediction of the same noisy window: each history frame is fed at a branch-specific
noise level (`-1` = clean, `T - 1` = replaced by pure noise, anything between = partially noised with fresh
noise), and the external conditions (camera poses, condition vectors) are kept or dropped. With `s_X` the model
prediction conditioned on history `X` (table of `shared/design/dfot.md`):

| guidance | composed prediction | branches |
|---|---|---|
| none | `s_H` | 1 |
| vanilla (HG-v) | `s_empty + w (s_H - s_empty)` | 2 |
| fractional (HG-f) | `s_H + (w - 1)(s_{H at k_H} - s_empty)` | 3 |
| temporal (HG-t) | `s_empty + sum_i w_i (s_{H_i} - s_empty)` | 1 + #subsets |

`s_empty` has every history frame at full noise and the conditions dropped; in `s_H`, ground-truth history is clean
and previously generated history sits at the stabilisation level; in `s_{H_i}` the history frames outside subset
`i` are at full noise. The composition is linear with weights summing to one, so it may be applied to v, epsilon
or x0 predictions alike. Identical branches are merged and zero-weight branches dropped (e.g. HG-v with `w = 1`
is a single `s_H` forward). The pipeline evaluates all branches in ONE batched transformer call.
"""

import numbers
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ..validation import describe

HISTORY_GUIDANCE = ("vanilla", "fractional", "temporal")

# Per-frame roles in a sampling window (same codes as DFoT's history-guidance mask).
GENERATE, GROUND_TRUTH_HISTORY, GENERATED_HISTORY = 0, 1, 2


@dataclass(frozen=True)
class GuidanceBranches:
    """The branches of one history-guidance step.

    Attributes:
        history_levels: `(NB, H)` long, the level of each history frame in each branch (`-1` = clean).
        drop_conditions: `(NB,)` bool, True where the branch drops the external conditions (poses, vectors).
        weights: `(NB,)` float64 composition weights; they sum to 1.
    """

    history_levels: torch.Tensor
    drop_conditions: torch.Tensor
    weights: torch.Tensor

    @property
    def num_branches(self) -> int:
        return int(self.weights.numel())


def fraction_to_level(fraction: float, num_train_timesteps: int = 1000) -> int:
    """DFoT's map from a noise fraction in [0, 1] to a level, `int(fraction * T - 1)`: 0 -> -1, 0.02 -> 19, 1 -> T-1."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"noise fraction must be in [0, 1], got {fraction!r}.")
    return int(fraction * num_train_timesteps - 1)


def _resolve_subset(subset: Sequence[int], num_history: int, index: int) -> list[int]:
    if isinstance(subset, str) or not isinstance(subset, Sequence) \
            or not all(isinstance(i, numbers.Integral) and not isinstance(i, bool) for i in subset):
        raise ValueError(f"`history_subsets[{index}]` must be a list of history-frame indices (ints), got "
                         f"{describe(subset)}.")
    resolved = []
    for i in subset:
        if not -num_history <= int(i) < num_history:
            raise ValueError(
                f"`history_subsets[{index}]` holds index {i}, but the window has {num_history} history frames "
                f"(valid indices: {-num_history}..{num_history - 1})."
            )
        resolved.append(int(i) % num_history)
    return resolved


def history_guidance_branches(
    history_roles: Sequence[int],
    guidance: str | None = None,
    guidance_scale: float = 1.0,
    fractional_level: int = 799,
    stabilization_level: int = 19,
    masked_level: int = 999,
    history_subsets: Sequence[Sequence[int]] | None = None,
    history_weights: Sequence[float] | None = None,
) -> GuidanceBranches:
    """Branches and weights for one window (see the module docstring for the formulas).

    Args:
        history_roles: role of each history frame of the window, oldest first: `GROUND_TRUTH_HISTORY` (1, fed clean
            in `s_H`) or `GENERATED_HISTORY` (2, fed at `stabilization_level`, re-noised every step).
        guidance: `None`, `"vanilla"`, `"fractional"` or `"temporal"`.
        guidance_scale: `w`; for temporal guidance without `history_weights`, each subset gets `w / #subsets`.
        fractional_level: history level `k_H` of the fractional branch (generated history never goes below
            `stabilization_level`).
        stabilization_level: level of previously generated history (`-1` disables stabilisation).
        masked_level: level meaning "replaced by pure noise" (`T - 1`).
        history_subsets: temporal guidance: lists of history-frame indices (0 = oldest, negative from the newest).
        history_weights: temporal guidance: one weight per subset.
    """
    roles = [int(r) for r in history_roles]
    if any(r not in (GROUND_TRUTH_HISTORY, GENERATED_HISTORY) for r in roles):
        raise ValueError(f"`history_roles` must hold 1 (ground truth) or 2 (generated), got {roles}.")
    num_history = len(roles)

    def levels_of(level_gt: int, level_generated: int, keep: set | None = None) -> tuple:
        # frames outside `keep` are masked (pure noise); kept frames get the level of their role
        return tuple(
            masked_level if keep is not None and j not in keep
            else (level_gt if r == GROUND_TRUTH_HISTORY else level_generated)
            for j, r in enumerate(roles)
        )

    full_history = levels_of(-1, stabilization_level)
    empty = (tuple([masked_level] * num_history), True)
    terms: list[tuple[tuple, bool, float]] = []
    if guidance is None:
        terms.append((full_history, False, 1.0))
    elif guidance == "vanilla":
        terms += [(full_history, False, guidance_scale), (*empty, 1.0 - guidance_scale)]
    elif guidance == "fractional":
        partial = levels_of(fractional_level, max(fractional_level, stabilization_level))
        terms += [
            (full_history, False, 1.0),
            (partial, False, guidance_scale - 1.0),
            (*empty, 1.0 - guidance_scale),
        ]
    elif guidance == "temporal":
        if not history_subsets or isinstance(history_subsets, str) or not isinstance(history_subsets, Sequence):
            raise ValueError("`history_subsets` must be a non-empty list of index lists for temporal guidance, got "
                             f"{history_subsets!r}.")
        if history_weights is None:
            history_weights = [guidance_scale / len(history_subsets)] * len(history_subsets)
        if len(history_weights) != len(history_subsets):
            raise ValueError(
                f"`history_weights` must have one weight per subset ({len(history_subsets)}), "
                f"got {len(history_weights)}."
            )
        for index, (subset, weight) in enumerate(zip(history_subsets, history_weights)):
            keep = set(_resolve_subset(subset, num_history, index))
            terms.append((levels_of(-1, stabilization_level, keep), False, float(weight)))
        terms.append((*empty, 1.0 - float(sum(history_weights))))
    else:
        raise ValueError(f"`history_guidance` must be None or one of {HISTORY_GUIDANCE}, got {guidance!r}.")

    merged: dict[tuple, float] = {}
    for levels, drop, weight in terms:  # merge identical branches, keep first-seen order
        merged[(levels, drop)] = merged.get((levels, drop), 0.0) + weight
    kept = [(key, w) for key, w in merged.items() if w != 0.0]
    return GuidanceBranches(
        history_levels=torch.tensor([key[0] for key, _ in kept], dtype=torch.long).reshape(len(kept), num_history),
        drop_conditions=torch.tensor([key[1] for key, _ in kept], dtype=torch.bool),
        weights=torch.tensor([w for _, w in kept], dtype=torch.float64),
    )


def compose_guidance(predictions: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Weighted sum over branches: `(NB, B, ...)` predictions, `(NB,)` weights -> `(B, ...)` (computed in float32)."""
    if predictions.shape[0] != weights.numel():
        raise ValueError(
            f"`predictions` has {predictions.shape[0]} branches but `weights` has {weights.numel()} entries."
        )
    w = weights.to(device=predictions.device, dtype=torch.float32).reshape(-1, *([1] * (predictions.ndim - 1)))
    return (predictions.float() * w).sum(dim=0)
