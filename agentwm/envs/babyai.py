"""BabyAI adapter: a text observation of what the agent sees, a compact symbolic vector for latent
world models, a mission-aware shaped reward, and transition collection.

BabyAI (``minigrid``) gives the agent a 7x7 egocentric grid and a mission in words ("put the red
ball next to the blue key"). This module turns one such step into

* :attr:`BabyAIStep.text`: the view in words, for LLM proposers and LLM world models
  ("a red ball 2 steps ahead, 1 to the left"), with what the agent carries and remembers;
* :attr:`BabyAIStep.vector`: :data:`VECTOR_DIM` floats for learned latent models (ensemble, RSSM):
  the mission kind, what is carried, where the mission's objects are relative to the agent, and
  which cells around the agent are blocked;
* :attr:`BabyAIStep.shaped_reward`: the env's sparse success plus potential-based shaping
  (Ng, Harada & Russell 1999) on the distance from the cell in front of the agent to the object the
  mission needs next. Shaping by a potential difference leaves the optimal policy unchanged, and
  it is task-general: it reads only the parsed mission and the agent's own observations.

Memory and odometry. The agent sees only its 7x7 cone, so objects behind it vanish from view.
:class:`BabyAIEnv` keeps a map of every cell it has seen, indexed in world coordinates through
the agent's own pose (position and heading, as a robot's odometry would give; no object position
is ever read from the simulator). Remembered objects are described and encoded like visible
ones. The pose is also what BabyAI's location words ("the key on your left") refer to: the
half-plane relative to the agent's pose at the start of the episode.

The usable actions are :data:`ACTIONS` (``left, right, forward, pickup, drop``); ``toggle`` and
``done`` do nothing in the single-room levels this targets, so they are left out of the action
space of the models.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from minigrid.core.constants import IDX_TO_COLOR, IDX_TO_OBJECT, OBJECT_TO_IDX
from torch import Tensor

from agentwm.envs.babyai_mission import Mission, MissionKind, ObjectRef, parse_mission
from agentwm.worldmodels.base import ActionSpec

LEVELS: tuple[str, ...] = ("BabyAI-GoToLocal-v0", "BabyAI-PickupLoc-v0", "BabyAI-PutNextLocal-v0")
"""The single-room BabyAI levels the benchmark runs: go to, pick up (with location words), put next to."""

ACTIONS: tuple[str, ...] = ("turn left", "turn right", "move forward", "pick up", "drop")
"""Action ``i`` in words; ``i`` is also minigrid's action index (0 left .. 4 drop)."""

ACTION_SPEC = ActionSpec("discrete", len(ACTIONS))
"""The action space of BabyAI world models: one-hot rows over :data:`ACTIONS`."""

_KINDS: tuple[MissionKind, ...] = ("goto", "pickup", "putnext")
_OBJECT_TYPES = ("ball", "box", "key", "door")
_SCALE = 8.0
"""Relative positions are divided by this in the vector (an 8x8 room spans at most 7 cells)."""

VECTOR_DIM = 20
"""Length of :attr:`BabyAIStep.vector`; the layout is documented in :func:`encode`."""

_UNKNOWN_POTENTIAL = -1.2
"""The distance term of the potential for an object never seen: as if 12 cells away (an 8x8 room's
farthest seen object is 11 away), so seeing it is worth a little and never more than reaching it."""


# ----------------------------------------------------------------------------------------------
# One observed step


@dataclass(frozen=True)
class SeenObject:
    """An object (or wall) relative to the agent: ``ahead`` cells forward (negative: behind),
    ``right`` cells to the right (negative: left)."""

    type: str
    color: str
    ahead: int
    right: int
    visible: bool

    @property
    def front_distance(self) -> int:
        """Manhattan distance from the cell in front of the agent."""
        return abs(self.ahead - 1) + abs(self.right)


