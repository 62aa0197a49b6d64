"""agentwm: planning with learned world models.

One loop everywhere: observe → latent state → imagine(candidates, horizon) → Rollout → returns →
choose. See ``agentwm.core`` (return math), ``agentwm.worldmodels`` (the protocol and models) and
``agentwm.planning`` (planners over any world model).
"""

__version__ = "0.1.0"
