"""PlaNet: an RSSM learned online and CEM planning in its latent space, no actor."""

from agentwm.agents.planet.agent import (
    PlaNetConfig,
    load_planet,
    make_env,
    run_episode,
    train_planet,
)

__all__ = [
    "PlaNetConfig",
    "load_planet",
    "make_env",
    "run_episode",
    "train_planet",
]