@dataclass
class BabyAIStep:
    """What the agent knows after a reset or a step; built by :class:`BabyAIEnv`.

    Attributes:
        mission: the parsed mission.
        objects: objects seen so far (visible now or remembered), nearest first.
        carrying: ``(type, color)`` of the carried object, or ``None``.
        blocked: whether the cells front, ahead-2, front-left, front-right, left, right are blocked
            (wall or object), in that order.
        front_wall: whether the blocked front cell is a wall.
        walls: nearest visible wall distance ahead, to the left and to the right (``None``: not seen).
        target: the object the mission acts on (the nearest matching one), when seen.
        fixed: for ``putnext``, the object to put the target next to, when seen.
        carrying_target: the carried object is the mission's target.
        env_reward: the environment's reward for the last step (0 after reset).
        shaped_reward: ``success + potential(s') - potential(s)`` (0 after reset); see the module doc.
        potential: the shaping potential of this state.
        success: the mission was completed by the last step.
        done: the episode ended (success or time limit).
        steps: steps taken in the episode.
    """

    mission: Mission
    objects: list[SeenObject]
    carrying: tuple[str, str] | None
    blocked: tuple[bool, ...]
    front_wall: bool
    walls: tuple[int | None, int | None, int | None]
    target: SeenObject | None
    fixed: SeenObject | None
    carrying_target: bool
    env_reward: float = 0.0
    shaped_reward: float = 0.0
    potential: float = 0.0
    success: bool = False
    done: bool = False
    steps: int = 0
    vector: np.ndarray = field(default_factory=lambda: np.zeros(VECTOR_DIM, np.float32))
    text: str = ""

    @property
    def front(self) -> SeenObject | None:
        """The object in the cell right in front of the agent, if any."""
        for obj in self.objects:
            if obj.visible and obj.ahead == 1 and obj.right == 0:
                return obj
        return None


def relative_phrase(ahead: int, right: int) -> str:
    """``(2, -1)`` → ``"2 steps ahead, 1 to the left"``; ``(0, 0)`` → ``"here"``."""
    parts = []
    if ahead:
        unit = "step" if abs(ahead) == 1 else "steps"
        parts.append(f"{abs(ahead)} {unit} {'ahead' if ahead > 0 else 'behind'}")
    if right:
        parts.append(f"{abs(right)} to the {'right' if right > 0 else 'left'}")
    return ", ".join(parts) if parts else "here"


def describe(step: BabyAIStep) -> str:
    """The text observation: mission, carried object, the cell in front, visible objects with their
    relative positions, the nearest walls, and remembered objects now out of view."""
    lines = [f"Mission: {step.mission.text}."]
    lines.append(f"You are carrying a {step.carrying[1]} {step.carrying[0]}." if step.carrying else
                 "You are carrying nothing.")
    front = step.front
    if front is not None:
        lines.append(f"Right in front of you: a {front.color} {front.type}.")
    elif step.front_wall:
        lines.append("Right in front of you: a wall.")
    else:
        lines.append("Right in front of you: an empty cell.")
    visible = [o for o in step.objects if o.visible]
    if visible:
        lines.append("You see: " + "; ".join(
            f"a {o.color} {o.type} {relative_phrase(o.ahead, o.right)}" for o in visible) + ".")
    else:
        lines.append("You see no objects.")
    names = ("ahead", "to the left", "to the right")
    walls = [f"{d} {'step' if d == 1 else 'steps'} {n}" for d, n in zip(step.walls, names) if d is not None]
    if walls:
        lines.append("Nearest walls: " + ", ".join(walls) + ".")
    remembered = [o for o in step.objects if not o.visible]
    if remembered:
        lines.append("You remember (out of view): " + "; ".join(
            f"a {o.color} {o.type} {relative_phrase(o.ahead, o.right)}" for o in remembered) + ".")
    return "\n".join(lines)


