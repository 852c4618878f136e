"""The V:N:M kernels behind SparseLinear: gather + bmm in process, and the Triton kernel under
triton's CPU interpreter (a subprocess with TRITON_INTERPRET=1)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from frugalml.common.errors import InvalidInputError, PeerUnavailableError
from frugalml.sparse24 import SparsityConfig
from frugalml.sparse24.layers import SparseLinear

REPO = Path(__file__).resolve().parents[2]


def _pair(kernel: str, pattern: str = "vnm:16:2:8") -> tuple[SparseLinear, SparseLinear]:
    torch.manual_seed(0)
    masked = SparseLinear(64, 24, config=SparsityConfig(activations=pattern, method="ste"), sparse_input=True)
    config = SparsityConfig(activations=pattern, method="ste", vnm_kernel=kernel)
    fast = SparseLinear(64, 24, config=config, sparse_input=True)
    fast.load_state_dict(masked.state_dict())
    return masked, fast


def test_gather_kernel_layer_matches_the_masked_layer_forward_and_backward():
    masked, fast = _pair("gather")
    x = torch.relu(torch.randn(40, 64)).square().requires_grad_()  # 40 rows: padded to 48 inside
    x_ref = x.detach().clone().requires_grad_()
    y, y_ref = fast(x), masked(x_ref)
    assert torch.allclose(y, y_ref, atol=1e-4)
    y.square().sum().backward()
    y_ref.square().sum().backward()
    assert torch.allclose(x.grad, x_ref.grad, atol=1e-3)
    assert torch.allclose(fast.weight.grad, masked.weight.grad, rtol=1e-4, atol=1e-3)


def test_vnm_kernel_errors():
    with pytest.raises(InvalidInputError, match="V:N:M kernel"):
        SparsityConfig(vnm_kernel="cuda")
    with pytest.raises(InvalidInputError, match="emulate"):
        SparsityConfig(vnm_kernel="gather", backend="cusparselt")
    if os.environ.get("TRITON_INTERPRET") != "1" and not torch.cuda.is_available():
        with pytest.raises(PeerUnavailableError, match="triton"):
            SparseLinear(
                64,
                24,
                config=SparsityConfig(activations="vnm:16:2:8", vnm_kernel="triton"),
                sparse_input=True,
            )


TRITON_CHECK = """
import torch
from frugalml.common.errors import InvalidInputError
from frugalml.sparse24 import SparsityConfig, vnm_mask
from frugalml.sparse24.layers import SparseLinear
from frugalml.sparse24.vnm_kernel import vnm_triton_matmul
torch.manual_seed(0)
x = torch.relu(torch.randn(64, 64)) ** 2
x = x * vnm_mask(x, "32:2:8")
w = torch.randn(40, 64)
y = vnm_triton_matmul(x, w.t().contiguous(), "32:2:8", block_n=32, block_k=16)
assert torch.allclose(y, x @ w.t(), atol=1e-3), float((y - x @ w.t()).abs().max())
try:
    vnm_triton_matmul(x, w.t().contiguous(), "8:2:8")
    raise SystemExit("V=8 accepted")
except InvalidInputError:
    pass
config = SparsityConfig(activations="vnm:16:2:8", method="ste")
masked = SparseLinear(64, 40, config=config, sparse_input=True)
triton_config = SparsityConfig(activations="vnm:16:2:8", method="ste", vnm_kernel="triton")
fast = SparseLinear(64, 40, config=triton_config, sparse_input=True)
fast.load_state_dict(masked.state_dict())
h = torch.relu(torch.randn(30, 64)).square()
assert torch.allclose(fast(h), masked(h), atol=1e-3)
print("ok")
"""


@pytest.mark.slow  # ~10-20 s: a fresh interpreter process imports triton and runs the kernel interpreted
def test_triton_kernel_under_the_interpreter():
    pytest.importorskip("triton", reason="the Triton V:N:M kernel needs the triton package")
    env = {**os.environ, "TRITON_INTERPRET": "1", "PYTHONPATH": str(REPO / "src")}
    done = subprocess.run(
        [sys.executable, "-c", TRITON_CHECK], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0 and "ok" in done.stdout, done.stderr[-2000:]
