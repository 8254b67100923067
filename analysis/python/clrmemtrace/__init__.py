# SPDX-License-Identifier: MIT
"""clrmemtrace: record and analyse traces of the CLR hosting memory interfaces."""

__version__ = "0.1.0"
