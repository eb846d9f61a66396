# SPDX-License-Identifier: Apache-2.0
"""Convert an official DFoT checkpoint to a diffusers model folder (same as the `syn2seq-convert-dfot` command).

    python scripts/convert_dfot_checkpoint.py --checkpoint dfot.ckpt --config backbone.json --output_dir out/

Bad input prints one line `syn2seq-convert-dfot: error: ...` and exits with status 2 (`--debug`: traceback).
"""

import sys

from diffusers_syn2seq.cli import convert_dfot_command

if __name__ == "__main__":
    sys.exit(convert_dfot_command())
