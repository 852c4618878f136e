"""sparse24 test settings: few torch threads, deterministic seeds."""

import pytest

torch = pytest.importorskip("torch")


@pytest.fixture(autouse=True)
def _torch_threads():
    torch.set_num_threads(1)
    torch.manual_seed(0)
    yield
