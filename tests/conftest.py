"""Shared test setup: the repository root is importable (``import standalone``)."""

import os
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
FIXTURES = REPO_ROOT / "tests" / "fixtures"

if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

# The suite runs on 2 cores with many tiny models: one thread per process is much faster
# than oversubscribing (subprocesses inherit this too).
os.environ.setdefault("OMP_NUM_THREADS", "1")
