"""World models behind one protocol: ``initial``, ``observe``, ``imagine`` (→ ``Rollout``), ``loss``."""

from agentwm.worldmodels.base import (
    ActionSpec,
    LearnableWorldModel,
    Policy,
    Rollout,
    State,
    TextActions,
    TextWorldModel,
    WorldModel,
    check_actions,
    check_tensor,
    index_state,
    repeat_state,
    state_batch_size,
)
from agentwm.worldmodels.ensemble import EnsembleConfig, EnsembleDynamics
from agentwm.worldmodels.muzero import MuZeroModel, MuZeroNetConfig
from agentwm.worldmodels.rssm import PRESETS, RSSM, RSSMConfig
from agentwm.worldmodels.tabular import TabularModel
from agentwm.worldmodels.task_rules import WithTaskRules
from agentwm.worldmodels.vae_mdnrnn import VAEMDNRNN, VAEMDNConfig

__all__ = [
    "PRESETS",
    "RSSM",
    "VAEMDNRNN",
    "ActionSpec",
    "EnsembleConfig",
    "EnsembleDynamics",
    "LearnableWorldModel",
    "MuZeroModel",
    "MuZeroNetConfig",
    "Policy",
    "RSSMConfig",
    "Rollout",
    "State",
    "TabularModel",
    "TextActions",
    "TextWorldModel",
    "VAEMDNConfig",
    "WithTaskRules",
    "WorldModel",
    "check_actions",
    "check_tensor",
    "index_state",
    "repeat_state",
    "state_batch_size",
]

# The LLM-backed models import LangChain; load them on first use so RL users do not pay for it.
_LAZY = {
    "LLMWorldModel": "agentwm.worldmodels.llm_outcome",
    "LLMWorldModelSettings": "agentwm.worldmodels.llm_outcome",
    "HybridWorldModel": "agentwm.worldmodels.composite",
    "HybridSettings": "agentwm.worldmodels.composite",
    "DialogueWorldModel": "agentwm.worldmodels.dialogue",
    "DialogueConfig": "agentwm.worldmodels.dialogue",
}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'agentwm.worldmodels' has no attribute {name!r}")
