# SPDX-License-Identifier: Apache-2.0
"""Shell commands of README.md that must run as written (the Python snippets are run by test_readme.py): the LoRA
command on the bundled model (and the README's LoRA-loading example on what it wrote), and what the README says of the
Python API's threads."""

import os
import re
import subprocess
import sys

from conftest import REPO_ROOT
from safetensors.torch import load_file

README = (REPO_ROOT / "README.md").read_text()


def bash_block_with(marker: str) -> str:
    """The ```bash block of README.md that contains `marker`."""
    blocks = [b for b in re.findall(r"^```bash\n(.*?)^```", README, re.MULTILINE | re.DOTALL) if marker in b]
    assert len(blocks) == 1, f"expected one bash block with {marker!r}, found {len(blocks)}"
    return blocks[0]


def test_the_lora_command_on_the_bundled_model_runs_as_written(tmp_path):
    block = bash_block_with("runs/bundled-lora")
    commands = re.sub(r"\\\n\s*", " ", block).splitlines()  # continuation lines joined
    start = next(i for i, c in enumerate(commands) if "make_synthetic_dataset.py --output data/synth32 " in c)
    script = "\n".join(["set -e", *commands[start : start + 2]])
    assert "--pretrained_model_name_or_path" in script and "--train_mode lora" in script
    (tmp_path / "training").symlink_to(REPO_ROOT / "training")  # the paths as written, outputs under tmp_path
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "HF_HUB_OFFLINE": "1", "PATH": os.path.dirname(sys.executable)
           + os.pathsep + os.environ.get("PATH", "")}
    result = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    weights = load_file(tmp_path / "runs" / "bundled-lora" / "pytorch_lora_weights.safetensors")
    assert weights and all(key.startswith("transformer.") and "lora_" in key for key in weights)
    # the README's LoRA-loading example loads what this command wrote, as written, from the same folder
    snippets = [code for code in re.findall(r"^```python\n(.*?)^```", README, re.MULTILINE | re.DOTALL)
                if "load_lora_weights(" in code]
    assert len(snippets) == 1 and '"runs/bundled-lora"' in snippets[0]
    namespace: dict = {}
    cwd = os.getcwd()
    try:
        os.chdir(tmp_path)
        exec(compile(snippets[0], "README.md (LoRA loading)", "exec"), namespace)
    finally:
        os.chdir(cwd)
    pipe = namespace["pipe"]
    assert pipe.get_list_adapters() == {"transformer": ["synth32"]}
    assert pipe.transformer.peft_config["synth32"].r == 4  # the command's --rank


def test_the_python_api_leaves_torch_threads_as_documented():
    assert "the Python API leaves torch's\ndefault" in README and "configure_threads()" in README
    code = ("import torch; n = torch.get_num_threads(); import diffusers_syn2seq as d; "
            "d.Syn2SeqPipeline.from_pretrained(str(d.bundled_model_path())); assert torch.get_num_threads() == n; "
            "from diffusers_syn2seq.threads import configure_threads; print(configure_threads())")
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, env={**env, "HF_HUB_OFFLINE": "1"},
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert int(result.stdout.split()[-1]) >= 1  # the commands' rule, applied on request


def test_the_exo2ego_only_note_is_where_ego2exo_is_shown():
    from diffusers_syn2seq.bundled import bundled_model_path, trained_reverse_prob

    assert trained_reverse_prob(bundled_model_path()) == 0.0  # what the note says
    for line in (i for i, text in enumerate(README.splitlines()) if "--direction ego2exo" in text):
        nearby = " ".join(README.splitlines()[line : line + 6])
        assert "Exo2Ego only" in nearby, README.splitlines()[line]
