# SPDX-License-Identifier: MIT
"""Output files and directories: checked before the work starts, written whole or not at all.

Each failure is a ``UserError`` with exit status 3 naming the path.
"""

import contextlib
import os
import secrets

from clrmemtrace.cli import EXIT_ERROR, UserError


def _error(path, reason):
    return UserError(f"{path}: cannot write: {reason}", EXIT_ERROR)


def check_file(path):
    """Raise ``UserError`` unless a file can be written at ``path``."""
    if os.path.isdir(path):
        raise _error(path, "it is a directory")
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise _error(path, f"no directory {directory}")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise _error(path, "permission denied")


def check_directory(path):
    """Raise ``UserError`` unless ``path`` is, or can be made, a writable directory."""
    existing = os.path.abspath(path)
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise _error(path, f"{existing} is not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise _error(path, f"permission denied in {existing}")


def make_directory(path):
    """Create the directory ``path`` (and its parents) unless it exists."""
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as e:
        raise _error(path, e.strerror or str(e)) from None


@contextlib.contextmanager
def replacing(path):
    """Yield a temporary file's path next to ``path``; it replaces ``path`` on success.

    The temporary file is created empty (with the umask's permissions) and removed when
    the work inside the context fails, so ``path`` is either left as it was or complete.
    """
    check_file(path)
    directory, name = os.path.split(os.path.abspath(path))
    temporary = os.path.join(directory, f".{name}.{secrets.token_hex(4)}.tmp")
    try:
        os.close(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    except OSError as e:
        raise _error(path, e.strerror or str(e)) from None
    try:
        yield temporary
        try:
            os.replace(temporary, path)
        except OSError as e:
            raise _error(path, e.strerror or str(e)) from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)


def write_text(path, text):
    """Write ``text`` (UTF-8) to ``path`` through ``replacing``."""
    with replacing(path) as temporary:
        try:
            with open(temporary, "w", encoding="utf-8", newline="") as f:
                f.write(text)
        except OSError as e:
            raise _error(path, e.strerror or str(e)) from None
