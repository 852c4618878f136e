"""What a result note says about the machine, read from :mod:`frugalml.common.env` when measured."""

from __future__ import annotations

import os

from frugalml.common import env


def machine() -> str:
    """Usable and logical cores, the CPU model and the load average at the time of the call.

    Examples
    --------
    >>> "cores (" in machine()
    True
    """
    cpu = env.cpu()
    load = f", load average {os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else ""
    return f"{cpu['usable_cores'] or cpu['cores']} usable of {cpu['cores']} cores ({cpu['model']}){load}"
