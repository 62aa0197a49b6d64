"""Golden and property tests for the return math, transforms, distributions and nets."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from agentwm.core import (
    MLP,
    ConvDecoder,
    ConvEncoder,
    ReturnNormalizer,
    TwoHot,
    categorical_kl,
    discount_weights,
    discounted_return,
    lambda_return,
    sample_indices,
    sample_onehot,
    symexp,
    symlog,
    unimix_logits,
)


def brute_force_lambda_return(r, c, v, gamma, lam):
    """Float64 reference straight from the definition: a λ-weighted mix of n-step returns."""
    H, B = r.shape

    def nstep(t, b, n):
        # r_t + γc_t r_{t+1} + ... + γ^n c_t..c_{t+n-1} V(s_{t+n})
        total, disc = 0.0, 1.0
        for k in range(n):
            total += disc * float(r[t + k, b])
            disc *= gamma * float(c[t + k, b])
        return total + disc * float(v[t + n - 1, b])

    out = torch.zeros(H, B, dtype=torch.float64)
    for b in range(B):
        for t in range(H):
            n_max = H - t
            acc = sum((1 - lam) * lam ** (n - 1) * nstep(t, b, n) for n in range(1, n_max))
            out[t, b] = acc + lam ** (n_max - 1) * nstep(t, b, n_max)
    return out


def test_lambda_one_equals_discounted_monte_carlo():
    g = torch.Generator().manual_seed(0)
    r, v = torch.randn(12, 5, generator=g), torch.randn(12, 5, generator=g)
    c = (torch.rand(12, 5, generator=g) > 0.1).float()
    gamma = 0.97
    ret = lambda_return(r, c, v, gamma, 1.0)
    # Monte Carlo by hand from every start step.
    for t in range(12):
        expected = torch.zeros(5)
        disc = torch.ones(5)
        for k in range(t, 12):
            expected += disc * r[k]
            disc = disc * gamma * c[k]
        expected += disc * v[-1]
        torch.testing.assert_close(ret[t], expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(discounted_return(r, c, gamma, v[-1]), ret[0])


@settings(max_examples=25, deadline=None)
@given(
    H=st.integers(1, 8),
    B=st.integers(1, 3),
    gamma=st.floats(0.0, 1.0),
    lam=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**16),
)
def test_lambda_return_matches_float64_reference(H, B, gamma, lam, seed):
    g = torch.Generator().manual_seed(seed)
    r = torch.randn(H, B, generator=g, dtype=torch.float64) * 3
    v = torch.randn(H, B, generator=g, dtype=torch.float64) * 3
    c = torch.rand(H, B, generator=g, dtype=torch.float64)
    ours = lambda_return(r, c, v, gamma, lam)
    ref = brute_force_lambda_return(r, c, v, gamma, lam)
    torch.testing.assert_close(ours, ref, rtol=1e-9, atol=1e-9)


def test_continue_flags_cut_returns_at_episode_end():
    r = torch.ones(6, 1)
    c = torch.tensor([1.0, 1.0, 0.0, 1.0, 1.0, 1.0])[:, None]  # episode ends after step 2
    v = torch.full((6, 1), 100.0)
    # Rewards of steps 0, 1, 2 count; step 2's terminal reward counts, nothing after it, no bootstrap.
    assert discounted_return(r, c, 1.0, v[-1]).item() == pytest.approx(3.0)
    assert lambda_return(r, c, v, 0.9, 0.95)[2].item() == pytest.approx(1.0)
    w = discount_weights(c, 0.5)
    torch.testing.assert_close(w[:, 0], torch.tensor([1.0, 0.5, 0.25, 0.0, 0.0, 0.0]))


def test_lambda_zero_is_one_step_td_target():
    r, v = torch.randn(4, 2), torch.randn(4, 2)
    c = torch.ones(4, 2)
    torch.testing.assert_close(lambda_return(r, c, v, 0.9, 0.0), r + 0.9 * v)


def test_return_shapes_are_validated():
    with pytest.raises(ValueError, match="continues"):
        lambda_return(torch.zeros(3, 2), torch.zeros(3, 3), torch.zeros(3, 2), 0.9, 0.9)
    with pytest.raises(ValueError, match="bootstrap"):
        discounted_return(torch.zeros(3, 2), torch.ones(3, 2), 0.9, torch.zeros(5))
    with pytest.raises(ValueError, match="gamma"):
        lambda_return(torch.zeros(3, 2), torch.zeros(3, 2), torch.zeros(3, 2), 1.5, 0.9)


def test_symlog_symexp_round_trip_over_magnitudes():
    mags = torch.logspace(-8, 8, 400, dtype=torch.float64)
    x = torch.cat([-mags, torch.zeros(1, dtype=torch.float64), mags])
    torch.testing.assert_close(symexp(symlog(x)), x, rtol=1e-10, atol=1e-12)
    assert torch.all(symlog(x).abs() <= x.abs() + 1e-12)


@pytest.mark.parametrize("value", [0.0, 0.37, -1.0, 3.14159, -250.0, 1234.5, 1e6, -3e7])
def test_twohot_round_trip(value):
    th = TwoHot(255)
    x = torch.tensor([value])
    target = th.encode(x)
    assert target.shape == (1, 255)
    assert torch.count_nonzero(target) <= 2
    torch.testing.assert_close(target.sum(-1), torch.ones(1))
    decoded = th.decode(torch.log(target.clamp_min(1e-30)))
    torch.testing.assert_close(decoded, x, rtol=1e-4, atol=1e-5)


def test_twohot_loss_learns_a_target():
    th = TwoHot(255)
    logits = torch.zeros(3, 255, requires_grad=True)
    target = torch.tensor([-5.0, 0.5, 80.0])
    opt = torch.optim.Adam([logits], lr=0.5)
    for _ in range(300):
        opt.zero_grad()
        th.loss(logits, target).mean().backward()
        opt.step()
    torch.testing.assert_close(th.decode(logits.detach()), target, rtol=0.02, atol=0.02)
    with pytest.raises(ValueError, match="255 bins"):
        th.decode(torch.zeros(3, 10))


def test_return_normalizer_tracks_percentiles_and_floors_scale():
    norm = ReturnNormalizer(decay=0.0)
    norm.update(torch.linspace(0, 100, 1001))
    low, scale = norm.stats()
    assert low.item() == pytest.approx(5.0, abs=0.2)
    assert scale.item() == pytest.approx(90.0, abs=0.5)
    small = ReturnNormalizer()
    small.update(torch.linspace(0, 0.1, 100))
    assert small.stats()[1].item() == 1.0  # small returns are not blown up
    ema = ReturnNormalizer(decay=0.5)
    ema.update(torch.zeros(100))
    ema.update(torch.full((100,), 10.0))
    assert ema.low.item() == pytest.approx(5.0)
    restored = ReturnNormalizer()
    restored.load_state_dict(ema.state_dict())
    assert restored.low.item() == pytest.approx(5.0)


@pytest.mark.parametrize("n", [1, 2, 7, 1000])
def test_return_normalizer_percentiles_match_torch_quantile(n: int) -> None:
    from agentwm.core.returns import _percentiles

    x = torch.randn(n, generator=torch.Generator().manual_seed(n)) * 10
    got = torch.stack(_percentiles(x, (0.05, 0.5, 0.95)))
    torch.testing.assert_close(got, torch.quantile(x, torch.tensor([0.05, 0.5, 0.95])))


def test_return_normalizer_keep_leaves_the_estimate_as_it_was() -> None:
    norm = ReturnNormalizer(decay=0.5)
    norm.update(torch.full((10,), float("nan")), keep=torch.tensor(True))  # a skipped update
    assert not norm.initialized.item() and norm.low.item() == 0.0
    norm.update(torch.full((10,), 4.0), keep=torch.tensor(False))
    assert norm.initialized.item() and norm.low.item() == pytest.approx(4.0)  # first update: taken as is
    norm.update(torch.full((10,), float("inf")), keep=torch.tensor(True))
    assert norm.low.item() == pytest.approx(4.0) and norm.high.item() == pytest.approx(4.0)


def test_unimix_floors_probabilities():
    logits = torch.tensor([[100.0, 0.0, 0.0, 0.0]])
    probs = unimix_logits(logits, 0.01).exp()
    assert probs.min().item() == pytest.approx(0.0025, rel=1e-3)
    torch.testing.assert_close(probs.sum(-1), torch.ones(1))


def test_sampling_matches_probabilities_and_passes_gradient():
    logits = torch.log(torch.tensor([0.1, 0.2, 0.7]))
    g = torch.Generator().manual_seed(0)
    idx = sample_indices(logits.expand(20000, 3), generator=g)
    freq = torch.bincount(idx, minlength=3).float() / 20000
    torch.testing.assert_close(freq, torch.tensor([0.1, 0.2, 0.7]), atol=0.015, rtol=0)
    leaf = torch.zeros(2, 4, requires_grad=True)
    sample = sample_onehot(leaf)
    assert torch.all(sample.detach().sum(-1) == 1)
    (sample * torch.arange(4.0)).sum().backward()
    assert leaf.grad is not None and leaf.grad.abs().sum() > 0  # straight-through gradient


@pytest.mark.parametrize("classes", [2, 8, 15, 16, 32])
def test_softmax_for_short_dims_matches_torch_in_value_gradient_and_dtype(classes: int) -> None:
    from agentwm.core.distributions import log_softmax, softmax

    logits = (torch.randn(64, 4, classes, dtype=torch.float64) * 30).float().requires_grad_()  # large: shift matters
    weights = torch.randn(64, 4, classes)
    for ours, ref in ((softmax, torch.softmax), (log_softmax, torch.log_softmax)):
        got, want = ours(logits), ref(logits, -1)
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
        (g_got,) = torch.autograd.grad((got * weights).sum(), logits)
        (g_want,) = torch.autograd.grad((want * weights).sum(), logits)
        torch.testing.assert_close(g_got, g_want, rtol=1e-4, atol=1e-5)
        half = logits.detach().bfloat16()
        assert ours(half).dtype == torch.bfloat16
        torch.testing.assert_close(ours(half).float(), ref(half.float(), -1), rtol=2e-2, atol=2e-2)


def test_categorical_kl_golden_value():
    p = torch.log(torch.tensor([[[0.5, 0.5]]]))
    q = torch.log(torch.tensor([[[0.9, 0.1]]]))
    expected = 0.5 * math.log(0.5 / 0.9) + 0.5 * math.log(0.5 / 0.1)
    assert categorical_kl(p, q).item() == pytest.approx(expected, rel=1e-5)
    assert categorical_kl(p, p).item() == pytest.approx(0.0, abs=1e-7)


def test_nets_shapes_and_zero_init():
    mlp = MLP(7, 3, units=16, layers=2, out_scale=0.0)
    assert torch.all(mlp(torch.randn(5, 7)) == 0)
    assert MLP(7, None, 16, 2)(torch.randn(5, 7)).shape == (5, 16)
    enc = ConvEncoder(3, depth=8)
    feat = enc(torch.rand(2, 3, 64, 64))
    assert feat.shape == (2, enc.out_dim) == (2, 64 * 4 * 4)
    dec = ConvDecoder(feat.shape[-1], 3, depth=8)
    assert dec(feat).shape == (2, 3, 64, 64)
    with pytest.raises(ValueError, match="power of two"):
        ConvEncoder(3, 8, image_size=48)
