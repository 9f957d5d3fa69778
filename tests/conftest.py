"""Root test configuration: light on purpose.

Unit tests (tests/unit) need no cluster. Everything that needs the API server lives in
tests/integration/conftest.py and starts only when a test requests it.
"""

from __future__ import annotations

import sys
from pathlib import Path

TESTS_DIR = Path(__file__).resolve().parent

# `import kube_helpers` (tests/) and `import loopback` (hack/: free ports, HTTP) work from any test
# directory, whatever pytest's rootdir/import mode.
for directory in (TESTS_DIR, TESTS_DIR.parent / "hack"):
    if str(directory) not in sys.path:
        sys.path.insert(0, str(directory))