def encode(step: BabyAIStep) -> np.ndarray:
    """The symbolic vector ``[VECTOR_DIM]`` a latent world model learns over.

    Layout: ``0-2`` mission kind one-hot (goto, pickup, putnext); ``3`` carrying the target;
    ``4`` carrying something else; ``5-7`` target seen, ahead/8, right/8 (``0, 0`` when carried);
    ``8-10`` the same for the put-next-to object; ``11`` front cell is a wall; ``12-17`` blocked
    flags of front, ahead-2, front-left, front-right, left, right; ``18`` the target is right in
    front; ``19`` the put-next-to object is next to the front cell. Every entry is what the agent
    observed or remembers, so the dynamics of it are learnable from transitions alone.

    The last two flags are functions of the positions, but spelling them out matters: without
    them the ensemble blurred "pick up succeeds" over every object in front (it predicted picking
    up a wrong object as 59% likely to grab the target, and the planner looped pick-up/drop).
    """
    v = np.zeros(VECTOR_DIM, np.float32)
    v[_KINDS.index(step.mission.kind)] = 1.0
    v[3] = float(step.carrying_target)
    v[4] = float(step.carrying is not None and not step.carrying_target)
    if step.carrying_target:
        v[5:8] = (1.0, 0.0, 0.0)
    elif step.target is not None:
        v[5:8] = (1.0, step.target.ahead / _SCALE, step.target.right / _SCALE)
    if step.fixed is not None:
        v[8:11] = (1.0, step.fixed.ahead / _SCALE, step.fixed.right / _SCALE)
    v[11] = float(step.front_wall)
    v[12:18] = np.asarray(step.blocked, np.float32)
    v[18] = float(step.target is not None and not step.carrying_target and (step.target.ahead, step.target.right) == (1, 0))
    v[19] = float(step.fixed is not None and step.fixed.front_distance == 1)
    return v


def potential(step: BabyAIStep) -> float:
    """Shaping potential: higher the closer the agent is to finishing the mission.

    ``goto``/``pickup``: minus the distance from the front cell to the target (/10). ``putnext``:
    before holding the target, ``-1.5`` minus that distance; while holding it, minus how far the
    front cell is from being next to the fixed object. Holding a wrong object costs ``0.5``; an
    object never seen counts as :data:`_UNKNOWN_POTENTIAL` (as if 12 cells away, beyond any seen one).
    """
    wrong = 0.5 if (step.carrying is not None and not step.carrying_target) else 0.0
    if step.mission.kind == "putnext" and step.carrying_target:
        if step.fixed is None:
            return _UNKNOWN_POTENTIAL
        return -abs(step.fixed.front_distance - 1) / 10.0
    base = -1.5 if step.mission.kind == "putnext" else 0.0
    distance = _UNKNOWN_POTENTIAL if step.target is None else -step.target.front_distance / 10.0
    return base + distance - wrong


# ----------------------------------------------------------------------------------------------
# The environment adapter


