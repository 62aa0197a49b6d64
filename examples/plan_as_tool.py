"""Give a prebuilt agent a "plan" tool: the agent passes candidate actions and a goal, a world model
imagines where each leads, and the tool answers with the best one and the ranking.

``as_tool(planning_graph)`` is an ordinary LangChain tool, so it goes in any agent's tool list
(LangChain's ``create_agent``, LangGraph's ``create_react_agent``, your own graph). Here a scripted
agent LLM asks the planner first, then calls the tool the planner chose.

Runs offline in a few seconds: both LLMs are scripted stand-ins.

    python examples/plan_as_tool.py
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch
from langchain.agents import create_agent
from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AnyMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.tools import tool

from agentwm.graph import build_planning_graph
from agentwm.graph.tools import as_tool
from agentwm.text.client import LLMClient
from agentwm.text.scorers import Scores
from agentwm.text.scripted_chat import ScriptedChatModel
from agentwm.worldmodels.llm_outcome import LLMWorldModel

GOAL = "the customer gets their money back for the broken kettle"
OPTIONS = {
    "search the help centre for the refund policy": ("search_docs", {"query": "refund policy"}),
    "escalate to a human agent": ("escalate", {"reason": "refund request"}),
    "refund order A-1042": ("issue_refund", {"order_id": "A-1042"}),
}


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


class AsksThePlanner(BaseChatModel):
    """Stands in for a tool-calling chat model: calls ``plan`` with its options, then the tool the
    planner chose, then answers."""

    @property
    def _llm_type(self) -> str:
        return "asks-the-planner"

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> AsksThePlanner:
        return self

    def _generate(
        self, messages: list[BaseMessage], stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any,
    ) -> ChatResult:
        last = messages[-1]
        if isinstance(last, HumanMessage):
            args = {"candidates": list(OPTIONS), "goal": GOAL, "observation": str(last.content)}
            reply = AIMessage(content="", tool_calls=[{"name": "plan", "args": args, "id": "p1"}])
        elif isinstance(last, ToolMessage) and last.name == "plan":
            name, args = OPTIONS[json.loads(str(last.content))["chosen"]]
            reply = AIMessage(content="", tool_calls=[{"name": name, "args": args, "id": "t1"}])
        else:
            reply = AIMessage(content="Your refund is on its way.")
        return ChatResult(generations=[ChatGeneration(message=reply)])


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
        ("refund order", "Observation: the customer is refunded and thanks you\nDone: yes"),
        ("help centre", "Observation: you find the refund policy but the customer is still waiting\nDone: no"),
        ("escalate", "Observation: the customer waits two days for a human\nDone: no"),
    ],
    default="Observation: nothing happens\nDone: no",
)
world_model = LLMWorldModel(LLMClient(outcome_llm), scorer=MoneyBack(), goal=GOAL, propose_followups=False)
plan = as_tool(build_planning_graph(world_model=world_model), context={"horizon": 1})


def main() -> list[AnyMessage]:
    agent = create_agent(AsksThePlanner(), [plan, search_docs, issue_refund, escalate])
    out = agent.invoke({"messages": [HumanMessage("My kettle (order A-1042) arrived broken. I want my money back.")]})
    for message in out["messages"]:
        print(f"{type(message).__name__}: {message.content or message.tool_calls}")
    return list(out["messages"])


if __name__ == "__main__":
    main()
