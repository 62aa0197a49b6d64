"""A dialogue world model of where a conversation leads, learned from outcome-labelled logs.

Turns are sentence embeddings (MiniLM; the model never sees tokens). An RSSM-style core runs over
them, started from the agent's private context ``c`` (e.g. a negotiator's item values)::

    h_0        = f(c)
    prior      p(z_t | h_{t-1}, speaker_t, c)      what turn t will be about, before reading it
    posterior  q(z_t | h_{t-1}, x_t)               after reading it (x_t = encoded embedding + speaker)
    decoder    ê_t = g(h_{t-1}, z_t, speaker_t)     the turn's embedding (InfoNCE against the batch)
    recurrent  h_t = GRU(h_{t-1}, [x_t, z_t])
    heads      P(the conversation ends after turn t), each outcome if it ended there, and a value
               V(h_t) = E[final outcome | turns so far], trained on λ-returns (``agentwm.core``)

Imagination is one turn a step: the given agent turn (a candidate reply) first, then turns
alternating partner / agent, each drawn as ``z ~ prior`` → ``ê`` → a *retrieved* real turn of that
speaker from the training logs, sampled ``∝ exp(cos(ê, e_b) / τ)`` among the ``top_k`` nearest (the
model's own InfoNCE predictive distribution), so imagined text stays in the logs' domain and
sampled futures differ. Step t of the :class:`Rollout` has ``rewards[t] = P(end_t) · outcome_t``,
``continues[t] = 1 - P(end_t)`` and ``values[t] = V(h_t)``, all in the target outcome's units, so
``rollout.returns(1.0)`` is the expected final outcome of the imagined conversation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import Tensor, nn

from agentwm.core.distributions import mode_onehot, sample_onehot, unimix_logits
from agentwm.core.nets import MLP
from agentwm.core.returns import lambda_return
from agentwm.worldmodels.base import Rollout, State, TextActions, state_batch_size
from agentwm.worldmodels.rssm import kl_losses

LOSS_KEYS = ("nce", "dyn", "rep", "end", "outcome", "value")


class OutcomeModelConfig(BaseModel):
    """Hyperparameters and data-derived settings of :class:`DialogueOutcomeModel`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    outcomes: list[str] = Field(min_length=1, description="names of the predicted outcomes, in head order")
    binary: list[bool] = Field(description="per outcome: a yes/no outcome (else a number)")
    target: str = Field(description="the outcome that rewards and values report")
    outcome_mean: list[float] = Field(description="per outcome: training mean (numbers are standardised)")
    outcome_std: list[float] = Field(description="per outcome: training standard deviation")
    context_keys: list[str] = Field(default_factory=list, description="private-context fields, in input order")
    context_mean: list[float] = Field(default_factory=list, description="per context feature: training mean")
    context_std: list[float] = Field(default_factory=list, description="per context feature: training std")
    embed_dim: int = Field(384, ge=1, description="width of the sentence embeddings (MiniLM: 384)")
    embedder: str = Field("all-MiniLM-L6-v2", description="tag of the sentence encoder the model was trained on")
    hidden: int = Field(96, ge=1, description="width of the turn encoder, prior and posterior")
    deter: int = Field(128, ge=1, description="width of the recurrent state h")
    stoch: int = Field(8, ge=1, description="categorical latents in z")
    classes: int = Field(8, ge=2, description="classes per categorical latent")
    units: int = Field(128, ge=1, description="width of the decoder and heads")
    unimix: float = Field(0.01, ge=0.0, lt=1.0, description="uniform mixture in the latent categoricals")
    free_nats: float = Field(1.0, ge=0.0, description="free bits of each KL term")
    temperature: float = Field(0.07, gt=0.0, description="InfoNCE temperature; also the retrieval sampling temperature")
    top_k: int = Field(32, ge=1, description="imagined turns are sampled among this many nearest real turns")
    lam: float = Field(0.9, ge=0.0, le=1.0, description="λ of the value targets")
    dropout: float = Field(0.1, ge=0.0, lt=1.0, description="dropout on turn embeddings while training")
    loss_scales: dict[str, float] = Field(
        default_factory=lambda: {"nce": 1.0, "dyn": 0.5, "rep": 0.1, "end": 1.0, "outcome": 1.0, "value": 1.0},
        description="weight of each loss term; keys equal DialogueOutcomeModel.loss()'s",
    )

    @model_validator(mode="after")
    def _check(self) -> OutcomeModelConfig:
        n = len(self.outcomes)
        if not (len(self.binary) == len(self.outcome_mean) == len(self.outcome_std) == n):
            raise ValueError("binary, outcome_mean and outcome_std need one entry per outcome")
        if self.target not in self.outcomes:
            raise ValueError(f"target {self.target!r} is not among the outcomes {self.outcomes}")
        if len(self.context_mean) != len(self.context_std):
            raise ValueError("context_mean and context_std must have the same length")
        if set(self.loss_scales) != set(LOSS_KEYS):
            raise ValueError(f"loss_scales must have exactly the keys {list(LOSS_KEYS)}")
        return self

    @property
    def context_dim(self) -> int:
        return len(self.context_mean)


