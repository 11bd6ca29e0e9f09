"""`ragkb eval ...`: retrieval quality on BEIR data, speed benchmarks, answer citations.

Heavy imports happen inside the commands, so `ragkb --help` stays fast.
"""

from __future__ import annotations

import json
import logging
import sys
import warnings
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

eval_app = typer.Typer(no_args_is_help=True, add_completion=False, help="Evaluate retrieval quality and speed.")
err = Console(stderr=True)
out = Console()


def _exit_codes(bad_input: tuple[type[Exception], ...], prefix: str = "") -> AbstractContextManager[None]:
    """The same exit codes as every `ragkb` command (`ragkb.errors`); `bad_input` adds the
    dataset errors (missing files, malformed data) as usage errors."""
    from ragkb.console import handled

    return handled(bad_input, prefix)


@eval_app.callback()
def _group() -> None:
    """Evaluate retrieval quality (BEIR), ingest/query speed, and answer citations."""


def _base_settings(home: Optional[Path], chunk_words: Optional[int], **overrides: object):  # noqa: ANN202
    from ragkb.config import Settings
    from ragkb.eval.retrieval import eval_settings

    try:
        base = Settings()
    except Exception as exc:  # pydantic validation of ragkb.toml / RAGKB_* values
        err.print(f"[red]configuration error:[/red] {exc}")
        raise typer.Exit(2) from exc
    update = {key: value for key, value in overrides.items() if value is not None}
    if update:
        base = base.model_copy(update=update)
    return eval_settings(base, home if home is not None else base.home / "eval", chunk_words)


