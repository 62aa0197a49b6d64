"""World models behind one protocol: ``initial``, ``observe``, ``imagine`` (→ ``Rollout``), ``loss``."""

from agentwm.worldmodels.base import (
    ActionSpec,
    LearnableWorldModel,
    Policy,
    Rollout,
    State,
    WorldModel,
    check_actions,
    check_tensor,
    index_state,
    repeat_state,
    state_batch_size,
)

__all__ = [
    "ActionSpec",
    "LearnableWorldModel",
    "Policy",
    "Rollout",
    "State",
    "WorldModel",
    "check_actions",
    "check_tensor",
    "index_state",
    "repeat_state",
    "state_batch_size",
]
