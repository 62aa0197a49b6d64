"""Exact env state as data (no pickle): the plain attributes of every wrapper layer of in-process envs.

Classic-control envs (CartPole, Pendulum, ...) keep their whole state in numbers, arrays and a numpy
``Generator``; so do gymnasium's standard wrappers (step counters, order flags). Those attributes are
captured as a JSON-and-arrays tree and put back into freshly built envs, so a resumed run continues
the very episodes it was in. Envs holding anything else (MuJoCo physics, a renderer) are not
captured: the resumed run starts fresh episodes instead. Restoring only sets attributes the fresh env
already has, with values of the same kind, so a checkpoint cannot plant objects or code.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

_STATIC = {"_saved_kwargs", "spec", "_cached_spec", "metadata", "_metadata", "render_mode"}
_SCALARS = (bool, int, float, str, type(None))


class _Unsupported(Exception):
    pass


def _value(v: Any) -> Any:
    """A data copy of an attribute value; raises :class:`_Unsupported` for anything else."""
    if isinstance(v, _SCALARS):
        return v
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        if v.dtype.kind not in "biuf":
            raise _Unsupported
        return v.copy()
    if isinstance(v, np.random.Generator):
        return {"__generator__": v.bit_generator.state}
    if isinstance(v, (list, tuple)):
        items = [_value(x) for x in v]
        return items if isinstance(v, list) else tuple(items)
    if isinstance(v, dict) and all(isinstance(k, str) and not k.startswith("__") for k in v):
        return {k: _value(x) for k, x in v.items()}  # e.g. a step's info dict
    raise _Unsupported


def _layers(env: gym.Env[Any, Any]) -> list[Any]:
    chain: list[Any] = [env]
    while isinstance(chain[-1], gym.Wrapper):
        chain.append(chain[-1].env)
    return chain


def capture(envs: gym.vector.VectorEnv[Any, Any, Any]) -> dict[str, Any] | None:
    """The sub-envs' state as data, or ``None`` when some attribute is not plain data (or the envs
    run in worker processes)."""
    if not isinstance(envs, gym.vector.SyncVectorEnv):
        return None
    out = []
    try:
        for env in envs.envs:
            layers = []
            for layer in _layers(env):
                attrs = {}
                for key, value in vars(layer).items():
                    if key == "env" or key in _STATIC or isinstance(value, (gym.Space, gym.Env)):
                        continue
                    attrs[key] = _value(value)
                layers.append({"type": type(layer).__name__, "attrs": attrs})
            out.append(layers)
    except _Unsupported:
        return None
    return {"envs": out, "autoreset": np.asarray(envs._autoreset_envs, dtype=bool).copy()}


def _same_kind(old: Any, new: Any) -> bool:
    if old is None or new is None:
        return True
    if isinstance(old, np.random.Generator):
        return isinstance(new, dict) and "__generator__" in new
    if isinstance(old, np.ndarray) or isinstance(new, np.ndarray):
        return isinstance(old, (np.ndarray, list, tuple)) and isinstance(new, (np.ndarray, list, tuple))
    if isinstance(old, (bool, int, float, np.generic)):
        return isinstance(new, (bool, int, float))
    return type(old) is type(new) or (isinstance(old, (list, tuple)) and isinstance(new, (list, tuple)))


def restore(envs: gym.vector.SyncVectorEnv, saved: dict[str, Any]) -> None:
    """Put state from :func:`capture` into freshly built envs; ``ValueError`` when it does not fit."""
    if len(saved["envs"]) != len(envs.envs):
        raise ValueError(f"checkpoint has {len(saved['envs'])} envs, the run has {len(envs.envs)}")
    for env, layers in zip(envs.envs, saved["envs"]):
        chain = _layers(env)
        if [type(x).__name__ for x in chain] != [x["type"] for x in layers]:
            raise ValueError("the checkpoint's env wrappers differ from this run's")
        for layer, data in zip(chain, layers):
            for key, value in data["attrs"].items():
                if not hasattr(layer, key) or key.startswith("__"):
                    raise ValueError(f"the checkpoint sets an unknown env attribute {key!r}")
                old = getattr(layer, key)
                if not _same_kind(old, value):
                    raise ValueError(f"the checkpoint's env attribute {key!r} has another kind of value")
                if isinstance(value, dict) and "__generator__" in value:
                    rng = old if isinstance(old, np.random.Generator) else np.random.default_rng()
                    rng.bit_generator.state = value["__generator__"]
                    value = rng
                elif isinstance(old, np.ndarray) and not isinstance(value, np.ndarray):
                    value = np.asarray(value, dtype=old.dtype)
                setattr(layer, key, value)
    envs._autoreset_envs = np.asarray(saved["autoreset"], dtype=bool).copy()
