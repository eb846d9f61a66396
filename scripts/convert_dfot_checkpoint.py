# Copyright 2026 The diffusers-syn2seq Authors. All rights reserved.
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.
"""Convert an official DFoT checkpoint to a diffusers model folder (same as the `syn2seq-convert-dfot` command).

    python scripts/convert_dfot_checkpoint.py --checkpoint dfot.ckpt --config backbone.json --output_dir out/
"""

from diffusers_syn2seq.models.conversion_dfot import main


if __name__ == "__main__":
    main()
