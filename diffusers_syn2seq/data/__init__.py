# SPDX-License-Identifier: Apache-2.0
"""Syn2Seq data: video I/O, SynthEgoExo, the dataset format, the sequence layer (layout, windows), transitions."""

import importlib

# submodule -> the public names it defines; each submodule is imported on first use of one of its names (PEP 562),
# so that `data.choices` and `data.synthetic_render` are importable without torch (the command line's `--help`)
_EXPORTS = {
    ".dataset": ("METADATA_FEATURES", "METADATA_FILENAME", "Syn2SeqClipDataset", "collect_clip_rows", "load_metadata",
                 "remove_writer_leftovers", "resolve_dataset_file", "write_clip", "write_metadata"),
    ".memory": ("DEFAULT_CACHE_BUDGET_MB", "InMemoryTakes", "decoded_take_bytes"),
    ".poses_file": ("load_poses_file",),
    ".sequence": ("DEFAULT_NUM_TRANSITION_FRAMES", "DIRECTIONS", "MODES", "REVERSALS", "SEGMENT_EGO", "SEGMENT_EXO",
                  "SEGMENT_TRANSITION", "LatentLayout", "SequenceLayout", "build_syn2seq_sequence", "frames_to_tensor",
                  "latent_sequence", "trim_to_latent_boundaries"),
    ".synthetic": ("CONTINUOUS_CATEGORY", "CONTINUOUS_SEED_RANGES", "SCENE_STYLES", "SPLIT_SEED_RANGES", "SynthEgoExo",
                   "render_continuous_clip", "render_synthetic_clip", "seeds_for_split", "split_of_seed"),
    ".transitions": ("CrossfadeTransition", "FirstLastFrameTransition", "RenderTransition", "TransitionSource",
                     "make_transition_source", "transition_path_poses"),
    ".video_io": ("VideoInfo", "read_frames", "read_video", "video_info", "write_video"),
    ".windows": ("EpochShuffleSampler", "Syn2SeqTrainingWindows", "collate_syn2seq", "plan_windows", "sample_window",
                 "window_camera_rays", "window_history_lengths"),
}
_HOME = {name: module for module, names in _EXPORTS.items() for name in names}


def __getattr__(name: str):
    """Import the submodule that defines a public name on first access (unknown names raise AttributeError, so that
    `from diffusers_syn2seq.data import sequence` still finds the submodule)."""
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_HOME[name], __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_HOME))


__all__ = [
    "CONTINUOUS_CATEGORY",
    "CONTINUOUS_SEED_RANGES",
    "build_syn2seq_sequence",
    "collate_syn2seq",
    "collect_clip_rows",
    "CrossfadeTransition",
    "DEFAULT_CACHE_BUDGET_MB",
    "DEFAULT_NUM_TRANSITION_FRAMES",
    "DIRECTIONS",
    "EpochShuffleSampler",
    "FirstLastFrameTransition",
    "InMemoryTakes",
    "decoded_take_bytes",
    "frames_to_tensor",
    "LatentLayout",
    "latent_sequence",
    "load_metadata",
    "load_poses_file",
    "make_transition_source",
    "METADATA_FEATURES",
    "METADATA_FILENAME",
    "MODES",
    "plan_windows",
    "read_frames",
    "read_video",
    "remove_writer_leftovers",
    "render_continuous_clip",
    "render_synthetic_clip",
    "RenderTransition",
    "resolve_dataset_file",
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
    "trim_to_latent_boundaries",
    "video_info",
    "VideoInfo",
    "window_camera_rays",
    "window_history_lengths",
    "write_clip",
    "write_metadata",
    "write_video",
]
