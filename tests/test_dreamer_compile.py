"""``compile=true``: each compiled call site of the Dreamer update compiles once, and acting,
evaluation and later updates (bf16 autocast or not) never recompile it."""

from __future__ import annotations

import pytest
import torch

from agentwm.agents.dreamer import DreamerAgent, resolve_config
from agentwm.core.compiled import CompileWatch, compile_call
from agentwm.worldmodels.base import ActionSpec
from tests.dreamer_fakes import vector_batch

pytestmark = pytest.mark.usefixtures("one_thread")


def _act(agent: DreamerAgent, n: int) -> None:
    carry = agent.initial_carry(n)
    for first in (True, False):
        _, carry = agent.act(torch.rand(n, 4), torch.full((n,), first), carry, "explore")


@pytest.mark.parametrize("amp", ["off", "bf16"])
def test_compiled_update_compiles_each_call_site_once_and_never_recompiles(amp: str) -> None:
    torch._dynamo.reset()
    torch.manual_seed(0)
    cfg = resolve_config(["debug"], ["device=cpu", "horizon=4", "compile=true", f"amp={amp}"])
    agent = DreamerAgent((4,), ActionSpec("discrete", 2), cfg)
    batch = vector_batch()
    with CompileWatch() as watch:
        _act(agent, 3)  # acting before any update (prefill), as the training loop does
        metrics = agent.update(batch)
        _act(agent, 1)  # an evaluation episode
        agent.update(batch)
    assert watch.recompiles == []
    # encoder, decoder, reward and continue heads, the observe loop's posterior step, prior step,
    # imagined heads, the actor as policy and in its loss, critic, slow critic
    assert watch.compiles == 11
    assert torch.isfinite(metrics["loss/world_model"]) and torch.isfinite(metrics["loss/actor"])


def test_watch_sees_a_recompile_and_call_sites_do_not_share_a_cache() -> None:
    torch._dynamo.reset()
    net = torch.nn.Linear(3, 2)
    with CompileWatch() as watch:
        a, b = compile_call(net, "site_a"), compile_call(net, "site_b")
        a(torch.randn(2, 3))
        with torch.no_grad():
            b(torch.randn(2, 3))  # another site: a first compile, not a recompile of site_a
        a(torch.randn(5, 3))  # a new shape at the same site: a recompile
    assert watch.compiles == 3 and len(watch.recompiles) == 1 and watch.recompiles[0].startswith("site_a: ")
    with pytest.raises(ValueError, match="identifier"):
        compile_call(net, "not a name")


@pytest.mark.parametrize("chunk", [1, 3])
def test_compiled_observe_step_gives_the_eager_posterior(chunk: int) -> None:
    """Step by step, and 3 steps per compiled call (8 = 3 + 3 + 1 + 1: the tail goes step by step)."""
    torch._dynamo.reset()
    torch.manual_seed(0)
    cfg = resolve_config(["debug"], ["device=cpu", "compile=true", f"compile_observe_chunk={chunk}"])
    agent = DreamerAgent((4,), ActionSpec("discrete", 2), cfg)
    eager = DreamerAgent((4,), ActionSpec("discrete", 2), resolve_config(["debug"], ["device=cpu"]))
    eager.load_state_dict(agent.state_dict())
    batch = vector_batch()
    posts = []
    with CompileWatch() as watch:
        for model in (agent.wm, agent.wm, eager.wm):
            torch.manual_seed(1)  # the same uniforms for the latents' samples
            post, _ = model.observe_sequence(batch["obs"], batch["action"], batch["is_first"])
            posts.append(post)
    assert watch.recompiles == []  # a chunk's outputs feed the next chunk with the strides of its inputs
    posts = posts[1:]
    for key in ("deter", "stoch", "logits"):
        torch.testing.assert_close(posts[0][key], posts[1][key], rtol=1e-4, atol=1e-5)
    weights = torch.randn_like(posts[0]["deter"])
    for model, post in zip((agent.wm, eager.wm), posts):
        ((post["deter"] * weights).sum() + post["logits"].square().mean() + post["stoch"].sum()).backward()
    for (name, p_compiled), p_eager in zip(agent.wm.named_parameters(), eager.wm.parameters()):
        if p_eager.grad is not None:  # the gradients through the loop, summed over the steps' calls
            assert p_compiled.grad is not None, name
            torch.testing.assert_close(p_compiled.grad, p_eager.grad, rtol=1e-3, atol=1e-4, msg=name)


@pytest.mark.parametrize("kind", ["discrete", "continuous"])
@pytest.mark.parametrize("compiled", [False, True])
def test_fused_imagination_step_draws_and_gives_what_the_step_by_step_loop_does(kind: str, compiled: bool) -> None:
    """The GPU's fused imagination step (actor, prior, sample and next projection as one call) against
    the CPU's loop: the same random numbers in the same order, so the same rollout."""
    from agentwm.worldmodels.rssm_fast import imagine_fast

    torch._dynamo.reset()
    torch.manual_seed(0)
    agent = DreamerAgent((4,), ActionSpec(kind, 2), resolve_config(["debug"], ["device=cpu"]))
    with torch.no_grad():
        post, _ = agent.wm.observe_sequence(*(vector_batch()[k] for k in ("obs", "action", "is_first")))
    start = {k: post[k].flatten(0, 1) for k in ("deter", "stoch")}
    rolls = []

    def imagine(fused: bool) -> None:
        generator = torch.Generator().manual_seed(7)
        agent.generator = generator
        with torch.no_grad():  # as RSSM.imagine calls it
            rolls.append(imagine_fast(agent.wm, start, None, agent._policy, 5, generator, compiled, fused))

    imagine(False)
    imagine(False)  # (the first call fills the reward head's cache of bins, which the heads' guards see)
    with CompileWatch() as watch:
        imagine(True)
        imagine(True)
    assert watch.recompiles == [], watch.recompiles
    step_by_step, fused_roll = rolls[0], rolls[3]
    assert fused_roll.actions is not None and step_by_step.actions is not None
    torch.testing.assert_close(fused_roll.actions, step_by_step.actions, rtol=1e-4, atol=1e-5)
    assert torch.equal(fused_roll.states["stoch"], step_by_step.states["stoch"])  # every latent sample the same
    torch.testing.assert_close(fused_roll.states["deter"], step_by_step.states["deter"], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(fused_roll.rewards, step_by_step.rewards, rtol=1e-4, atol=1e-5)
    assert not torch.equal(fused_roll.states["stoch"][1], fused_roll.states["stoch"][2])  # it does move on