class BabyAIEnv:
    """A BabyAI level with text and vector observations, memory and shaped reward.

    Args:
        level: a gymnasium id of a single-room BabyAI level (see :data:`LEVELS`).
        max_steps: cap on episode length; the level's own limit when ``None``.

    Example:
        >>> env = BabyAIEnv("BabyAI-GoToLocal-v0")
        >>> step = env.reset(seed=0)
        >>> print(step.text)
        >>> step = env.step(2)          # move forward
    """

    def __init__(self, level: str, max_steps: int | None = None) -> None:
        if not isinstance(level, str) or not level.startswith("BabyAI-"):
            raise ValueError(f"level must be a BabyAI gymnasium id such as {LEVELS[0]!r}, got {level!r}")
        import minigrid  # noqa: F401  (registers the BabyAI ids with gymnasium)

        kwargs: dict[str, Any] = {} if max_steps is None else {"max_steps": int(max_steps)}
        try:
            self.env = gym.make(level, **kwargs)
        except gym.error.Error as err:
            raise ValueError(f"unknown BabyAI level {level!r}: {err}") from err
        self.level = level
        self._memory: dict[tuple[int, int], tuple[str, str]] = {}
        self._start_pose: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self._mission: Mission | None = None
        self._last: BabyAIStep | None = None

    @property
    def _u(self) -> Any:
        """The underlying minigrid env (pose, carried object, step count)."""
        return self.env.unwrapped

    @property
    def max_steps(self) -> int:
        return int(self._u.max_steps)

    def reset(self, seed: int | None = None) -> BabyAIStep:
        """Start an episode (minigrid's level generator prints its rejected samples; silenced)."""
        with contextlib.redirect_stdout(io.StringIO()):
            obs, _ = self.env.reset(seed=seed)
        self._mission = parse_mission(str(obs["mission"]))
        self._memory = {}
        pos, dir_vec, right_vec = self._pose()
        self._start_pose = (pos, dir_vec, right_vec)
        self._last = self._build(obs, reward=0.0, terminated=False, truncated=False, previous=None)
        return self._last

    def step(self, action: int) -> BabyAIStep:
        """Take action ``action`` (an index into :data:`ACTIONS`)."""
        if self._last is None:
            raise RuntimeError("call reset() before step()")
        if self._last.done:
            raise RuntimeError("the episode is over; call reset()")
        if isinstance(action, bool) or not isinstance(action, (int, np.integer)) or not 0 <= action < len(ACTIONS):
            raise ValueError(f"action must be an int in [0, {len(ACTIONS)}) ({', '.join(ACTIONS)}), got {action!r}")
        obs, reward, terminated, truncated, _ = self.env.step(int(action))
        self._last = self._build(obs, float(reward), bool(terminated), bool(truncated), self._last)
        return self._last

    def close(self) -> None:
        self.env.close()

    # -- internals ------------------------------------------------------------------------------

    def _pose(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        u = self._u
        return np.asarray(u.agent_pos), np.asarray(u.dir_vec), np.asarray(u.right_vec)

    def _build(
        self, obs: dict[str, Any], reward: float, terminated: bool, truncated: bool, previous: BabyAIStep | None
    ) -> BabyAIStep:
        assert self._mission is not None and self._start_pose is not None
        pos, fwd, right = self._pose()
        image = np.asarray(obs["image"])
        # 1. fold the visible cells into the world-frame memory (image[3 + right, 6 - ahead])
        visible: set[tuple[int, int]] = set()
        walls: list[int | None] = [None, None, None]
        blocked_rel: set[tuple[int, int]] = set()
        front_wall = False
        for i in range(image.shape[0]):
            for j in range(image.shape[1]):
                code = int(image[i, j, 0])
                if code == OBJECT_TO_IDX["unseen"]:
                    continue
                a, r = image.shape[1] - 1 - j, i - image.shape[0] // 2
                if (a, r) == (0, 0):
                    continue  # the agent's own cell shows what it carries, not the floor
                cell = tuple(int(x) for x in pos + a * fwd + r * right)
                name = IDX_TO_OBJECT[code]
                if name in _OBJECT_TYPES:
                    self._memory[(cell[0], cell[1])] = (name, IDX_TO_COLOR[int(image[i, j, 1])])
                    visible.add((cell[0], cell[1]))
                else:
                    self._memory.pop((cell[0], cell[1]), None)
                if name in ("wall", "lava") or name in _OBJECT_TYPES:
                    blocked_rel.add((a, r))
                if name == "wall":
                    if r == 0 and a > 0 and (walls[0] is None or a < walls[0]):
                        walls[0] = a
                    if a == 0 and r < 0 and (walls[1] is None or -r < walls[1]):
                        walls[1] = -r
                    if a == 0 and r > 0 and (walls[2] is None or r < walls[2]):
                        walls[2] = r
                    if (a, r) == (1, 0):
                        front_wall = True
        # 2. every remembered object relative to the current pose, nearest first
        objects = []
        for (x, y), (otype, color) in self._memory.items():
            v = np.array([x, y]) - pos
            objects.append(SeenObject(otype, color, int(v @ fwd), int(v @ right), (x, y) in visible))
        objects.sort(key=lambda o: (abs(o.ahead) + abs(o.right), -o.ahead, o.right))
        carried = self._u.carrying
        carrying = (str(carried.type), str(carried.color)) if carried is not None else None
        mission = self._mission
        target = self._resolve(mission.target, objects, pos, fwd, right)
        fixed = self._resolve(mission.fixed, objects, pos, fwd, right) if mission.fixed is not None else None
        carrying_target = carrying is not None and mission.target.matches(*carrying)
        offsets = ((1, 0), (2, 0), (1, -1), (1, 1), (0, -1), (0, 1))
        step = BabyAIStep(
            mission=mission,
            objects=objects,
            carrying=carrying,
            blocked=tuple(o in blocked_rel for o in offsets),
            front_wall=front_wall,
            walls=(walls[0], walls[1], walls[2]),
            target=target,
            fixed=fixed,
            carrying_target=carrying_target,
            env_reward=reward,
            success=reward > 0,
            done=terminated or truncated,
            steps=int(self._u.step_count),
        )
        step.potential = 0.0 if step.success else potential(step)
        if previous is not None:
            step.shaped_reward = float(step.success) + step.potential - previous.potential
        step.vector = encode(step)
        step.text = describe(step)
        return step

    def _resolve(
        self, ref: ObjectRef | None, objects: Sequence[SeenObject], pos: np.ndarray, fwd: np.ndarray,
        right: np.ndarray,
    ) -> SeenObject | None:
        """The nearest seen object matching ``ref``, honouring location words relative to the
        episode's starting pose as BabyAI defines them.

        Nearest to the agent's cell, not to its front cell: the agent's distance does not change
        when it turns, so turning never swaps which of two matching objects is the target (that
        swap read as progress to a planner and made it turn in place).
        """
        if ref is None:
            return None
        assert self._start_pose is not None
        start, start_fwd, start_right = self._start_pose
        best: SeenObject | None = None
        for obj in objects:
            if not ref.matches(obj.type, obj.color):
                continue
            if ref.loc is not None:
                world = pos + obj.ahead * fwd + obj.right * right - start
                along, side = float(world @ start_fwd), float(world @ start_right)
                ok = {"front": along > 0, "behind": along < 0, "left": side < 0, "right": side > 0}[ref.loc]
                if not ok:
                    continue
            key = (abs(obj.ahead) + abs(obj.right), obj.front_distance)
            if best is None or key < (abs(best.ahead) + abs(best.right), best.front_distance):
                best = obj
        return best


# ----------------------------------------------------------------------------------------------
# Transitions for learning a world model


StepPolicy = Callable[[BabyAIStep, np.random.Generator], int]
"""Picks an action index for a step; the generator makes it reproducible."""


def collect_transitions(
    levels: Sequence[str],
    n: int,
    policy: StepPolicy | None = None,
    *,
    epsilon: float = 0.3,
    seed: int = 0,
) -> dict[str, Tensor]:
    """Collect ``n`` transitions, spread evenly over ``levels``, in the format
    :meth:`agentwm.worldmodels.ensemble.EnsembleDynamics.fit` takes.

    Each action comes from ``policy`` (uniform random when ``None``) and is replaced by a uniform
    random action with probability ``epsilon``, so the data covers both purposeful behaviour near
    the mission's objects and the off-policy moves a planner will ask the model about.

    Returns:
        ``obs [n, VECTOR_DIM]``, ``action [n, 5]`` one-hot, ``next_obs``, ``reward [n]`` (the
        shaped reward), ``continue [n]`` (0 on success, which ends the episode; a time limit is
        not terminal) and ``success [n]``.
    """
    if n < 1 or not levels:
        raise ValueError(f"need n >= 1 and at least one level, got n={n}, levels={list(levels)}")
    if not 0.0 <= epsilon <= 1.0:
        raise ValueError(f"epsilon must lie in [0, 1], got {epsilon}")
    rng = np.random.default_rng(seed)
    rows: dict[str, list[Any]] = {k: [] for k in ("obs", "action", "next_obs", "reward", "continue", "success")}
    eye = np.eye(len(ACTIONS), dtype=np.float32)
    per_level = [n // len(levels) + (1 if i < n % len(levels) else 0) for i in range(len(levels))]
    episode_seed = seed * 100_003
    for level, count in zip(levels, per_level):
        env = BabyAIEnv(level)
        step = env.reset(seed=episode_seed)
        for _ in range(count):
            if policy is None or rng.random() < epsilon:
                action = int(rng.integers(len(ACTIONS)))
            else:
                action = int(policy(step, rng))
            nxt = env.step(action)
            rows["obs"].append(step.vector)
            rows["action"].append(eye[action])
            rows["next_obs"].append(nxt.vector)
            rows["reward"].append(nxt.shaped_reward)
            rows["continue"].append(0.0 if nxt.success else 1.0)
            rows["success"].append(float(nxt.success))
            step = nxt
            if step.done:
                episode_seed += 1
                step = env.reset(seed=episode_seed)
        env.close()
        episode_seed += 1
    return {k: torch.as_tensor(np.asarray(v), dtype=torch.float32) for k, v in rows.items()}
