# SPDX-License-Identifier: Apache-2.0
"""Capture the warnings diffusers logs (its library logger does not propagate to the root logger, so caplog misses
them)."""

import contextlib
import logging


@contextlib.contextmanager
def diffusers_warnings():
    """Collect the messages of the warnings diffusers logs inside the block."""
    records: list[str] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda record: records.append(record.getMessage())
    library = logging.getLogger("diffusers")
    library.addHandler(handler)
    try:
        yield records
    finally:
        library.removeHandler(handler)
