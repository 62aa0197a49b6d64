"""The hand-written RMSNorm backward matches torch's RMSNorm and finite differences."""

from __future__ import annotations

import pytest
import torch

from agentwm.core.norm import RMSNorm, rms_norm


@pytest.mark.parametrize("shape", [(5, 7), (2, 3, 4, 6), (1, 1)])
def test_matches_torch_values_and_gradients(shape: tuple[int, ...]) -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(*shape, generator=g) * 3.0
    weight = torch.rand(shape[-1], generator=g) + 0.5
    upstream = torch.randn(*shape, generator=g)
    grads = []
    for fn in (lambda a, w: torch.nn.functional.rms_norm(a, (shape[-1],), w, 1e-4),
               lambda a, w: rms_norm(a, w, 1e-4)):  # fmt: skip
        a, w = x.clone().requires_grad_(True), weight.clone().requires_grad_(True)
        y = fn(a, w)
        y.backward(upstream)
        grads.append((y.detach(), a.grad, w.grad))
    for ref, mine in zip(grads[0], grads[1]):
        assert ref is not None and mine is not None
        torch.testing.assert_close(mine, ref, rtol=1e-5, atol=1e-5)


def test_gradcheck_in_double() -> None:
    x = torch.randn(4, 9, dtype=torch.float64, requires_grad=True)
    w = torch.randn(9, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: rms_norm(a, b, 1e-3), (x, w))


def test_drop_in_module_keeps_state_dict_keys() -> None:
    ours, theirs = RMSNorm(8, eps=1e-4), torch.nn.RMSNorm(8, eps=1e-4)
    assert ours.state_dict().keys() == theirs.state_dict().keys()
    theirs.load_state_dict(ours.state_dict())
    x = torch.randn(3, 8)
    torch.testing.assert_close(ours(x), theirs(x))


def test_only_input_gradient_when_weight_is_frozen() -> None:
    norm = RMSNorm(6)
    norm.weight.requires_grad_(False)
    x = torch.randn(2, 6, requires_grad=True)
    norm(x).sum().backward()
    assert x.grad is not None and norm.weight.grad is None
