"""OCR with the Tesseract command-line program, for image files and for PDF pages that have no
text layer (rendered by poppler's `pdftoppm`). No model download: Debian's `tesseract-ocr`
ships the English data; other languages are Debian packages too (`tesseract-ocr-deu`, ...).

Why not unstructured's `hi_res`/`ocr_only` strategies: `hi_res` loads layout models from a hub,
and both hide Tesseract's word confidences, which the ingest summary needs to flag bad scans.
One `tesseract ... tsv` call per page gives words, their layout (block/paragraph/line) and a
confidence in one pass. `--psm 1` also detects pages scanned sideways or upside down.

Tesseract runs single-threaded (`OMP_THREAD_LIMIT=1`): its OpenMP threads spin on a busy
machine (measured 10x slower with 2 threads on 2 loaded cores), and ingest parallelises by
file (RAGKB_PARSE_WORKERS) anyway. The work stays inside the parse worker that called it, so
its time and memory limits (RAGKB_PARSE_TIMEOUT_S, RAGKB_PARSE_MEMORY_MB) bound it too.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from ragkb.blocks import Block, ParseError
from ragkb.config import Settings

# Pages whose longest side would render above this many pixels are rendered at a lower dpi.
_MAX_SIDE_PX = 7000
# Images smaller than this (screenshots, 72 dpi page renders) are enlarged 2x (3x below half
# of it) before recognition: DA-1p.png (595x842) gains 7 points of mean confidence at 2x.
# Larger ones are left alone: a 1377x648 table image lost most of its rows at 2x. Colour is
# kept: Tesseract's own grey conversion read a blue-headed table that Pillow's lost.
_SMALL_SIDE_PX = 1000
_ENABLE = "set RAGKB_OCR=auto to read scans with Tesseract"
_INSTALL = "install the Debian packages tesseract-ocr and poppler-utils"


@dataclass
class OcrResult:
    blocks: list[Block] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    pages: int = 0
    seconds: float = 0.0


@lru_cache(maxsize=4)
def _languages(tesseract: str) -> frozenset[str]:
    try:
        out = subprocess.run([tesseract, "--list-langs"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return frozenset()
    return frozenset(line.strip() for line in out.splitlines()[1:] if line.strip())


def unavailable_reason(settings: Settings, pdf: bool = False) -> str | None:
    """Why OCR cannot run here (None when it can), in words that say how to enable it."""
    if settings.ocr == "off":
        return f"OCR is off (RAGKB_OCR=off; {_ENABLE})"
    tesseract = shutil.which("tesseract")
    if tesseract is None:
        return f"OCR is not available: Tesseract is not installed ({_INSTALL})"
    if pdf and shutil.which("pdftoppm") is None:
        return f"OCR is not available: pdftoppm is not installed ({_INSTALL})"
    missing = [lang for lang in settings.ocr_languages.split("+") if lang not in _languages(tesseract)]
    if missing:
        packages = " ".join(f"tesseract-ocr-{lang.lower().replace('_', '-')}" for lang in missing)
        return f"OCR is not available: no Tesseract data for {'+'.join(missing)} (RAGKB_OCR_LANGUAGES; install {packages})"
    return None


class _Budget:
    """Stops OCR before the worker's time limit kills it, with a reason that says what to raise."""

    def __init__(self, settings: Settings, total_pages: int, file_started: float | None) -> None:
        self.settings = settings
        self.total = total_pages
        self.started = time.monotonic()
        self.deadline = (file_started or self.started) + max(5.0, settings.parse_timeout_s - 5.0)
        self.done = 0

    def check(self) -> float:
        now = time.monotonic()
        per_page = (now - self.started) / self.done if self.done else 0.0
        if now + per_page > self.deadline:
            raise ParseError(
                f"OCR of {self.total} page(s) does not fit in RAGKB_PARSE_TIMEOUT_S="
                f"{self.settings.parse_timeout_s:g} s: {self.done} done at {per_page:.1f} s/page; "
                "raise the limit (or split the file) and touch the file to retry"
            )
        return self.deadline - now


def ocr_pdf_pages(path: Path, pages: dict[int, float], settings: Settings, started: float | None = None) -> OcrResult:
    """OCR of the given PDF pages (page number -> longest side in points), in page order;
    `started` is when parsing this file began (time.monotonic), for the time budget."""
    budget = _Budget(settings, len(pages), started)
    result = OcrResult()
    with tempfile.TemporaryDirectory(prefix="ragkb-ocr-") as tmp:
        for page, longest_pt in sorted(pages.items()):
            left = budget.check()
            dpi = max(50, min(settings.ocr_dpi, int(_MAX_SIDE_PX * 72 / max(longest_pt, 1.0))))
            image = Path(tmp) / f"page-{page}"
            _run(["pdftoppm", "-r", str(dpi), "-gray", "-f", str(page), "-l", str(page), "-singlefile",
                  str(path), str(image)], left, "pdftoppm")  # fmt: skip
            _recognise(image.with_suffix(".pgm"), page, dpi, settings, budget.check(), result)
            image.with_suffix(".pgm").unlink(missing_ok=True)
            budget.done += 1
    result.seconds = time.monotonic() - budget.started
    return result


