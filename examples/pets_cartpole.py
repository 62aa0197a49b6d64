"""PETS on CartPole: an ensemble, CEM over trajectory-sampled particles, and acting only where the
ensemble members agree (otherwise the action they agree on most), with disagreement logged.

    python examples/pets_cartpole.py

1,000 random steps, then MPC episodes; after each episode its transitions join the data and the
ensemble is refitted, until an episode returns 475. Imagined steps are scored by their margin to
CartPole's termination bounds (``planning_reward="auto"``); the real return is what is reported.
"""

from agentwm.agents.mpc.pets import PETSConfig, run_pets

config = PETSConfig(env="CartPole-v1", planner="cem", samples=50, horizon=20, particles=5, gate=True,
                    fallback="safe", max_episodes=5)
summary = run_pets(config)
for i, episode in enumerate(summary["episodes"]):
    print(f"episode {i}: return {episode['return']:.0f}, fallback on {100 * episode['fallback_rate']:.1f}% of steps, "
          f"disagreement mean {episode['disagreement_mean']:.2e}, max {episode['disagreement_max']:.2e} "
          f"(threshold {episode['threshold']:.2e})")
print("real steps to reach 475:", summary["steps_to_target"], f"({summary['wall_s']:.0f} s)")
