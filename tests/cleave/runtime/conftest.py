"""One torch thread in the test process: the tiny model gains nothing from more on a small machine."""

import pytest

from frugalml.common.threads import torch_threads


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    with torch_threads(1):
        yield
