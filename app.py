# SPDX-License-Identifier: Apache-2.0
"""Hugging Face Space entry point: the Syn2Seq interactive demo with the bundled model (`syn2seq app` locally).

A Gradio Space runs this file (`sdk: gradio`, `app_file: app.py` in the Space's README front matter) with the
package's dependencies and Gradio installed (`pip install .[app]`); the page itself is `diffusers_syn2seq.app`.
"""

from diffusers_syn2seq.app import DEFAULT_STEPS, build_app

demo = build_app(example_steps=DEFAULT_STEPS)  # `demo`: the name Gradio's reload mode looks for

if __name__ == "__main__":
    demo.launch()
