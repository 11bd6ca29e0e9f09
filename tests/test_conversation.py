"""Follow-up questions: the conversation turns "and for part-time staff?" into a question that
retrieves the right passage, with a model's condense prompt or, without one, from the previous
question's terms; and `ragkb chat` keeps the conversation across lines of stdin."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ollama_server import OllamaServer
from ragkb.answer import Answerer
from ragkb.conversation import CONDENSE_PROMPT, check_history, combine, needs_context
from ragkb.errors import BadInput
from ragkb.llm import resolve_backend

FIRST = "How many vacation days do full-time employees get?"
FOLLOW_UP = "and for part-time staff?"

POLICIES = {
    "vacation-full-time.md": "# Vacation\n\nFull-time employees receive 25 days of paid vacation per year.\n",
    "vacation-part-time.md": "# Leave for part-time contracts\n\nPart-time staff receive vacation days pro rata: "
    "12 days per year on a half-time contract.\n",
    "part-time-staff.md": "# Part-time staff\n\nPart-time staff are welcome at the staff party. Part-time staff "
    "get a parking permit for the days they work. Part-time staff can join the pension scheme.\n",
    "canteen.md": "# Canteen\n\nThe canteen serves lasagne every Thursday at noon.\n",
}


@pytest.fixture
def hr(settings, runtimes, tmp_path):
    folder = tmp_path / "hr"
    folder.mkdir()
    for name, text in POLICIES.items():
        (folder / name).write_text(text, encoding="utf-8")
    runtime = runtimes.runtime(settings)
    from ragkb.ingest import Ingestor

    assert Ingestor(runtime).run([folder]).added == len(POLICIES)
    return settings, runtime


def _history(answer: str = "Full-time employees receive 25 days of paid vacation per year [1].") -> list[dict[str, str]]:
    return [{"role": "user", "content": FIRST}, {"role": "assistant", "content": answer}]


def _answerer(settings, runtime, **update) -> Answerer:
    settings = settings.model_copy(update={"llm_backend": "extractive", **update})
    return Answerer(runtime.derive(settings, generator=resolve_backend(settings)))


def test_follow_up_finds_the_right_passage_only_with_history(hr):
    settings, runtime = hr
    answerer = _answerer(settings, runtime)

    alone = answerer.ask(FOLLOW_UP)
    assert not alone.passages[0].source.endswith("vacation-part-time.md")
    assert alone.standalone_question == FOLLOW_UP

    followed = answerer.ask(FOLLOW_UP, history=_history())
    assert followed.passages[0].source.endswith("vacation-part-time.md")
    assert followed.standalone_question == "How many vacation days do part-time staff get?"
    assert followed.question == FOLLOW_UP
    assert "12 days per year" in followed.answer and followed.citations[0].source.endswith("vacation-part-time.md")
    assert "condense" in followed.timings_ms
    assert json.loads(json.dumps(followed.to_dict()))["standalone_question"] == followed.standalone_question


def test_follow_up_is_condensed_by_an_instruction_tuned_model(hr):
    settings, runtime = hr

    def model(messages):
        if messages[0]["content"] == CONDENSE_PROMPT:
            return "Standalone question: How many vacation days do part-time staff get?"
        prompt = messages[-1]["content"]
        n = prompt.split("(vacation-part-time.md", 1)[0].rsplit("[", 1)[1].rstrip("] ")
        return f"Part-time staff receive vacation days pro rata: 12 days per year on a half-time contract [{n}]."

    with OllamaServer(model) as server:
        answerer = _answerer(settings, runtime, llm_backend="ollama", ollama_url=server.url)
        result = answerer.ask(FOLLOW_UP, history=_history())
        condense, answer = server.requests_to("/api/chat")
    sent = condense.body["messages"][-1]["content"]
    assert FIRST in sent and "25 days of paid vacation" in sent and FOLLOW_UP in sent
    assert result.standalone_question == "How many vacation days do part-time staff get?"
    assert "How many vacation days do part-time staff get?" in answer.body["messages"][-1]["content"]
    assert result.passages[0].source.endswith("vacation-part-time.md")
    assert not result.flagged and result.citations[0].source.endswith("vacation-part-time.md")


def test_a_model_that_does_not_rewrite_falls_back_to_the_terms(hr):
    settings, runtime = hr
    with OllamaServer(lambda messages: "I don't know based on the available documents.") as server:
        result = _answerer(settings, runtime, llm_backend="ollama", ollama_url=server.url).ask(
            FOLLOW_UP, history=_history()
        )
    assert result.standalone_question == "How many vacation days do part-time staff get?"
    assert any("did not rewrite the follow-up" in w for w in result.warnings)


def test_combining_without_a_model(embedder):
    assert combine(FOLLOW_UP, FIRST, embedder) == "How many vacation days do part-time staff get?"
    assert combine("and with advertisers?", "Does the company share data with third parties?", embedder) == (
        "Does the company share data with advertisers?"
    )
    assert combine("How do I request them?", FIRST, embedder) == "How do I request them? (vacation days full-time employees)"
    standalone = "Where is the canteen?"
    assert not needs_context(standalone) and combine(standalone, FIRST, embedder) == standalone


def test_history_is_checked():
    assert check_history(None) == []
    long = [{"role": "user", "content": str(i)} for i in range(20)]
    assert len(check_history(long)) == 8
    for bad in ([{"role": "system", "content": "x"}], [{"role": "user", "content": 3}], ["hello"],
                [{"role": "user", "content": "x", "extra": 1}]):  # fmt: skip
        with pytest.raises(BadInput):
            check_history(bad)


def test_ragkb_chat_keeps_the_conversation(hr, monkeypatch, tmp_path: Path):
    settings, runtime = hr
    runtime.close()  # the chat command opens the knowledge base itself
    from ragkb.cli import app

    monkeypatch.setenv("RAGKB_HOME", str(settings.home))
    monkeypatch.setenv("RAGKB_LLM_BACKEND", "extractive")
    result = CliRunner().invoke(app, ["chat"], input=f"{FIRST}\n{FOLLOW_UP}\n/reset\n{FOLLOW_UP}\n/quit\n")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "25 days of paid vacation" in out and "12 days per year" in out
    assert "searched for: How many vacation days do part-time staff get?" in out
    # after /reset the follow-up stands alone again: no rewriting
    assert out.count("searched for:") == 1
