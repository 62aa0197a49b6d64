"""Videos of a Dreamer run: open-loop imagination beside reality, and episodes the agent played.

Open loop (pixel tasks): from a replayed sequence, the model observes the first ``context`` frames,
then imagines the rest from the replayed actions alone (no more observations). The GIF shows real
frames on top and imagined frames below, so one sees how long the model's predictions stay
faithful. Episodes: ``agentwm eval dreamer --video PATH`` writes the env's own rendered frames of
the first evaluation episode (``write_video``).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from agentwm.agents.dreamer.agent import DreamerAgent
from agentwm.agents.replay import SequenceReplay


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


def fit_frame(frame: np.ndarray, side: int) -> np.ndarray:
    """Shrink ``uint8 [H, W, 3]`` (area averaging) so its longer side is at most ``side`` pixels:
    a 500-step CartPole episode at its native 600 x 400 would hold 360 MB of frames."""
    h, w = frame.shape[:2]
    if max(h, w) <= side:
        return frame
    from PIL import Image

    scale = side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.asarray(Image.fromarray(frame).resize(size, Image.Resampling.BOX), dtype=np.uint8)


def check_video_path(path: str | Path) -> Path:
    """``path`` as a Path if this install can write it (``.gif``, or ``.mp4`` with imageio-ffmpeg);
    otherwise a ValueError naming what is missing, before any episode is played."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".gif", ".mp4"):
        raise ValueError(f"video path must end in .gif or .mp4, got {str(path)!r}")
    if suffix == ".mp4" and importlib.util.find_spec("imageio_ffmpeg") is None:
        raise ValueError(f"writing {path.name} needs imageio-ffmpeg (pip install imageio-ffmpeg); or use .gif")
    return path


def write_video(frames: np.ndarray | Sequence[np.ndarray], path: str | Path, fps: float = 10) -> Path:
    """Write ``uint8 [T, H, W, 3]`` frames as a looping GIF or an MP4 (see :func:`check_video_path`)."""
    import imageio.v3 as iio

    path = check_video_path(path)
    if len(frames) == 0:
        raise ValueError(f"no frames to write to {path}")
    stack = np.stack(list(frames)) if not isinstance(frames, np.ndarray) else frames
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".gif":
        iio.imwrite(path, stack, duration=1000 / fps, loop=0)
    else:
        iio.imwrite(path, stack, fps=fps)
    return path


def write_openloop(agent: DreamerAgent, replay: SequenceReplay, path: str | Path, fps: int = 10) -> Path:
    """Write :func:`openloop_frames` with :func:`write_video` (GIF, or MP4 when ``path`` ends in .mp4)."""
    return write_video(openloop_frames(agent, replay), path, fps)