def ocr_image(path: Path, settings: Settings, started: float | None = None) -> OcrResult:
    """OCR of an image file, every frame of a multi-page TIFF as its own page."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    _register_heif()
    try:
        with Image.open(path) as image:
            frames = getattr(image, "n_frames", 1)
            budget = _Budget(settings, frames, started)
            result = OcrResult()
            with tempfile.TemporaryDirectory(prefix="ragkb-ocr-") as tmp:
                for index in range(frames):
                    left = budget.check()
                    image.seek(index)
                    frame = ImageOps.exif_transpose(image) if index == 0 else image
                    frame, dpi = _prepared(frame, _image_dpi(frame))
                    target = Path(tmp) / f"frame-{index + 1}.png"
                    frame.save(target, dpi=(dpi, dpi)) if dpi else frame.save(target)
                    _recognise(target, index + 1, dpi, settings, left, result)
                    target.unlink()
                    budget.done += 1
    except (UnidentifiedImageError, OSError, ValueError, EOFError, Image.DecompressionBombError) as exc:
        raise ParseError(f"unreadable image: {type(exc).__name__}: {str(exc)[:200]}") from exc
    result.seconds = time.monotonic() - budget.started
    return result


def _image_dpi(image: Any) -> int:
    """The resolution an image declares, or 0 (unknown: Tesseract then estimates it from the
    letters, which beats a wrong guess: telling it 300 dpi for a 72 dpi page cost 14 points)."""
    dpi = getattr(image, "info", {}).get("dpi")
    try:
        value = int(round(float(dpi[0]))) if dpi else 0
    except (TypeError, ValueError, IndexError):
        value = 0
    return value if 70 <= value <= 1200 else 0


def _prepared(frame: Any, dpi: int) -> tuple[Any, int]:
    """Grey or RGB, enlarged when small; the dpi scaled with it."""
    from PIL import Image

    if frame.mode not in ("L", "RGB"):
        frame = frame.convert("RGB")
    longest = max(frame.size)
    if 0 < longest < _SMALL_SIDE_PX:
        factor = 2 if longest >= _SMALL_SIDE_PX // 2 else 3
        frame = frame.resize((frame.width * factor, frame.height * factor), Image.Resampling.LANCZOS)
        dpi *= factor
    return frame, dpi


def _register_heif() -> None:
    try:
        from pi_heif import register_heif_opener
    except ImportError:  # HEIC files then fail as unreadable images
        return
    register_heif_opener()


def _run(command: list[str], timeout: float, what: str) -> str:
    env = {**os.environ, "OMP_THREAD_LIMIT": "1"}
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=max(timeout, 1.0), env=env)
    except subprocess.TimeoutExpired as exc:
        raise ParseError(f"{what} took longer than RAGKB_PARSE_TIMEOUT_S allows; raise it and touch the file to retry") from exc
    except OSError as exc:
        raise ParseError(f"OCR is not available: cannot run {what}: {exc.strerror or exc} ({_INSTALL})") from exc
    if done.returncode != 0:
        message = " ".join(done.stderr.split())[-300:] or f"exit code {done.returncode}"
        raise ParseError(f"{what} failed: {message}")
    return done.stdout


def _recognise(image: Path, page: int, dpi: int, settings: Settings, timeout: float, result: OcrResult) -> None:
    command = ["tesseract", str(image), "stdout", "-l", settings.ocr_languages, "--psm", "1"]
    tsv = _run([*command, *(["--dpi", str(dpi)] if dpi else []), "tsv"], timeout, "tesseract")
    paragraphs, confidences = _paragraphs(tsv)
    result.pages += 1
    result.blocks.extend(Block(text, page, None, "text", ocr=True) for text in paragraphs)
    if confidences:
        mean = sum(confidences) / len(confidences)
        if mean < settings.ocr_min_confidence:
            result.warnings.append(
                f"page {page}: low OCR confidence {mean:.0f}% (below RAGKB_OCR_MIN_CONFIDENCE="
                f"{settings.ocr_min_confidence:g}): check the scan; its text may be wrong or missing"
            )


def _paragraphs(tsv: str) -> tuple[list[str], list[float]]:
    """Paragraph texts in reading order and every word's confidence, from Tesseract's TSV.

    Columns: level page block par line word left top width height conf text. Lines of a
    paragraph are joined with spaces; a word split by a hyphen at a line end is rejoined.
    """
    paragraphs: dict[tuple[str, str], list[list[str]]] = {}
    confidences: list[float] = []
    for row in tsv.splitlines()[1:]:
        cells = row.split("\t")
        if len(cells) < 12 or cells[0] != "5" or not cells[11].strip():
            continue
        try:
            confidence = float(cells[10])
        except ValueError:
            continue
        if confidence < 0:
            continue
        lines = paragraphs.setdefault((cells[2], cells[3]), [])
        if not lines or lines[-1][0] != cells[4]:
            lines.append([cells[4]])
        lines[-1].append(cells[11].strip())
        confidences.append(confidence)
    texts: list[str] = []
    for lines in paragraphs.values():
        text = ""
        for line in lines:
            words = " ".join(line[1:])
            if text.endswith("-") and len(text) > 1 and text[-2].isalpha() and words[:1].islower():
                text = text[:-1] + words
            else:
                text = f"{text} {words}" if text else words
        if any(ch.isalnum() for ch in text):
            texts.append(text)
    return texts, confidences
