"""A dialogue world model: a recurrent latent state over sentence-embedded turns, with heads that say
what the other speaker will likely say next and how engaged, on-topic and well-rated the
conversation will be.

Turns are embedded by a sentence encoder (all-MiniLM-L6-v2 by default, via
:class:`~agentwm.text.TextEmbedder`); the model never sees tokens. Over the turn embeddings runs an
RSSM-style core (DreamerV3's split into a deterministic GRU path ``h`` and a stochastic categorical
part ``z``)::

    prior      p(z_t | h_{t-1})                  what the next turn is likely to be about
    posterior  q(z_t | h_{t-1}, x_t)             after reading turn t (x_t = encoded embedding)
    recurrent  h_t = GRU(h_{t-1}, [x_t, z_t])
    heads      next turn  ê_t  = f(h_{t-1}, ẑ_t ~ prior)   unit vector, InfoNCE against the batch
               reward     (engagement, relevance) of the reply to turn t, from [h_t, z_t]
               rating     the conversation's final (interesting, upbeat, witty), from [h_t, z_t]
               continue   P(another turn follows turn t), from [h_t, z_t]

Imagination works in *exchanges*: step t of a rollout is "we say ``actions[t]`` (given, or proposed
by the model once the given ones run out), the other speaker answers (imagined)". Imagined turns
are snapped to the nearest utterance of a bank of real turns, so every imagined turn is real text
that the user can read, and the model is fed embeddings from the distribution it was trained on.

Reward of step t (each part in [0, 1] per step; summed over the horizon, a part's discounted sum
lies in [0, sum_t gamma^t])::

    r_t = w_e * P(reply) * engagement + w_r * relevance + w_q * mean(rating after the reply)
    relevance = (cos(our turn, conversation so far) + P(reply) * predicted relevance of the reply) / 2

``continues[t]`` is the probability that the conversation goes on after the reply. Returns come
from :meth:`Rollout.returns` (``agentwm.core.returns``), never from code here.
"""

from __future__ import annotations

import asyncio
import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, field_validator
from torch import Tensor, nn

from agentwm.core.distributions import mode_onehot, sample_onehot, unimix_logits
from agentwm.core.nets import MLP
from agentwm.worldmodels.base import Rollout, State, TextActions, check_tensor, state_batch_size
from agentwm.worldmodels.dialogue_io import read_dialogue_files, save_dialogue_files
from agentwm.worldmodels.rssm import kl_losses

LOSS_KEYS = ("nce", "dyn", "rep", "engagement", "relevance", "rating", "cont")
COMPONENTS = ("engagement", "relevance", "rating")
MAX_TEXT_CHARS = 4000
"""Longest turn or candidate accepted; the encoder reads ~256 word pieces, so more is a mistake."""
_ENGAGE_WORDS = 60.0  # a reply of this many words or more counts as fully engaged


