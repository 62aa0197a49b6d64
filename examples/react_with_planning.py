"""Add a planning step to a prebuilt agent: before any tool runs, imagine where each proposed tool
call leads and keep only the best.

The agent's LLM proposes several tool calls at once. ``make_post_model_hook`` (for LangGraph's
``create_react_agent``) or ``planning_middleware`` (for LangChain's ``create_agent``) asks a world
model what each call would lead to, scores the imagined futures by discounted return (reward: how
close the imagined state is to the goal) and keeps the best call. The agent is otherwise unchanged.

Runs offline in a few seconds: both LLMs are scripted stand-ins. Swap in real ones (any chat model
with tool calling for the agent, any chat model for the world model, ``scorer=None`` for MiniLM
relevance) without touching the rest.

    python examples/react_with_planning.py              # create_agent + middleware
    python examples/react_with_planning.py --prebuilt   # create_react_agent + post_model_hook
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Sequence
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, AnyMessage, HumanMessage
from langchain_core.tools import tool

from agentwm.graph import build_planning_graph
from agentwm.graph.tools import make_post_model_hook, planning_middleware
from agentwm.text.client import LLMClient
from agentwm.text.scorers import Scores
from agentwm.text.scripted_chat import ScriptedChatModel
from agentwm.worldmodels.llm_outcome import LLMWorldModel

GOAL = "the customer gets their money back for the broken kettle"


# ---------------------------------------------------------------------------------------------
# The user's agent: tools and a tool-calling LLM


@tool
def search_docs(query: str) -> str:
    """Search the help-centre articles."""
    return "Article 12: refunds are possible within 30 days of delivery."


@tool
def issue_refund(order_id: str) -> str:
    """Refund an order in full."""
    return f"Refund for order {order_id} issued."


@tool
def escalate(reason: str) -> str:
    """Hand the conversation to a human agent."""
    return "Ticket created; a human will answer within 48 hours."


TOOLS = [search_docs, issue_refund, escalate]


class ScriptedToolCaller(GenericFakeChatModel):
    """Stands in for a tool-calling chat model (``init_chat_model("openai:gpt-4o-mini")``)."""

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> ScriptedToolCaller:
        return self


def scripted_agent_llm() -> ScriptedToolCaller:
    """First three candidate tool calls at once, then a reply."""
    calls = [
        {"name": "search_docs", "args": {"query": "refund broken kettle"}, "id": "c1"},
        {"name": "escalate", "args": {"reason": "customer wants a refund"}, "id": "c2"},
        {"name": "issue_refund", "args": {"order_id": "A-1042"}, "id": "c3"},
    ]
    return ScriptedToolCaller(
        messages=iter([AIMessage(content="", tool_calls=calls), AIMessage(content="Your refund is on its way.")])
    )


# ---------------------------------------------------------------------------------------------
# The world model: an LLM predicts what each tool call leads to (scripted here), and a reward


class MoneyBack:
    """Reward 1 when the imagined state says the money is back, 0.3 for progress, else 0
    (a keyword stand-in for ``EmbeddingRelevance``, which needs the MiniLM model)."""

    def score(self, states: Sequence[str], goals: Sequence[str]) -> Scores:
        values = [1.0 if "refunded" in s else 0.3 if "policy" in s else 0.0 for s in states]
        return Scores(torch.tensor(values), 0, torch.zeros(len(states), dtype=torch.bool))

    async def ascore(self, states: Sequence[str], goals: Sequence[str]) -> Scores:
        return self.score(states, goals)


outcome_llm = ScriptedChatModel(
    rules=[
        ("issue_refund", "Observation: the customer is refunded and thanks you\nDone: yes"),
        ("search_docs", "Observation: you find the refund policy but the customer is still waiting\nDone: no"),
        ("escalate", "Observation: the customer waits two days for a human\nDone: no"),
    ],
    default="Observation: nothing happens\nDone: no",
)
world_model = LLMWorldModel(LLMClient(outcome_llm), scorer=MoneyBack(), goal=GOAL, propose_followups=False)
planner = build_planning_graph(world_model=world_model).compile()


# ---------------------------------------------------------------------------------------------
# The agent with the planning step


def build_agent(prebuilt: bool = False) -> Any:
    if prebuilt:  # LangGraph's create_react_agent (deprecated in favour of create_agent, still served)
        from langgraph.prebuilt import create_react_agent

        hook = make_post_model_hook(planner, goal=GOAL, context={"horizon": 1})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            return create_react_agent(scripted_agent_llm(), TOOLS, post_model_hook=hook, version="v2")
    from langchain.agents import create_agent

    middleware = planning_middleware(planner, goal=GOAL, context={"horizon": 1})
    return create_agent(scripted_agent_llm(), TOOLS, middleware=[middleware])


def main(prebuilt: bool = False) -> list[AnyMessage]:
    agent = build_agent(prebuilt)
    out = agent.invoke({"messages": [HumanMessage("My kettle (order A-1042) arrived broken. I want my money back.")]})
    for message in out["messages"]:
        plan = message.additional_kwargs.get("agentwm_plan") if isinstance(message, AIMessage) else None
        if plan:
            for r in plan["ranking"]:
                print(f"  imagined return {r['imagined_return']:+.2f}  {r['candidate']}")
            print(f"  chosen: {plan['chosen']}")
        print(f"{type(message).__name__}: {message.content or message.tool_calls}")
    return list(out["messages"])


if __name__ == "__main__":
    main(prebuilt="--prebuilt" in sys.argv[1:])
