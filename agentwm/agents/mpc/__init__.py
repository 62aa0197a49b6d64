"""Model-predictive control with a learned dynamics ensemble: the MPC loop and PETS on top of it."""

from agentwm.agents.mpc.loop import (
    MARGIN_REWARDS,
    MPCConfig,
    PlanningReward,
    load_ensemble,
    make_planner,
    planning_model,
    run_mpc,
    score_candidates,
    train_ensemble,
)
from agentwm.agents.mpc.pets import (
    AgreementGate,
    Fallback,
    GateDecision,
    PETSConfig,
    calibrate_threshold,
    fit_ensemble,
    make_pets_planner,
    one_step_disagreement,
    run_pets,
)

__all__ = [
    "MARGIN_REWARDS",
    "AgreementGate",
    "Fallback",
    "GateDecision",
    "MPCConfig",
    "PETSConfig",
    "PlanningReward",
    "calibrate_threshold",
    "fit_ensemble",
    "load_ensemble",
    "make_pets_planner",
    "make_planner",
    "one_step_disagreement",
    "planning_model",
    "run_mpc",
    "run_pets",
    "score_candidates",
    "train_ensemble",
]
