# SPDX-License-Identifier: Apache-2.0
"""diffusers-syn2seq: Syn2Seq-Forcing exo<->ego video generation with Diffusion Forcing Transformers.

The public names are imported on first use (PEP 562 `__getattr__`): `import diffusers_syn2seq` and `syn2seq --help`
load neither torch nor diffusers (about 5 s otherwise). `Syn2SeqPipeline` is still found by
`DiffusionPipeline.from_pretrained(folder)` once this package is imported (`_registration`).
"""

import importlib
from typing import TYPE_CHECKING

from . import _registration
from ._version import __version__
from .bundled import bundled_base_path, bundled_model_path

# public name -> the submodule that defines it
_LAZY = {
    "LatentLayout": ".data", "SequenceLayout": ".data",
    "Syn2SeqLoraLoaderMixin": ".loaders",
    "DIT_PRESETS": ".models", "DFoTTransformer3DModel": ".models", "DFoTUViT3DModel": ".models",
    "WanDFoTTransformer3DModel": ".models", "convert_dfot_checkpoint": ".models", "load_transformer": ".models",
    "DFOT_VAE_PRESETS": ".models", "AutoencoderKLDFoTVideo": ".models", "convert_dfot_vae": ".models",
    "Syn2SeqPipeline": ".pipelines", "Syn2SeqPipelineOutput": ".pipelines",
    "DiffusionForcingScheduler": ".schedulers", "DiffusionForcingSchedulerOutput": ".schedulers",
    "FlowMatchDiffusionForcingScheduler": ".schedulers",
}

if TYPE_CHECKING:  # what type checkers and IDEs see
    from .data import LatentLayout, SequenceLayout
    from .loaders import Syn2SeqLoraLoaderMixin
    from .models import (
        DFOT_VAE_PRESETS,
        DIT_PRESETS,
        AutoencoderKLDFoTVideo,
        DFoTTransformer3DModel,
        DFoTUViT3DModel,
        WanDFoTTransformer3DModel,
        convert_dfot_checkpoint,
        convert_dfot_vae,
        load_transformer,
    )
    from .pipelines import Syn2SeqPipeline, Syn2SeqPipelineOutput
    from .schedulers import (
        DiffusionForcingScheduler,
        DiffusionForcingSchedulerOutput,
        FlowMatchDiffusionForcingScheduler,
    )


def __getattr__(name: str):
    """Import the public modules on the first access to a public name, as the eager `__init__` did (an unknown name
    raises AttributeError, so that `from diffusers_syn2seq import threads` still finds the submodule)."""
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    _registration.import_public_modules()  # the pipeline's component classes must be importable by diffusers
    value = getattr(importlib.import_module(_LAZY[name], __name__), name)
    globals()[name] = value  # later accesses skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


_registration.expose_pipeline_in_diffusers()

__all__ = [
    "__version__",
    "DIT_PRESETS",
    "DFOT_VAE_PRESETS",
    "AutoencoderKLDFoTVideo",
    "bundled_base_path",
    "bundled_model_path",
    "DFoTTransformer3DModel",
    "DFoTUViT3DModel",
    "DiffusionForcingScheduler",
    "DiffusionForcingSchedulerOutput",
    "LatentLayout",
    "FlowMatchDiffusionForcingScheduler",
    "SequenceLayout",
    "Syn2SeqLoraLoaderMixin",
    "Syn2SeqPipeline",
    "Syn2SeqPipelineOutput",
    "WanDFoTTransformer3DModel",
    "convert_dfot_checkpoint",
    "convert_dfot_vae",
    "load_transformer",
]
