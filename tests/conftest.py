"""Root test configuration: light on purpose.

Unit tests (tests/unit) need no cluster. Everything that needs the API server lives in
tests/integration/conftest.py and starts only when a test requests it.
"""

from __future__ import annotations

import sys
from pathlib import Path

TESTS_DIR = Path(__file__).resolve().parent

# `import kube_helpers` works from any test directory, whatever pytest's rootdir/import mode.
if str(TESTS_DIR) not in sys.path:
    sys.path.insert(0, str(TESTS_DIR))
