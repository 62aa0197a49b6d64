"""Ha & Schmidhuber's World Models on CartPole seen only as 64x64 frames.

    python examples/worldmodels_cartpole_pixels.py          # ~6 min of CPU (3 rounds)
    python examples/worldmodels_cartpole_pixels.py --quick  # a smoke run, well under a minute

V (a ConvVAE) compresses frames to 32 numbers, M (an MDN-RNN) learns how those numbers move, and a
linear controller C is trained by CMA-ES entirely inside M's dream. Each round then plays C in the
real task, adds those frames, refits M and retrains C (the paper's iterative procedure). Each
round's diagnostics sit next to the baseline that knows nothing, so you can see which part limits
the controller.
"""

import sys

from agentwm.agents.hs_worldmodels.agent import HSConfig, train_world_models
from agentwm.worldmodels.vae_mdnrnn import VAEMDNConfig

quick = "--quick" in sys.argv
config = (HSConfig(frames=300, vae_epochs=1, rnn_steps=20, generations=3, popsize=6, dreams=2, rounds=2,
                   round_frames=100, eval_episodes=2, model=VAEMDNConfig(depth=8, hidden=32))
          if quick else HSConfig(eval_episodes=10))
_, params, summary = train_world_models(config, progress=lambda r: print(
    f"round {r['round']}: V recon {r['vae_recon_mse']:.4f} (mean frame {r['mean_frame_mse']:.4f}), "
    f"M done BCE {r['done_bce']:.3f} (base rate {r['done_base_rate_bce']:.3f}), "
    f"dream of random play {r['dream_random_return']:.1f}, best dream return {max(r['dream_return_curve']):.1f}"))
print(f"real return of C: {summary['eval_mean_return']:.1f}; random actions from the same starts: "
      f"{summary['random_mean_return']:.1f} ({summary['wall_s']:.0f} s)")
