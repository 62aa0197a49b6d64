"""A learned latent world model of text games: sentence embeddings in, a recurrent latent carrying history.

Observations and commands enter as sentence embeddings (MiniLM, 384-d); the task enters as the
embeddings of its sentences (the objective split into steps). A GRU latent ``h`` folds in every
observation and the command that led to it, so history lives in the carry. From ``(h, command)``
an ensemble of ``E`` transition heads predicts the next observation's embedding; feeding that
prediction back into the GRU gives the imagined next latent, one per member. Heads on the latent
predict the step's reward, whether the episode goes on, and a learned value of progress toward
winning (trained on ``γ^(remaining-1)``, the discounted value of the shortest win from there).

Every command and observation is also seen through its cosine similarity to each objective
sentence, so "which step of the task did that command do" is a feature the model can learn to
track across games it has never seen. Imagination is batched: ``imagine`` rolls ``B`` start
states × ``E`` members forward in one pass per step, reporting the members' spread of value as
``extras["disagreement"]``; the result is the shared :class:`~agentwm.worldmodels.base.Rollout`.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from pydantic import BaseModel, Field
from torch import Tensor, nn

from agentwm.core.nets import MLP
from agentwm.worldmodels.base import ActionsOrPolicy, ActionSpec, Rollout, State


def rank_loss(score: Tensor, alts_mask: Tensor, temperature: float = 0.05) -> Tensor:
    """Cross-entropy that the first of ``score [..., 1+A]`` (the winning command) ranks top.

    Scores are compared in log space (a discounted value's log is minus the steps to the win, times
    ``-log γ``), so near-zero values far from the win are ranked as firmly as near ones.
    """
    logits = torch.log(score.clamp(min=1e-4)) / temperature
    valid = torch.cat([torch.ones_like(alts_mask[..., :1]), alts_mask], -1)
    logits = logits.masked_fill(valid <= 0, -1e9)
    return -torch.log_softmax(logits, -1)[..., 0]


def destination_loss(pred: Tensor, target: Tensor, valid: Tensor, temperature: float = 0.05, same: float = 0.999) -> Tensor:
    """InfoNCE that each predicted next observation ``pred [..., D]`` (unit rows) is nearer its own real
    next observation ``target [..., D]`` (unit rows) than every other valid real next observation of the
    batch (the other rooms and feedback texts of the same and other games) → ``[...]``, 0 where
    ``valid [...]`` is 0. The cosine loss alone lets a move predict a generic room; this makes the
    imagined destination recognisable. Targets at least ``same`` similar to the true one (a revisited
    room, the same text) are not negatives."""
    flat_v = valid.reshape(-1) > 0
    idx = flat_v.nonzero().squeeze(1)
    out = torch.zeros(flat_v.numel(), dtype=pred.dtype, device=pred.device)
    if idx.numel() < 2:
        return out.view(valid.shape)
    p = pred.reshape(-1, pred.shape[-1])[idx]
    t = target.reshape(-1, target.shape[-1])[idx]
    eye = torch.eye(idx.numel(), dtype=torch.bool, device=pred.device)
    dup = ((t @ t.T) >= same) & ~eye
    logits = (p @ t.T / temperature).masked_fill(dup, float("-inf"))
    loss = -torch.log_softmax(logits, -1).diagonal()
    return out.index_put((idx,), loss).view(valid.shape)


def count_cover(cover: Tensor, sims: Tensor, match: float = 0.45, margin: float = 0.1) -> Tensor:
    """Coverage ``[..., K]`` after a command with similarities ``sims [..., K]`` to the objective's
    sentences, counting repeated steps: among the sentences the command matches (``>= match``), only
    the earliest not yet credited (coverage ``< match``) whose similarity is within ``margin`` of the
    command's best match is raised; other matched sentences keep their coverage; unmatched sentences
    take the running max (their similarities stay below ``match``, so they never count as credited)."""
    matched = sims >= match
    best = sims.amax(-1, keepdim=True)
    eligible = matched & (cover < match) & (sims >= best - margin)
    first = eligible & (eligible.long().cumsum(-1) == 1)
    raised = torch.maximum(cover, sims)
    return torch.where(matched, torch.where(first, raised, cover), raised)


class TextLatentConfig(BaseModel):
    """Sizes of :class:`TextLatentModel`."""

    emb_dim: int = Field(384, ge=1, description="sentence-embedding width (MiniLM: 384)")
    max_goal: int = Field(16, ge=1, description="objective sentences the model reads (more are cut)")
    hidden: int = Field(128, ge=8, description="GRU latent width")
    proj: int = Field(64, ge=8, description="width observations and commands are projected to")
    units: int = Field(128, ge=8, description="hidden units of the heads")
    members: int = Field(3, ge=1, description="ensemble members of the transition head (disagreement)")
    value_gamma: float = Field(0.85, gt=0.0, le=1.0, description="discount the value labels and planning use")


class TextLatentModel(nn.Module):
    """The world model (see the module docstring). Tensor API; :mod:`agentwm.agents.textworld` wraps text.

    Carry: ``{"h": [B, E, hidden], "goal": [B, K, D], "goal_mask": [B, K]}``; actions are unit
    command embeddings ``[H, B, D]``.
    """

    def __init__(self, config: TextLatentConfig | None = None) -> None:
        super().__init__()
        c = self.config = config or TextLatentConfig()
        D, K, H, P, U = c.emb_dim, c.max_goal, c.hidden, c.proj, c.units
        self.obs_proj = nn.Linear(D, P)
        self.act_proj = nn.Linear(D, P)
        self.init = MLP(D + K, H, U, 1)
        self.cell = nn.GRUCell(2 * P + 3 * K, H)
        feat = H + P + 2 * K
        self.dynamics = nn.ModuleList([MLP(feat, D, U, 2) for _ in range(c.members)])
        self.reward = MLP(feat, 1, U, 1)
        self.cont = MLP(feat, 1, U, 1)
        self.value = MLP(H + K, 1, U, 2)
        self._spec = ActionSpec("continuous", D, -1.0, 1.0)

    @property
    def action_spec(self) -> ActionSpec:
        return self._spec

    # ---- pieces
    def _sims(self, x: Tensor, goal: Tensor, mask: Tensor) -> Tensor:
        """Cosine similarity of ``x [..., D]`` to each goal sentence ``[B, K, D]`` → ``[..., K]``."""
        xs = F.normalize(x, dim=-1)
        shape = xs.shape
        flat = xs.reshape(shape[0], -1, shape[-1])
        sims = torch.einsum("bnd,bkd->bnk", flat, goal) * mask[:, None, :]
        return sims.reshape(*shape[:-1], goal.shape[1])

    def _step_input(self, obs: Tensor, act: Tensor, goal: Tensor, mask: Tensor, cover: Tensor) -> Tensor:
        return torch.cat(
            [self.obs_proj(obs), self.act_proj(act), self._sims(obs, goal, mask), self._sims(act, goal, mask), cover], -1
        )

    def _feat(self, h: Tensor, act: Tensor, goal: Tensor, mask: Tensor, cover: Tensor) -> Tensor:
        return torch.cat([h, self.act_proj(act), self._sims(act, goal, mask), cover], -1)

    cover_rule: str = "max"
    """How commands played update ``cover`` when the model is used (training always uses ``"max"``):
    ``"max"``, the best similarity any command so far had to each sentence; ``"count"``, the same
    except that a command that matches sentences (similarity >= ``cover_match``) credits only the
    earliest of its near-best matches (within ``cover_margin``) not credited yet, so one
    ``go east`` does not mark both "travel east" and "venture east" done (see :func:`count_cover`)."""
    cover_match: float = 0.45
    cover_margin: float = 0.1

    def covered(self, cover: Tensor, act: Tensor, goal: Tensor, mask: Tensor) -> Tensor:
        """The objective sentences' coverage after ``act`` under :attr:`cover_rule`."""
        sims = self._sims(act, goal, mask).clamp(min=0)
        if self.cover_rule == "count":
            return count_cover(cover, sims, self.cover_match, self.cover_margin)
        return torch.maximum(cover, sims)

    def value_of(self, h: Tensor, cover: Tensor) -> Tensor:
        """Progress value in ``[0, 1]`` of latents ``[..., hidden]`` with coverage ``[..., K]``."""
        return torch.sigmoid(self.value(torch.cat([h, cover.expand(*h.shape[:-1], cover.shape[-1])], -1)).squeeze(-1))

    # ---- protocol
    def initial(self, batch_size: int, goal: Tensor | None = None, goal_mask: Tensor | None = None) -> State:
        """Empty carry; ``goal [B, K, D]`` (unit rows, zero padded) and ``goal_mask [B, K]`` set the task."""
        c = self.config
        dev = next(self.parameters()).device
        if goal is None:
            goal = torch.zeros(batch_size, c.max_goal, c.emb_dim, device=dev)
            goal_mask = torch.zeros(batch_size, c.max_goal, device=dev)
        assert goal_mask is not None
        goal, goal_mask = goal[:, : c.max_goal], goal_mask[:, : c.max_goal]
        pad = c.max_goal - goal.shape[1]
        if pad > 0:
            goal = F.pad(goal, (0, 0, 0, pad))
            goal_mask = F.pad(goal_mask, (0, pad))
        pooled = (goal * goal_mask[..., None]).sum(1) / goal_mask.sum(1, keepdim=True).clamp(min=1)
        h = self.init(torch.cat([pooled, goal_mask], -1))
        cover = torch.zeros_like(goal_mask)
        return {"h": h[:, None].expand(-1, c.members, -1).contiguous(), "goal": goal, "goal_mask": goal_mask, "cover": cover}

    def observe(self, obs: Tensor, state: State | None = None, action: Tensor | None = None) -> State:
        """Fold observation embeddings ``[B, D]`` (after command embeddings ``action [B, D]``) into the carry."""
        if state is None:
            state = self.initial(obs.shape[0])
        if action is None:
            action = torch.zeros_like(obs)
        h = state["h"]
        cover = self.covered(state["cover"], action, state["goal"], state["goal_mask"])
        x = self._step_input(obs, action, state["goal"], state["goal_mask"], cover)
        E = h.shape[1]
        new = self.cell(x.repeat_interleave(E, 0), h.reshape(-1, h.shape[-1])).view_as(h)
        # the observation is fact: every member agrees on it
        new = new.mean(1, keepdim=True).expand_as(new).contiguous()
        return {**state, "h": new, "cover": cover}

    def step(self, state: State, action: Tensor, known_obs: Tensor | None = None, known: Tensor | None = None) -> tuple[State, Tensor, Tensor, Tensor]:
        """One imagined step for every member: next carry, reward ``[B, E]``, continue ``[B, E]``, value ``[B, E]``.

        Rows where ``known [B]`` (bool) is set take the next observation ``known_obs [B, D]`` (unit) as
        fact instead of the members' predictions (e.g. a transition an episodic memory has seen): it is
        folded in as :meth:`observe` does, and every member agrees on the next latent."""
        h, goal, mask = state["h"], state["goal"], state["goal_mask"]
        B, E, _ = h.shape
        act = action[:, None].expand(B, E, -1)
        cover = state["cover"][:, None].expand(B, E, -1)
        cover2 = self.covered(cover, act, goal, mask)
        feat = self._feat(h, act, goal, mask, cover)  # [B, E, F]
        nxt = torch.stack([self.dynamics[k](feat[:, k]) for k in range(E)], 1)
        nxt = F.normalize(nxt, dim=-1)
        fact = None
        if known is not None and known_obs is not None:
            if known.shape != (B,) or known_obs.shape != (B, nxt.shape[-1]):
                raise ValueError(f"known must be [{B}] and known_obs [{B}, {nxt.shape[-1]}], got {tuple(known.shape)} and {tuple(known_obs.shape)}")
            fact = known.bool()[:, None, None]
            nxt = torch.where(fact, known_obs[:, None].expand_as(nxt), nxt)
        x = self._step_input(nxt, act, goal, mask, cover2)
        h2 = self.cell(x.reshape(B * E, -1), h.reshape(B * E, -1)).view_as(h)
        if fact is not None:  # an observed outcome: the members agree, as in observe()
            h2 = torch.where(fact, h2.mean(1, keepdim=True).expand_as(h2), h2)
        reward = torch.sigmoid(self.reward(feat).squeeze(-1))
        cont = torch.sigmoid(self.cont(feat).squeeze(-1))
        new = {**state, "h": h2, "pred_obs": nxt, "cover": cover2[:, 0]}
        return new, reward, cont, self.value_of(h2, cover2)

    def imagine(self, state: State, actions: ActionsOrPolicy, horizon: int) -> Rollout:
        """Roll forward ``horizon`` steps under ``actions [H, B, D]`` or a policy; members averaged,
        their spread of value in ``extras["disagreement"]``, predicted observations in ``extras["obs"]``."""
        rewards, conts, values, spread, acts, preds = [], [], [], [], [], []
        states = [state]
        for t in range(horizon):
            act = actions(state) if callable(actions) else actions[t]
            state, r, c, v = self.step(state, act)
            rewards.append(r.mean(1))
            conts.append(c.mean(1))
            values.append(v.mean(1))
            spread.append(v.std(1, unbiased=False))
            acts.append(act)
            preds.append(state["pred_obs"].mean(1))
            states.append(state)
        return Rollout(
            states=states, rewards=torch.stack(rewards), continues=torch.stack(conts), actions=torch.stack(acts),
            values=torch.stack(values), extras={"disagreement": torch.stack(spread), "obs": torch.stack(preds)},
        )

    # ---- learning
    def loss(self, batch: Mapping[str, Tensor]) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """Unreduced losses over a batch of episodes.

        ``batch``: ``obs [B, T, D]``, ``act [B, T, D]`` (command taken at t; zeros at the end),
        ``reward [B, T]`` and ``cont [B, T]`` (of the step that led to t), ``value [B, T]`` label,
        ``mask [B, T]`` valid steps, ``goal [B, K, D]``, ``goal_mask [B, K]``.
        Returns ``value`` ``[B, T]`` (posterior) and ``[B, T-1]`` terms: ``obs`` (cosine, per member), ``reward``,
        ``cont``, ``imagined_value`` (1 and 2 steps ahead), ``consistency`` (imagined vs
        observed latent) and ``destination`` (:func:`destination_loss`: the predicted next observation
        picks out the real one among the batch's other next observations; weight 0 unless asked for).
        """
        obs, act, mask = batch["obs"], batch["act"], batch["mask"]
        B, T, _ = obs.shape
        state = self.initial(B, batch["goal"], batch["goal_mask"])
        goal, gmask = state["goal"], state["goal_mask"]
        post, cover = self._posterior(obs, act, state)  # [B, T, H], [B, T, K]
        live = mask * batch["cont"]  # non-terminal valid states carry a value label
        v_post = self.value_of(post, cover)
        value_loss = (v_post - batch["value"]) ** 2 * live
        # transitions t -> t+1
        trans = mask[:, 1:]
        a = act[:, :-1]
        feat = self._feat(post[:, :-1], a, goal, gmask, cover[:, :-1])
        target_obs = obs[:, 1:]
        obs_loss = torch.zeros(B, T - 1, device=obs.device)
        imag_loss = torch.zeros_like(obs_loss)
        cons_loss = torch.zeros_like(obs_loss)
        dest_loss = torch.zeros_like(obs_loss)
        imag2_loss = torch.zeros_like(obs_loss)
        live_next = live[:, 1:]
        for k, head in enumerate(self.dynamics):
            pred = F.normalize(head(feat), dim=-1)
            obs_loss = obs_loss + (1 - (pred * target_obs).sum(-1)) * trans
            dest_loss = dest_loss + destination_loss(pred, target_obs, trans)
            h1 = self.cell(self._step_input(pred, a, goal, gmask, cover[:, 1:]).reshape(-1, self._in_dim()), post[:, :-1].reshape(-1, post.shape[-1]))
            h1 = h1.view(B, T - 1, -1)
            imag_loss = imag_loss + (self.value_of(h1, cover[:, 1:]) - batch["value"][:, 1:]) ** 2 * live_next
            cons_loss = cons_loss + ((h1 - post[:, 1:].detach()) ** 2).mean(-1) * trans
            if T > 2:  # a second imagined step from the imagined latent
                a2 = act[:, 1:-1]
                f2 = self._feat(h1[:, :-1], a2, goal, gmask, cover[:, 1:-1])
                p2 = F.normalize(head(f2), dim=-1)
                h2 = self.cell(self._step_input(p2, a2, goal, gmask, cover[:, 2:]).reshape(-1, self._in_dim()), h1[:, :-1].reshape(-1, h1.shape[-1]))
                v2 = self.value_of(h2.view(B, T - 2, -1), cover[:, 2:])
                imag2_loss[:, :-1] = imag2_loss[:, :-1] + (v2 - batch["value"][:, 2:]) ** 2 * live[:, 2:] * trans[:, 1:]
        E = len(self.dynamics)
        cf, rk = self._counterfactual(post, cover, batch, goal, gmask) if "opt" in batch else (None, None)
        r_logit, c_logit = self.reward(feat).squeeze(-1), self.cont(feat).squeeze(-1)
        reward_loss = F.binary_cross_entropy_with_logits(r_logit, batch["reward"][:, 1:].clamp(0, 1), reduction="none") * trans
        cont_loss = F.binary_cross_entropy_with_logits(c_logit, batch["cont"][:, 1:], reduction="none") * trans
        losses = {
            "value": value_loss, "obs": obs_loss / E, "reward": reward_loss, "cont": cont_loss,
            "imagined_value": (imag_loss + imag2_loss) / E, "consistency": cons_loss / E,
            "destination": dest_loss / E,
        }
        if cf is not None and rk is not None:
            losses["counterfactual"], losses["rank"] = cf, rk
        n = trans.sum().clamp(min=1)
        metrics = {f"loss/{k}": (v.sum() / n).detach() for k, v in losses.items()}
        metrics["wm/value_mae"] = ((v_post - batch["value"]).abs() * live).sum().detach() / live.sum().clamp(min=1)
        return losses, metrics

    def _posterior(self, obs: Tensor, act: Tensor, state: State) -> tuple[Tensor, Tensor]:
        """Posterior latents ``[B, T, H]`` and coverage ``[B, T, K]`` of observed episodes."""
        goal, gmask = state["goal"], state["goal_mask"]
        B, T, D = obs.shape
        sims = self._sims(act, goal, gmask).clamp(min=0)  # [B, T, K], command taken at t
        cover = torch.cat([torch.zeros_like(sims[:, :1]), sims[:, :-1].cummax(1).values], 1)
        h = state["h"][:, 0]
        prev = torch.zeros(B, D, device=obs.device)
        hs = []
        for t in range(T):
            h = self.cell(self._step_input(obs[:, t], prev, goal, gmask, cover[:, t]), h)
            hs.append(h)
            prev = act[:, t]
        return torch.stack(hs, 1), cover

    def _counterfactual(self, post: Tensor, cover: Tensor, batch: Mapping[str, Tensor], goal: Tensor, gmask: Tensor) -> tuple[Tensor, Tensor]:
        """``[B, T]`` twice: the winning command's imagined score should equal the state's value, and
        any other command's should not exceed ``γ·value`` (it cannot bring the win closer); and
        :func:`rank_loss` of the imagined scores (the winning command first)."""
        acts = torch.cat([batch["opt"][:, :, None], batch["alts"]], 2)  # [B, T, 1+A, D]
        hh = post[:, :, None].expand(-1, -1, acts.shape[2], -1)
        cv = cover[:, :, None].expand(-1, -1, acts.shape[2], -1)
        cv2 = self.covered(cv, acts, goal, gmask)
        feat = self._feat(hh, acts, goal, gmask, cv)
        gamma = self.config.value_gamma
        reward, cont = torch.sigmoid(self.reward(feat).squeeze(-1)), torch.sigmoid(self.cont(feat).squeeze(-1))
        live = batch["mask"] * batch["cont"] * batch["opt_mask"]
        total, rank = torch.zeros_like(live), torch.zeros_like(live)
        for head in self.dynamics:
            pred = F.normalize(head(feat), dim=-1)
            x = self._step_input(pred, acts, goal, gmask, cv2)
            h1 = self.cell(x.reshape(-1, x.shape[-1]), hh.reshape(-1, hh.shape[-1])).view(*hh.shape)
            score = reward + gamma * cont * self.value_of(h1, cv2)
            value = batch["value"]
            opt_term = (score[..., 0] - value) ** 2
            alt_term = (F.relu(score[..., 1:] - gamma * value[..., None]) ** 2 * batch["alts_mask"]).sum(-1)
            total = total + (opt_term + alt_term) * live
            rank = rank + rank_loss(score, batch["alts_mask"]) * live
        return total / len(self.dynamics), rank / len(self.dynamics)

    def _in_dim(self) -> int:
        return int(self.cell.input_size)
