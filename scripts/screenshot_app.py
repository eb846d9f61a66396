# SPDX-License-Identifier: Apache-2.0
"""Screenshot of the interactive demo page (`syn2seq app`) in headless Chromium, for the docs and for review.

    python scripts/screenshot_app.py --output outputs/app.png [--steps 25] [--model PIPELINE_FOLDER]

Serves the page on a free localhost port with its start-up example (held-out scene 0 generated with `--steps`
steps), points headless Chromium at it (`apt-get install chromium`; `--chromium` names another binary) and writes
the PNG. Needs the `[app]` extra (Gradio).
"""

import argparse
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the checkout's package, also when it is not installed

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_browser(name: str | None) -> str:
    """The Chromium binary to drive: `name`, else the first of `BROWSERS` on PATH."""
    for candidate in ([name] if name else BROWSERS):
        found = shutil.which(candidate)
        if found:
            return found
    raise FileNotFoundError(f"--chromium: expected a Chromium binary ({name or ', '.join(BROWSERS)}) on PATH, found "
                            "none (apt-get install chromium)")


def screenshot(url: str, output: Path, browser: str, width: int, height: int, wait_ms: int) -> None:
    """Load `url` in headless Chromium, let its scripts run for `wait_ms` of virtual time, save a PNG."""
    output.parent.mkdir(parents=True, exist_ok=True)
    command = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--mute-audio",
               f"--window-size={width},{height}", f"--virtual-time-budget={wait_ms}", f"--screenshot={output}", url]
    result = subprocess.run(command, capture_output=True, text=True, timeout=180)
    if result.returncode != 0 or not output.is_file():
        raise RuntimeError(f"Chromium did not write {output} (exit {result.returncode}): {result.stderr[-2000:]}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default="outputs/app.png", help="PNG to write (default: outputs/app.png)")
    parser.add_argument("--model", default=None, help="Syn2Seq pipeline folder (default: the bundled model)")
    parser.add_argument("--steps", type=int, default=25, help="steps of the start-up example (default: 25)")
    parser.add_argument("--width", type=int, default=1400, help="window width in pixels (default: 1400)")
    parser.add_argument("--height", type=int, default=1350, help="window height in pixels (default: 1350)")
    parser.add_argument("--wait_ms", type=int, default=20000, help="virtual time for the page's scripts "
                        "(default: 20000)")
    parser.add_argument("--chromium", default=None, help="Chromium binary (default: the first of "
                        f"{', '.join(BROWSERS)} on PATH)")
    args = parser.parse_args(argv)
    browser = find_browser(args.chromium)
    if args.steps < 1:
        parser.error(f"--steps: expected an integer >= 1, got {args.steps}")

    from diffusers_syn2seq.app import build_app

    page = build_app(args.model, example_steps=args.steps)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    page.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        start = time.perf_counter()
        screenshot(f"http://127.0.0.1:{port}/", Path(args.output), browser, args.width, args.height, args.wait_ms)
        print(f"wrote {args.output} ({args.width}x{args.height}) in {time.perf_counter() - start:.1f} s")
    finally:
        page.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
