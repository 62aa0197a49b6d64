"""RSSM world model: presets and sizes, KL balancing and free bits, resets, the fast imagination
path, learning a known dynamical system, input validation and checkpoints."""

from __future__ import annotations

import copy
import math
import os

import pytest
import torch

from agentwm.agents.dreamer.params import count_agent_params
from agentwm.worldmodels import rssm_fast
from agentwm.worldmodels.base import ActionSpec, LearnableWorldModel, WorldModel
from agentwm.worldmodels.rssm import (
    LOSS_KEYS,
    PRESETS,
    RSSM,
    RSSMConfig,
    kl_losses,
)

IMAGE = (3, 64, 64)
ATARI = ActionSpec("discrete", 18)


pytestmark = pytest.mark.usefixtures("one_thread")


def debug_model(
    obs_shape: tuple[int, ...] = (4,), spec: ActionSpec | None = None, **overrides: object
) -> RSSM:
    torch.manual_seed(0)
    return RSSM(obs_shape, spec or ActionSpec("continuous", 2), RSSMConfig.preset("debug", **overrides))


def random_batch(model: RSSM, B: int = 3, T: int = 5, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    obs = torch.rand(B, T, *model.obs_shape, generator=g)
    if model.action_spec.kind == "discrete":
        action = model.action_spec.one_hot(torch.randint(model.action_spec.dim, (B, T), generator=g))
    else:
        action = torch.rand(B, T, model.action_spec.dim, generator=g) * 2 - 1
    first = torch.zeros(B, T, dtype=torch.bool)
    first[:, 0] = True
    return {
        "obs": obs,
        "action": action,
        "reward": torch.randn(B, T, generator=g),
        "is_first": first,
        "is_terminal": (torch.rand(B, T, generator=g) < 0.1).float(),
    }


# ----------------------------------------------------------------------------------------------
# Presets: shapes (big ones on the meta device) and parameter counts


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_shapes_on_meta(name: str) -> None:
    cfg = RSSMConfig.preset(name)
    S, C, D, B, H = cfg.stoch, cfg.classes, cfg.deter, 2, 4
    with torch.device("meta"):
        model = RSSM(IMAGE, ATARI, cfg)
        state = model.observe(torch.rand(B, *IMAGE))
        assert state["deter"].shape == (B, D) and state["stoch"].shape == (B, S, C)
        state = model.observe(torch.rand(B, *IMAGE), state, torch.zeros(B, 18))
        actions = torch.zeros(H, B, 18)
        for fast in (True, False):
            rollout = model.imagine(state, actions, fast=fast)
            assert rollout.states["deter"].shape == (H + 1, B, D)
            assert rollout.states["stoch"].shape == (H + 1, B, S, C)
            assert rollout.rewards.shape == rollout.continues.shape == (H, B)
            assert rollout.actions is not None and rollout.actions.shape == (H, B, 18)
        rollout = model.imagine(state, lambda s: torch.zeros(s["deter"].shape[0], 18), H)
        assert rollout.rewards.shape == (H, B)
        assert model.decode(rollout.states).shape == (H + 1, B, *IMAGE)
        losses, metrics = model.loss(random_batch_meta(B, 3))
    assert set(losses) | {"overshoot"} == set(LOSS_KEYS) == set(cfg.loss_scales)  # overshoot: off
    assert all(v.shape == (B, 3) for v in losses.values())
    assert all(k.startswith(("loss/", "wm/")) for k in metrics)


def random_batch_meta(B: int, T: int) -> dict[str, torch.Tensor]:
    return {
        "obs": torch.rand(B, T, *IMAGE),
        "action": torch.zeros(B, T, 18),
        "reward": torch.zeros(B, T),
        "is_first": torch.zeros(B, T, dtype=torch.bool),
        "is_terminal": torch.zeros(B, T),
    }


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_param_count_within_10_percent_of_claim(name: str) -> None:
    cfg = RSSMConfig.preset(name)
    assert cfg.nominal_params is not None
    counts = count_agent_params(cfg)
    assert counts["total"] == counts["world_model"] + counts["actor"] + counts["critic"]
    assert abs(counts["total"] / cfg.nominal_params - 1) < 0.10, (name, counts["total"], cfg.nominal_params)


def test_size_presets_follow_the_dreamerv3_table() -> None:
    for name, d in [
        ("size12m", 256),
        ("size25m", 384),
        ("size50m", 512),
        ("size100m", 768),
        ("size200m", 1024),
    ]:
        cfg = RSSMConfig.preset(name)
        assert (cfg.deter, cfg.hidden, cfg.classes, cfg.depth, cfg.units, cfg.stoch) == (
            8 * d, d, d // 16, d // 16, d, 32,
        )  # fmt: skip
    small = RSSMConfig.preset("size1m")
    assert (small.deter, small.hidden, small.classes, small.depth) == (512, 64, 4, 4)
    torch_cfg = RSSMConfig.preset("dreamerv3-torch")
    assert (torch_cfg.deter, torch_cfg.hidden, torch_cfg.stoch, torch_cfg.classes, torch_cfg.blocks) == (
        512, 512, 32, 32, 1,
    )  # fmt: skip
    assert (torch_cfg.units, torch_cfg.rew_layers, torch_cfg.cont_layers, torch_cfg.depth) == (512, 2, 2, 32)


def test_config_validation_and_overrides() -> None:
    cfg = RSSMConfig.preset("size12m", free_nats=0.5)
    assert cfg.nominal_params == 12_000_000 and cfg.free_nats == 0.5  # non-size override keeps the claim
    assert RSSMConfig.preset("size12m", deter=1024).nominal_params is None  # size override drops it
    with pytest.raises(ValueError, match="frozen"):
        cfg.deter = 3  # type: ignore[misc]
    with pytest.raises(ValueError, match="bogus"):
        RSSMConfig(bogus=1)  # type: ignore[call-arg]
    assert RSSMConfig(loss_scales={"dec": 100.0}).loss_scales == {**RSSMConfig().loss_scales, "dec": 100.0}
    with pytest.raises(ValueError, match="unknown loss_scales key.*'decoder'"):
        RSSMConfig(loss_scales={"decoder": 100.0})
    with pytest.raises(ValueError, match="divisible"):
        RSSMConfig(deter=100, blocks=8)
    with pytest.raises(KeyError, match="size12m"):
        RSSMConfig.preset("nope")


# ----------------------------------------------------------------------------------------------
# Losses: keys, shapes, free bits and the direction of the KL gradients


@pytest.mark.parametrize("obs_shape", [(4,), (3, 16, 16)])
def test_loss_terms_and_metrics(obs_shape: tuple[int, ...]) -> None:
    model = debug_model(obs_shape, ATARI)
    assert isinstance(model, WorldModel) and isinstance(model, LearnableWorldModel)
    losses, metrics = model.loss(random_batch(model))
    assert set(losses) == set(model.config.loss_scales) - {"overshoot"}  # a term only when on
    for value in losses.values():
        assert value.shape == (3, 5) and torch.isfinite(value).all()
    assert (losses["dyn"] >= 1.0).all() and (losses["rep"] >= 1.0).all()
    assert not any(v.requires_grad for v in metrics.values())
    total = model.total_loss(losses)
    total.backward()
    assert model.core.in_stoch.weight.grad is not None


def test_bf16_autocast_trains_and_keeps_the_state_in_fp32() -> None:
    # Dreamer turns bf16 autocast on for CUDA by default; the GRU's blend of the fp32 state with
    # bf16 gates once failed there. CPU autocast runs the same code path.
    model = debug_model((4,), ATARI)
    batch = random_batch(model)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        losses, _ = model.loss(batch)
        total = model.total_loss(losses)
        post, _ = model.observe_sequence(batch["obs"], batch["action"], batch["is_first"])
        assert post["deter"].dtype == torch.float32
        with torch.no_grad():
            start = {k: post[k][:, -1].detach() for k in ("deter", "stoch")}
            roll = model.imagine(start, torch.zeros(4, 3, ATARI.dim))
    total.backward()
    assert torch.isfinite(total) and roll.states["deter"].dtype == torch.float32
    assert model.core.in_stoch.weight.grad is not None


def test_free_bits_floor_kl_and_zero_its_gradient() -> None:
    g = torch.Generator().manual_seed(0)
    prior = torch.randn(6, 4, 4, generator=g)
    post = (prior + 0.05 * torch.randn(6, 4, 4, generator=g)).requires_grad_()
    prior = prior.clone().requires_grad_()
    dyn, rep, kl = kl_losses(post, prior, free_nats=1.0, unimix=0.01)
    assert (kl < 1.0).all() and (kl > 0).all()
    assert torch.equal(dyn, torch.ones(6)) and torch.equal(rep, torch.ones(6))
    (dyn.sum() + rep.sum()).backward()
    assert torch.count_nonzero(post.grad) == 0 and torch.count_nonzero(prior.grad) == 0
    # Above the floor the terms are the KL itself and do carry gradient.
    far = (5 * torch.randn(6, 4, 4, generator=g)).requires_grad_()
    dyn, rep, kl = kl_losses(far, prior.detach(), free_nats=1.0, unimix=0.01)
    assert (kl > 1.0).all() and torch.allclose(dyn, kl) and torch.allclose(rep.detach(), kl)
    rep.sum().backward()
    assert far.grad is not None and far.grad.abs().sum() > 0


def test_free_bits_hold_model_loss_constant() -> None:
    model = debug_model(free_nats=100.0)  # any KL of this tiny model is below 100 nats
    losses, _ = model.loss(random_batch(model))
    assert torch.equal(losses["dyn"], torch.full((3, 5), 100.0))
    (losses["dyn"].sum() + losses["rep"].sum()).backward()
    assert all(p.grad is None or torch.count_nonzero(p.grad) == 0 for p in model.parameters())


def test_kl_gradient_directions_on_logits() -> None:
    g = torch.Generator().manual_seed(1)
    post = torch.randn(5, 4, 4, generator=g).requires_grad_()
    prior = torch.randn(5, 4, 4, generator=g).requires_grad_()
    dyn, rep, _ = kl_losses(post, prior, free_nats=0.0, unimix=0.01)
    (g_post, g_prior) = torch.autograd.grad(dyn.sum(), (post, prior), allow_unused=True)
    assert g_post is None and g_prior is not None and g_prior.abs().sum() > 0
    (g_post, g_prior) = torch.autograd.grad(rep.sum(), (post, prior), allow_unused=True)
    assert g_prior is None and g_post is not None and g_post.abs().sum() > 0


def _grad_norm(module: torch.nn.Module) -> float:
    return sum(float(p.grad.abs().sum()) for p in module.parameters() if p.grad is not None)


def test_kl_gradient_directions_in_model() -> None:
    # One step, so no posterior sample feeds a later prior: dyn trains the prior, rep the posterior.
    for term, trained, untouched in [
        ("dyn", "prior_net", ("post_net", "encoder")),
        ("rep", "post_net", ("prior_net",)),
    ]:
        model = debug_model(free_nats=0.0)
        losses, _ = model.loss(random_batch(model, T=1))
        losses[term].sum().backward()
        assert _grad_norm(getattr(model, trained)) > 0, term
        for name in untouched:
            assert _grad_norm(getattr(model, name)) == 0, (term, name)
    model = debug_model(free_nats=0.0)
    losses, _ = model.loss(random_batch(model, T=1))
    losses["rep"].sum().backward()
    assert _grad_norm(model.encoder) > 0


# ----------------------------------------------------------------------------------------------
# Observing: resets and the initial state


def test_observe_sequence_resets_at_is_first() -> None:
    model = debug_model()
    a, b = random_batch(model, B=2, T=8, seed=0), random_batch(model, B=2, T=8, seed=1)
    k = 4
    for key in ("obs", "action"):  # same episode from step k on, different history before
        b[key][:, k:] = a[key][:, k:]
    for batch in (a, b):
        batch["is_first"][:, k] = True
    torch.manual_seed(7)
    post_a, prior_a = model.observe_sequence(a["obs"], a["action"], a["is_first"])
    torch.manual_seed(7)
    post_b, prior_b = model.observe_sequence(b["obs"], b["action"], b["is_first"])
    assert not torch.allclose(post_a["deter"][:, k - 1], post_b["deter"][:, k - 1])
    for key in ("deter", "stoch", "logits"):
        assert torch.equal(post_a[key][:, k:], post_b[key][:, k:]), key
    assert torch.equal(prior_a[:, k:], prior_b[:, k:])
    # At the reset the recurrent state is exactly that of a fresh episode (its action ignored).
    fresh = model.observe(a["obs"][:, k])
    assert torch.allclose(post_a["deter"][:, k], fresh["deter"])


def test_initial_states() -> None:
    learned = debug_model()
    state = learned.initial(3)
    assert state["deter"].shape == (3, 32) and state["stoch"].shape == (3, 4, 4)
    assert torch.equal(state["stoch"].sum(-1), torch.ones(3, 4))  # one-hot prior mode
    zeros = debug_model(initial="zeros").initial(2)
    assert not zeros["deter"].any() and not zeros["stoch"].any()


# ----------------------------------------------------------------------------------------------
# Imagination: the fast path equals the differentiable path


FAST_VARIANTS = {
    "debug": {},
    "dense-joint": {"blocks": 1, "dynlayers": 0, "split_inputs": False, "rew_layers": 2, "cont_layers": 2},
    "no-hidden-heads": {"blocks": 4, "dynlayers": 2, "rew_layers": 0, "cont_layers": 0, "obslayers": 0},
}


@pytest.mark.parametrize("variant", sorted(FAST_VARIANTS))
@pytest.mark.parametrize("with_policy", [False, True])
@pytest.mark.parametrize("chunked", [False, True])
def test_fast_imagine_matches_reference(
    variant: str, with_policy: bool, chunked: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if chunked:  # rows in chunks of 2 (as wide models do on CPU): the same uniforms per row
        monkeypatch.setattr(rssm_fast, "_CHUNK_FLOATS", 2 * 3 * 32)
    model = debug_model((4,), ATARI, **FAST_VARIANTS[variant]).double()
    torch.nn.init.normal_(model.reward_head.out.weight)  # zero-initialised; make rewards vary
    B, H = 6, 7
    start = model.observe(torch.rand(B, 4, dtype=torch.float64))
    start = {k: v.detach() for k, v in start.items()}
    policy_net = torch.nn.Linear(model.feat_dim, 18).double()

    def policy(state: dict[str, torch.Tensor]) -> torch.Tensor:
        return ATARI.one_hot(policy_net(model.feat(state)).argmax(-1)).double()

    actions = policy if with_policy else ATARI.one_hot(torch.randint(18, (H, B))).double()
    rollouts = []
    with torch.no_grad():
        for fast in (False, True):
            rollouts.append(
                model.imagine(start, actions, H, fast=fast, generator=torch.Generator().manual_seed(3))
            )
    ref, fast_ = rollouts
    assert torch.equal(ref.states["stoch"], fast_.states["stoch"])  # the same samples, step by step
    assert torch.allclose(ref.states["deter"], fast_.states["deter"], atol=1e-12)
    assert torch.allclose(ref.rewards, fast_.rewards, atol=1e-5) and ref.rewards.std() > 0
    assert torch.allclose(ref.continues, fast_.continues, atol=1e-6)
    assert torch.equal(ref.actions, fast_.actions)
    # Rewards and continues are read from the states the actions led to.
    future = {k: v[1:] for k, v in ref.states.items()}
    assert torch.allclose(model.predict_reward(future), ref.rewards, atol=1e-5)


@pytest.mark.slow
def test_compiled_fast_imagine_matches_eager() -> None:
    model = debug_model((4,), ATARI)
    torch.nn.init.normal_(model.reward_head.out.weight)
    start = {k: v.detach() for k, v in model.observe(torch.rand(6, 4)).items()}
    actions = ATARI.one_hot(torch.randint(18, (5, 6)))
    with torch.no_grad():
        eager, compiled = (
            model.imagine(start, actions, compile=c, generator=torch.Generator().manual_seed(3))
            for c in (False, True)
        )
    assert torch.equal(eager.states["stoch"], compiled.states["stoch"])
    assert torch.allclose(eager.states["deter"], compiled.states["deter"], atol=1e-5)
    # The normal-initialised head decodes rewards of up to ~1e6 (symexp): compare them relatively.
    torch.testing.assert_close(compiled.rewards, eager.rewards, rtol=1e-4, atol=1e-4)
    copy.deepcopy(model)  # the compiled cache is not part of the model's state


@pytest.mark.slow
def test_compiled_batched_modules_give_the_eager_losses() -> None:
    eager = debug_model((3, 16, 16), ATARI)
    compiled = copy.deepcopy(eager)
    compiled.compile_batched()
    batch = random_batch(eager)
    torch.manual_seed(1)
    want = eager.total_loss(eager.loss(batch)[0])
    torch.manual_seed(1)
    got = compiled.total_loss(compiled.loss(batch)[0])
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
    got.backward()
    assert compiled.state_dict().keys() == eager.state_dict().keys()
    assert all(p.grad is not None for p in compiled.decoder.parameters())


def test_imagine_reference_path_is_differentiable() -> None:
    model = debug_model()
    start = model.observe(torch.rand(4, 4))
    actions = torch.zeros(5, 4, 2, requires_grad=True)
    rollout = model.imagine(start, actions)  # gradients enabled: reference path
    assert rollout.rewards.requires_grad
    (rollout.states["deter"].sum() + rollout.continues.sum()).backward()
    assert actions.grad is not None and actions.grad.abs().sum() > 0


# ----------------------------------------------------------------------------------------------
# Learning a known system: a damped rotating point pushed by the action


def rotating_point(B: int, T: int, g: torch.Generator) -> dict[str, torch.Tensor]:
    """``x_t = 0.95 R(0.4) x_{t-1} + 0.3 a_t``: ``action[t]`` led to ``obs[t]`` (DreamerV3 order)."""
    c, s = math.cos(0.4), math.sin(0.4)
    rot = torch.tensor([[c, -s], [s, c]])
    action = torch.rand(B, T, 2, generator=g) * 2 - 1
    x, xs = torch.randn(B, 2, generator=g) * 0.5, []
    for t in range(T):
        if t:
            x = 0.95 * x @ rot.T + 0.3 * action[:, t]
        xs.append(x)
    obs = torch.stack(xs, 1)
    first = torch.zeros(B, T, dtype=torch.bool)
    first[:, 0] = True
    return {"obs": obs, "action": action, "reward": -obs.square().sum(-1), "is_first": first,
            "is_terminal": torch.zeros(B, T)}  # fmt: skip


def open_loop_error_ratio(steps: int, batch: int, length: int) -> float:
    cfg = RSSMConfig(
        deter=64, hidden=64, stoch=8, classes=8, blocks=1, units=64,
        enc_layers=1, dec_layers=1, imglayers=1, obslayers=1,
    )  # fmt: skip
    torch.manual_seed(0)
    model = RSSM((2,), ActionSpec("continuous", 2), cfg)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    for _ in range(steps):
        losses, _ = model.loss(rotating_point(batch, length, g))
        opt.zero_grad()
        model.total_loss(losses).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 100.0)
        opt.step()
    test, context, horizon = rotating_point(256, 20, torch.Generator().manual_seed(123)), 10, 10
    with torch.no_grad():
        post, _ = model.observe_sequence(
            test["obs"][:, :context], test["action"][:, :context], test["is_first"][:, :context]
        )
        start = {"deter": post["deter"][:, -1], "stoch": post["stoch"][:, -1]}
        rollout = model.imagine(start, test["action"][:, context : context + horizon].transpose(0, 1))
        pred = model.decode(rollout.states)[1:].transpose(0, 1)
    truth = test["obs"][:, context : context + horizon]
    model_err = (pred - truth).square().sum(-1).mean()
    copy_last_err = (test["obs"][:, context - 1 : context] - truth).square().sum(-1).mean()
    return float(model_err / copy_last_err)


def test_learns_rotating_point_small() -> None:
    # ~60 updates: open-loop 10-step error already well below copying the last observation.
    assert open_loop_error_ratio(steps=60, batch=16, length=20) < 0.5


@pytest.mark.slow
def test_learns_rotating_point_full() -> None:
    steps = 600 if os.environ.get("AGENTWM_FULL") else 300
    assert open_loop_error_ratio(steps=steps, batch=32, length=24) < 0.2


# ----------------------------------------------------------------------------------------------
# Input validation and checkpoints


def test_bad_inputs_raise_naming_argument_and_shape() -> None:
    model = debug_model((4,), ATARI)
    with pytest.raises(ValueError, match=r"obs must have shape \[\*, 4\]"):
        model.observe(torch.rand(2, 5))
    with pytest.raises(TypeError, match="obs must be a floating-point"):
        model.observe(torch.ones(2, 4, dtype=torch.long))
    image = debug_model(IMAGE, ATARI)
    with pytest.raises(TypeError, match=r"obs must be a floating-point tensor of shape \[\*, 3, 64, 64\]"):
        image.observe(torch.zeros(2, 3, 64, 64, dtype=torch.uint8))
    state = model.observe(torch.rand(2, 4))
    with pytest.raises(ValueError, match=r"action must have shape \[2, 18\]"):
        model.observe(torch.rand(2, 4), state, torch.zeros(2, 3))
    with pytest.raises(ValueError, match="needs the action"):
        model.observe(torch.rand(2, 4), state)
    with pytest.raises(ValueError, match=r"actions must have shape \[\*, 2, 18\]"):
        model.imagine(state, torch.zeros(5, 3, 18))
    with pytest.raises(ValueError, match=r"state\['stoch'\] must have shape \[2, 4, 4\]"):
        model.imagine({"deter": state["deter"], "stoch": torch.zeros(2, 4, 5)}, torch.zeros(5, 2, 18))
    with pytest.raises(ValueError, match="horizon"):
        model.imagine(state, lambda s: torch.zeros(2, 18))
    with pytest.raises(ValueError, match=r"policy output must have shape \[2, 18\]"):
        model.imagine(state, lambda s: torch.zeros(2, 17), 3)
    batch = random_batch(model)
    with pytest.raises(ValueError, match=r"actions must have shape \[3, 5, 18\]"):
        model.loss({**batch, "action": batch["action"][..., :4]})
    with pytest.raises(ValueError, match=r"is_first must have shape \[3, 5\]"):
        model.loss({**batch, "is_first": batch["is_first"][:, :4]})
    with pytest.raises(KeyError, match="reward"):
        model.loss({k: v for k, v in batch.items() if k != "reward"})
    with pytest.raises(ValueError, match="obs_shape"):
        RSSM((2, 3), ATARI, RSSMConfig.preset("debug"))


def test_state_dict_round_trip_gives_identical_outputs() -> None:
    model = debug_model((4,), ATARI)
    for p in model.parameters():  # move away from the init so a missed tensor would show
        torch.nn.init.normal_(p, std=0.3)
    clone = RSSM((4,), ATARI, RSSMConfig.preset("debug"))
    clone.load_state_dict(model.state_dict())
    batch, outputs = random_batch(model), []
    for m in (model, clone):
        torch.manual_seed(5)
        losses, _ = m.loss(batch)
        state = m.observe(batch["obs"][:, 0])
        with torch.no_grad():
            rollout = m.imagine(state, ATARI.one_hot(torch.randint(18, (6, 3))))
        outputs.append((losses, state, rollout, m.decode(rollout.states)))
    (la, sa, ra, da), (lb, sb, rb, db) = outputs
    assert all(torch.equal(la[k], lb[k]) for k in la)
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert torch.equal(ra.rewards, rb.rewards) and torch.equal(ra.states["deter"], rb.states["deter"])
    assert torch.equal(da, db)


def test_cont_terminal_weight_scales_the_continue_loss_at_terminal_steps_only() -> None:
    obs_shape, spec = (4,), ActionSpec("discrete", 2)
    torch.manual_seed(0)
    plain = RSSM(obs_shape, spec, RSSMConfig.preset("debug"))
    weighted = RSSM(obs_shape, spec, RSSMConfig.preset("debug").model_copy(update={"cont_terminal_weight": 10.0}))
    weighted.load_state_dict(plain.state_dict())
    batch = {"obs": torch.randn(2, 5, 4), "action": torch.nn.functional.one_hot(torch.zeros(2, 5, dtype=torch.long), 2).float(),
             "reward": torch.zeros(2, 5), "is_first": torch.zeros(2, 5, dtype=torch.bool),
             "is_terminal": torch.zeros(2, 5, dtype=torch.bool)}  # fmt: skip
    batch["is_terminal"][1, 3] = True
    losses = []
    for model in (plain, weighted):
        torch.manual_seed(1)
        losses.append(model.loss(batch)[0]["cont"])
    ratio = (losses[1] / losses[0]).detach()
    assert torch.allclose(ratio[1, 3], torch.tensor(10.0)) and float(ratio.sum()) == pytest.approx(10.0 + 9)


@pytest.mark.parametrize("obs_shape", [(4,), (3, 16, 16)])
def test_overshoot_decodes_open_loop_priors_with_the_replayed_actions(
    obs_shape: tuple[int, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each start's term is the mean, over the steps that stay in its sequence and episode, of the
    decoder's error on the prior rolled from its posterior with the actions that led to each obs."""
    from agentwm.core import mode_onehot
    from agentwm.worldmodels import rssm_loss
    from agentwm.worldmodels.block_gru import scale_actions

    monkeypatch.setattr(rssm_loss, "sample_onehot", lambda logits: mode_onehot(logits))  # no sampling noise
    model = debug_model(obs_shape, ActionSpec("discrete", 3), overshoot=3, loss_scales={"overshoot": 2.0})
    batch = random_batch(model, B=2, T=6)
    batch["is_first"][1, 3] = True  # a new episode at t = 3 in row 1
    torch.manual_seed(0)
    losses, _ = model.loss(batch)
    torch.manual_seed(0)
    post, _ = model.observe_sequence(batch["obs"], batch["action"], batch["is_first"])
    with torch.no_grad():
        expect = torch.zeros(2, 6)
        for b in range(2):
            for t in range(6):
                deter, stoch, errors = post["deter"][b, t][None], post["stoch"][b, t][None], []
                for k in range(1, 4):
                    if t + k >= 6 or batch["is_first"][b, t + 1 : t + k + 1].any():
                        break
                    act = model.core.in_action(scale_actions(batch["action"][b, t + k][None]))
                    deter, logit = model.prior_step(deter, model.core.in_stoch(stoch.flatten(1)), act)
                    stoch = mode_onehot(logit)
                    errors.append(rssm_loss._reconstruction_error(model, model.feat({"deter": deter, "stoch": stoch}),
                                                                  batch["obs"][b, t + k][None]))  # fmt: skip
                expect[b, t] = torch.cat(errors).mean() if errors else 0.0
    assert torch.allclose(losses["overshoot"].detach(), expect, atol=1e-5)
    assert losses["overshoot"][1, 2] == 0 and losses["overshoot"][0, 5] == 0  # no step inside
    assert (losses["overshoot"][0, :5] > 0).all()
    total = model.total_loss(losses)
    without = sum(model.config.loss_scales[k] * v.mean() for k, v in losses.items() if k != "overshoot")
    assert torch.allclose(total, without + 2.0 * losses["overshoot"].mean())
    total.backward()
    assert model.prior_net.out.weight.grad is not None  # the prior learns from its own predictions


def test_overshoot_is_not_a_size_and_is_checked() -> None:
    assert RSSMConfig.preset("debug", overshoot=8).nominal_params == RSSMConfig.preset("debug").nominal_params
    with pytest.raises(ValueError, match="overshoot"):
        RSSMConfig.preset("debug", overshoot=-1)
