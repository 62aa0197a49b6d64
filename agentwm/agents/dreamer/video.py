"""Open-loop video for pixel tasks: the world model's imagined frames beside the real ones.

From a replayed sequence, the model observes the first ``context`` frames, then imagines the rest
from the replayed actions alone (no more observations). The GIF shows real frames on top and
imagined frames below, so one sees how long the model's predictions stay faithful.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from agentwm.agents.dreamer.agent import DreamerAgent
from agentwm.agents.dreamer.replay import SequenceReplay


@torch.no_grad()
def openloop_frames(
    agent: DreamerAgent, replay: SequenceReplay, videos: int = 4, length: int = 50, context: int = 5
) -> np.ndarray:
    """``uint8 [T, 2*S, videos*S, 3]`` frames: real (top row) and imagined-after-``context`` (bottom)."""
    wm = agent.wm
    if not wm.is_image:
        raise ValueError("open-loop videos need a pixel task")
    length = min(length, int(np.minimum(replay.count, replay.size).max()))
    batch = replay.sample(videos, length, agent.device)
    obs, act, first = batch["obs"], batch["action"], batch["is_first"]
    post, _ = wm.observe_sequence(obs[:, :context], act[:, :context], first[:, :context])
    recon = wm.decode({"deter": post["deter"], "stoch": post["stoch"]})
    start = {"deter": post["deter"][:, -1], "stoch": post["stoch"][:, -1]}
    roll = wm.imagine(start, act[:, context:].transpose(0, 1))
    imagined = wm.decode({k: v[1:] for k, v in roll.states.items()}).transpose(0, 1)
    pred = torch.cat([recon, imagined], 1).clamp(0, 1)  # [B, T, C, S, S]
    grid = torch.cat([obs, pred], -2)  # real above predicted: [B, T, C, 2S, S]
    grid = grid.permute(1, 3, 0, 4, 2).flatten(2, 3)  # [T, 2S, B*S, C]
    out: np.ndarray = (grid * 255).round().to(torch.uint8).cpu().numpy()
    return out


def write_openloop(agent: DreamerAgent, replay: SequenceReplay, path: str | Path, fps: int = 10) -> Path:
    """Write :func:`openloop_frames` as a GIF (or MP4 when ``path`` ends in .mp4 and ffmpeg exists)."""
    import imageio.v3 as iio

    frames = openloop_frames(agent, replay)
    path = Path(path)
    if path.suffix == ".gif":
        iio.imwrite(path, frames, duration=1000 / fps, loop=0)
    else:
        iio.imwrite(path, frames, fps=fps)
    return path
