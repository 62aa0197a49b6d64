"""LLM world model cost: concurrency of K candidates, the cache, and the local SmolLM2 backend.

1. ``concurrency``: ``LLMWorldModel.aimagine`` on K candidates (horizon H, follow-ups proposed by
   the LLM) against one candidate, with a chat model of fixed latency (``--latency`` s per call, like
   a hosted API). Target: K candidates take <= 1.5x the wall time of one. Also the sync ``imagine``
   (same code on a private event loop) and, as the baseline that concurrency removes, the items
   one after another.
2. ``cache``: the same imagination again: calls made and wall time (every answer is cached).
3. ``smollm2`` (``--smollm2``): load time of the embedded SmolLM2-135M-Instruct GGUF, latency and
   tokens/s of one outcome prediction, and one imagined step of 1 candidate against 4 candidates,
   with the local model's async batching off (``max_batch=1``: one generate per candidate, in turn)
   and on (one left-padded batch).

Prints one JSON object.

    python benchmarks/llm_worldmodel.py                 # ~10 s
    python benchmarks/llm_worldmodel.py --smollm2       # + ~1 min on 2 CPU cores
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # _results.py, also under `agentwm bench`
from _results import write_result

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch
from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agentwm.text.client import LLMClient
from agentwm.text.scorers import Scores
from agentwm.worldmodels.base import repeat_state
from agentwm.worldmodels.llm_outcome import LLMWorldModel


class FixedLatencyChat(BaseChatModel):
    """Answers every prompt after ``latency`` seconds; proposals and outcomes vary with the prompt."""

    latency: float = 0.1

    @property
    def _llm_type(self) -> str:
        return "fixed-latency"

    def _answer(self, messages: list[BaseMessage]) -> ChatResult:
        prompt = str(messages[-1].content)
        if "Action:" not in prompt:
            text = "Action: move forward"
        else:
            action = prompt.split("Action:", 1)[1].splitlines()[0].strip()
            text = f"Observation: after '{action}' the agent sees a door\nDone: no"
        return ChatResult(generations=[ChatGeneration(message=AIMessage(text))])

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> ChatResult:
        time.sleep(self.latency)
        return self._answer(messages)

    async def _agenerate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                         run_manager: AsyncCallbackManagerForLLMRun | None = None, **kwargs: Any) -> ChatResult:
        await asyncio.sleep(self.latency)
        return self._answer(messages)


class LengthScorer:
    """A scorer with no model in it, so the figures are the LLM path's alone."""

    def score(self, states: Any, goals: Any) -> Scores:
        values = torch.tensor([min(len(s), 100) / 100.0 for s in states])
        return Scores(values, 0, torch.zeros(len(values), dtype=torch.bool))

    async def ascore(self, states: Any, goals: Any) -> Scores:
        return self.score(states, goals)


def concurrency(k: int, horizon: int, latency: float, repeats: int) -> dict[str, Any]:
    def model() -> LLMWorldModel:
        return LLMWorldModel(LLMClient(FixedLatencyChat(latency=latency)), scorer=LengthScorer(), goal="reach the door")

    def candidates(n: int) -> list[list[str]]:
        return [[f"candidate action {i}" for i in range(n)]]

    def timed(fn: Any) -> float:
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - start)
        return best

    def one_async(n: int) -> None:
        wm = model()
        asyncio.run(wm.aimagine(repeat_state(wm.observe("a corridor"), n), candidates(n), horizon))

    def one_sync(n: int) -> None:
        wm = model()
        wm.imagine(repeat_state(wm.observe("a corridor"), n), candidates(n), horizon)

    def sequential(n: int) -> None:
        wm = model()
        for i in range(n):
            wm.imagine(wm.observe("a corridor"), [[f"candidate action {i}"]], horizon)

    single = timed(lambda: one_async(1))
    batch = timed(lambda: one_async(k))
    batch_sync = timed(lambda: one_sync(k))
    seq = timed(lambda: sequential(k))
    calls_per_candidate = horizon + (horizon - 1)
    return {
        "k": k, "horizon": horizon, "latency_s": latency, "llm_calls_per_candidate": calls_per_candidate,
        "one_candidate_s": round(single, 4), "k_candidates_aimagine_s": round(batch, 4),
        "k_candidates_imagine_s": round(batch_sync, 4), "k_candidates_sequential_s": round(seq, 4),
        "ratio_k_over_one": round(batch / single, 3), "ratio_sync_k_over_one": round(batch_sync / single, 3),
        "target_ratio": 1.5,
    }


