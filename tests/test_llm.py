"""Generation backends against servers that speak the real protocols on loopback.

Ollama and an OpenAI-compatible server cannot run here, so loopback servers speaking their wire
formats stand in at the process boundary; the official `ollama` client and httpx run unchanged.
llama.cpp runs for real (the model load is in the slow tests only).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from ollama_server import (  # noqa: F401 - ollama_server_fixture provides the fixture
    DEFAULT_MODEL,
    JSONHandler,
    LoopbackServer,
    OllamaServer,
    Received,
    ollama_server_fixture,
)
from openai_server import OpenAIServer
from pydantic import SecretStr

from ragkb.config import Settings
from ragkb.llm import LLMError, backend_report, generator_kind, resolve_backend
from ragkb.llm.choice import EXTRACTIVE
from ragkb.weights import gguf_choice

REPLY = "Employees receive 25 days of paid vacation per year [1]."
SYSTEM = "Answer from the passages only and cite them as [n]."
USER = (
    "Passages:\n\n[1] (handbook.pdf, page 3)\nEmployees receive 25 days of paid vacation per year.\n\n"
    "Question: How many vacation days do employees get?\nAnswer with citations like [1]:"
)


@pytest.fixture(scope="module")
def closed_url() -> str:
    """A loopback port nothing listens on: connecting is refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def model_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One RAGKB_HOME for the module, so the packaged GGUF is assembled once, not per test."""
    return tmp_path_factory.mktemp("ragkb-home")


def test_ollama_streams_pieces_through_official_client(ollama_server: OllamaServer, tmp_path: Path) -> None:
    ollama_server.responder = lambda messages: REPLY
    settings = Settings(
        home=tmp_path,
        llm_backend="ollama",
        ollama_url=ollama_server.url,
        llm_model=DEFAULT_MODEL,
        max_answer_tokens=123,
    )
    generator = resolve_backend(settings)

    streamed = list(generator.stream(SYSTEM, USER))

    assert generator.name == f"ollama:{DEFAULT_MODEL}"
    assert len(streamed) > 3
    assert "".join(streamed) == REPLY
    (request,) = ollama_server.requests_to("/api/chat")
    assert request.body["model"] == DEFAULT_MODEL
    assert request.body["messages"] == [{"role": "system", "content": SYSTEM}, {"role": "user", "content": USER}]
    assert request.body["stream"] is True
    assert request.body["options"] == {"temperature": 0, "num_predict": 123}


def test_ollama_missing_model_says_how_to_pull_it(tmp_path: Path) -> None:
    with OllamaServer(models=["qwen2.5:0.5b"]) as server:
        settings = Settings(home=tmp_path, llm_backend="ollama", ollama_url=server.url, llm_model="llama3.2:3b")
        with pytest.raises(LLMError) as caught:
            list(resolve_backend(settings).stream(SYSTEM, USER))
    assert str(caught.value) == f"Ollama at {server.url} has no model 'llama3.2:3b': run `ollama pull llama3.2:3b`"


def test_ollama_unreachable_names_the_url(closed_url: str, tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, llm_backend="ollama", ollama_url=closed_url)
    with pytest.raises(LLMError) as caught:
        list(resolve_backend(settings).stream(SYSTEM, USER))
    assert str(caught.value) == (
        f"cannot reach Ollama at {closed_url} (connection refused); start it or set RAGKB_OLLAMA_URL"
    )


def test_ollama_server_error_message_reaches_the_user(ollama_server: OllamaServer, tmp_path: Path) -> None:
    def crash(messages: list[dict[str, str]]) -> str:
        raise RuntimeError("llama runner process has terminated: signal: killed")

    ollama_server.responder = crash
    settings = Settings(home=tmp_path, llm_backend="ollama", ollama_url=ollama_server.url)
    with pytest.raises(LLMError, match=r"failed \(HTTP 500\): llama runner process has terminated"):
        list(resolve_backend(settings).stream(SYSTEM, USER))


def test_ollama_error_in_the_middle_of_a_stream(ollama_server: OllamaServer, tmp_path: Path) -> None:
    def runner_dies(messages: list[dict[str, str]]) -> Iterator[str]:
        yield "Employees "
        raise RuntimeError("an error was encountered while running the model")

    ollama_server.responder = runner_dies
    settings = Settings(home=tmp_path, llm_backend="ollama", ollama_url=ollama_server.url)
    streamed: list[str] = []
    with pytest.raises(LLMError) as caught:
        streamed.extend(resolve_backend(settings).stream(SYSTEM, USER))
    assert streamed == ["Employees "]
    assert (
        str(caught.value) == f"Ollama at {ollama_server.url} failed: an error was encountered while running the model"
    )


def test_ollama_silent_past_the_timeout(ollama_server: OllamaServer, tmp_path: Path) -> None:
    def stalls(messages: list[dict[str, str]]) -> Iterator[str]:
        time.sleep(1.0)
        yield "too late"

    ollama_server.responder = stalls
    settings = Settings(home=tmp_path, llm_backend="ollama", ollama_url=ollama_server.url, llm_timeout_s=0.2)
    with pytest.raises(LLMError, match=r"sent nothing for 0.2 s; raise RAGKB_LLM_TIMEOUT_S"):
        list(resolve_backend(settings).stream(SYSTEM, USER))


def test_ollama_url_pointing_at_an_openai_server_says_so(tmp_path: Path) -> None:
    with OpenAIServer() as server:
        settings = Settings(home=tmp_path, llm_backend="ollama", ollama_url=server.url)
        with pytest.raises(LLMError) as caught:
            list(resolve_backend(settings).stream(SYSTEM, USER))
    assert str(caught.value).startswith(f"{server.url} has no Ollama API (HTTP 404 on /api/chat")
    assert "set RAGKB_LLM_BACKEND=openai and RAGKB_OPENAI_URL" in str(caught.value)


class _WebPage(LoopbackServer):
    def handle(self, handler: JSONHandler, request: Received) -> None:
        handler.send_text(200, "<html><body>Router admin</body></html>")


def test_ollama_url_pointing_at_some_web_page(tmp_path: Path) -> None:
    with _WebPage() as server:
        settings = Settings(home=tmp_path, llm_backend="ollama", ollama_url=server.url)
        with pytest.raises(LLMError, match=f"^{server.url} does not answer like Ollama"):
            list(resolve_backend(settings).stream(SYSTEM, USER))
        assert backend_report(settings) == {
            "backend": "ollama:llama3.2:3b",
            "reason": "configured (RAGKB_LLM_BACKEND=ollama): "
            f"{server.url} does not answer like Ollama (no JSON from /api/tags); check RAGKB_OLLAMA_URL",
        }


def test_openai_compatible_server_streams_sse(tmp_path: Path) -> None:
    with OpenAIServer(lambda messages: REPLY, api_key="s3cret") as server:
        settings = Settings(
            home=tmp_path,
            llm_backend="openai",
            openai_url=f"{server.url}/v1",  # the base URL as OpenAI SDKs spell it
            openai_api_key=SecretStr("s3cret"),
            llm_model="gemma-3-270m",
            max_answer_tokens=77,
        )
        generator = resolve_backend(settings)
        streamed = list(generator.stream(SYSTEM, USER))

    assert generator.name == f"openai:gemma-3-270m@{server.url}/v1"
    assert len(streamed) > 3
    assert "".join(streamed) == REPLY
    (request,) = server.requests_to("/v1/chat/completions")
    assert request.headers["authorization"] == "Bearer s3cret"
    assert request.body["model"] == "gemma-3-270m"
    assert request.body["stream"] is True
    assert request.body["max_tokens"] == 77
    assert request.body["messages"] == [{"role": "system", "content": SYSTEM}, {"role": "user", "content": USER}]


def test_openai_wrong_key_is_reported_without_revealing_it(tmp_path: Path) -> None:
    with OpenAIServer(api_key="right-key") as server:
        settings = Settings(
            home=tmp_path, llm_backend="openai", openai_url=server.url, openai_api_key=SecretStr("wrong-key")
        )
        with pytest.raises(LLMError) as caught:
            list(resolve_backend(settings).stream(SYSTEM, USER))
        report = backend_report(settings)
    assert "HTTP 401: Invalid API Key" in str(caught.value)
    assert "RAGKB_OPENAI_API_KEY" in str(caught.value)
    assert "wrong-key" not in str(caught.value) + str(report)


def test_openai_without_url_says_which_setting(tmp_path: Path) -> None:
    generator = resolve_backend(Settings(home=tmp_path, llm_backend="openai", openai_url=None))
    with pytest.raises(LLMError, match="set RAGKB_OPENAI_URL"):
        list(generator.stream(SYSTEM, USER))


def test_none_backend_generates_nothing(tmp_path: Path) -> None:
    generator = resolve_backend(Settings(home=tmp_path, llm_backend="none"))
    assert generator.name == "none"
    assert list(generator.stream(SYSTEM, USER)) == []


def test_auto_picks_ollama_when_it_serves_the_model(ollama_server: OllamaServer, tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, llm_backend="auto", ollama_url=ollama_server.url, llm_model="llama3.2:3b")

    assert resolve_backend(settings).name == "ollama:llama3.2:3b"
    assert backend_report(settings) == {
        "backend": "ollama:llama3.2:3b",
        "reason": f"Ollama at {ollama_server.url} serves llama3.2:3b",
    }


def test_auto_matches_an_untagged_model_to_latest(tmp_path: Path) -> None:
    with OllamaServer(models=["mistral:latest"]) as server:
        settings = Settings(home=tmp_path, llm_backend="auto", ollama_url=server.url, llm_model="mistral")
        assert resolve_backend(settings).name == "ollama:mistral"


def test_a_bare_host_port_means_http(ollama_server: OllamaServer, tmp_path: Path) -> None:
    bare = ollama_server.url.removeprefix("http://")
    settings = Settings(home=tmp_path, llm_backend="auto", ollama_url=bare)
    assert backend_report(settings)["reason"] == f"Ollama at {ollama_server.url} serves llama3.2:3b"


def test_auto_falls_back_to_extractive_when_ollama_is_unreachable(closed_url: str, model_home: Path) -> None:
    settings = Settings(home=model_home, llm_backend="auto", ollama_url=closed_url)

    started = time.perf_counter()
    generator = resolve_backend(settings)
    report = backend_report(settings)

    assert generator.name == "extractive"
    assert report["backend"] == generator.name
    assert report["reason"] == (
        f"cannot reach Ollama at {closed_url} (connection refused); start it or set RAGKB_OLLAMA_URL; {EXTRACTIVE}"
    )
    assert generator.reason == report["reason"]  # shown with every answer
    assert time.perf_counter() - started < 10, "choosing a backend must not load a model"


def test_auto_falls_back_when_ollama_lacks_the_model(model_home: Path) -> None:
    with OllamaServer(models=["qwen2.5:0.5b"]) as server:
        settings = Settings(home=model_home, llm_backend="auto", ollama_url=server.url, llm_model="llama3.2:3b")
        report = backend_report(settings)
    assert report["backend"] == "extractive"
    assert report["reason"].startswith(
        f"Ollama at {server.url} has no model 'llama3.2:3b' (run `ollama pull llama3.2:3b`)"
    )


def test_auto_uses_a_configured_openai_server_when_ollama_is_down(closed_url: str, tmp_path: Path) -> None:
    with OpenAIServer(lambda messages: REPLY, api_key="k") as server:
        settings = Settings(
            home=tmp_path, llm_backend="auto", ollama_url=closed_url, openai_url=server.url, openai_api_key=SecretStr("k")
        )
        generator = resolve_backend(settings)
        report = backend_report(settings)
        streamed = "".join(generator.stream(SYSTEM, USER))
    assert generator.name == f"openai:llama3.2:3b@{server.url}" and report["backend"] == generator.name
    assert report["reason"].startswith(f"cannot reach Ollama at {closed_url}")
    assert report["reason"].endswith(f"OpenAI-compatible server at {server.url} answers")
    assert streamed == REPLY


def test_auto_says_why_neither_server_answers(closed_url: str, tmp_path: Path) -> None:
    with OpenAIServer(api_key="right") as server:
        settings = Settings(
            home=tmp_path, llm_backend="auto", ollama_url=closed_url, openai_url=server.url,
            openai_api_key=SecretStr("wrong"),
        )  # fmt: skip
        report = backend_report(settings)
    assert report["backend"] == "extractive"
    assert f"cannot reach Ollama at {closed_url}" in report["reason"]
    assert f"the OpenAI-compatible server at {server.url} refused the request (HTTP 401" in report["reason"]
    assert "wrong" not in report["reason"]


def test_auto_never_picks_the_embedded_model(closed_url: str, model_home: Path) -> None:
    """The packaged Gemma is installed here, and still `auto` answers extractively."""
    settings = Settings(home=model_home, llm_backend="auto", ollama_url=closed_url)
    assert resolve_backend(settings).name == "extractive"
    assert "RAGKB_LLM_BACKEND=llamacpp" in backend_report(settings)["reason"]


def test_extractive_is_chosen_by_name(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, llm_backend="extractive")
    generator = resolve_backend(settings)
    assert generator.name == "extractive" and generator_kind(generator) == "extractive"
    assert list(generator.stream(SYSTEM, USER)) == []
    assert backend_report(settings) == {
        "backend": "extractive",
        "reason": f"configured (RAGKB_LLM_BACKEND=extractive): {EXTRACTIVE}",
    }


def test_llamacpp_is_guarded_with_stops_a_penalty_and_a_short_budget(monkeypatch, tmp_path: Path) -> None:
    """What the embedded model is asked to do, without loading it: stop at the end of the first
    paragraph or a new numbered item, penalise repeats over the whole answer, at most 128 tokens."""
    from ragkb.llm import llamacpp

    calls: dict[str, object] = {}

    class FakeCompletion:
        def __iter__(self):
            yield {"choices": [{"text": "Copied sentence [1]."}]}

        def close(self) -> None:
            calls["closed"] = True

    class FakeLlama:
        def tokenize(self, data: bytes) -> list[int]:
            return list(range(len(data.split())))

        def create_completion(self, prompt: str, **kwargs: object) -> FakeCompletion:
            calls.update(kwargs, prompt=prompt)
            return FakeCompletion()

    import threading

    monkeypatch.setattr(llamacpp, "_load_llama", lambda path: (FakeLlama(), threading.Lock()))
    monkeypatch.setattr(llamacpp, "llama_cpp_problem", lambda: None)
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"x")
    generator = resolve_backend(Settings(home=tmp_path, llm_backend="llamacpp", gguf_path=gguf, max_answer_tokens=400))
    assert "".join(generator.stream(SYSTEM, USER)) == "Copied sentence [1]."
    assert calls["max_tokens"] == 128 and calls["repeat_penalty"] == 1.3 and calls["temperature"] == 0
    assert {"\n", ". [", "Question:"} <= set(calls["stop"])  # type: ignore[arg-type]
    assert calls["closed"] is True and not generator.instruction_tuned


def test_configured_ollama_status_shows_it_is_down(closed_url: str, tmp_path: Path) -> None:
    report = backend_report(Settings(home=tmp_path, llm_backend="ollama", ollama_url=closed_url))
    assert report == {
        "backend": "ollama:llama3.2:3b",
        "reason": "configured (RAGKB_LLM_BACKEND=ollama): "
        f"cannot reach Ollama at {closed_url} (connection refused); start it or set RAGKB_OLLAMA_URL",
    }


def test_configured_llamacpp_without_model_fails_with_the_reason(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.gguf"
    settings = Settings(home=tmp_path, llm_backend="llamacpp", gguf_path=missing)
    with pytest.raises(LLMError, match=f"embedded llama.cpp has no model: RAGKB_GGUF_PATH={missing} does not exist"):
        list(resolve_backend(settings).stream(SYSTEM, USER))


def test_configured_llamacpp_reports_a_file_that_is_not_a_model(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.gguf"
    bogus.write_bytes(b"not a gguf file")
    settings = Settings(home=tmp_path, llm_backend="llamacpp", gguf_path=bogus)
    with pytest.raises(LLMError, match=f"embedded llama.cpp cannot load {bogus}"):
        list(resolve_backend(settings).stream(SYSTEM, USER))


@pytest.mark.slow
def test_llamacpp_generates_with_the_packaged_gemma(model_home: Path) -> None:
    settings = Settings(home=model_home, llm_backend="llamacpp", max_answer_tokens=64)
    generator = resolve_backend(settings)

    streamed = list(generator.stream(SYSTEM, USER))

    assert generator.name == "llamacpp:gemma-3-270m-q4_k_m.gguf"
    assert streamed
    assert "".join(streamed).strip()


@pytest.mark.slow
def test_llamacpp_refuses_a_prompt_longer_than_its_context(model_home: Path) -> None:
    settings = Settings(home=model_home, llm_backend="llamacpp")
    too_long = "Passages:\n\n" + "[1] vacation policy text " * 2000 + "\nQuestion: How many days?\nAnswer:"
    with pytest.raises(LLMError, match=r"more than the embedded model's context of 4096; lower RAGKB_TOP_K"):
        list(resolve_backend(settings).stream(SYSTEM, too_long))


@pytest.mark.slow
def test_official_client_end_to_end_against_llamacpp_behind_ollama_wire_format(
    model_home: Path, tmp_path: Path
) -> None:
    gguf = gguf_choice(Settings(home=model_home)).path
    assert gguf is not None
    with OllamaServer.llamacpp(gguf, model="gemma3:270m") as server:
        settings = Settings(home=tmp_path, llm_backend="auto", ollama_url=server.url, llm_model="gemma3:270m")
        generator = resolve_backend(settings)
        streamed = list(generator.stream(SYSTEM, USER))

    assert generator.name == "ollama:gemma3:270m"
    assert "".join(streamed).strip()
