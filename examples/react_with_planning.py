"""Add a planning step to an existing ReAct-style LangGraph agent.

The agent's LLM proposes several tool calls at once. Before any tool runs, a ``plan`` node asks a
world model what each call would lead to, scores the imagined futures by discounted return
(reward: how close the imagined state is to the goal), and keeps only the best call. The rest of
the agent (agent -> tools -> agent) is unchanged.

Runs offline in a few seconds: both LLMs are scripted stand-ins. Swap in real ones
(``ChatOpenAI(...).bind_tools(tools)`` for the agent, any chat model for the world model, and
``scorer=None`` for MiniLM relevance) without touching the graph.

    python examples/react_with_planning.py
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Annotated, Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch
from langchain_core.language_models import BaseChatModel
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, AnyMessage, BaseMessage, HumanMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import tool
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.prebuilt import ToolNode
from typing_extensions import TypedDict

from agentwm.graph import build_planning_graph
from agentwm.text.client import LLMClient
from agentwm.text.scorers import Scores
from agentwm.worldmodels.llm_outcome import LLMWorldModel

GOAL = "the customer gets their money back for the broken kettle"


# ---------------------------------------------------------------------------------------------
# The user's existing agent: tools, state, an LLM node, a tool node


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


class AgentState(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]


def scripted_agent_llm() -> BaseChatModel:
    """Stands in for ``ChatOpenAI(...).bind_tools(TOOLS)``: first three candidate tool calls, then a reply."""
    calls = [
        {"name": "search_docs", "args": {"query": "refund broken kettle"}, "id": "c1"},
        {"name": "escalate", "args": {"reason": "customer wants a refund"}, "id": "c2"},
        {"name": "issue_refund", "args": {"order_id": "A-1042"}, "id": "c3"},
    ]
    return GenericFakeChatModel(
        messages=iter([AIMessage(content="", tool_calls=calls), AIMessage(content="Your refund is on its way.")])
    )


# ---------------------------------------------------------------------------------------------
# The world model: an LLM predicts what each tool call leads to (scripted here), and a reward


class ScriptedOutcomes(BaseChatModel):
    """Stands in for a chat model predicting outcomes: the answer of the first rule whose key is in the prompt."""

    rules: dict[str, str]

    @property
    def _llm_type(self) -> str:
        return "scripted-outcomes"

    def _generate(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kw: Any) -> ChatResult:
        prompt = "\n".join(str(m.content) for m in messages)
        answer = next((a for key, a in self.rules.items() if key in prompt), "Observation: nothing happens\nDone: no")
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=answer))])


class MoneyBack:
    """Reward 1 when the imagined state says the money is back, 0.3 for progress, else 0
    (a keyword stand-in for ``EmbeddingRelevance``, which needs the MiniLM model)."""

    def score(self, states: Sequence[str], goals: Sequence[str]) -> Scores:
        values = [1.0 if "refunded" in s else 0.3 if "policy" in s else 0.0 for s in states]
        return Scores(torch.tensor(values), 0, torch.zeros(len(states), dtype=torch.bool))

    async def ascore(self, states: Sequence[str], goals: Sequence[str]) -> Scores:
        return self.score(states, goals)


outcome_llm = ScriptedOutcomes(
    rules={
        "issue_refund": "Observation: the customer is refunded and thanks you\nDone: yes",
        "search_docs": "Observation: you find the refund policy but the customer is still waiting\nDone: no",
        "escalate": "Observation: the customer waits two days for a human\nDone: no",
    }
)
world_model = LLMWorldModel(LLMClient(outcome_llm), scorer=MoneyBack(), goal=GOAL, propose_followups=False)
planner = build_planning_graph(world_model=world_model).compile()


# ---------------------------------------------------------------------------------------------
# The planning step, embedded between the agent and its tools


def describe(call: dict[str, Any]) -> str:
    return f"{call['name']}({json.dumps(call['args'], sort_keys=True)})"


def plan(state: AgentState, config: RunnableConfig) -> dict[str, Any]:
    """Keep only the tool call whose imagined future scores best."""
    last = state["messages"][-1]
    calls = getattr(last, "tool_calls", [])
    if len(calls) < 2:
        return {}
    result = planner.invoke(
        {"observation": state["messages"][0].content, "goal": GOAL, "candidates": [describe(c) for c in calls]},
        config,  # streams and traces of the planner show up in the agent's
        context={"horizon": 1},
    )
    for r in result["ranking"]:
        print(f"  imagined return {r['score']:+.2f}  {r['candidate']}")
    best = calls[result["choice"]["index"]]
    print(f"  chosen: {describe(best)}  ({result['choice']['reason']}; fallbacks: {result['fallbacks']})")
    # same message id: add_messages replaces the agent's message with the pruned one
    return {"messages": [AIMessage(content=last.content, tool_calls=[best], id=last.id)]}


def build_agent() -> Any:
    llm = scripted_agent_llm()

    def agent(state: AgentState) -> dict[str, Any]:
        return {"messages": [llm.invoke(state["messages"])]}

    def route(state: AgentState) -> str:
        return "plan" if getattr(state["messages"][-1], "tool_calls", None) else END

    builder = StateGraph(AgentState)
    builder.add_node("agent", agent)
    builder.add_node("plan", plan)  # <- the only addition to the ReAct loop
    builder.add_node("tools", ToolNode(TOOLS))
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", route, ["plan", END])
    builder.add_edge("plan", "tools")
    builder.add_edge("tools", "agent")
    return builder.compile()


def main() -> list[AnyMessage]:
    agent = build_agent()
    out = agent.invoke({"messages": [HumanMessage("My kettle (order A-1042) arrived broken. I want my money back.")]})
    for message in out["messages"]:
        print(f"{type(message).__name__}: {message.content or message.tool_calls}")
    return out["messages"]


if __name__ == "__main__":
    main()
