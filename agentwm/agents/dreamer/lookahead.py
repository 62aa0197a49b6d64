"""One-step values of every discrete action: the actor's lookahead objective.

REINFORCE learns which action is better only from the actions it happens to sample; once the policy
is nearly deterministic the other action is drawn a few times in a hundred, and a small correction
(CartPole: push the cart back towards the centre) drowns in the noise of the rollouts that follow.
With a handful of discrete actions the world model can instead try each of them from the states the
imagination starts from (the replayed posteriors: the real state distribution, no compounded model
error, and 1/horizon of the cost of doing it at every imagined state): one prior step per action,
all drawing their next latent with the same uniform numbers (common random numbers, so two
actions' values differ by what the actions do, not by the draw), then ``Q(s, a) = r + gamma * c *
V(s')`` from the reward and continue heads and the critic. The actor can then follow ``sum_a pi(a |
s) Q(s, a)``, an expected policy gradient (as in Mean Actor-Critic, Allen et al. 2017) that has no
action-sampling noise at all; its bias is the critic's and the model's, one step deep. On CartPole
it did not hold the policy better than REINFORCE (docs/dreamer.md), so it is off by default.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from agentwm.core import sample_indices
from agentwm.worldmodels.block_gru import scale_actions
from agentwm.worldmodels.rssm import RSSM


def action_values(
    wm: RSSM,
    value: Callable[[Tensor], Tensor],
    deter: Tensor,
    stoch: Tensor,
    gamma: float,
    generator: torch.Generator | None = None,
) -> Tensor:
    """``Q [N, A]`` of each of the ``A`` discrete actions from states ``deter [N, D]``, ``stoch
    [N, S, C]``: the imagined reward of the step, plus ``gamma`` times its continue probability
    times ``value`` (features ``[M, F] -> [M]``) of the state it reaches. No gradients."""
    if wm.action_spec.kind != "discrete":
        raise ValueError("action values need discrete actions; this world model's are continuous")
    n, actions = deter.shape[0], wm.action_spec.dim
    cfg = wm.config
    with torch.no_grad():
        onehots = torch.eye(actions, device=deter.device, dtype=deter.dtype)
        action_proj = wm.core.in_action(scale_actions(onehots))  # [A, hidden]
        stoch_proj = wm.core.in_stoch(stoch.flatten(1))  # [N, hidden]
        # Action-major rows: row a * N + i is state i under action a.
        new, logit = wm.prior_step(
            deter.repeat(actions, 1), stoch_proj.repeat(actions, 1), action_proj.repeat_interleave(n, 0)
        )
        noise = torch.rand((n, cfg.stoch, 1), device=deter.device, generator=generator).repeat(actions, 1, 1)
        index = sample_indices(logit, noise=noise)
        reached = {"deter": new, "stoch": F.one_hot(index, cfg.classes).to(new.dtype)}
        reward, cont = wm.predict_reward(reached), wm.predict_continue(reached)
        q = reward.float() + gamma * cont.float() * value(wm.feat(reached)).float()
    return q.view(actions, n).T
