"""Shared fixtures: the data root (``$FRUGAL_DATA`` or ../shared/data) and skips when it is absent."""

import contextlib
import os
from pathlib import Path

import pytest

_DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared data folder; tests that need it skip, saying why, when it is absent."""
    root = Path(os.environ.get("FRUGAL_DATA") or _DEFAULT)
    if not root.is_dir():
        pytest.skip(f"shared data folder {root} is absent (set FRUGAL_DATA to ../shared/data)")
    return root


@pytest.fixture(scope="session")
def redis_url():
    """A real redis-server on a free localhost port (no persistence), stopped after the session."""
    pytest.importorskip("redis")
    from frugalml.common.errors import ServiceUnavailableError
    from frugalml.common.redis_server import redis_server

    with contextlib.ExitStack() as stack:
        try:
            url = stack.enter_context(redis_server())
        except ServiceUnavailableError as exc:
            pytest.skip(str(exc))
        yield url
