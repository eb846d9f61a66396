# SPDX-License-Identifier: Apache-2.0
"""The per-frame conditioning of a `Syn2SeqPipeline` sequence, in sequence order: camera poses, and the condition
vectors of condition models (the actions of DFoT's Minecraft model) with their checks, window slices and guidance
branches.

The user gives poses and condition vectors per frame of the source, the transition and the target, in natural time
order; `SequenceLayout` (the layout training uses) puts them in sequence order, reversed for Ego2Exo. A segment whose
condition vectors are left None gets the null embedding on its frames (what the transformer gives `condition=None`).
Guidance branches that drop conditions drop the vectors on every frame, as DFoT's guided samplers do
(`use_external_cond_guidance`).
"""

import dataclasses
from typing import Any

import torch

from ..data.sequence import SequenceLayout
from .video_input import batch_conditions, batch_poses

# DFoT's `external_cond_processing` of each window's frame conditions: None leaves them as given; "mask_first" zeroes
# each window's first vector (the official Minecraft model is trained and sampled so).
CONDITION_PROCESSING = (None, "mask_first")
SEGMENTS = ("source", "transition", "target")


def check_condition_processing(condition_processing: str | None) -> str | None:
    """`condition_processing`, or a ValueError naming it."""
    if condition_processing not in CONDITION_PROCESSING:
        raise ValueError(f"`condition_processing` must be None or 'mask_first' (DFoT's external_cond_processing), "
                         f"got {condition_processing!r}.")
    return condition_processing


def given_condition_names(segments: dict[str, Any], condition_dim: int | None, temporal_compression: int
                          ) -> list[str]:
    """The names of the frame-condition arguments given in `segments` (segment -> conditions or None), after
    checking that the model can take them."""
    given = [f"{segment}_conditions" for segment in SEGMENTS if segments[segment] is not None]
    names = " / ".join(f"`{name}`" for name in given)
    if given and not condition_dim:
        raise ValueError(f"{names} given but the transformer has no per-frame condition vector (condition_dim=None); "
                         "frame conditions need a condition model.")
    if given and temporal_compression > 1:  # a latent frame spans t frames: no rule, as in DFoT
        raise ValueError(
            f"{names} given but the VAE compresses time {temporal_compression}x: frame conditions need one model "
            "frame per video frame (the official DFoT code refuses external conditions with a VideoVAE too); omit "
            "them (null condition).")
    return given


def segment_lengths(layout: SequenceLayout) -> dict[str, int]:
    """Frames of the source, the transition and the target segment of `layout` (in model frames)."""
    num_source = layout.num_exo if layout.source == "exo" else layout.num_ego
    return {"source": num_source, "transition": layout.num_transition,
            "target": layout.num_frames - num_source - layout.num_transition}


def sequence_poses(layout: SequenceLayout, source_poses, target_poses, transition_poses, batch: int,
                   camera_ray_type: str) -> torch.Tensor:
    """`(B, F, 16)` float64 poses in sequence order (`SequenceLayout.poses`, as in training) for a pose-conditioned
    transformer (`camera_ray_type`), from the caller's poses in natural time order."""
    if source_poses is None or target_poses is None:
        raise ValueError(
            f"This transformer is pose-conditioned (camera_ray_type={camera_ray_type!r}): `source_poses` and "
            f"`target_poses` are required, got source_poses={'None' if source_poses is None else 'given'}, "
            f"target_poses={'None' if target_poses is None else 'given'}."
        )
    lengths = segment_lengths(layout)
    poses = {
        layout.source: batch_poses(source_poses, "source_poses", batch, lengths["source"]),
        layout.target: batch_poses(target_poses, "target_poses", batch, lengths["target"]),
    }
    if transition_poses is not None:
        if layout.mode != "video+pose":
            raise ValueError(f"`transition_poses` are only used in mode 'video+pose', got mode {layout.mode!r}.")
        transition_poses = batch_poses(transition_poses, "transition_poses", batch, layout.num_transition)
    return layout.poses(poses["exo"], poses["ego"], transition_poses)


@dataclasses.dataclass
class FrameConditions:
    """The frame conditions of a whole sequence or of one window: `(B, F, D)` vectors in sequence order and the
    `(F,)` mask of the frames that have one (the others get the null embedding)."""

    vectors: torch.Tensor
    valid: torch.Tensor

    @classmethod
    def from_segments(cls, layout: SequenceLayout, segments: dict[str, Any], batch: int, dim: int
                      ) -> "FrameConditions":
        """Checked `(batch, F, dim)` conditions in sequence order from `segments` (segment -> conditions in natural
        time order, or None: zeros, masked)."""
        if segments["transition"] is not None and not layout.num_transition:
            raise ValueError(f"`transition_conditions` were given but the sequence has no transition frames (mode "
                             f"{layout.mode!r}, num_transition_frames={layout.num_transition}).")
        counts = segment_lengths(layout)
        vectors, known = {}, {}  # segment -> (B, count, D) vectors, (count,) mask
        for segment in SEGMENTS:
            value, count = segments[segment], counts[segment]
            vectors[segment] = (torch.zeros(batch, count, dim) if value is None
                                else batch_conditions(value, f"{segment}_conditions", batch, count, dim))
            known[segment] = torch.full((count,), value is not None, dtype=torch.bool)
        by_clip = {layout.source: "source", layout.target: "target"}
        return cls(layout.gather(vectors[by_clip["exo"]], vectors["transition"], vectors[by_clip["ego"]], dim=1),
                   layout.gather(known[by_clip["exo"]], known["transition"], known[by_clip["ego"]], dim=0))

    def repeat_interleave(self, repeats: int) -> "FrameConditions":
        """Each sample's conditions `repeats` times (`num_videos_per_prompt`)."""
        return FrameConditions(self.vectors.repeat_interleave(repeats, dim=0), self.valid)

    def window(self, start: int, end: int, condition_processing: str | None) -> "FrameConditions":
        """Frames `[start, end)`, with the first vector zeroed under `"mask_first"`."""
        vectors = self.vectors[:, start:end].clone()
        if condition_processing == "mask_first":
            vectors[:, 0] = 0.0
        return FrameConditions(vectors, self.valid[start:end])

    def branch_inputs(self, keep: torch.Tensor, device: torch.device) -> dict[str, torch.Tensor]:
        """The transformer's `condition` / `condition_mask` for one batched forward of the guidance branches (branch
        j, sample b -> row j * B + b); `keep` `(num_branches,)` is False where a branch drops the conditions."""
        num_branches, batch = keep.shape[0], self.vectors.shape[0]
        mask = keep.to(device)[:, None, None] & self.valid.to(device)[None, None]
        return dict(condition=self.vectors.to(device).repeat(num_branches, 1, 1),
                    condition_mask=mask.expand(num_branches, batch, -1).reshape(num_branches * batch, -1))
