"""Scorers: collapse the returns of several imagined particles (and the model's disagreement) into
one number per candidate.

A stochastic or ensemble world model gives a candidate ``P`` returns instead of one. How to read
them is a choice about risk, so it is a named mode rather than buried in each planner:

* ``"mean"``: expected return; risk-neutral.
* ``"lower_quantile"``: the ``quantile``-th quantile of the particle returns (e.g. 0.1: "what do I
  get in a bad 10% case"); risk-averse, prefers candidates whose outcomes are tightly spread.
* ``"disagreement_penalized"``: mean return minus ``kappa`` times the mean disagreement the model
  reported along the rollout (``rollout.extras["disagreement"]``); avoids regions where the model
  does not know what happens, which is where optimisers against learned models like to exploit
  model error (PETS, MOPO-style pessimism).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, get_args

import torch
from torch import Tensor

ScoreMode = Literal["mean", "lower_quantile", "disagreement_penalized"]
"""How particle returns become one score; see the module docstring."""

SCORE_MODES: tuple[str, ...] = get_args(ScoreMode)


def mean_score(returns: Tensor) -> Tensor:
    """Mean over the particle dim: ``[..., P] -> [...]``."""
    return returns.mean(-1)


def lower_quantile_score(returns: Tensor, quantile: float) -> Tensor:
    """The ``quantile``-th quantile over the particle dim (linear interpolation): ``[..., P] -> [...]``."""
    if returns.shape[-1] == 1:
        return returns[..., 0]
    return torch.quantile(returns, quantile, dim=-1)


def disagreement_penalized_score(returns: Tensor, disagreement: Tensor, kappa: float) -> Tensor:
    """``mean(returns) - kappa * mean(disagreement)`` over the particle dim: ``[..., P] -> [...]``."""
    return returns.mean(-1) - kappa * disagreement.mean(-1)


@dataclass(frozen=True)
class Scorer:
    """A validated scoring rule: ``scorer(returns [..., P], disagreement [..., P] | None) -> [...]``.

    Args:
        mode: one of :data:`ScoreMode`.
        quantile: the quantile used by ``"lower_quantile"``, in ``[0, 1]``.
        kappa: the disagreement penalty weight used by ``"disagreement_penalized"``, ``>= 0``.

    Example:
        >>> import torch
        >>> Scorer("lower_quantile", quantile=0.0)(torch.tensor([[1.0, 3.0, 2.0]]))
        tensor([1.])
    """

    mode: ScoreMode = "mean"
    quantile: float = 0.1
    kappa: float = 1.0

    def __post_init__(self) -> None:
        if self.mode not in SCORE_MODES:
            raise ValueError(f"score mode must be one of {SCORE_MODES}, got {self.mode!r}")
        if not (isinstance(self.quantile, (int, float)) and 0.0 <= self.quantile <= 1.0):
            raise ValueError(f"quantile must lie in [0, 1], got {self.quantile!r}")
        if not (isinstance(self.kappa, (int, float)) and math.isfinite(self.kappa) and self.kappa >= 0.0):
            raise ValueError(f"kappa must be a finite number >= 0, got {self.kappa!r}")

    @property
    def needs_disagreement(self) -> bool:
        """Whether this rule reads the model's disagreement."""
        return self.mode == "disagreement_penalized"

    def __call__(self, returns: Tensor, disagreement: Tensor | None = None) -> Tensor:
        """Score ``[...]`` from particle returns ``[..., P]`` (and disagreement of the same shape).

        Raises:
            ValueError: ``"disagreement_penalized"`` without a disagreement tensor (the model does not
                report ``extras["disagreement"]``), or mismatched shapes.
        """
        if self.mode == "mean":
            return mean_score(returns)
        if self.mode == "lower_quantile":
            return lower_quantile_score(returns, float(self.quantile))
        if disagreement is None:
            raise ValueError(
                "score mode 'disagreement_penalized' needs a model that reports"
                " rollout.extras['disagreement'] [H, B]; use 'mean' or 'lower_quantile' for this model"
            )
        if disagreement.shape != returns.shape:
            raise ValueError(
                f"disagreement must have the shape of returns {tuple(returns.shape)}, got {tuple(disagreement.shape)}"
            )
        return disagreement_penalized_score(returns, disagreement, float(self.kappa))


ScoreLike = ScoreMode | Scorer
"""A mode name (with default ``quantile``/``kappa``) or a configured :class:`Scorer`."""


def as_scorer(score: ScoreLike) -> Scorer:
    """Turn a mode name or a :class:`Scorer` into a :class:`Scorer`, with a clear error otherwise."""
    if isinstance(score, Scorer):
        return score
    if isinstance(score, str):
        return Scorer(score)
    raise TypeError(f"score must be one of {SCORE_MODES} or a Scorer, got {type(score).__name__}")
