"""Per-run planning settings, passed through LangGraph's runtime context (not the graph state).

``graph.invoke(inputs, context={"horizon": 5, "candidates": 3})`` sets them for one run; a graph
built with ``context_schema=PlanningContext`` validates the dict into a :class:`PlanningContext`
before any node runs, so a typo or an out-of-range value fails at the call with a message naming
the field. Nodes embedded in a user's graph with another context schema fall back to the defaults
given to their factory (see :func:`resolve_settings`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from agentwm.planning.scoring import ScoreMode, Scorer


class PlanningContext(BaseModel):
    """How one planning decision is made. Subclass to add settings of your own nodes.

    Attributes:
        horizon: imagined steps per candidate (a few for LLM world models, 10-30 for latent ones).
        gamma: discount of the imagined return.
        candidates: how many candidates the proposer is asked for (candidates given in the state
            are all simulated).
        samples: imaginations per candidate (stochastic models, random follow-ups).
        llm_budget: the most LLM calls one decision may make (proposal + simulations); candidates
            that do not fit are not simulated (recorded in ``fallbacks``). ``None``: no limit.
        score: how the samples' returns become one score: ``"mean"``, ``"lower_quantile"`` or
            ``"disagreement_penalized"`` (see :mod:`agentwm.planning.scoring`).
        quantile: the quantile of ``"lower_quantile"``.
        kappa: the disagreement weight of ``"disagreement_penalized"``.
        seed: seed of the random follow-up actions of latent simulations (``None``: global RNG).

    Example:
        >>> PlanningContext(horizon=15, samples=32).scorer().mode
        'mean'
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    horizon: int = Field(default=3, ge=1, le=1000, description="imagined steps per candidate")
    gamma: float = Field(default=0.95, ge=0.0, le=1.0, description="discount of the imagined return")
    candidates: int = Field(default=4, ge=1, le=64, description="candidates to ask the proposer for")
    samples: int = Field(default=1, ge=1, le=4096, description="imaginations per candidate")
    llm_budget: int | None = Field(default=None, ge=0, description="max LLM calls per decision; None = no limit")
    score: ScoreMode = Field(default="mean", description="how sample returns become one score")
    quantile: float = Field(default=0.1, ge=0.0, le=1.0, description="quantile of the lower_quantile score")
    kappa: float = Field(default=1.0, ge=0.0, description="disagreement weight of disagreement_penalized")
    seed: int | None = Field(default=0, description="seed of random follow-up actions; None = global RNG")

    @model_validator(mode="after")
    def _finite(self) -> PlanningContext:
        for name in ("gamma", "quantile", "kappa"):
            value = getattr(self, name)
            if not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number, got {value!r}")
        return self

    def scorer(self) -> Scorer:
        """The :class:`~agentwm.planning.Scorer` these settings describe."""
        return Scorer(self.score, quantile=self.quantile, kappa=self.kappa)


def resolve_settings(context: Any, default: PlanningContext) -> PlanningContext:
    """The settings a node uses for this run.

    Args:
        context: ``runtime.context``: a :class:`PlanningContext` (used as is), a mapping (its
            planning keys are validated over ``default``; other keys are ignored, so a user's own
            context dict may carry more), an object with a ``planning`` attribute holding either
            of those, or ``None``/anything else (``default``).
        default: the settings given to the node factory.

    Raises:
        pydantic.ValidationError: a planning key holds an invalid value (the message names it).
    """
    if isinstance(context, PlanningContext):
        return context
    nested = getattr(context, "planning", None)
    if nested is not None and not isinstance(context, Mapping):
        return resolve_settings(nested, default)
    if isinstance(context, Mapping):
        fields = type(default).model_fields
        overrides = {k: v for k, v in context.items() if k in fields}
        if not overrides:
            return default
        return type(default).model_validate({**default.model_dump(), **overrides})
    return default
