# SPDX-License-Identifier: Apache-2.0
"""How every command-line tool of the project reports bad input: one line `<tool>: error: <message>` on stderr and
exit status 2, the full traceback only with `--debug` or `SYN2SEQ_DEBUG=1`.

    parser = ToolArgumentParser(prog="make_synthetic_dataset.py", ...)   # argparse errors: the same one line
    if __name__ == "__main__":
        sys.exit(run_tool("make_synthetic_dataset.py", main))

Bad input is what our checks raise: `ValueError` (also JSON and text decoding errors), `TypeError` and `OSError`
(missing files, folders in the way, disk full, read-only file systems; their messages name the path). Anything else
is a bug or a resource problem (e.g. out of GPU memory) and keeps its traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

__all__ = ["BAD_INPUT_ERRORS", "ToolArgumentParser", "add_debug_flag", "debug_requested", "run_tool"]

BAD_INPUT_ERRORS: tuple[type[BaseException], ...] = (ValueError, TypeError, OSError, FloatingPointError)
DEBUG_ENV = "SYN2SEQ_DEBUG"


class ToolArgumentParser(argparse.ArgumentParser):
    """`argparse.ArgumentParser` whose usage errors are one line `<prog>: error: <message>` (exit 2), like the
    errors `run_tool` reports; `--help` still prints the usage."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n")


def add_debug_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--debug", action="store_true",
                        help=f"show the full traceback of an error (also: environment variable {DEBUG_ENV}=1)")


def debug_requested(argv: Sequence[str] | None) -> bool:
    """True with `--debug` among the arguments or `SYN2SEQ_DEBUG` set to anything but '', '0', 'false', 'no'."""
    args = sys.argv[1:] if argv is None else argv
    return "--debug" in args or os.environ.get(DEBUG_ENV, "").strip().lower() not in ("", "0", "false", "no")


def _one_line(error: BaseException) -> str:
    message = str(error) or type(error).__name__
    if isinstance(error, OSError) and error.strerror:  # "[Errno 30] Read-only file system: 'x'" without "[Errno 30]"
        name = error.filename
        message = error.strerror + (f": {str(name)!r}" if name is not None and str(name) not in error.strerror
                                    else "")
    return " ".join(message.split())


def run_tool(prog: str, main: Callable[[list[str] | None], object], argv: list[str] | None = None) -> int:
    """Run `main(argv)`; bad input (`BAD_INPUT_ERRORS`) becomes one line on stderr and exit status 2 unless a
    traceback is asked for (`debug_requested`). Returns the exit status (`main`'s when it returns an int, else 0)."""
    try:
        result = main(argv)
        return result if isinstance(result, int) and not isinstance(result, bool) else 0
    except BAD_INPUT_ERRORS as error:
        if debug_requested(argv):
            raise
        print(f"{prog}: error: {_one_line(error)}", file=sys.stderr)
        return 2


def read_json_object(path: str, flag: str, expected: str, alternatives: str = "") -> dict:
    """The JSON object in the file `path` given to `flag`; errors name the flag, what was `expected` (e.g. "a JSON
    file of backbone settings"), any `alternatives` the flag also accepts, and the path."""
    try:
        config = json.loads(Path(path).read_text())
    except (OSError, ValueError) as error:
        raise ValueError(f"{flag}: expected {expected}, got {path!r}{alternatives}: {error}") from None
    if not isinstance(config, dict):
        raise ValueError(f"{flag}: expected a JSON object in {path!r}, got a {type(config).__name__}")
    return config
