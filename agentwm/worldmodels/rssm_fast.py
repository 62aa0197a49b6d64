"""The no-grad fast path of :meth:`RSSM.imagine`: the reference math without its waste.

Sampled codes stay class indices inside the loop, their projection through the first linear layer
is a gather-sum of weight rows (``F.embedding_bag``) instead of a matmul with a mostly-zero one-hot
vector, action projections for a given sequence are one matmul, and the reward and continue heads
run once over all ``H x B`` states after the loop (their first layers fused). On CPU, wide models
step in row chunks so no temporary is large enough to be page-faulted in afresh on every op; the
chunks draw the same random numbers in the same order. Free functions that take the model, so the
model file holds only the reference path.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial
from typing import Any, Protocol, cast

import torch
import torch.nn.functional as F
from torch import Tensor

from agentwm.core import MLP, sample_indices
from agentwm.core.compiled import compile_call
from agentwm.worldmodels.base import Rollout
from agentwm.worldmodels.rssm import NORM_EPS, RSSM, after_first, first_linear, scale_actions


def _gather_tables(weight: Tensor, max_floats: int = 1 << 18) -> list[Tensor]:
    """The rows of ``weight.t()`` (``[in, out]``) to gather, split into contiguous column chunks of at
    most ``max_floats`` (1 MB) so that each chunk stays in a core's L2 cache while it is gathered."""
    table = weight.t()
    width = max(8, max_floats // max(1, table.shape[0]))
    return [chunk.contiguous() for chunk in torch.split(table, width, 1)]


def _gather_sum(rows: Tensor, tables: list[Tensor]) -> Tensor:
    """``onehot(rows) @ cat(tables, 1)`` for ``rows [N, k]`` (k hot rows each), without the one-hot:
    a sum of ``k`` gathered rows per item. Exact for hard one-hot codes."""
    outs = [F.embedding_bag(rows, table, mode="sum") for table in tables]
    return outs[0] if len(outs) == 1 else torch.cat(outs, -1)


_CHUNK_FLOATS = 1 << 21


def _chunk_rows(width: int) -> int:
    """Rows per chunk on CPU so a ``[rows, width]`` float temporary stays under ``_CHUNK_FLOATS``
    (8 MB): bigger fresh allocations come from ``mmap`` and are page-faulted in again on every op,
    which made the gate and head activations of wide models several times slower than their
    matmuls. Whole batches stay one chunk unless they are that wide."""
    rows = max(1, _CHUNK_FLOATS // max(1, width))
    return 1 << (rows.bit_length() - 1)  # a power of two, so chunks align with batch sizes


def _after_activation(mlp: MLP, x: Tensor) -> Tensor:
    """Finish ``mlp`` given the activations of its first hidden block (linear, norm, SiLU)."""
    x = mlp.hidden[3:](x)
    return mlp.out(x) if mlp.out is not None else x


def _compiled(model: RSSM, name: str, fn: Callable[..., Any]) -> Any:
    """``torch.compile`` of a method, made once per model (recompiled by dynamo per shape)."""
    cache = model.__dict__.setdefault("_compiled_fns", {})
    if name not in cache:
        cache[name] = torch.compile(fn, dynamic=False)
    return cache[name]


def imagine_fast(
    model: RSSM,
    carry: dict[str, Tensor],
    actions: Tensor | None,
    policy: Any,
    horizon: int,
    generator: Any,
    compile: bool = False,
    fused: bool | None = None,
) -> Rollout:
    """Same math as :meth:`RSSM._imagine_reference`, without gradients and without waste.

    ``fused``: run each step (the policy, when it takes its noise as an argument, see
    :class:`NoisePolicy`; the prior; the sample; the next code's projection) as one call, compiled
    with ``compile``; default: on CUDA with ``compile``, where the step's kernel count is its cost.
    It draws the same random numbers in the same order as the unfused loop."""
    cfg, core = model.config, model.core
    prior_step = _compiled(model, "prior_step", model.prior_step) if compile else model.prior_step
    heads = (
        _compiled(model, "heads_fast", partial(heads_fast, model)) if compile else partial(heads_fast, model)
    )
    S, C, H = cfg.stoch, cfg.classes, horizon
    deter = carry["deter"]
    B, dev, dt = deter.shape[0], deter.device, deter.dtype
    deter_out = torch.empty(H + 1, B, cfg.deter, device=dev, dtype=dt)
    stoch_out = torch.zeros(H + 1, B, S, C, device=dev, dtype=dt)
    index_out = torch.empty(H, B, S, device=dev, dtype=torch.long)
    deter_out[0], stoch_out[0] = deter, carry["stoch"]
    offsets = torch.arange(S, device=dev) * C  # row of (latent s, class c) in the flat one-hot
    tables = _gather_tables(core.in_stoch.weight)
    if actions is not None:
        action_proj = core.in_action(scale_actions(actions))  # all steps in one matmul
        act_out = actions
    else:
        act_out = torch.empty(H, B, model.action_spec.dim, device=dev, dtype=dt)
    stoch_proj = core.in_stoch(carry["stoch"].flatten(1))  # the start may be any (soft) code
    proj_dtype = stoch_proj.dtype
    rows = B if dev.type != "cpu" else _chunk_rows(3 * cfg.deter)
    if fused is None:  # a GPU replays every kernel: there one compiled step holds the policy too
        fused = compile and dev.type == "cuda"
    step = (
        _fused_step(model, policy, compile)
        if fused and policy is not None and hasattr(policy, "noise")
        else None
    )
    table = core.in_stoch.weight.t() if step is not None else None
    for t in range(H):
        if step is not None:  # the draws of the eager branch below, in its order, passed in
            a_noise = policy.noise(B, dev, generator)
            z_noise = torch.rand((B, S, 1), device=dev, generator=generator)
            act_out[t], new, index_out[t], stoch_proj = step(
                deter, stoch_out[t], stoch_proj, table, offsets, a_noise, z_noise
            )
            deter_out[t + 1] = new
            deter, index = deter_out[t + 1], index_out[t]
            stoch_out[t + 1].scatter_(-1, index[..., None], 1.0)
            continue
        if policy is not None:
            act_out[t] = model.policy_action(policy, deter, stoch_out[t])
            a_proj = core.in_action(scale_actions(act_out[t]))
        else:
            a_proj = action_proj[t]
        for lo in range(0, B, rows):  # row chunks draw the same uniforms, in the same order
            hi = min(B, lo + rows)
            new, logit = prior_step(deter[lo:hi], stoch_proj[lo:hi], a_proj[lo:hi])
            deter_out[t + 1, lo:hi] = new
            index_out[t, lo:hi] = sample_indices(logit, generator)
        deter, index = deter_out[t + 1], index_out[t]
        if policy is not None:
            stoch_out[t + 1].scatter_(-1, index[..., None], 1.0)
        if t + 1 < H:  # in the start's dtype (bf16 under autocast, as in_stoch gives), so that the
            # compiled step sees one dtype and compiles once
            stoch_proj = _gather_sum(index + offsets, tables).to(proj_dtype)
    if policy is None:
        stoch_out[1:].scatter_(-1, index_out[..., None], 1.0)
    rows = H * B if dev.type != "cpu" else _chunk_rows(2 * max(cfg.units, cfg.deter))
    rewards, conts = heads(deter_out[1:].view(H * B, -1), index_out.view(H * B, S) + offsets, rows)
    states = {"deter": deter_out, "stoch": stoch_out}
    return Rollout(states=states, rewards=rewards.view(H, B), continues=conts.view(H, B), actions=act_out)


class NoisePolicy(Protocol):
    """A policy whose randomness can come in as an argument, so that a compiled imagination step
    can hold it: ``policy(state, policy.noise(batch, device, generator))`` acts as ``policy(state)``
    would after drawing the same numbers from ``generator``."""

    def noise(self, batch: int, device: torch.device, generator: torch.Generator | None) -> Tensor: ...

    def __call__(self, state: Mapping[str, Tensor], noise: Tensor | None = None) -> Tensor: ...


def _fused_step(model: RSSM, policy: NoisePolicy, compile: bool) -> Callable[..., tuple[Tensor, ...]]:
    """One imagination step as one callable: compiled once per model and policy when ``compile``."""
    fn = partial(_policy_prior_step, model, policy)
    if not compile:
        return fn
    cache = model.__dict__.setdefault("_compiled_fns", {})
    key = f"imagine_step_{id(policy)}"
    if key not in cache:  # a call site (and dynamo cache) of its own: see agentwm.core.compiled
        cache[key] = compile_call(fn, "imagine_step")
    return cast(Callable[..., tuple[Tensor, ...]], cache[key])


def _policy_prior_step(
    model: RSSM,
    policy: NoisePolicy,
    deter: Tensor,
    stoch: Tensor,
    stoch_proj: Tensor,
    table: Tensor,
    offsets: Tensor,
    a_noise: Tensor,
    z_noise: Tensor,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``(action, next deter, next code's class indices, next code's in_stoch projection)``; the
    projection is a gather-sum of ``table``'s rows (``in_stoch.weight.t()``), as the unfused loop's."""
    action = policy({"deter": deter, "stoch": stoch}, a_noise)
    new, logit = model.prior_step(deter, stoch_proj, model.core.in_action(scale_actions(action)))
    index = sample_indices(logit, noise=z_noise)
    proj = F.embedding(index + offsets, table).sum(-2).to(stoch_proj.dtype)
    return action, new, index, proj


def heads_fast(model: RSSM, deter: Tensor, rows: Tensor, chunk: int = 1024) -> tuple[Tensor, Tensor]:
    """Reward and continue for ``N`` states given as ``deter [N, D]`` and one-hot ``rows [N, S]``.

    Both heads' first layers are one matmul over ``deter`` plus one gather over the code rows;
    when both heads have equally wide hidden layers their first norm and SiLU run as one
    contiguous op too. Rows go in chunks of ``chunk`` (see :func:`_chunk_rows`).
    """
    D, N = model.config.deter, deter.shape[0]
    rew, con = model.reward_head, model.cont_head
    first_r, first_c = first_linear(rew), first_linear(con)
    weight = torch.cat([first_r.weight, first_c.weight])
    tables, w_deter = _gather_tables(weight[:, D:]), weight[:, :D].t()
    units = first_r.out_features
    grouped = len(rew.hidden) > 0 and len(con.hidden) > 0 and first_c.out_features == units
    if grouped:
        norm_r, norm_c = rew.hidden[1], con.hidden[1]
        scale = torch.stack([cast(Tensor, norm_r.weight), cast(Tensor, norm_c.weight)])
    reward = torch.empty(N, device=deter.device, dtype=torch.float32)
    cont = torch.empty(N, device=deter.device, dtype=deter.dtype)
    for lo in range(0, N, chunk):
        hi = min(N, lo + chunk)
        h = torch.addmm(_gather_sum(rows[lo:hi], tables), deter[lo:hi], w_deter)
        if grouped:
            x = F.rms_norm(h.view(hi - lo, 2, units), (units,), None, NORM_EPS) * scale
            x = F.silu(x, inplace=True)
            r_logits = _after_activation(rew, x[:, 0])
            c_logits = _after_activation(con, x[:, 1])
        else:
            h_r, h_c = torch.split(h, [first_r.out_features, first_c.out_features], -1)
            r_logits, c_logits = after_first(rew, h_r), after_first(con, h_c)
        reward[lo:hi] = model.twohot.decode(r_logits)
        cont[lo:hi] = torch.sigmoid(c_logits[..., 0])
    return reward, cont
