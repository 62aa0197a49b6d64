"""PlaNet on DeepMind Control cartpole-swingup (proprio): an RSSM learned online, CEM planning in
its latent space, no policy network.

    python examples/planet_cartpole_swingup.py          # ~25 min on 2 busy cores
    python examples/planet_cartpole_swingup.py --quick  # a smoke run, about a minute

Prints the noise-free evaluation return every few planning episodes against the env steps used,
and what uniformly random actions score from the same start states.
"""

import sys

from agentwm.agents.planet.agent import PlaNetConfig, train_planet

quick = "--quick" in sys.argv
config = (PlaNetConfig(seed_episodes=1, episodes=2, train_steps=10, samples=50, elites=5, iterations=2,
                       max_steps=30, eval_every=1)
          if quick else PlaNetConfig(seed_episodes=5, episodes=10, train_steps=100, batch_size=32, eval_every=5))


def show(report: dict) -> None:
    line = f"episode {report['episode']:>2} ({report['env_steps']:>6} env steps): return {report['return']:6.1f}"
    if "eval_returns" in report:
        line += f" | noise-free eval {sum(report['eval_returns']) / len(report['eval_returns']):6.1f}"
    print(line, flush=True)


model, summary = train_planet(config, progress=show)
random = summary["random_eval_returns"]
print(f"random actions from the evaluation starts: {sum(random) / len(random):.1f} (over {len(random)} episodes)")
print("eval curve:", summary["eval_curve"])
