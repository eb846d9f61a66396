# SPDX-License-Identifier: Apache-2.0
"""`import diffusers_syn2seq` and `syn2seq --help` load neither torch nor diffusers, and the lazy package still gives
every public name and lets `DiffusionPipeline.from_pretrained` find `Syn2SeqPipeline`, whatever the import order."""

import os
import subprocess
import sys

import pytest
from script_loading import REPO

import diffusers_syn2seq

ENV = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}


def run_python(code: str) -> str:
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, cwd=REPO,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_help_and_package_import_load_no_torch():
    out = run_python(
        "import sys, contextlib, io\n"
        "import diffusers_syn2seq, diffusers_syn2seq.data\n"
        "from diffusers_syn2seq.cli import main\n"
        "buffer = io.StringIO()\n"
        "with contextlib.redirect_stdout(buffer), contextlib.suppress(SystemExit):\n"
        "    main(['demo', '--help'])\n"
        "assert '--num_frames' in buffer.getvalue()\n"
        "print(sorted(m for m in ('torch', 'diffusers', 'transformers', 'datasets') if m in sys.modules))\n")
    assert out.strip() == "[]"


def test_a_flag_error_needs_no_torch_either():
    out = run_python(
        "import sys, contextlib, io\n"
        "from diffusers_syn2seq.cli import main\n"
        "with contextlib.redirect_stderr(io.StringIO()), contextlib.suppress(SystemExit):\n"
        "    main(['demo', '--steps', 'many'])\n"
        "print('torch' in sys.modules)\n")
    assert out.strip() == "False"


@pytest.mark.parametrize("order", ["diffusers_first", "diffusers_after", "pipelines_module"])
def test_diffusion_pipeline_finds_syn2seq_pipeline_in_any_import_order(order):
    load = {"diffusers_first": "from diffusers import DiffusionPipeline as P",
            "diffusers_after": "from diffusers import DiffusionPipeline as P",
            "pipelines_module": "from diffusers_syn2seq.pipelines import Syn2SeqPipeline as P"}[order]
    out = run_python(("import diffusers\n" if order == "diffusers_first" else "")
                     + "import diffusers_syn2seq\n" + load + "\n"
                     + "pipe = P.from_pretrained(str(diffusers_syn2seq.bundled_model_path()))\n"
                     + "print(type(pipe).__name__, type(pipe.transformer).__name__)\n")
    assert out.split() == ["Syn2SeqPipeline", "DFoTTransformer3DModel"]


def test_every_public_name_resolves_and_unknown_names_raise():
    for name in diffusers_syn2seq.__all__:
        assert getattr(diffusers_syn2seq, name) is not None
    assert set(diffusers_syn2seq.__all__) <= set(dir(diffusers_syn2seq))
    with pytest.raises(AttributeError, match="has no attribute 'NoSuchThing'"):
        getattr(diffusers_syn2seq, "NoSuchThing")
    from diffusers_syn2seq import data

    for name in data.__all__:
        assert getattr(data, name) is not None, name
    with pytest.raises(AttributeError, match="diffusers_syn2seq.data' has no attribute 'nothing'"):
        getattr(data, "nothing")


def test_the_sequence_choices_have_one_home():
    from diffusers_syn2seq.data import choices, sequence

    assert (sequence.MODES, sequence.DIRECTIONS, sequence.REVERSALS) == (choices.MODES, choices.DIRECTIONS,
                                                                         choices.REVERSALS)
    assert sequence.MODES is choices.MODES
