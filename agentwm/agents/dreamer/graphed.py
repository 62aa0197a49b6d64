"""The Dreamer update captured once as a CUDA graph and replayed, for speed on a GPU.

An update is tens of thousands of small kernels (the RSSM's 64-step observe loop forward and
backward, 15 imagined steps, three optimiser steps). Launched one by one from Python they take
~460 ms of host time for ``size12m`` on an H200 whose matmuls need ~1.4 ms (docs/performance.md):
the GPU waits for the host. A CUDA graph records the whole launch sequence once and replays it
with one call, so the host cost no longer grows with the kernel count.

What capture needs, and where it is provided:

* no host-device syncs inside the update: the NaN/inf guard decides on the device
  (``DreamerAgent.use_device_guard``: fused Adam skips a step when told, the guard counts on the
  device and is read every ``settle_every`` updates), and the return normaliser's percentiles
  come from a sort with host-side positions (``core.returns``);
* fixed shapes and addresses: every replay reads the batch from the same (static) tensors, into
  which each new batch is copied; the metrics come out of one static vector, cloned per update;
* random numbers: torch's default CUDA generator is graph-safe (each replay draws new numbers).

Use: ``update = GraphedUpdate(agent)``, then ``metrics = update(batch)`` wherever
``agent.update(batch)`` was called (``cuda_graph`` in the Dreamer config does this). The first
``warmup`` calls run eagerly (lazy initialisations, optimiser states), the next captures.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

from agentwm.agents.dreamer.agent import DreamerAgent


class GraphedUpdate:
    """``agent.update`` as one replayed CUDA graph (see the module docstring).

    Args:
        agent: a single-process agent on a CUDA device.
        warmup: eager updates before the capture (at least 1).
        settle_every: read the device-side NaN/inf count every this many updates (one sync each),
            which stops a diverged run within that many updates of the guard's limit.
    """

    def __init__(self, agent: DreamerAgent, warmup: int = 3, settle_every: int = 50) -> None:
        if agent.device.type != "cuda":
            raise ValueError(f"cuda_graph needs the agent on a CUDA device, it is on {agent.device.type}")
        if warmup < 1 or settle_every < 1:
            raise ValueError(f"warmup and settle_every must be >= 1, got {warmup} and {settle_every}")
        agent.use_device_guard()  # refuses a data-parallel agent by name
        self.agent, self.warmup, self.settle_every = agent, warmup, settle_every
        self.calls = 0
        self.graph: torch.cuda.CUDAGraph | None = None
        self.static: dict[str, Tensor] = {}
        self.keys: list[str] = []
        self.out: Tensor | None = None

    def __call__(self, batch: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """One update on ``batch`` (same keys, shapes and dtypes every call); detached scalar metrics."""
        self.calls += 1
        if self.calls <= self.warmup:
            metrics = self._eager(batch)
        else:
            if self.graph is None:
                self._capture(batch)  # runs the update's Python once (agent.updates += 1), no kernels
            else:
                self._load(batch)
                self.agent.updates += 1
            assert self.graph is not None and self.out is not None
            self.graph.replay()
            values = self.out.clone()  # the static vector is overwritten by the next replay
            metrics = {k: values[i] for i, k in enumerate(self.keys)}
        if self.calls % self.settle_every == 0:
            self.agent.guard.settle()
        return metrics

    def _eager(self, batch: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """A plain update on a side stream (warm-up before capture, as torch asks)."""
        side = torch.cuda.Stream(self.agent.device)  # type: ignore[no-untyped-call]
        side.wait_stream(torch.cuda.current_stream(self.agent.device))
        with torch.cuda.stream(side):
            metrics = self.agent.update(batch)
        torch.cuda.current_stream(self.agent.device).wait_stream(side)
        return metrics

    def _capture(self, batch: Mapping[str, Tensor]) -> None:
        self.static = {k: v.detach().clone() for k, v in batch.items()}
        graph = torch.cuda.CUDAGraph()
        generator = self.agent.generator
        if generator is not None:  # a generator of the agent's own: each replay must advance it
            graph.register_generator_state(generator)
        torch.cuda.synchronize(self.agent.device)
        with torch.cuda.graph(graph):
            metrics = self.agent.update(self.static)
            self.keys = sorted(metrics)
            self.out = torch.stack([metrics[k].to(self.agent.device, torch.float32).reshape(()) for k in self.keys])
        self.graph = graph

    def _load(self, batch: Mapping[str, Tensor]) -> None:
        """Copy ``batch`` into the tensors the graph reads."""
        if batch.keys() != self.static.keys():
            raise ValueError(f"a graphed update needs the keys it was captured with {sorted(self.static)}, got {sorted(batch)}")
        for key, value in batch.items():
            static = self.static[key]
            if value.shape != static.shape or value.dtype != static.dtype:
                raise ValueError(
                    f"batch[{key!r}] is {tuple(value.shape)} {value.dtype}; the graph was captured with "
                    f"{tuple(static.shape)} {static.dtype} (a graphed update needs fixed batch shapes)"
                )
            static.copy_(value, non_blocking=True)
