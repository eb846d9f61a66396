# SPDX-License-Identifier: Apache-2.0
"""The package reads at a glance: ruff clean, small modules that say what they hold, short functions, one home per
concept (no module reaches into the pipeline module for a helper)."""

import ast
import subprocess
import sys

import pytest
from script_loading import REPO

PACKAGE = REPO / "diffusers_syn2seq"
SOURCES = sorted(p for folder in ("diffusers_syn2seq", "training", "benchmarks", "scripts", "tests")
                 for p in (REPO / folder).rglob("*.py"))
MAX_MODULE_LINES = 620  # "about 600"
MAX_FUNCTION_LINES = 110  # "about 100"; entry points that read as numbered steps are exempt
ENTRY_POINTS = {("diffusers_syn2seq/pipelines/pipeline_syn2seq.py", "__call__"), ("training/train.py", "main"),
                ("benchmarks/syn2seq_experiment.py", "main")}


def test_ruff_is_clean():
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", str(REPO)], capture_output=True,
                            text=True, cwd=REPO)
    assert "No module named ruff" not in result.stderr, "ruff is a test dependency: pip install -e '.[test]'"
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-1000:]


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(REPO)))
def test_module_opens_with_a_licence_line_and_a_one_line_summary(path):
    text = path.read_text()
    assert text.startswith("# SPDX-License-Identifier: Apache-2.0\n"), "SPDX licence line first"
    docstring = ast.get_docstring(ast.parse(text))
    if path.name == "__init__.py" and not docstring:
        return  # re-export lists
    assert docstring and docstring.splitlines()[0].strip(), "a docstring whose first line says what the module holds"


def test_package_modules_and_functions_are_small():
    too_long = []
    for path in SOURCES:
        relative = str(path.relative_to(REPO))
        text = path.read_text()
        if relative.startswith("diffusers_syn2seq/") and text.count("\n") > MAX_MODULE_LINES:
            too_long.append(f"{relative}: {text.count(chr(10))} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and (relative, node.name) not in ENTRY_POINTS:
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES and not relative.startswith("tests/"):
                    too_long.append(f"{relative}:{node.lineno} {node.name}: {length} lines")
    assert not too_long, too_long


def test_no_module_imports_the_pipeline_module_for_a_helper():
    """Shared pieces live in their own modules (latents, data, metrics); only the pipelines package itself, the
    package's public exports and loaders of a whole pipeline may import the pipeline."""
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE)
        if relative.parts[0] == "pipelines":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and "pipeline_syn2seq" in node.module:
                offenders.append(f"{relative}: from {node.module} import {[a.name for a in node.names]}")
    assert not offenders, offenders


def _package_imports() -> dict[str, set[str]]:
    """Module name -> the package modules it imports, read with ast: every import statement of the file, also those
    inside functions and under `if TYPE_CHECKING:` (a deferred import is still an arrow between two files).
    `from .x import y` points at the module `x.y` when that is a module, else at `x`."""
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(REPO).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph = {}
    for name, path in modules.items():
        package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        graph[name] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                graph[name] |= {alias.name for alias in node.names if alias.name in modules}
            elif isinstance(node, ast.ImportFrom):
                base = ".".join(package[: len(package) - node.level + 1]) if node.level else ""
                source = ".".join(filter(None, [base, node.module]))
                for alias in node.names:
                    target = f"{source}.{alias.name}" if f"{source}.{alias.name}" in modules else source
                    if target in modules and target != name:
                        graph[name].add(target)
    return graph


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle `[a, b, ..., a]` of `graph`, or None (depth-first search, colouring the modules)."""
    state: dict[str, str] = {}  # "open" while on the current path, "done" once every import below was walked

    def visit(module: str, path: list[str]) -> list[str] | None:
        state[module] = "open"
        for target in sorted(graph[module]):
            if state.get(target) == "open":
                return path[path.index(target):] + [target]
            if target not in state and (cycle := visit(target, path + [target])):
                return cycle
        state[module] = "done"
        return None

    for module in sorted(graph):
        if module not in state and (cycle := visit(module, [module])):
            return cycle
    return None


def test_the_import_graph_finds_a_planted_circle():
    """The walker and the search see what they must: a circle through a deferred import, none in a chain."""
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None
    graph = _package_imports()
    assert "diffusers_syn2seq.models.casting" in graph["diffusers_syn2seq.models.transformer_wan_dfot"]
    assert "diffusers_syn2seq.data.synthetic_render" in graph["diffusers_syn2seq.data.synthetic"]
    assert "diffusers_syn2seq.camera" in graph["diffusers_syn2seq.data.synthetic"]  # a deferred import counts


def test_the_package_has_no_import_circle():
    """Each file's imports point one way (issue 24): loading -> conversion -> official_dfot, the models -> casting,
    synthetic -> synthetic_render. A circle works only by the order of deferred imports and makes both files one."""
    cycle = _find_cycle(_package_imports())
    assert cycle is None, " -> ".join(cycle)
