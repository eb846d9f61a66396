# SPDX-License-Identifier: Apache-2.0
"""Syn2Seq data: video I/O, SynthEgoExo, the dataset format, the sequence layer (layout, windows), transitions."""

from .dataset import (
    METADATA_FEATURES,
    METADATA_FILENAME,
    Syn2SeqClipDataset,
    collect_clip_rows,
    load_metadata,
    write_clip,
    write_metadata,
)
from .poses_file import load_poses_file
from .sequence import (
    DEFAULT_NUM_TRANSITION_FRAMES,
    DIRECTIONS,
    MODES,
    REVERSALS,
    SEGMENT_EGO,
    SEGMENT_EXO,
    SEGMENT_TRANSITION,
    SequenceLayout,
    build_syn2seq_sequence,
    frames_to_tensor,
)
from .synthetic import (
    SCENE_STYLES,
    SPLIT_SEED_RANGES,
    SynthEgoExo,
    render_synthetic_clip,
    seeds_for_split,
    split_of_seed,
)
from .transitions import (
    CrossfadeTransition,
    FirstLastFrameTransition,
    RenderTransition,
    TransitionSource,
    make_transition_source,
    transition_path_poses,
)
from .video_io import VideoInfo, read_frames, read_video, video_info, write_video
from .windows import (
    EpochShuffleSampler,
    Syn2SeqTrainingWindows,
    collate_syn2seq,
    plan_windows,
    sample_window,
    window_camera_rays,
)

__all__ = [
    "build_syn2seq_sequence",
    "collate_syn2seq",
    "collect_clip_rows",
    "CrossfadeTransition",
    "DEFAULT_NUM_TRANSITION_FRAMES",
    "DIRECTIONS",
    "EpochShuffleSampler",
    "FirstLastFrameTransition",
    "frames_to_tensor",
    "load_metadata",
    "load_poses_file",
    "make_transition_source",
    "METADATA_FEATURES",
    "METADATA_FILENAME",
    "MODES",
    "plan_windows",
    "read_frames",
    "read_video",
    "render_synthetic_clip",
    "RenderTransition",
    "REVERSALS",
    "sample_window",
    "SCENE_STYLES",
    "seeds_for_split",
    "SEGMENT_EGO",
    "SEGMENT_EXO",
    "SEGMENT_TRANSITION",
    "SequenceLayout",
    "split_of_seed",
    "SPLIT_SEED_RANGES",
    "Syn2SeqClipDataset",
    "Syn2SeqTrainingWindows",
    "SynthEgoExo",
    "transition_path_poses",
    "TransitionSource",
    "video_info",
    "VideoInfo",
    "window_camera_rays",
    "write_clip",
    "write_metadata",
    "write_video",
]