def context_features(context: Mapping[str, Any], keys: Sequence[str]) -> list[float]:
    """Flatten a private context into floats by ``keys`` (``"values[2]"`` is item 2 of a list); NaN where missing."""
    feats = []
    for key in keys:
        base, _, idx = key.partition("[")
        got = context.get(base)
        value: Any = got
        if idx:
            i = int(idx[:-1])
            value = got[i] if isinstance(got, Sequence) and not isinstance(got, str) and i < len(got) else None
        feats.append(float(value) if isinstance(value, (int, float)) else float("nan"))
    return feats


class DialogueOutcomeModel(nn.Module):
    """Learned dialogue dynamics and outcome values over embedded turns (a text world model).

    Args:
        config: sizes and data-derived settings.
        embed: ``embed(list[str]) -> Tensor [N, embed_dim]`` unit vectors (an
            :class:`~agentwm.text.embedding_store.EmbeddingStore`); needed for text in or out.
        bank: ``(embeddings [N, E], texts, is_agent [N])``: the real turns imagined turns are drawn from.

    Example:
        >>> model = load_outcome_model("models/dialogue-dond")
        >>> state = model.observe_turns([("THEM", "i need the hats")], role="YOU",
        ...                             context={"counts": [1, 2, 3], "values": [4, 3, 0]})
        >>> model.imagine(state, [["ok, you take the hats"]], horizon=4).returns(1.0).shape
        torch.Size([1])
    """

    o_mean: Tensor
    o_std: Tensor
    o_binary: Tensor
    c_mean: Tensor
    c_std: Tensor

    def __init__(
        self,
        config: OutcomeModelConfig,
        *,
        embed: Any | None = None,
        bank: tuple[Tensor, Sequence[str], Tensor] | None = None,
    ) -> None:
        super().__init__()
        cfg = self.config = config
        E, D, Cd, n = cfg.embed_dim, cfg.deter, cfg.context_dim, len(cfg.outcomes)
        self.stoch_dim = cfg.stoch * cfg.classes
        self.init_net = MLP(max(Cd, 1), D, cfg.hidden, 1)
        self.encoder = MLP(E + 1, None, cfg.hidden, 1)
        self.prior_net = MLP(D + 1 + Cd, self.stoch_dim, cfg.hidden, 1)
        self.post_net = MLP(D + cfg.hidden, self.stoch_dim, cfg.hidden, 1)
        self.gru = nn.GRUCell(cfg.hidden + self.stoch_dim, D)
        self.decoder = MLP(D + self.stoch_dim + 1, E, cfg.units, 2)
        self.heads = MLP(D + Cd, 1 + n, cfg.units, 2)  # end logit, outcome if it ended here
        self.value_net = MLP(D + Cd, n, cfg.units, 2, out_scale=0.0)
        self.register_buffer("o_mean", torch.tensor(cfg.outcome_mean, dtype=torch.float32))
        self.register_buffer("o_std", torch.tensor(cfg.outcome_std, dtype=torch.float32).clamp_min(1e-6))
        self.register_buffer("o_binary", torch.tensor(cfg.binary, dtype=torch.bool))
        self.register_buffer("c_mean", torch.tensor(cfg.context_mean, dtype=torch.float32))
        self.register_buffer("c_std", torch.tensor(cfg.context_std, dtype=torch.float32).clamp_min(1e-6))
        self.target_index = cfg.outcomes.index(cfg.target)
        self.embed_fn = embed
        self.metadata: dict[str, Any] = {}
        self._side_key: tuple[int, int] | None = None
        self._side_cache: dict[bool, tuple[Tensor, Tensor]] = {}
        self.bank_emb = torch.zeros(0, E)
        self.bank_texts: list[str] = []
        self.bank_agent = torch.zeros(0, dtype=torch.bool)
        if bank is not None:
            self.set_bank(*bank)

    # -- inputs ----------------------------------------------------------------------------------

    def set_bank(self, emb: Tensor, texts: Sequence[str], is_agent: Tensor) -> None:
        """Real turns that imagined turns are drawn from (unit rows, their texts, agent flags)."""
        if emb.shape[0] != len(texts) or is_agent.shape[0] != len(texts):
            raise ValueError(f"bank has {emb.shape[0]} rows, {len(texts)} texts and {is_agent.shape[0]} flags")
        self.bank_emb = F.normalize(emb.float(), dim=-1)
        self.bank_texts = list(texts)
        self.bank_agent = is_agent.bool()

    def context_vector(self, context: Mapping[str, float | Sequence[float]] | None) -> Tensor:
        """The standardised private-context features ``[Cd]`` of one conversation (missing keys: the mean)."""
        raw = torch.tensor(context_features(context or {}, self.config.context_keys), dtype=torch.float32)
        raw = torch.where(torch.isnan(raw), self.c_mean, raw)
        return (raw - self.c_mean) / self.c_std

    def embed_texts(self, texts: Sequence[str]) -> Tensor:
        if self.embed_fn is None:
            raise RuntimeError("this model has no embedder; pass embed=EmbeddingStore() or load it with load_outcome_model")
        vectors: Tensor = self.embed_fn.embed(list(texts))
        return F.normalize(vectors.float(), dim=-1)

    # -- the core --------------------------------------------------------------------------------

    def initial(self, batch_size: int, context: Tensor | None = None) -> dict[str, Tensor]:
        """The carry before any turn, from standardised contexts ``[B, Cd]`` (zeros: average context)."""
        Cd = self.config.context_dim
        ctx = torch.zeros(batch_size, Cd) if context is None else context.float().view(batch_size, Cd)
        deter = torch.tanh(self.init_net(ctx if Cd else torch.zeros(batch_size, 1)))
        return {"deter": deter, "ctx": ctx, "turns": torch.zeros(batch_size)}

    def _prior(self, carry: Mapping[str, Tensor], agent: Tensor) -> Tensor:
        logits: Tensor = self.prior_net(torch.cat([carry["deter"], agent[:, None], carry["ctx"]], -1))
        return logits.view(-1, self.config.stoch, self.config.classes)

    def _features(self, carry: Mapping[str, Tensor]) -> Tensor:
        return torch.cat([carry["deter"], carry["ctx"]], -1)

    def _advance(self, carry: Mapping[str, Tensor], x: Tensor, z: Tensor) -> dict[str, Tensor]:
        deter = self.gru(torch.cat([x, z.flatten(1)], -1), carry["deter"])
        return {"deter": deter, "ctx": carry["ctx"], "turns": carry["turns"] + 1}

    def encode(self, emb: Tensor, agent: Tensor) -> Tensor:
        """Turn features ``[B, hidden]`` from embeddings ``[B, E]`` and agent flags ``[B]``."""
        out: Tensor = self.encoder(torch.cat([emb, agent[:, None].float()], -1))
        return out

    def decode(self, carry: Mapping[str, Tensor], z: Tensor, agent: Tensor) -> Tensor:
        """Predicted unit embedding ``[B, E]`` of the turn drawn with latent ``z``."""
        out = self.decoder(torch.cat([carry["deter"], z.flatten(1), agent[:, None]], -1))
        return F.normalize(out, dim=-1)

    def step(self, carry: Mapping[str, Tensor], emb: Tensor, agent: Tensor,
             generator: torch.Generator | None = None, sample: bool = True) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """Read one real turn (posterior; its mode with ``sample=False``): carry out, and the
        prior/posterior logits and latent."""
        agent = agent.float()
        x = self.encode(emb, agent)
        prior = self._prior(carry, agent)
        post = self.post_net(torch.cat([carry["deter"], x], -1)).view_as(prior)
        z = sample_onehot(unimix_logits(post, self.config.unimix), generator) if sample else mode_onehot(post)
        return self._advance(carry, x, z), {"prior": prior, "post": post, "z": z}

    def predict(self, carry: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Heads after a turn, in outcome units: ``end [B]`` probability, ``outcome [B, n]`` if it
        ended here, ``value [B, n]`` expected final outcome."""
        feats = self._features(carry)
        heads = self.heads(feats)
        return {"end": torch.sigmoid(heads[:, 0]), "outcome": self._units(heads[:, 1:]),
                "value": self._units(self.value_net(feats))}

    def _units(self, raw: Tensor) -> Tensor:
        """Head outputs -> outcome units: probabilities for yes/no outcomes, de-standardised numbers."""
        return torch.where(self.o_binary, torch.sigmoid(raw), raw * self.o_std + self.o_mean)

    # -- observing real turns --------------------------------------------------------------------

    def observe(self, obs: Any, state: State | None = None, action: Any | None = None) -> dict[str, Tensor]:
        """Fold one turn per row into the carry: ``obs = {"text": [B] str, "agent": [B] bool}``."""
        if not isinstance(obs, Mapping) or "text" not in obs or "agent" not in obs:
            raise TypeError('observe takes {"text": [str] * B, "agent": [bool] * B}')
        texts = list(obs["text"])
        carry = dict(state) if state is not None else self.initial(len(texts))
        agent = torch.tensor([bool(a) for a in obs["agent"]], dtype=torch.float32)
        with torch.no_grad():
            return self.step(carry, self.embed_texts(texts), agent, sample=False)[0]

    @torch.no_grad()
    def observe_turns(
        self,
        turns: Sequence[tuple[str, str]],
        *,
        role: str,
        context: Mapping[str, float | Sequence[float]] | None = None,
    ) -> dict[str, Tensor]:
        """The carry (batch 1) after a conversation so far: ``(speaker, text)`` pairs, oldest first."""
        carry = self.initial(1, self.context_vector(context)[None])
        if turns:
            emb = self.embed_texts([t for _, t in turns])
            for i, (speaker, _) in enumerate(turns):
                carry = self.step(carry, emb[i : i + 1], torch.tensor([float(speaker == role)]), sample=False)[0]
        return carry

    # -- imagination -----------------------------------------------------------------------------

    def _retrieve(self, pred: Tensor, agent: Tensor, generator: torch.Generator | None) -> Tensor:
        """Bank rows ``[B]`` sampled among the ``top_k`` nearest turns of each row's speaker."""
        if self.bank_emb.shape[0] == 0:
            raise RuntimeError("imagining turns needs a bank of real turns (set_bank or a saved checkpoint)")
        flags = agent.bool()
        if bool((flags == flags[0]).all()):  # one speaker for the whole batch: search only its side
            side, side_emb = self._side(bool(flags[0]))
            sims = pred @ side_emb.T
        else:
            side = None
            sims = (pred @ self.bank_emb.T).masked_fill(self.bank_agent[None, :] != flags[:, None], -2.0)
        k = min(self.config.top_k, sims.shape[1])
        top, idx = sims.topk(k, dim=-1)
        pick = torch.multinomial(torch.softmax(top / self.config.temperature, -1), 1, generator=generator)
        rows = idx.gather(1, pick).squeeze(1)
        return rows if side is None else side[rows]

    def _nearest(self, pred: Tensor, agent: Tensor) -> Tensor:
        """Bank rows ``[B]`` nearest to each predicted embedding among its speaker's turns (to show a latent turn as text)."""
        flags = agent.bool()
        sims = (pred @ self.bank_emb.T).masked_fill(self.bank_agent[None, :] != flags[:, None], -2.0)
        return sims.argmax(-1)

    def _side(self, agent: bool) -> tuple[Tensor, Tensor]:
        """Bank rows of one speaker side and their embeddings (cached until the bank changes)."""
        key = (self.bank_emb.data_ptr(), self.bank_emb.shape[0])
        if self._side_key != key:
            rows = {a: torch.nonzero(self.bank_agent == a).flatten() for a in (True, False)}
            self._side_cache = {a: (r, self.bank_emb[r].contiguous()) for a, r in rows.items()}
            self._side_key = key
        return self._side_cache[agent]

    @torch.no_grad()
    def next_turn_probs(self, carry: Mapping[str, Tensor], agent: bool, samples: int = 16,
                        generator: torch.Generator | None = None) -> Tensor:
        """``[B, N]`` probability of each bank turn being said next by the agent (or the partner):
        the InfoNCE softmax over that speaker's bank turns, averaged over ``samples`` prior latents."""
        B = state_batch_size(carry)
        flag = torch.full((B * samples,), float(agent))
        tiled = {k: v.repeat_interleave(samples, 0) for k, v in carry.items() if k in ("deter", "ctx", "turns")}
        z = sample_onehot(unimix_logits(self._prior(tiled, flag), self.config.unimix), generator)
        logits = self.decode(tiled, z, flag) @ self.bank_emb.T / self.config.temperature
        logits = logits.masked_fill(self.bank_agent[None, :] != agent, float("-inf"))
        return torch.softmax(logits, -1).view(B, samples, -1).mean(1)

    @torch.no_grad()
    def imagine(self, state: State, actions: TextActions | Tensor, horizon: int,
                generator: torch.Generator | None = None, outcome: str | None = None,
                turns: Literal["retrieved", "latent"] = "retrieved") -> Rollout:
        """Imagine ``horizon`` turns: the given agent turns first, then partner/agent turns drawn
        from the bank.

        Args:
            state: a carry of batch B whose next turn is the agent's.
            actions: agent turns, ``actions[t][b]`` text or a ``[n, B, E]`` tensor of embeddings;
                the first is the candidate reply; later ones replace imagined agent turns.
            horizon: turns to imagine in all (the candidate counts as one).
            generator: seeds the latent and retrieval samples.
            outcome: the outcome rewards and values report (default: the config's ``target``).
            turns: ``retrieved``: each imagined turn is a real turn of the bank, sampled near the
                decoded embedding; ``latent``: the decoded embedding itself is read back (no
                retrieval noise; ``extras["text"]`` then shows the nearest real turn).

        Returns:
            A :class:`Rollout` with ``rewards``, ``continues`` and ``values`` ``[H, B]`` in the
            target outcome's units; ``extras["text"][t][b]`` the turn texts (given or retrieved),
            ``extras["agent"]`` ``[H, B]`` who spoke, ``extras["outcome_all"]`` ``[H, B, n]``,
            ``extras["emb"]`` ``[H, B, E]`` the turn embeddings (so another reader can replay them).
        """
        if horizon < 1:
            raise ValueError(f"horizon must be >= 1, got {horizon}")
        if turns not in ("retrieved", "latent"):
            raise ValueError(f"turns must be 'retrieved' or 'latent', got {turns!r}")
        B = state_batch_size(state)
        target = self.target_index if outcome is None else self._outcome_index(outcome)
        given = actions if isinstance(actions, Tensor) else None
        n_given = len(actions)
        if given is None and n_given and any(len(row) != B for row in actions):
            raise ValueError(f"every row of actions must hold B={B} texts")
        carry = {k: v for k, v in state.items() if k in ("deter", "ctx", "turns")}
        agent = torch.ones(B)
        rewards, conts, values, outs, speakers, embs = [], [], [], [], [], []
        texts: list[list[str]] = []
        used = 0
        for _ in range(horizon):
            prior = self._prior(carry, agent)
            z = sample_onehot(unimix_logits(prior, self.config.unimix), generator)
            if bool(agent[0]) and used < n_given:
                if given is not None:
                    emb, step_texts = given[used], [""] * B
                else:
                    step_texts = list(actions[used])
                    emb = self.embed_texts(step_texts)
                used += 1
            else:
                pred = self.decode(carry, z, agent)
                if turns == "latent":
                    rows, emb = self._nearest(pred, agent), pred
                else:
                    rows = self._retrieve(pred, agent, generator)
                    emb = self.bank_emb[rows]
                step_texts = [self.bank_texts[i] for i in rows.tolist()]
            carry = self._advance(carry, self.encode(emb, agent), z)
            heads = self.predict(carry)
            end, out = heads["end"], heads["outcome"][:, target]
            rewards.append(end * out)
            conts.append(1.0 - end)
            values.append(heads["value"][:, target])
            outs.append(heads["outcome"])
            speakers.append(agent)
            embs.append(emb)
            texts.append(step_texts)
            agent = 1.0 - agent
        return Rollout(
            states=carry, rewards=torch.stack(rewards), continues=torch.stack(conts), values=torch.stack(values),
            extras={"text": texts, "agent": torch.stack(speakers), "outcome_all": torch.stack(outs),
                    "emb": torch.stack(embs)},
        )

    async def aimagine(self, state: State, actions: TextActions, horizon: int) -> Rollout:
        """:meth:`imagine` for event loops (in a worker thread: it is CPU work, no I/O to overlap)."""
        import asyncio

        return await asyncio.to_thread(self.imagine, state, actions, horizon)

    def _outcome_index(self, name: str) -> int:
        if name not in self.config.outcomes:
            raise ValueError(f"unknown outcome {name!r}; this model predicts {self.config.outcomes}")
        return self.config.outcomes.index(name)

    # -- learning --------------------------------------------------------------------------------

    def loss(self, batch: Mapping[str, Tensor]) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """Unreduced losses (each ``[B]``) over padded conversations.

        ``batch``: ``emb [B, T, E]``, ``agent [B, T]``, ``mask [B, T]``, ``ctx [B, Cd]`` (standardised),
        ``outcomes [B, n]`` (raw units), ``has [B, n]`` (outcome present), ``ended [B]`` (the last
        kept turn is the conversation's real end).
        """
        cfg = self.config
        emb, agent, mask = batch["emb"], batch["agent"].float(), batch["mask"].float()
        B, T, _ = emb.shape
        lengths = mask.sum(1).long().clamp_min(1)
        last = F.one_hot(lengths - 1, T).float()  # [B, T] the last kept turn
        carry = self.initial(B, batch["ctx"])
        inputs = F.dropout(emb, cfg.dropout, self.training)
        preds, priors, posts, deters = [], [], [], []
        for t in range(T):
            nxt, aux = self.step(carry, inputs[:, t], agent[:, t])
            preds.append(self.decode(carry, aux["z"], agent[:, t]))
            priors.append(aux["prior"])
            posts.append(aux["post"])
            keep = mask[:, t : t + 1]
            carry = {k: torch.where(keep.bool().view(-1, *[1] * (v.dim() - 1)), v, carry[k]) for k, v in nxt.items()}
            deters.append(carry["deter"])
        feats = torch.cat([torch.stack(deters, 1), batch["ctx"][:, None].expand(B, T, -1)], -1)  # [B, T, F]
        # next-turn embeddings: InfoNCE of each predicted turn against every real turn of the batch;
        # other turns with (nearly) the same text are not counted as negatives
        flat_mask = mask.flatten().bool()
        pred = torch.stack(preds, 1).flatten(0, 1)[flat_mask]
        real = emb.flatten(0, 1)[flat_mask]
        logits = pred @ real.T / cfg.temperature
        same = (real @ real.T > 0.98) & ~torch.eye(real.shape[0], dtype=torch.bool)
        nce_each = F.cross_entropy(logits.masked_fill(same, -1e4), torch.arange(real.shape[0]), reduction="none")
        nce = torch.zeros(B, T).masked_scatter(mask.bool(), nce_each).sum(1) / lengths
        dyn, rep, kl = kl_losses(torch.stack(posts, 1), torch.stack(priors, 1), cfg.free_nats, cfg.unimix)
        dyn, rep = (dyn * mask).sum(1) / lengths, (rep * mask).sum(1) / lengths
        # end of conversation after each turn
        heads = self.heads(feats)
        end_target = last * batch["ended"][:, None]
        end = (F.binary_cross_entropy_with_logits(heads[..., 0], end_target, reduction="none") * mask).sum(1) / lengths
        # outcomes if the conversation ended here: trained at real ends only
        y, has = batch["outcomes"].float(), batch["has"].float()
        y_std = torch.where(self.o_binary, y, (y - self.o_mean) / self.o_std)
        raw_final = (heads[..., 1:] * last[..., None]).sum(1)  # [B, n]
        out_each = torch.where(self.o_binary, F.binary_cross_entropy_with_logits(raw_final, y_std, reduction="none"),
                               0.5 * (raw_final - y_std) ** 2)
        outcome = (out_each * has).sum(1) * batch["ended"]
        # values: λ-returns on the real turns, reward = the outcome at the last kept turn
        v_raw = self.value_net(feats)  # [B, T, n]
        v_units = torch.where(self.o_binary, torch.sigmoid(v_raw), v_raw).detach()
        rewards = (last[..., None] * y_std[:, None]).transpose(0, 1)  # [T, B, n]
        continues = (1.0 - last)[..., None].expand(B, T, y.shape[1]).transpose(0, 1)
        next_values = torch.cat([v_units[:, 1:], v_units[:, -1:]], 1).transpose(0, 1)
        targets = lambda_return(rewards, continues, next_values, 1.0, cfg.lam).transpose(0, 1)  # [B, T, n]
        v_each = torch.where(self.o_binary,
                             F.binary_cross_entropy_with_logits(v_raw, targets.clamp(0, 1), reduction="none"),
                             0.5 * (v_raw - targets) ** 2)
        value = (v_each * has[:, None] * mask[..., None]).sum((1, 2)) / lengths
        losses = {"nce": nce, "dyn": dyn, "rep": rep, "end": end, "outcome": outcome, "value": value}
        with torch.no_grad():
            acc = (logits.argmax(-1) == torch.arange(real.shape[0])).float().mean()
        metrics = {"wm/kl": (kl * mask).sum() / mask.sum(), "wm/next_top1": acc}
        return losses, metrics

    def total_loss(self, batch: Mapping[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        """The weighted mean loss and detached metrics (``loss/<term>`` per term)."""
        losses, metrics = self.loss(batch)
        total = sum(self.config.loss_scales[k] * v.mean() for k, v in losses.items())
        metrics.update({f"loss/{k}": v.mean().detach() for k, v in losses.items()})
        return total, metrics  # type: ignore[return-value]
