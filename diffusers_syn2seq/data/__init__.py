# SPDX-License-Identifier: Apache-2.0
"""Syn2Seq data: video I/O, the SynthEgoExo renderer, the dataset format, sequence building, transitions."""

from .dataset import (
    METADATA_FEATURES,
    METADATA_FILENAME,
    Syn2SeqClipDataset,
    collect_clip_rows,
    load_metadata,
    write_clip,
    write_metadata,
)
from .sequence import (
    MODES,
    SEGMENT_EGO,
    SEGMENT_EXO,
    SEGMENT_TRANSITION,
    Syn2SeqSequenceBuilder,
    Syn2SeqSequenceDataset,
    build_syn2seq_sequence,
    collate_syn2seq,
    frames_to_tensor,
    sample_window,
)
from .synthetic import SPLIT_SEED_RANGES, SynthEgoExo, render_synthetic_clip, seeds_for_split, split_of_seed
from .transitions import (
    CrossfadeTransition,
    FirstLastFrameTransition,
    RenderTransition,
    TransitionSource,
    make_transition_source,
    transition_path_poses,
)
from .video_io import VideoInfo, read_frames, read_video, video_info, write_video

__all__ = [
    "CrossfadeTransition",
    "FirstLastFrameTransition",
    "METADATA_FEATURES",
    "METADATA_FILENAME",
    "MODES",
    "SEGMENT_EGO",
    "SEGMENT_EXO",
    "SEGMENT_TRANSITION",
    "RenderTransition",
    "SPLIT_SEED_RANGES",
    "Syn2SeqClipDataset",
    "Syn2SeqSequenceBuilder",
    "Syn2SeqSequenceDataset",
    "SynthEgoExo",
    "TransitionSource",
    "VideoInfo",
    "build_syn2seq_sequence",
    "collate_syn2seq",
    "collect_clip_rows",
    "frames_to_tensor",
    "load_metadata",
    "make_transition_source",
    "read_frames",
    "read_video",
    "render_synthetic_clip",
    "sample_window",
    "seeds_for_split",
    "split_of_seed",
    "transition_path_poses",
    "video_info",
    "write_clip",
    "write_metadata",
    "write_video",
]
