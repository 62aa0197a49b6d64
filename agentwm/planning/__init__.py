"""Planners over any world model: candidate ranking, random shooting, CEM and MPPI, and scorers.

Every planner uses only the protocol (``model.action_spec``, ``model.imagine``), imagines all
candidates × particles of an iteration in one batched call, scores them with
``Rollout.returns(gamma)`` through a :class:`Scorer`, runs under ``torch.no_grad()`` and hands its
warm start back to the caller as ``PlanResult.carry``.

Example:
    >>> planner = CEM(model, horizon=12, samples=256, elites=32, iterations=5, generator=0)
    >>> result = planner.plan(state)                        # result.action: [B, A]
    >>> result = planner.plan(next_state, carry=result.carry)
"""

from agentwm.planning.base import (
    Evaluation,
    GeneratorLike,
    PlanCarry,
    Planner,
    PlanResult,
    SamplingPlanner,
    evaluate_rollout,
    evaluate_sequences,
    tile_state,
)
from agentwm.planning.cem import CEM, CEMOutput
from agentwm.planning.mcts import MCTS, MCTSResult
from agentwm.planning.mppi import MPPI
from agentwm.planning.ranking import (
    Candidates,
    Followup,
    Ranking,
    arank,
    rank,
    rank_candidates,
    score_samples,
)
from agentwm.planning.scoring import (
    SCORE_MODES,
    ScoreLike,
    ScoreMode,
    Scorer,
    as_scorer,
    disagreement_penalized_score,
    lower_quantile_score,
    mean_score,
)
from agentwm.planning.shooting import RandomShooting

__all__ = [
    "CEM",
    "MCTS",
    "MPPI",
    "SCORE_MODES",
    "CEMOutput",
    "Candidates",
    "DialogueScorer",
    "Evaluation",
    "Followup",
    "GeneratorLike",
    "MCTSResult",
    "PlanCarry",
    "PlanResult",
    "Planner",
    "RandomShooting",
    "Ranking",
    "ReplyScore",
    "SamplingPlanner",
    "ScoreLike",
    "ScoreMode",
    "Scorer",
    "arank",
    "as_scorer",
    "disagreement_penalized_score",
    "evaluate_rollout",
    "evaluate_sequences",
    "lower_quantile_score",
    "mean_score",
    "rank",
    "rank_candidates",
    "score_replies",
    "score_samples",
    "tile_state",
]

# Reply scoring loads the dialogue world model (sentence embeddings); import it on first use.
_LAZY = {
    "DialogueScorer": "agentwm.planning.replies",
    "ReplyScore": "agentwm.planning.replies",
    "score_replies": "agentwm.planning.replies",
}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'agentwm.planning' has no attribute {name!r}")
