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


def test_compiled_observe_step_gives_the_eager_posterior() -> None:
    torch._dynamo.reset()
    torch.manual_seed(0)
    cfg = resolve_config(["debug"], ["device=cpu", "compile=true"])
    agent = DreamerAgent((4,), ActionSpec("discrete", 2), cfg)
    eager = DreamerAgent((4,), ActionSpec("discrete", 2), resolve_config(["debug"], ["device=cpu"]))
    eager.load_state_dict(agent.state_dict())
    batch = vector_batch()
    posts = []
    for model in (agent.wm, eager.wm):
        torch.manual_seed(1)  # the same uniforms for the latents' samples
        post, _ = model.observe_sequence(batch["obs"], batch["action"], batch["is_first"])
        posts.append(post)
    for key in ("deter", "stoch", "logits"):
        torch.testing.assert_close(posts[0][key], posts[1][key], rtol=1e-4, atol=1e-5)
