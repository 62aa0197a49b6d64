"""PETS on CartPole: an ensemble, CEM over trajectory-sampled particles, and acting only where the
ensemble members agree (otherwise the action they agree on most), with disagreement logged.

    python examples/pets_cartpole.py

1,000 random steps, then MPC episodes; after each episode its transitions join the data and the
ensemble is refitted, until an episode returns 475.
"""

from agentwm.agents.pets import PETSConfig, run_pets

summary = run_pets(PETSConfig(env="CartPole-v1", planner="cem", particles=5, gate=True, fallback="safe"))
for i, episode in enumerate(summary["episodes"]):
    print(f"episode {i}: return {episode['return']:.0f}, fallback on {100 * episode['fallback_rate']:.1f}% of steps, "
          f"mean disagreement {episode['disagreement_mean']:.2e} (threshold {episode['threshold']:.2e})")
print("real steps to reach 475:", summary["steps_to_target"])