def cache(k: int, horizon: int, latency: float) -> dict[str, Any]:
    client = LLMClient(FixedLatencyChat(latency=latency))
    wm = LLMWorldModel(client, scorer=LengthScorer(), goal="reach the door")
    state = repeat_state(wm.observe("a corridor"), k)
    rows = [[f"candidate action {i}" for i in range(k)]]
    start = time.perf_counter()
    first = wm.imagine(state, rows, horizon)
    cold = time.perf_counter() - start
    start = time.perf_counter()
    second = wm.imagine(state, rows, horizon)
    warm = time.perf_counter() - start
    return {
        "cold_s": round(cold, 4), "cold_llm_calls": first.extras["llm_calls"],
        "warm_s": round(warm, 4), "warm_llm_calls": second.extras["llm_calls"],
        "client_stats": client.stats,
    }


def smollm2(max_new_tokens: int) -> dict[str, Any]:
    from agentwm.text.local_chat import smollm2_chat_model
    from agentwm.text.prompts import OUTCOME_PROMPT

    start = time.perf_counter()
    chat = smollm2_chat_model(max_new_tokens=max_new_tokens, stop=["\n\n"])
    load = time.perf_counter() - start
    messages = OUTCOME_PROMPT.format_messages(
        goal="open the red door", history="(none)", observation="You see a closed red door in front of you.",
        action="toggle the door",
    )
    chat.invoke(messages, max_new_tokens=2)  # warm-up
    start = time.perf_counter()
    answer = chat.invoke(messages)
    call = time.perf_counter() - start
    usage = answer.usage_metadata or {"input_tokens": 0, "output_tokens": 0}
    actions = ["toggle the door", "turn left", "move forward", "pick up the key"]

    def imagine(k: int, batch: int) -> tuple[float, Any]:
        chat.max_batch = batch
        wm = LLMWorldModel(LLMClient(chat, retries=0, cache=False), scorer=LengthScorer(), goal="open the red door")
        state = repeat_state(wm.observe("You see a closed red door in front of you."), k)
        start = time.perf_counter()
        rollout = wm.imagine(state, [actions[:k]], 1)
        return time.perf_counter() - start, rollout

    one, _ = imagine(1, 16)
    unbatched, _ = imagine(len(actions), 1)
    batched, rollout = imagine(len(actions), 16)
    return {
        "load_s": round(load, 2), "call_s": round(call, 3),
        "prompt_tokens": usage["input_tokens"], "completion_tokens": usage["output_tokens"],
        "tokens_per_s": round(usage["output_tokens"] / call, 2) if call else None,
        "answer": answer.content,
        "imagine_1_candidate_s": round(one, 3),
        f"imagine_{len(actions)}_candidates_unbatched_s": round(unbatched, 3),
        f"imagine_{len(actions)}_candidates_batched_s": round(batched, 3),
        "ratio_batched_k_over_one": round(batched / one, 3),
        "imagined": rollout.extras["text"][0], "fallbacks": rollout.extras["fallbacks"],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--k", type=int, default=8, help="candidates simulated together")
    p.add_argument("--horizon", type=int, default=3, help="imagined steps (the LLM proposes after the first)")
    p.add_argument("--latency", type=float, default=0.1, help="seconds per call of the fixed-latency chat model")
    p.add_argument("--repeats", type=int, default=3, help="timings keep the best of this many runs")
    p.add_argument("--smollm2", action="store_true", help="also measure the embedded SmolLM2 backend")
    p.add_argument("--max-new-tokens", type=int, default=24, help="SmolLM2 answer length")
    args = p.parse_args()
    out: dict[str, Any] = {
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "load_avg_1m": round(os.getloadavg()[0], 2)},
        "concurrency": concurrency(args.k, args.horizon, args.latency, args.repeats),
        "cache": cache(args.k, args.horizon, args.latency),
    }
    if args.smollm2:
        out["smollm2"] = smollm2(args.max_new_tokens)
    print(json.dumps(out, indent=2))
    write_result("llm_worldmodel", out, variant="smollm2" if args.smollm2 else None)


if __name__ == "__main__":
    main()
