# SPDX-License-Identifier: Apache-2.0
"""Convert an official DFoT checkpoint to a diffusers model folder (same as the `syn2seq-convert-dfot` command).

    python scripts/convert_dfot_checkpoint.py --checkpoint dfot.ckpt --config backbone.json --output_dir out/
"""

from diffusers_syn2seq.models.conversion_dfot import main

if __name__ == "__main__":
    main()
