"""Thread-pool settings for processes where our OpenMP kernels and numpy's OpenBLAS both run.

This module imports nothing heavy, so a script can apply the settings before numpy starts.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping

# Set before Python starts when our OpenMP kernels and numpy's OpenBLAS share a process on more than
# one thread: otherwise each library's idle workers spin on the cores the other needs
# (benchmarks/maskedmm/thread_contention.py, 1024^3, 75% zeros, 2 threads, medians of 21 alternating
# calls in two runs: the masked kernel 9.0-11.8 -> 3.9-4.9 ms, numpy 9.8 -> 6.5-6.6 ms).
SPIN_SETTINGS = {"OMP_WAIT_POLICY": "passive", "OPENBLAS_THREAD_TIMEOUT": "4"}


def apply_spin_settings(environ: MutableMapping[str, str] | None = None) -> None:
    """Put :data:`SPIN_SETTINGS` into ``environ`` (default: this process's environment) where not
    already set; call it before numpy or an OpenMP library loads, since both read them at start-up.

    Examples
    --------
    >>> env = {"OMP_WAIT_POLICY": "active"}
    >>> apply_spin_settings(env)
    >>> env
    {'OMP_WAIT_POLICY': 'active', 'OPENBLAS_THREAD_TIMEOUT': '4'}
    """
    target = os.environ if environ is None else environ
    for name, value in SPIN_SETTINGS.items():
        target.setdefault(name, value)
