# SPDX-License-Identifier: MIT
"""Where the project's installed or freshly built files are.

An installed package carries ``_installed.py``, written by meson at install time with the
directories it installed to. Run from the source tree, the most recently built ``build*``
directory of the tree is used instead.
"""

import glob
import os

from clrmemtrace.cli import UserError

PRELOAD_NAME = "libclrmemtrace-preload.so"
PRELOAD_ENV = "CLRMEMTRACE_PRELOAD"


def repository_root():
    """The source tree holding this package (``analysis/python/clrmemtrace/..``)."""
    return os.path.normpath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))


def installed_dir(name):
    """Directory ``name`` (``LIBDIR``, ``PLUGINDIR``) of an installed copy.

    None when run from the source tree.
    """
    try:
        from clrmemtrace import _installed  # written by meson install
    except ImportError:
        return None
    return getattr(_installed, name, None)


def _built(relative):
    """``build*/relative`` in the source tree, most recent first; sanitizer builds left out."""
    found = []
    for path in glob.glob(os.path.join(repository_root(), "build*", relative)):
        build = path[: -len(relative)].rstrip(os.sep)
        # A sanitized object cannot be preloaded into programs built without the sanitizer.
        if os.path.exists(os.path.join(build, "meson-info")) and not _sanitized(build):
            found.append((os.path.getmtime(path), path))
    return [path for _, path in sorted(found, reverse=True)]


def _sanitized(build):
    try:
        with open(os.path.join(build, "meson-info", "intro-buildoptions.json")) as f:
            text = f.read()
    except OSError:
        return False
    marker = '"name": "b_sanitize", "value": "'
    at = text.find(marker)
    return at >= 0 and not text.startswith("none", at + len(marker))


def preload_library():
    """The LD_PRELOAD interposer to use for ``clrmemtrace record --preload``."""
    explicit = os.environ.get(PRELOAD_ENV)
    if explicit:
        if not os.path.isfile(explicit):
            raise UserError(f"{PRELOAD_ENV}={explicit}: no such file")
        return os.path.abspath(explicit)
    libdir = installed_dir("LIBDIR")
    if libdir and os.path.isfile(os.path.join(libdir, PRELOAD_NAME)):
        return os.path.join(libdir, PRELOAD_NAME)
    built = _built(os.path.join("src", PRELOAD_NAME))
    if built:
        return built[0]
    raise UserError(
        f"cannot find {PRELOAD_NAME}: build the project (meson setup build && ninja -C build), "
        f"install it, or set {PRELOAD_ENV} to its path"
    )
