# SPDX-License-Identifier: Apache-2.0
"""The package version."""

__version__ = "0.1.0"
