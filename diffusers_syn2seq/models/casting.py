# SPDX-License-Identifier: Apache-2.0
"""Casting a built model to a dtype the way `from_pretrained(dtype=...)` does: `_keep_in_fp32_modules` stay float32.

Its own module because the models (the Wan wrapper), the checkpoint conversion and `loading.py` all need it, and
none of them may import another for it (the imports of `models/` point one way: loading -> conversion -> models).
"""

import torch

__all__ = ["_cast_keeping_fp32_modules"]


def _cast_keeping_fp32_modules(model: torch.nn.Module, dtype: torch.dtype) -> torch.nn.Module:
    """Cast to ``dtype`` except the model's ``_keep_in_fp32_modules``, as ``from_pretrained(dtype=...)`` does."""
    keep = model._keep_in_fp32_modules or []
    for name, tensor in [*model.named_parameters(), *model.named_buffers()]:
        if tensor.is_floating_point() and not any(part in keep for part in name.split(".")):
            tensor.data = tensor.data.to(dtype)
    return model


