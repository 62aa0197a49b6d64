"""Sequence replay for Dreamer: one FIFO stream per environment, fixed-length windows out.

Storage convention (the RSSM's): row ``t`` of a stream holds ``obs[t]``, the ``action[t]`` that led
to it, the ``reward[t]`` and ``is_terminal[t]`` of that transition, and ``is_first[t]`` when
``obs[t]`` starts an episode (its action and reward are zeros). Streams are never split into
episodes: a window may run across an episode boundary, and the ``is_first`` flag inside it makes
the RSSM reset its carry there, so nothing leaks from one episode into the next. The first row of
every sampled window is marked ``is_first`` too, since the learner starts each window from the
initial carry.

Arrays are preallocated numpy (uint8 for pixels). Checkpoints save them incrementally
(``export_rows`` since the previous one, ``import_rows`` back; see ``checkpoint.py``); ``state_dict``
holds the whole buffer at once. Sampling uses its own ``numpy.random.Generator``, saved with it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

_KEYS = ("obs", "action", "reward", "is_first", "is_terminal")


class SequenceReplay:
    """FIFO replay of ``num_envs`` parallel streams, sampled as ``[B, T]`` windows.

    Args:
        capacity: transitions kept in total (split evenly over the streams).
        num_envs: parallel streams, one per environment.
        obs_shape: shape of one observation.
        action_dim: width of an action row (one-hot for discrete actions).
        obs_dtype: ``np.uint8`` for pixels, ``np.float32`` for vectors.
        seed: seed of the sampling generator.
    """

    def __init__(
        self,
        capacity: int,
        num_envs: int,
        obs_shape: Sequence[int],
        action_dim: int,
        obs_dtype: Any = np.float32,
        seed: int = 0,
    ) -> None:
        if num_envs < 1 or capacity < num_envs * 2:
            raise ValueError(f"need num_envs >= 1 and capacity >= 2 * num_envs, got {capacity}, {num_envs}")
        self.num_envs, self.size = num_envs, capacity // num_envs
        n, c = num_envs, self.size
        self.data: dict[str, np.ndarray] = {
            "obs": np.zeros((n, c, *obs_shape), dtype=obs_dtype),
            "action": np.zeros((n, c, action_dim), dtype=np.float32),
            "reward": np.zeros((n, c), dtype=np.float32),
            "is_first": np.zeros((n, c), dtype=bool),
            "is_terminal": np.zeros((n, c), dtype=bool),
        }
        self.ptr = np.zeros(n, dtype=np.int64)  # next row to write, per stream
        self.count = np.zeros(n, dtype=np.int64)  # rows ever written, per stream
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return int(np.minimum(self.count, self.size).sum())

    def add(
        self, obs: np.ndarray, action: np.ndarray, reward: np.ndarray, is_first: np.ndarray, is_terminal: np.ndarray
    ) -> None:
        """Append one row to every stream: arrays with a leading ``num_envs`` dim."""
        rows = np.arange(self.num_envs)
        for key, value in zip(_KEYS, (obs, action, reward, is_first, is_terminal)):
            value = np.asarray(value)
            if value.shape[0] != self.num_envs:
                raise ValueError(f"{key} must have a leading dim of num_envs={self.num_envs}, got {value.shape}")
            self.data[key][rows, self.ptr] = value
        self.count += 1
        self.ptr = (self.ptr + 1) % self.size

    def can_sample(self, length: int) -> bool:
        return bool((np.minimum(self.count, self.size) >= length).any())

    def sample(
        self, batch: int, length: int, device: str | torch.device = "cpu", terminal_fraction: float = 0.0
    ) -> dict[str, Tensor]:
        """``batch`` windows of ``length`` consecutive rows, uniformly over streams with enough rows.

        ``terminal_fraction`` of the windows (rounded down) are instead placed over a stored terminal
        transition, drawn uniformly, at a uniform position inside the window, while the replay holds
        any; the rest are uniform. 0 draws exactly as without the argument.

        Returns tensors ``obs [B, T, ...]`` (float; pixels scaled to [0, 1]), ``action [B, T, A]``,
        ``reward [B, T]``, ``is_first`` and ``is_terminal [B, T]`` (bool).
        """
        if not 0.0 <= terminal_fraction <= 1.0:
            raise ValueError(f"terminal_fraction must be in [0, 1], got {terminal_fraction}")
        filled = np.minimum(self.count, self.size)
        streams = np.flatnonzero(filled >= length)
        if len(streams) == 0:
            raise ValueError(f"replay has no stream with {length} rows yet (rows per stream: {filled.tolist()})")
        env = streams[self.rng.integers(len(streams), size=batch)]
        oldest = (self.ptr[env] - filled[env]) % self.size
        offset = self.rng.integers(0, filled[env] - length + 1)  # window start, counted from the oldest row
        n_term = int(batch * terminal_fraction)
        if n_term:
            self._place_over_terminals(env[:n_term], oldest[:n_term], offset[:n_term], length)
        start = oldest + offset
        idx = (start[:, None] + np.arange(length)[None]) % self.size
        out = {key: torch.from_numpy(self.data[key][env[:, None], idx]) for key in _KEYS}
        out["is_first"][:, 0] = True
        obs = out["obs"]
        if obs.dtype == torch.uint8:  # images: floats in [0, 1], stored channels-last (NHWC) per frame
            obs = (obs.permute(0, 1, 3, 4, 2).contiguous().float() / 255.0).permute(0, 1, 4, 2, 3)
        out["obs"] = obs
        if torch.device(device).type == "cuda":  # page-locked host memory: the copies run asynchronously
            return {k: v.pin_memory().to(device, non_blocking=True) for k, v in out.items()}
        return {k: v.to(device) for k, v in out.items()}

    def _place_over_terminals(self, env: np.ndarray, oldest: np.ndarray, offset: np.ndarray, length: int) -> None:
        """Move the windows ``offset`` (in place) so each covers a terminal row of its stream, if any.

        Terminal rows are rare (CartPole's track-edge failures: ~1 row in 1,000 late in a run), so
        a uniform sampler shows the continue head too few of them to learn where episodes end."""
        filled = np.minimum(self.count, self.size)
        for i, (e, old) in enumerate(zip(env, oldest)):
            rows = np.flatnonzero(self.data["is_terminal"][e])
            if len(rows) == 0:
                continue
            age = (rows - old) % self.size  # position counted from the oldest row
            age = age[age < filled[e]]
            if len(age) == 0:
                continue
            where = age[self.rng.integers(len(age))] - self.rng.integers(length)  # terminal at a random slot
            offset[i] = np.clip(where, 0, filled[e] - length)

    @property
    def rows(self) -> int:
        """Rows ever written to each stream (``add`` appends to all streams at once)."""
        return int(self.count[0])

    def _ring(self, first: int, n: int) -> list[tuple[slice, slice]]:
        """Rows ``[first, first + n)`` (counted as written) as at most two (ring slots, rows) slices:
        plain slices copy at memory speed, where fancy indexing of a pixel buffer does not."""
        at = first % self.size
        head = min(n, self.size - at)
        pieces = [(slice(at, at + head), slice(0, head))]
        if n > head:
            pieces.append((slice(0, n - head), slice(head, n)))
        return pieces

    def export_rows(self, start: int) -> dict[str, np.ndarray]:
        """Rows ``[start, rows)`` of every stream in the order written, as far as still held:
        ``{key: [num_envs, k, ...]}`` (views where the rows do not wrap around the ring).
        Incremental checkpoints write only these."""
        begin = max(start, self.rows - self.size, 0)
        pieces = self._ring(begin, self.rows - begin)
        if len(pieces) == 1:
            return {key: self.data[key][:, pieces[0][0]] for key in _KEYS}
        return {key: np.concatenate([self.data[key][:, ring] for ring, _ in pieces], axis=1) for key in _KEYS}

    def import_rows(self, start: int, arrays: dict[str, np.ndarray], end: int) -> None:
        """Put back rows ``[start, start + k)`` exported by :meth:`export_rows` into a buffer that
        will hold ``end`` rows written; rows already overwritten by ``end`` are skipped."""
        k = int(next(iter(arrays.values())).shape[1])
        skip = min(k, max(0, end - self.size - start))  # rows older than the buffer holds at ``end``
        for key in _KEYS:
            arr = np.asarray(arrays[key])
            target = self.data[key]
            if arr.shape[0] != target.shape[0] or arr.shape[2:] != target.shape[2:]:
                raise ValueError(f"replay rows {key} have shape {arr.shape}, incompatible with {target.shape}")
            for ring, rows in self._ring(start + skip, k - skip):
                target[:, ring] = arr[:, skip + rows.start : skip + rows.stop]
        self.count[:] = end
        self.ptr[:] = end % self.size

    def state_dict(self) -> dict[str, Any]:
        """Arrays and pointers (only rows written so far, to keep checkpoints small early on)."""
        used = int(min(self.count.max(), self.size))
        state: dict[str, Any] = {f"data/{k}": v[:, :used] for k, v in self.data.items()}
        state.update(ptr=self.ptr.copy(), count=self.count.copy(), rng=self.rng.bit_generator.state)
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key in _KEYS:
            arr = np.asarray(state[f"data/{key}"])
            target = self.data[key]
            if arr.shape[0] != target.shape[0] or arr.shape[2:] != target.shape[2:] or arr.shape[1] > self.size:
                raise ValueError(f"replay state {key} has shape {arr.shape}, incompatible with {target.shape}")
            target[:, : arr.shape[1]] = arr
        self.ptr = np.asarray(state["ptr"], dtype=np.int64).copy()
        self.count = np.asarray(state["count"], dtype=np.int64).copy()
        self.rng.bit_generator.state = state["rng"]