class DialogueConfig(BaseModel):
    """Hyperparameters of :class:`DialogueWorldModel`; :meth:`preset` gives named sizes."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    embed_dim: int = Field(default=384, ge=1, description="Width of the sentence embeddings (MiniLM: 384).")
    embedder: str = Field(default="all-MiniLM-L6-v2", description="Tag of the sentence encoder the model was trained on.")
    hidden: int = Field(default=192, ge=1, description="Width of the turn encoder, prior and posterior layers.")
    deter: int = Field(default=256, ge=1, description="Width of the deterministic recurrent state h.")
    stoch: int = Field(default=8, ge=1, description="Number of categorical latents in z.")
    classes: int = Field(default=16, ge=2, description="Classes per categorical latent.")
    units: int = Field(default=256, ge=1, description="Width of the heads.")
    next_layers: int = Field(default=2, ge=0, description="Hidden layers of the next-turn head.")
    unimix: float = Field(default=0.01, ge=0.0, lt=1.0, description="Uniform mixture in the latent categoricals.")
    free_nats: float = Field(default=1.0, ge=0.0, description="Free bits of each KL term.")
    temperature: float = Field(default=0.05, gt=0.0, description="InfoNCE softmax temperature.")
    match_dim: int = Field(
        default=0, ge=0,
        description="Width of the learned state-candidate compatibility term added to the next-turn score "
        "(0: off, candidates are ranked by cosine with the predicted embedding alone).",
    )
    dropout: float = Field(
        default=0.2, ge=0.0, lt=1.0,
        description="Dropout on turn embeddings while training: ~1k training conversations are easy to memorise.",
    )
    loss_scales: dict[str, float] = Field(
        default_factory=lambda: {
            "nce": 1.0, "dyn": 0.5, "rep": 0.1, "engagement": 1.0, "relevance": 1.0, "rating": 1.0, "cont": 1.0,
        },
        description="Weight of each loss term; keys equal the keys of DialogueWorldModel.loss().",
    )
    reward_weights: dict[str, float] = Field(
        default_factory=lambda: {"engagement": 0.4, "relevance": 0.4, "rating": 0.2},
        description="How the per-step reward mixes engagement, topic relevance and predicted rating.",
    )

    @field_validator("loss_scales")
    @classmethod
    def _check_scales(cls, value: dict[str, float]) -> dict[str, float]:
        if set(value) != set(LOSS_KEYS):
            raise ValueError(f"loss_scales must have exactly the keys {list(LOSS_KEYS)}, got {sorted(value)}")
        return value

    @field_validator("reward_weights")
    @classmethod
    def _check_weights(cls, value: dict[str, float]) -> dict[str, float]:
        if set(value) != set(COMPONENTS) or any(w < 0 for w in value.values()):
            raise ValueError(f"reward_weights needs non-negative {list(COMPONENTS)}, got {value}")
        return value

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> DialogueConfig:
        """``default`` (shipped size, ~1.2M parameters; ``match_dim=64`` adds the learned compatibility term) or ``debug`` (tiny, for tests)."""
        presets: dict[str, dict[str, Any]] = {
            "default": {},
            "debug": {"hidden": 64, "deter": 96, "stoch": 8, "classes": 8, "units": 96, "next_layers": 1},
        }
        if name not in presets:
            raise KeyError(f"unknown dialogue preset {name!r}; choose from {sorted(presets)}")
        return cls(**{**presets[name], **overrides})


def check_texts(name: str, texts: Any, *, max_items: int = 4096) -> list[str]:
    """Validate a list of non-empty strings of at most :data:`MAX_TEXT_CHARS` characters.

    Raises:
        TypeError: not a list of strings (a bare string is refused: wrap it in a list).
        ValueError: empty list, an empty or whitespace-only text, a text or list that is too long.
    """
    if isinstance(texts, (str, bytes)) or not isinstance(texts, Sequence):
        raise TypeError(f"{name} must be a list of strings, got {type(texts).__name__}")
    if not texts:
        raise ValueError(f"{name} is empty; give at least one text")
    if len(texts) > max_items:
        raise ValueError(f"{name} has {len(texts)} items; at most {max_items} are accepted")
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise TypeError(f"{name}[{i}] must be a str, got {type(t).__name__}")
        if not t.strip():
            raise ValueError(f"{name}[{i}] is empty or whitespace")
        if len(t) > MAX_TEXT_CHARS:
            raise ValueError(f"{name}[{i}] has {len(t)} characters; at most {MAX_TEXT_CHARS} are accepted")
    return list(texts)


class DialogueWorldModel(nn.Module):
    """Learned dialogue dynamics over sentence-embedded turns (a :class:`TextWorldModel`).

    Args:
        config: hyperparameters (default: the shipped size).
        embedder: object with ``embed(list[str]) -> Tensor [N, embed_dim]`` unit vectors; ``None``
            creates a :class:`~agentwm.text.TextEmbedder` (offline MiniLM) on first use.
        bank: ``(embeddings [N, embed_dim], texts)`` of real utterances that imagined turns are
            rendered as; without one, imagined turns stay vectors and their text is ``""``.

    Example:
        >>> model = DialogueWorldModel.load("models/dialogue-minilm")
        >>> state = model.observe_context(["hi! how was your weekend?"])
        >>> rollout = model.imagine(state, [["great, I went hiking", "ok"]], horizon=3)
        >>> rollout.returns(0.9).shape
        torch.Size([2])
    """

    def __init__(
        self,
        config: DialogueConfig | None = None,
        *,
        embedder: Any | None = None,
        bank: tuple[Tensor, Sequence[str]] | None = None,
    ) -> None:
        super().__init__()
        cfg = self.config = config if config is not None else DialogueConfig()
        self.stoch_dim = cfg.stoch * cfg.classes
        self.feat_dim = cfg.deter + self.stoch_dim
        self.encoder = MLP(cfg.embed_dim + 1, None, cfg.hidden, 1)
        self.gru = nn.GRUCell(cfg.hidden + self.stoch_dim, cfg.deter)
        self.prior_net = MLP(cfg.deter, self.stoch_dim, cfg.hidden, 1)
        self.post_net = MLP(cfg.deter + cfg.hidden, self.stoch_dim, cfg.hidden, 1)
        # the next turn is predicted as a change from the last one: e_last + delta(h, z, e_last), with
        # delta zero at init, so the model starts exactly at the strong "replies resemble what they
        # answer" baseline and learns past it
        self.next_head = MLP(cfg.deter + self.stoch_dim + cfg.embed_dim, cfg.embed_dim, cfg.units, cfg.next_layers,
                             out_scale=0.0)
        # reward (engagement, relevance), rating (3) and continue (1) share one hidden layer: the
        # heads read the same features, and one trunk costs a third of three on a CPU
        self.heads = MLP(self.feat_dim, 6, cfg.units, 1)
        # learned compatibility of a candidate turn with the state before it: a low-rank bilinear
        # term q(h) . k(candidate) added to the cosine logit. MiniLM's space says what a turn is
        # about, not whether it *answers*; k learns the latter. k starts at zero, so the score
        # starts as the plain cosine ranking; cost: one [N, E] x [E, match_dim] product.
        self.match_q: nn.Linear | None = None
        self.match_k: nn.Linear | None = None
        if cfg.match_dim > 0:
            self.match_q = nn.Linear(cfg.deter, cfg.match_dim)
            self.match_k = nn.Linear(cfg.embed_dim, cfg.match_dim, bias=False)
            nn.init.zeros_(self.match_k.weight)
        self.init_deter = nn.Parameter(torch.zeros(cfg.deter))
        self._embedder = embedder
        self.metadata: dict[str, Any] = {}
        self.bank_emb: Tensor | None = None
        self.bank_texts: list[str] = []
        if bank is not None:
            self.set_bank(*bank)

    # -- text I/O --------------------------------------------------------------------------------

    @property
    def embedder(self) -> Any:
        """The sentence encoder (created on first use: offline MiniLM)."""
        if self._embedder is None:
            from agentwm.text.embeddings import TextEmbedder

            self._embedder = TextEmbedder()
        return self._embedder

    def embed(self, texts: Sequence[str]) -> Tensor:
        """Unit embeddings ``[N, embed_dim]`` of validated texts (cached by the embedder)."""
        texts = check_texts("texts", texts, max_items=1 << 16)
        out = self.embedder.embed(texts).to(self._weight().device, torch.float32)
        if out.shape != (len(texts), self.config.embed_dim):
            raise ValueError(f"embedder returned {tuple(out.shape)}, expected ({len(texts)}, {self.config.embed_dim})")
        return F.normalize(out, dim=-1)

    def set_bank(self, embeddings: Tensor, texts: Sequence[str]) -> None:
        """Real utterances that imagined turns are rendered as (nearest neighbour by cosine)."""
        check_tensor("bank embeddings", embeddings, [len(texts), self.config.embed_dim], floating=True)
        if not texts:
            raise ValueError("the utterance bank is empty")
        # kept at fp16 precision, as saved, so a reloaded model renders exactly the same turns
        self.bank_emb = F.normalize(embeddings.float(), dim=-1).half().float()
        self.bank_texts = list(texts)

    def nearest(self, emb: Tensor, exclude: Tensor | None = None) -> tuple[Tensor, list[str]]:
        """Snap unit vectors ``[B, E]`` to the nearest bank utterances: ``(embeddings, texts)``.

        ``exclude [B, E]``: a turn per row that must not be chosen (nor a near copy of it): the
        turn being answered, so an imagined reply never just repeats it."""
        if self.bank_emb is None:
            return F.normalize(emb, dim=-1), [""] * emb.shape[0]
        bank = self.bank_emb.to(emb.device)
        sims = emb @ bank.T
        if exclude is None:
            idx = sims.argmax(-1)
        else:
            # the best of the top 4 that is not a near copy of the excluded turn (checking 4 rows,
            # not the whole bank, keeps this at one bank-sized matmul per step)
            top = sims.topk(min(4, bank.shape[0]), dim=-1).indices
            copies = torch.einsum("bke,be->bk", bank[top], exclude) > 0.95
            first_ok = (~copies).float().argmax(-1)  # all copies: falls back to the best
            idx = top.gather(1, first_ok[:, None])[:, 0]
        return bank[idx], [self.bank_texts[i] for i in idx.tolist()]

    # -- state -----------------------------------------------------------------------------------

    def initial(self, batch_size: int) -> dict[str, Any]:
        """The carry before any turn: ``deter [B, D]``, ``stoch [B, S*C]``, ``turns [B]`` (turns seen)
        ``last [B, E]`` (embedding of the last turn, zeros before any) and ``topic [B, E]`` (sum of
        the turn embeddings so far: the conversation's topic direction)."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        w = self._weight()
        deter = torch.tanh(self.init_deter)[None].expand(batch_size, -1)
        return {
            "deter": deter.contiguous(),
            "stoch": w.new_zeros(batch_size, self.stoch_dim),
            "turns": w.new_zeros(batch_size),
            "last": w.new_zeros(batch_size, self.config.embed_dim),
            "topic": w.new_zeros(batch_size, self.config.embed_dim),
        }

    def feat(self, state: Mapping[str, Any]) -> Tensor:
        """Head features ``[..., deter + stoch]``."""
        return torch.cat([state["deter"], state["stoch"]], -1)

    def _encode(self, emb: Tensor, turns: Tensor) -> Tensor:
        pos = torch.log1p(turns).unsqueeze(-1) / math.log(100.0)
        x: Tensor = self.encoder(torch.cat([emb, pos], -1))
        return x

    def _prior(self, deter: Tensor) -> Tensor:
        cfg = self.config
        return unimix_logits(self.prior_net(deter).unflatten(-1, (cfg.stoch, cfg.classes)), cfg.unimix)

    def step(
        self, state: Mapping[str, Any], emb: Tensor, sample: bool = False, generator: torch.Generator | None = None
    ) -> dict[str, Any]:
        """Fold turn embeddings ``[B, E]`` into the carry (one posterior step; mode unless ``sample``)."""
        cfg = self.config
        x = self._encode(emb, state["turns"])
        logits = unimix_logits(
            self.post_net(torch.cat([state["deter"], x], -1)).unflatten(-1, (cfg.stoch, cfg.classes)), cfg.unimix
        )
        z = (sample_onehot(logits, generator) if sample else mode_onehot(logits)).flatten(-2)
        deter = self.gru(torch.cat([x, z], -1), state["deter"])
        return {"deter": deter, "stoch": z, "turns": state["turns"] + 1, "last": emb, "topic": state["topic"] + emb}

    def predict_next(self, state: Mapping[str, Any], sample: bool = False,
                     generator: torch.Generator | None = None) -> Tensor:
        """Unit embedding ``[B, E]`` of the other speaker's next turn (prior mode, or a prior sample)."""
        logits = self._prior(state["deter"])
        z = (sample_onehot(logits, generator) if sample else mode_onehot(logits)).flatten(-2)
        return self._next(state["deter"], z, state["last"])

    def _next(self, deter: Tensor, z: Tensor, last: Tensor, dropout: float = 0.0) -> Tensor:
        seen = F.dropout(last, dropout, dropout > 0) if dropout > 0 else last
        return F.normalize(last + self.next_head(torch.cat([deter, z, seen], -1)), dim=-1)

    def match_logits(self, deter: Tensor, pred: Tensor, cands: Tensor) -> Tensor:
        """Next-turn logits ``[B, N]`` of candidate embeddings ``cands [N, E]`` given the state
        ``deter [B, D]`` before the turn and the predicted embedding ``pred [B, E]``: the cosine
        with the prediction over the temperature, plus the learned compatibility term (if any).
        Higher = more likely the true next turn; this is what the next-turn head is trained on."""
        logits = pred @ cands.T / self.config.temperature
        if self.match_q is not None and self.match_k is not None:
            logits = logits + self.match_q(deter) @ self.match_k(cands).T
        return logits

    def next_turn_logits(self, state: Mapping[str, Any], cands: Tensor) -> Tensor:
        """Next-turn logits ``[B, N]`` of candidate turn embeddings ``[N, E]`` after ``state``
        (prior mode): one-step response selection, not a ranking by imagined return (that is
        :func:`agentwm.planning.score_replies`)."""
        return self.match_logits(state["deter"], self.predict_next(state), cands)

    def rank_candidates(self, state: Mapping[str, Any], cands: Tensor) -> Tensor:
        """Deprecated name of :meth:`next_turn_logits` (kept for one release)."""
        warnings.warn(
            "DialogueWorldModel.rank_candidates is renamed next_turn_logits; ranking by imagined return is"
            " agentwm.planning.score_replies",
            DeprecationWarning,
            stacklevel=2,
        )
        return self.next_turn_logits(state, cands)

    def predict_heads(self, state: Mapping[str, Any]) -> dict[str, Tensor]:
        """``engagement``, ``relevance`` of the reply to the last turn, ``rating [B, 3]`` (0-1, the
        final interesting/upbeat/witty rescaled from 1-10) and ``continue`` (P(a reply follows))."""
        out = torch.sigmoid(self.heads(self.feat(state)))
        return {"engagement": out[..., 0], "relevance": out[..., 1], "rating": out[..., 2:5], "continue": out[..., 5]}

    def observe(self, obs: Any, state: State | None = None, action: Any | None = None) -> dict[str, Any]:
        """Fold one turn per batch item into the carry.

        Args:
            obs: a turn (``str``, batch 1) or a list of ``B`` turns, the other speaker's.
            state: carry in; ``None`` starts a conversation.
            action: optional turn(s) of ours that ``obs`` answered, folded in first.
        """
        texts = [obs] if isinstance(obs, str) else check_texts("obs", obs)
        carry = dict(state) if state is not None else self.initial(len(texts))
        if state_batch_size(carry) != len(texts):
            raise ValueError(f"obs has {len(texts)} items but the state has batch {state_batch_size(carry)}")
        with torch.no_grad():
            if action is not None:
                acts = [action] if isinstance(action, str) else check_texts("action", action)
                if len(acts) != len(texts):
                    raise ValueError(f"action has {len(acts)} items, obs has {len(texts)}")
                carry = self.step(carry, self.embed(acts))
            return self.step(carry, self.embed(texts))

    def observe_context(self, turns: Sequence[str]) -> dict[str, Any]:
        """Carry (batch 1) after reading a whole conversation, oldest turn first, speakers
        alternating; the last turn is the other speaker's, the one a reply answers."""
        turns = check_texts("context", turns, max_items=512)
        emb = self.embed(turns)
        carry = self.initial(1)
        with torch.no_grad():
            for i in range(len(turns)):
                carry = self.step(carry, emb[i : i + 1])
        return carry

    # -- imagination -----------------------------------------------------------------------------

    def imagine(
        self,
        state: State,
        actions: TextActions,
        horizon: int,
        *,
        sample: bool = True,
        generator: torch.Generator | None = None,
    ) -> Rollout:
        """Imagine ``horizon`` exchanges from ``state``, starting with our turns ``actions``.

        Args:
            state: carry of batch ``B`` (or batch 1, repeated for every candidate).
            actions: ``actions[t][b]``: our turn at exchange ``t``; rows beyond ``len(actions)`` are
                proposed by the model (next-turn head, snapped to the bank).
            horizon: exchanges to imagine (>= 1).
            sample: draw the latent of imagined turns from the prior (``generator`` makes it
                reproducible); ``False`` takes the prior's mode.

        Returns:
            A :class:`Rollout` with ``rewards``/``continues [H, B]``; ``extras`` holds ``text``
            (``[H][B]`` the imagined replies), ``actions`` (``[H][B]`` our turns, given or imagined),
            the reward parts ``engagement``, ``relevance``, ``rating`` and ``p_reply`` (``[H, B]``).
        """
        if horizon < 1:
            raise ValueError(f"horizon must be >= 1, got {horizon}")
        if isinstance(actions, (str, bytes)) or not actions:
            raise ValueError("actions must be a non-empty list of rows of texts: actions[0][b] is candidate b")
        rows = [check_texts(f"actions[{t}]", row) for t, row in enumerate(actions[:horizon])]
        B = len(rows[0])
        if any(len(r) != B for r in rows):
            raise ValueError(f"every row of actions must have {B} texts, got {[len(r) for r in rows]}")
        carry = dict(state)
        n = state_batch_size(carry)
        if n != B:
            if n != 1:
                raise ValueError(f"state has batch {n}; give batch 1 or one state per candidate ({B})")
            carry = {k: v.expand(B, *v.shape[1:]).contiguous() for k, v in carry.items()}
        w = self.config.reward_weights
        parts: dict[str, list[Tensor]] = {k: [] for k in (*COMPONENTS, "p_reply", "continue")}
        deters, texts, acts = [carry["deter"]], [], []
        topic = F.normalize(carry["topic"], dim=-1)  # the context's topic, fixed while imagining
        with torch.no_grad():
            for t in range(horizon):
                # our turn: given, or proposed by the model
                if t < len(rows):
                    a_text = rows[t]
                    a_emb = self.embed(a_text)
                else:
                    a_emb, a_text = self.nearest(self.predict_next(carry, sample, generator), carry["last"])
                on_topic = (a_emb * topic).sum(-1).clamp(min=0.0)
                carry = self.step(carry, a_emb, sample, generator)
                heads = self.predict_heads(carry)
                # the other speaker's imagined reply
                u_emb, u_text = self.nearest(self.predict_next(carry, sample, generator), carry["last"])
                carry = self.step(carry, u_emb, sample, generator)
                after = self.predict_heads(carry)
                parts["p_reply"].append(heads["continue"])
                parts["engagement"].append(heads["continue"] * heads["engagement"])
                # topic relevance: how on-topic our turn is (MiniLM cosine with the conversation so
                # far) and how on-topic the reply is predicted to stay
                parts["relevance"].append(0.5 * on_topic + 0.5 * heads["continue"] * heads["relevance"])
                parts["rating"].append(after["rating"].mean(-1))
                parts["continue"].append(after["continue"])
                deters.append(carry["deter"])
                texts.append(u_text)
                acts.append(list(a_text))
        stacked = {k: torch.stack(v) for k, v in parts.items()}
        rewards = sum(w[k] * stacked[k] for k in COMPONENTS)
        assert isinstance(rewards, Tensor)
        return Rollout(
            states={"deter": torch.stack(deters)},
            rewards=rewards,
            continues=stacked["continue"],
            extras={"text": texts, "actions": acts, **{k: stacked[k] for k in (*COMPONENTS, "p_reply")}},
        )

    async def aimagine(self, state: State, actions: TextActions, horizon: int) -> Rollout:
        """:meth:`imagine` in a worker thread, so an event loop stays responsive."""
        return await asyncio.to_thread(self.imagine, state, actions, horizon)

    # -- training --------------------------------------------------------------------------------

    def loss(self, batch: Mapping[str, Tensor]) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """World-model losses on windows of turns.

        Args:
            batch: ``emb [B, T, E]`` unit turn embeddings; ``mask [B, T]`` (1 where a turn exists);
                ``turns [B, T]`` index of each turn in its conversation; ``words [B, T]`` word
                counts; ``has_next [B, T]`` (1 if the conversation goes on after the turn, even past
                the window); ``ratings [B, 3]`` in 1-10 and ``rated [B]``.

        Returns:
            ``(losses, metrics)``: each loss ``[B, T]`` keyed like ``config.loss_scales``, zero where
            the term does not apply and scaled so that its mean is the mean over the positions
            where it does; metrics are detached scalars under ``loss/`` and ``wm/``.
        """
        for key in ("emb", "mask", "turns", "words", "has_next", "ratings", "rated"):
            if key not in batch:
                raise KeyError(f"batch needs {key!r}; got keys {sorted(batch)}")
        cfg = self.config
        emb = check_tensor("batch['emb']", batch["emb"], [None, None, cfg.embed_dim])
        B, T, _ = emb.shape
        mask = batch["mask"].float()
        words = batch["words"].float()
        # posterior pass: only the posterior and the GRU run per step; everything else is batched
        x_all = self._encode(F.dropout(emb, cfg.dropout, self.training), batch["turns"].float())
        h_t = self.initial(B)["deter"]
        deters_prev, deters, stochs, post_logits = [], [], [], []
        for t in range(T):
            deters_prev.append(h_t)
            logits = unimix_logits(
                self.post_net(torch.cat([h_t, x_all[:, t]], -1)).unflatten(-1, (cfg.stoch, cfg.classes)), cfg.unimix
            )
            z_t = sample_onehot(logits).flatten(-2)
            new = self.gru(torch.cat([x_all[:, t], z_t], -1), h_t)
            keep = mask[:, t : t + 1]  # padded steps leave the carry as it was
            h_t = keep * new + (1 - keep) * h_t
            post_logits.append(logits)
            deters.append(h_t)
            stochs.append(z_t)
        h_prev, h, z = torch.stack(deters_prev, 1), torch.stack(deters, 1), torch.stack(stochs, 1)
        post, prior = torch.stack(post_logits, 1), self._prior(h_prev)
        dyn, rep, kl = kl_losses(post, prior, cfg.free_nats, 0.0)

        # (a) next turn: predicted from h_{t-1} and a prior sample, ranked against every turn in the batch
        z_prior = sample_onehot(prior).flatten(-2)
        last = torch.cat([emb.new_zeros(B, 1, cfg.embed_dim), emb[:, :-1]], 1)
        pred = self._next(h_prev, z_prior, last, dropout=cfg.dropout if self.training else 0.0)
        nce_mask = mask.clone()
        nce_mask[:, 0] = 0.0  # the first turn of a window has no context
        flat_pred, flat_tgt = pred.reshape(B * T, -1), emb.reshape(B * T, -1)
        valid = mask.reshape(-1) > 0
        sims = self.match_logits(h_prev.reshape(B * T, -1), flat_pred, flat_tgt[valid])
        # negatives are the turns of the *other* conversations in the batch: turns of the same
        # conversation share its topic and would teach the model to move away from it (the turn
        # being answered above all, which is never a candidate at inference); identical texts
        # ("lol", "hi") elsewhere are not negatives either
        row = torch.arange(B).repeat_interleave(T)
        same = (flat_tgt @ flat_tgt[valid].T > 0.995) | (row[:, None] == row[valid][None, :])
        target_idx = torch.cumsum(valid.long(), 0) - 1
        pos = sims.gather(1, target_idx.clamp(min=0)[:, None])[:, 0]
        sims = sims.masked_fill(same, float("-inf"))
        nce = (torch.logsumexp(torch.cat([sims, pos[:, None]], 1), 1) - pos).view(B, T)

        # (b-d) heads on the state after turn t, about turn t+1
        feat = torch.cat([h, z], -1)
        nxt = torch.cat([mask[:, 1:], mask.new_zeros(B, 1)], 1)  # turn t+1 is in the window
        head_out = self.heads(feat)
        reward_pred = torch.sigmoid(head_out[..., :2])
        next_words = torch.cat([words[:, 1:], words.new_zeros(B, 1)], 1)
        engage_tgt = (torch.log1p(next_words) / math.log1p(_ENGAGE_WORDS)).clamp(0, 1)
        topic = F.normalize(torch.cumsum(emb * mask[..., None], 1), dim=-1)
        next_emb = torch.cat([emb[:, 1:], emb.new_zeros(B, 1, cfg.embed_dim)], 1)
        relevance_tgt = (topic * next_emb).sum(-1).clamp(0, 1)
        rating_pred = torch.sigmoid(head_out[..., 2:5])
        rating_tgt = ((batch["ratings"].float() - 1.0) / 9.0).clamp(0, 1)[:, None].expand(B, T, 3)
        rated = mask * batch["rated"].float()[:, None]
        cont_logit = head_out[..., 5]
        raw = {
            "nce": (nce, nce_mask),
            "dyn": (dyn, mask),
            "rep": (rep, mask),
            "engagement": ((reward_pred[..., 0] - engage_tgt).square(), nxt),
            "relevance": ((reward_pred[..., 1] - relevance_tgt).square(), nxt),
            "rating": ((rating_pred - rating_tgt).square().mean(-1), rated),
            "cont": (F.binary_cross_entropy_with_logits(cont_logit, batch["has_next"].float(), reduction="none"), mask),
        }
        losses: dict[str, Tensor] = {}
        for key, (value, m) in raw.items():
            losses[key] = value * m * (B * T) / m.sum().clamp(min=1.0)
            assert losses[key].shape == (B, T), f"loss {key} has shape {tuple(losses[key].shape)}"
        with torch.no_grad():
            metrics = {f"loss/{k}": v.mean() for k, v in losses.items()}
            metrics["wm/kl"] = (kl * mask).sum() / mask.sum().clamp(min=1)
            top1 = (sims.max(1).values < pos).float().view(B, T)
            metrics["wm/nce_acc"] = (top1 * nce_mask).sum() / nce_mask.sum().clamp(min=1)
            metrics["wm/cont_acc"] = (((cont_logit > 0).float() == batch["has_next"].float()).float() * mask).sum() / mask.sum()
        return losses, metrics

    def total_loss(self, losses: Mapping[str, Tensor]) -> Tensor:
        """Scalar objective ``sum_k scale_k * mean(losses[k])``."""
        return sum(self.config.loss_scales[k] * v.mean() for k, v in losses.items())  # type: ignore[return-value]

    # -- checkpoints -----------------------------------------------------------------------------

    def _weight(self) -> Tensor:
        return self.init_deter

    def save(self, folder: Any, extra_config: Mapping[str, Any] | None = None) -> None:
        """Write ``model.safetensors``, ``config.json`` and the utterance bank (all atomic)."""
        config = {"family": "dialogue", "model": self.config.model_dump(), **(extra_config or {})}
        bank = (self.bank_emb, self.bank_texts) if self.bank_emb is not None else None
        save_dialogue_files(folder, self, config, bank)

    @classmethod
    def load(cls, folder: Any = None, *, embedder: Any | None = None, device: str = "cpu") -> DialogueWorldModel:
        """Load a saved model (``None``: the shipped ``models/dialogue-minilm``), in eval mode."""
        cfg, weights, bank = read_dialogue_files(folder, device)
        model = cls(DialogueConfig(**cfg["model"]), embedder=embedder)
        model.load_state_dict(weights)
        if bank is not None:
            model.set_bank(*bank)
        model.metadata = {k: v for k, v in cfg.items() if k != "model"}
        return model.to(device).eval()
