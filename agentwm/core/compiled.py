"""``torch.compile`` per call site: each compiled callable gets a dynamo cache of its own.

Dynamo keys its cache by the Python code object it compiles. ``module.compile()`` on several
modules of one class (every ``MLP``) puts all of them in the cache of ``MLP.forward``, so a second
module, a grad-mode change or a new batch shape each count as a recompile of that one function, and
past ``torch._dynamo.config.recompile_limit`` (8) the next variant silently runs eagerly: a Dreamer
run on vector observations compiled two variants while acting and hit the limit within its first
update, which adds eight. :func:`compile_call` compiles a fresh copy of a one-line caller, named
after its ``role``, so each role (one module, one grad mode, one shape in a training step) compiles
once and is never recompiled; the module itself stays eager for its other callers (acting,
evaluation), whose batch shapes vary. :class:`CompileWatch` counts compiles and recompiles.

Example:
    >>> net = torch.nn.Linear(4, 2)
    >>> train_net = compile_call(net, "train_net")  # compiles on its first call
    >>> train_net.role
    'train_net'
"""

from __future__ import annotations

import sys
import types
from collections.abc import Callable
from typing import Any, final

import torch


def _call(fn: Callable[..., Any], *args: Any) -> Any:
    return fn(*args)


class CompiledCall:
    """``fn(*args)`` run through ``torch.compile(dynamic=False)`` under a dynamo cache of its own."""

    def __init__(self, fn: Callable[..., Any], role: str) -> None:
        if not role.isidentifier():
            raise ValueError(f"role must be a Python identifier (it names the compiled frame), got {role!r}")
        code = _call.__code__.replace(co_name=role)  # a new code object: a cache of its own
        if sys.version_info >= (3, 11):
            code = code.replace(co_qualname=role)
        self.role = role
        self.fn = fn
        self._compiled = torch.compile(types.FunctionType(code, _call.__globals__, role), dynamic=False)

    def __call__(self, *args: Any) -> Any:
        return self._compiled(self.fn, *args)


def compile_call(fn: Callable[..., Any], role: str) -> CompiledCall:
    """``fn`` (a module or function) compiled for one call site named ``role``; see the module docstring."""
    return CompiledCall(fn, role)


@final
class CompileWatch:
    """Dynamo's compiles while the ``with`` block runs: ``compiles`` counts compiled Python frames,
    ``recompiles`` lists each recompile as ``"function: first guard that failed"`` (a new shape, grad
    mode, dtype or module reaching an already compiled function), as ``TORCH_LOGS=recompiles`` does."""

    def __init__(self) -> None:
        self.compiles = 0
        self.recompiles: list[str] = []
        self._seen: set[int] = set()

    def __enter__(self) -> CompileWatch:
        from torch._dynamo.utils import get_compilation_metrics

        self._seen = {id(m) for m in get_compilation_metrics()}
        return self

    def __exit__(self, *exc: object) -> None:
        from torch._dynamo.utils import get_compilation_metrics

        # Entries without a function name are backward graphs, compiled at a frame's first backward.
        new = [m for m in get_compilation_metrics() if id(m) not in self._seen and m.co_name]
        self.compiles += len(new)
        for m in new:
            if m.recompile_reason:
                self.recompiles.append(f"{m.co_name}: {m.recompile_reason.splitlines()[0].strip()}")
