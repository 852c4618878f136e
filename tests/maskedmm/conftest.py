"""Fixtures for maskedmm tests: an empty user cache, so no machine calibration leaks in."""

import pytest

from frugalml.maskedmm import planner


@pytest.fixture(autouse=True)
def fresh_cache(tmp_path, monkeypatch):
    """Point the user cache at a temporary folder and forget any loaded calibration."""
    monkeypatch.setenv("FRUGAL_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("FRUGAL_MASKEDMM_ISA", raising=False)
    monkeypatch.setattr(planner, "_loaded", None)
    return tmp_path / "cache"
