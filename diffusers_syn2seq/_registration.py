# SPDX-License-Identifier: Apache-2.0
"""Makes `diffusers.Syn2SeqPipeline` resolvable once this package is imported, without importing diffusers early.

`DiffusionPipeline.from_pretrained(folder)` looks the `_class_name` of `model_index.json` up as an attribute of the
`diffusers` module. The package's `__init__` is lazy (torch and diffusers cost about 5 s), so instead of importing
the pipeline it gives the `diffusers` module a fallback attribute lookup that imports `Syn2SeqPipeline` when diffusers
first asks for it: at once when diffusers is already imported, else right after diffusers is imported (a one-shot
`sys.meta_path` finder). Importing the pipeline module itself sets the attribute for good
(`pipelines.pipeline_syn2seq._register_with_diffusers`).
"""

import importlib
import importlib.abc
import importlib.util
import sys
import types

PIPELINE_MODULE = "diffusers_syn2seq.pipelines.pipeline_syn2seq"
PIPELINE_CLASS = "Syn2SeqPipeline"
# diffusers resolves the components of `model_index.json` from `sys.modules` only (it imports no module a folder
# names), so a loadable pipeline needs these imported: what the package's `__init__` imported eagerly before.
PUBLIC_MODULES = ("diffusers_syn2seq.data", "diffusers_syn2seq.loaders", "diffusers_syn2seq.models",
                  "diffusers_syn2seq.schedulers", "diffusers_syn2seq.pipelines")


def import_public_modules() -> None:
    """Import every module that holds a public name or a pipeline component class (about 5 s the first time)."""
    for name in PUBLIC_MODULES:
        importlib.import_module(name)


def _add_fallback_lookup(module: types.ModuleType) -> None:
    """Give the `diffusers` module object a class whose `__getattr__` also knows `Syn2SeqPipeline`."""
    base = type(module)
    if getattr(base, "_syn2seq_fallback", False):
        return

    class _WithSyn2SeqPipeline(base):
        _syn2seq_fallback = True

        def __getattr__(self, name: str):
            if name == PIPELINE_CLASS:
                pipeline = importlib.import_module(PIPELINE_MODULE)  # also while it runs its own registration
                for component_module in PUBLIC_MODULES[:-1]:
                    importlib.import_module(component_module)
                return getattr(pipeline, PIPELINE_CLASS)
            fallback = getattr(base, "__getattr__", None)
            if fallback is None:
                raise AttributeError(f"module {self.__name__!r} has no attribute {name!r}")
            return fallback(self, name)

    _WithSyn2SeqPipeline.__name__ = base.__name__
    module.__class__ = _WithSyn2SeqPipeline


class _AfterDiffusersImport(importlib.abc.MetaPathFinder):
    """One-shot finder: lets the normal finders load `diffusers`, then adds the fallback lookup to the module."""

    def find_spec(self, fullname, path, target=None):
        if fullname != "diffusers":
            return None
        if self in sys.meta_path:
            sys.meta_path.remove(self)  # one shot, and the real finders must not come back here
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        exec_module = spec.loader.exec_module

        def exec_then_add_lookup(module: types.ModuleType) -> None:
            exec_module(module)
            # diffusers replaces its module in sys.modules by a lazy module at the end of its __init__
            _add_fallback_lookup(sys.modules.get(fullname, module))

        spec.loader.exec_module = exec_then_add_lookup
        return spec


def expose_pipeline_in_diffusers() -> None:
    """Make `getattr(diffusers, "Syn2SeqPipeline")` work now if diffusers is imported, else once it is."""
    if "diffusers" in sys.modules:
        _add_fallback_lookup(sys.modules["diffusers"])
    elif not any(isinstance(finder, _AfterDiffusersImport) for finder in sys.meta_path):
        sys.meta_path.insert(0, _AfterDiffusersImport())
