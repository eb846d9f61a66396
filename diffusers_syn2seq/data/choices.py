# SPDX-License-Identifier: Apache-2.0
"""The sequence layer's named choices (modes, directions, reversals), importable without torch.

They belong to `data.sequence`, which re-exports them; they live here so that the command line can offer them as
flag choices in `syn2seq --help` without importing torch (about 1.5 s).
"""

MODES = ("jump", "video", "video+pose")
DIRECTIONS = ("exo2ego", "ego2exo")
REVERSALS = ("full", "segments")