def _quiet() -> None:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("sentence_transformers", "transformers", "httpx", "unstructured", "pdfminer", "llama_index"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")


@eval_app.command("retrieval")
def retrieval(
    dataset: Annotated[Path, typer.Option("--dataset", help="BEIR folder: corpus.jsonl, queries.jsonl, qrels/<split>.tsv")],
    split: Annotated[str, typer.Option(help="qrels split to score (test; train for tuning)")] = "test",
    home: Annotated[Optional[Path], typer.Option(help="Where the eval collection lives (default RAGKB_HOME/eval)")] = None,
    collection: Annotated[Optional[str], typer.Option(help="Collection name (default beir-<dataset>-<model>-<chunking>)")] = None,
    modes: Annotated[str, typer.Option(help="Comma-separated: dense,sparse,hybrid,rerank")] = "dense,sparse,hybrid,rerank",
    chunk_words: Annotated[int, typer.Option(help="Chunk size in words; 0 = whole documents (BEIR protocol)")] = 0,
    fusion: Annotated[Optional[str], typer.Option(help="max, dbsf or rrf (default RAGKB_FUSION)")] = None,
    prefetch_k: Annotated[Optional[int], typer.Option(help="Hybrid prefetch depth (at least --depth)")] = None,
    depth: Annotated[int, typer.Option(help="Chunks retrieved per query; 0 = enough for Recall@100")] = 0,
    embed_model: Annotated[Optional[Path], typer.Option(help="Local sentence-transformers folder (RAGKB_EMBED_MODEL)")] = None,
    query_prefix: Annotated[Optional[str], typer.Option(help="Query instruction, e.g. for bge models")] = None,
    reranker: Annotated[Optional[Path], typer.Option(help="Local cross-encoder folder (RAGKB_RERANKER_MODEL)")] = None,
    max_queries: Annotated[Optional[int], typer.Option(help="Score only the first N judged queries")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the full report as JSON")] = False,
    save: Annotated[Optional[Path], typer.Option(help="Also write the JSON report to this file")] = None,
) -> None:
    """nDCG@10, Recall@10/100 and MRR@10 of dense, sparse, hybrid and hybrid+rerank retrieval."""
    from ragkb.eval.retrieval import MODES, evaluate_retrieval, markdown_table

    _quiet()
    wanted = [m.strip() for m in modes.split(",") if m.strip()]
    unknown = [m for m in wanted if m not in MODES]
    if unknown:
        err.print(f"[red]error:[/red] unknown mode(s) {unknown}; choose from {', '.join(MODES)}")
        raise typer.Exit(2)
    if fusion is not None and fusion not in ("max", "rrf", "dbsf"):
        err.print("[red]error:[/red] --fusion must be max, dbsf or rrf")
        raise typer.Exit(2)
    settings = _base_settings(
        home, chunk_words, fusion=fusion, prefetch_k=prefetch_k, embed_model=embed_model,
        query_prefix=query_prefix, reranker_model=reranker,
    )

    def progress(stage: str, done: int, total: int) -> None:
        if not json_out:
            err.print(f"[dim]{stage}: {done}/{total}[/dim]", highlight=False)

    with _exit_codes((FileNotFoundError, ValueError)):
        report = evaluate_retrieval(
            dataset, settings, collection=collection, split=split, modes=wanted, depth=depth,
            max_queries=max_queries, progress=progress,
        )
    data = report.to_dict()
    if save:
        save.parent.mkdir(parents=True, exist_ok=True)
        save.write_text(json.dumps(data, indent=2))
    if json_out:
        print(json.dumps(data))
        return
    ing = report.ingest
    out.print(
        f"[bold]{report.dataset}[/bold] ({report.split}: {report.queries} queries, {report.documents} documents, "
        f"{report.chunks} chunks) in collection [bold]{report.collection}[/bold] under {report.home}"
    )
    out.print(
        f"ingest: added {ing['added']}, updated {ing['updated']}, unchanged {ing['unchanged']}, "
        f"deleted {ing['deleted']}; {ing['chunks']} chunks embedded in {ing['seconds']:.1f}s"
    )
    out.print(f"model: {report.embed_model}; settings: {report.settings}")
    out.print(f"reranker: {report.reranker}")
    out.print(markdown_table(report), highlight=False)
    out.print(f"total {report.seconds:.0f}s")


@eval_app.command("bench")
def bench(
    dataset: Annotated[Path, typer.Option("--dataset", help="BEIR folder whose corpus supplies the documents")],
    workdir: Annotated[Path, typer.Option(help="Scratch folder (deleted and recreated)")] = Path("/tmp/ragkb-bench"),
    documents: Annotated[int, typer.Option(help="How many corpus documents to ingest")] = 500,
    queries: Annotated[int, typer.Option(help="Questions for retrieval latency")] = 100,
    llm_questions: Annotated[int, typer.Option(help="Questions answered by the embedded LLM")] = 10,
    repeats: Annotated[int, typer.Option(help="Interleaved ingest rounds; the fastest run of each pipeline counts")] = 2,
    save: Annotated[Optional[Path], typer.Option(help="Write the JSON result to this file")] = None,
) -> None:
    """Ingest throughput vs llama-index, query/answer latency p50/p95, peak memory."""
    from ragkb.config import Settings
    from ragkb.eval.bench import run_benchmark

    _quiet()
    result = run_benchmark(
        dataset, workdir, documents=documents, queries=queries, llm_questions=llm_questions,
        base=Settings(), log=lambda message: err.print(f"[dim]{message}[/dim]", highlight=False), repeats=repeats,
    )
    text = json.dumps(result, indent=2)
    if save:
        save.parent.mkdir(parents=True, exist_ok=True)
        save.write_text(text)
    print(text)


@eval_app.command("answers")
def answers(
    dataset: Annotated[Path, typer.Option("--dataset", help="SQuAD-format JSON (e.g. PolicyQA test.json)")],
    home: Annotated[Optional[Path], typer.Option(help="Where the eval collection lives (default RAGKB_HOME/eval)")] = None,
    documents: Annotated[int, typer.Option(help="How many articles (policies) to ingest, paragraph per file")] = 2,
    questions: Annotated[int, typer.Option(help="Answerable questions asked (extractive, none)")] = 60,
    llm_questions: Annotated[Optional[int], typer.Option(help="Answerable questions for generating backends (default: all)")] = None,
    unanswerable: Annotated[Optional[Path], typer.Option(help="PubMedQA ori_pqal.json: questions the corpus cannot answer")] = None,
    unanswerable_questions: Annotated[int, typer.Option(help="Unanswerable questions asked (extractive, none)")] = 0,
    llm_unanswerable_questions: Annotated[Optional[int], typer.Option(help="Unanswerable questions for generating backends")] = None,
    unanswerable_split: Annotated[str, typer.Option(help="test: PubMedQA's test ids; dev: the others")] = "test",
    scope: Annotated[str, typer.Option(help="policy: ask within the question's document folder; all: whole corpus")] = "policy",
    backends: Annotated[str, typer.Option(help="Comma-separated backends")] = "none,extractive,llamacpp,ollama",
    tune: Annotated[bool, typer.Option("--tune", help="Calibrate the extractive selector (use a dev split) instead")] = False,
    save: Annotated[Optional[Path], typer.Option(help="Write the JSON result to this file")] = None,
) -> None:
    """Gold-span coverage, answer length, citation truth, abstention on unanswerable questions and
    latency per generation backend; with --tune, the extractive selector's calibration."""
    from ragkb.eval.answers import evaluate_answers
    from ragkb.eval.calibration import tune_extractive

    _quiet()
    if scope not in ("policy", "all") or unanswerable_split not in ("dev", "test"):
        err.print("[red]error:[/red] --scope is policy or all; --unanswerable-split is dev or test")
        raise typer.Exit(2)
    settings = _base_settings(home, None)
    log = lambda message: err.print(f"[dim]{message}[/dim]", highlight=False)  # noqa: E731
    with _exit_codes((FileNotFoundError, ValueError, KeyError), prefix="not a SQuAD-format file: "):
        if tune:
            if unanswerable is None:
                err.print("[red]error:[/red] --tune needs --unanswerable")
                raise typer.Exit(2)
            result = tune_extractive(
                dataset, settings, unanswerable, titles=documents, questions=questions,
                unanswerable_questions=unanswerable_questions or 300, log=log,
            )
        else:
            result = evaluate_answers(
                dataset, settings, titles=documents, questions=questions,
                backends=tuple(b.strip() for b in backends.split(",") if b.strip()), llm_questions=llm_questions,
                log=log, unanswerable=unanswerable, unanswerable_questions=unanswerable_questions,
                unanswerable_split=unanswerable_split, llm_unanswerable_questions=llm_unanswerable_questions, scope=scope,
            )
    text = json.dumps(result, indent=2)
    if save:
        save.parent.mkdir(parents=True, exist_ok=True)
        save.write_text(text)
    print(text)


@eval_app.command("relevance")
def relevance(
    dataset: Annotated[Path, typer.Option("--dataset", help="SQuAD-format JSON (PolicyQA dev.json to calibrate)")],
    unanswerable: Annotated[Path, typer.Option(help="PubMedQA ori_pqal.json: questions the corpus cannot answer")],
    home: Annotated[Optional[Path], typer.Option(help="Where the eval collection lives (default RAGKB_HOME/eval)")] = None,
    documents: Annotated[int, typer.Option(help="How many articles (policies) to ingest, paragraph per file")] = 20,
    questions: Annotated[int, typer.Option(help="Answerable questions asked")] = 600,
    unanswerable_questions: Annotated[int, typer.Option(help="Unanswerable questions asked")] = 300,
    unanswerable_split: Annotated[str, typer.Option(help="test: PubMedQA's test ids; dev: the others")] = "dev",
    save: Annotated[Optional[Path], typer.Option(help="Write the JSON result to this file")] = None,
) -> None:
    """How well the best passage's fused score and its dense cosine separate answerable from
    unanswerable questions, and the cosine thresholds for Settings.min_relevance."""
    from ragkb.eval.relevance import relevance_separation

    _quiet()
    if unanswerable_split not in ("dev", "test"):
        err.print("[red]error:[/red] --unanswerable-split is dev or test")
        raise typer.Exit(2)
    settings = _base_settings(home, None)
    log = lambda message: err.print(f"[dim]{message}[/dim]", highlight=False)  # noqa: E731
    with _exit_codes((FileNotFoundError, ValueError, KeyError), prefix="not a SQuAD-format file: "):
        result = relevance_separation(
            dataset, unanswerable, settings, titles=documents, questions=questions,
            unanswerable_questions=unanswerable_questions, split=unanswerable_split, log=log,
        )
    text = json.dumps(result, indent=2)
    if save:
        save.parent.mkdir(parents=True, exist_ok=True)
        save.write_text(text)
    print(text)


@eval_app.command("docbench")
def docbench(
    questions: Annotated[Path, typer.Option(help="Question set (JSON lines)")] = Path("eval/docbench_questions.jsonl"),
    cache: Annotated[Optional[Path], typer.Option(help="Debian packages and corpus (default $RAGKB_DOCBENCH_CACHE or ~/.cache/ragkb-eval/docbench)")] = None,
    home: Annotated[Optional[Path], typer.Option(help="RAGKB_HOME for the run, emptied first (default <cache>/home)")] = None,
    keep_home: Annotated[bool, typer.Option("--keep-home", help="Reuse the home's collection (ingest only what changed)")] = False,
    baseline: Annotated[bool, typer.Option("--baseline/--no-baseline", help="Also score plain llama-index")] = True,
    check: Annotated[bool, typer.Option("--check", help="Only check the questions' gold against the manuals")] = False,
    save: Annotated[Optional[Path], typer.Option(help="Write the JSON result to this file")] = Path("eval/docbench.json"),
) -> None:
    """Documentation benchmark on pinned Debian manuals (PDF + HTML): file hit@1/@5, answer passage
    in the top 5, cited section and printed page, beside a plain llama-index baseline."""
    from ragkb.eval.debcorpus import cache_dir, ensure_corpus
    from ragkb.eval.docbench import fresh_home, load_questions, run_docbench
    from ragkb.eval.docgold import check_questions

    _quiet()
    log = lambda message: err.print(f"[dim]{message}[/dim]", highlight=False)  # noqa: E731
    with _exit_codes((FileNotFoundError, ValueError)):
        folder = cache_dir(cache)
        corpus = ensure_corpus(folder, log)
        problems = check_questions(load_questions(questions), corpus)
        for qid, found in problems.items():
            err.print(f"[red]{qid}[/red]: {'; '.join(found)}", highlight=False)
        if check or problems:
            raise typer.Exit(1 if problems else 0)
        settings = _base_settings(fresh_home(home or folder / "home", keep_home), None)
        result = run_docbench(questions, corpus, settings, baseline=baseline, log=log)
    text = json.dumps(result, indent=2)
    if save:
        save.parent.mkdir(parents=True, exist_ok=True)
        save.write_text(text)
    print(json.dumps({name: system["metrics"]["all"] for name, system in result["systems"].items()}, indent=2))


if __name__ == "__main__":  # `python -m ragkb.eval.cli ...` works without the `ragkb eval` entry too
    eval_app()
