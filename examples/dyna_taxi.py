"""Dyna-Q on Taxi: the same real-step budget with and without planning from a learned model.

    python examples/dyna_taxi.py

Every real step also replays k imagined transitions from a count-based model of what was seen.
k=0 is plain Q-learning; the printout shows how many real steps each needs to solve the task.
"""

from agentwm.agents.dyna.agent import DynaConfig, run_dyna

for k in (0, 5, 20):
    _, _, summary = run_dyna(DynaConfig(env="Taxi-v4", planning_steps=k, real_steps=20_000, seed=0))
    print(f"k={k:>2}: solved after {summary['steps_to_target']} real steps "
          f"(greedy return {summary['final_eval_return']}, {summary['wall_s']} s)")
