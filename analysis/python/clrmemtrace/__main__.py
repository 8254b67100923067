# SPDX-License-Identifier: MIT
import sys

from clrmemtrace.cli import main

sys.exit(main())
