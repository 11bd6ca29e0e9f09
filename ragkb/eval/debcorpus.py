"""The documentation benchmark's corpus: real manuals from pinned Debian documentation packages.

Nothing large is committed: the .deb files are fetched with `apt-get download NAME=VERSION` into a
cache folder outside the repository, checked against their pinned sha256 (so every run scores the
same bytes), and only the manual files are unpacked into `<cache>/corpus/<package>/...`.
A .deb is an `ar` archive whose `data.tar.xz` holds the files; reading it here needs neither
dpkg nor root, so a cache copied from a Debian machine works anywhere.
"""

from __future__ import annotations

import fnmatch
import gzip
import hashlib
import io
import os
import shutil
import subprocess
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

DEFAULT_CACHE = Path("~/.cache/ragkb-eval/docbench")
CACHE_ENV = "RAGKB_DOCBENCH_CACHE"
"""Overrides the cache folder (the CLI's --cache wins over it)."""


@dataclass(frozen=True)
class DocPackage:
    """One pinned Debian package and the manual files taken from it.

    `members` are glob patterns over paths inside the package; `strip` is the prefix removed from
    a member's path before it lands under `corpus/<target>/`. A member ending in .gz is stored
    decompressed (Debian gzips its PDFs).
    """

    name: str
    version: str
    sha256: str
    members: tuple[str, ...]
    strip: str
    target: str

    @property
    def filename(self) -> str:
        return f"{self.name}_{self.version.replace(':', '%3a')}_all.deb"


PACKAGES: tuple[DocPackage, ...] = (
    DocPackage(
        "debmake-doc", "1.17-7", "f562cf744d906b9255c60d659873609ed5f40d657d99c4a6f3f5c194c24507cf",
        ("usr/share/doc/debmake-doc/debmake-doc.en.pdf",), "usr/share/doc/debmake-doc/", "debmake-doc",
    ),
    DocPackage(
        "debian-policy", "4.6.2.0", "ef9d01b625c3b87c3a845c2cd1b66f1a16e9240b2b9e5bee53472a00e8457a39",
        ("usr/share/doc/debian-policy/policy.pdf.gz",), "usr/share/doc/debian-policy/", "debian-policy",
    ),
    DocPackage(
        "debian-faq", "11.1", "427426e0cfa6888622fc1d72631071cb4b5a1f86ccde722e7820bcef284de5d0",
        ("usr/share/doc/debian/FAQ/debian-faq.en.pdf.gz",), "usr/share/doc/debian/FAQ/", "debian-faq",
    ),
    DocPackage(
        "aptitude-doc-en", "0.8.13-5", "ba4864ca26464bbe06acd94dc4a79402eea5d7b2d3da943d6ecce3c752bc9e84",
        ("usr/share/doc/aptitude/html/en/*.html",), "usr/share/doc/aptitude/html/en/", "aptitude",
    ),
    DocPackage(
        "cockpit-doc", "287.1-0+deb12u3", "0bf86777696a4a82d0eaf4ceddaec8c695746ddf5eea2091a6ca1949ebb00cee",
        ("usr/share/doc/cockpit/guide/*.html",), "usr/share/doc/cockpit/", "cockpit",
    ),
)


def cache_dir(override: Path | None = None) -> Path:
    """--cache, else $RAGKB_DOCBENCH_CACHE, else ~/.cache/ragkb-eval/docbench."""
    chosen = override or Path(os.environ.get(CACHE_ENV) or DEFAULT_CACHE)
    return chosen.expanduser().resolve()


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch_deb(package: DocPackage, debs: Path, log: Callable[[str], None] = print) -> Path:
    """The pinned .deb, from the cache or from apt, refused unless its sha256 is the pinned one."""
    debs.mkdir(parents=True, exist_ok=True)
    path = debs / package.filename
    if not path.exists():
        log(f"apt-get download {package.name}={package.version}")
        proc = subprocess.run(
            ["apt-get", "download", f"{package.name}={package.version}"], cwd=debs, capture_output=True, text=True
        )
        if proc.returncode != 0 or not path.exists():
            raise FileNotFoundError(
                f"cannot download {package.name} {package.version} with apt-get ({proc.stderr.strip()[-300:]}); "
                f"put {package.filename} into {debs} by hand"
            )
    actual = sha256_of(path)
    if actual != package.sha256:
        raise ValueError(f"{path}: sha256 {actual} is not the pinned {package.sha256}")
    return path


def deb_data(path: Path) -> tarfile.TarFile:
    """The data.tar.* member of a .deb (an `ar` archive), opened as a tar file."""
    blob = path.read_bytes()
    if not blob.startswith(b"!<arch>\n"):
        raise ValueError(f"{path}: not a Debian package (no ar header)")
    offset = 8
    while offset + 60 <= len(blob):
        header = blob[offset : offset + 60]
        name = header[:16].decode().strip().rstrip("/")
        size = int(header[48:58].decode().strip())
        start = offset + 60
        if name.startswith("data.tar"):
            if name.endswith(".zst"):
                raise ValueError(f"{path}: zstd-compressed data.tar is not supported here")
            return tarfile.open(fileobj=io.BytesIO(blob[start : start + size]), mode="r:*")
        offset = start + size + (size % 2)
    raise ValueError(f"{path}: no data.tar member")


def extract(package: DocPackage, deb: Path, corpus: Path) -> list[Path]:
    """Unpack the package's manual files (regular files only) into corpus/<target>/."""
    written: list[Path] = []
    with deb_data(deb) as tar:
        for member in tar.getmembers():
            name = member.name.removeprefix("./")
            if not member.isfile() or not any(fnmatch.fnmatchcase(name, pattern) for pattern in package.members):
                continue
            relative = name.removeprefix(package.strip)
            data = tar.extractfile(member).read()  # type: ignore[union-attr]
            if relative.endswith(".gz"):
                relative, data = relative[:-3], gzip.decompress(data)
            target = corpus / package.target / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            written.append(target)
    if not written:
        raise ValueError(f"{deb}: none of {package.members} found")
    return written


def ensure_corpus(cache: Path, log: Callable[[str], None] = print) -> Path:
    """Download (or reuse) every pinned package and unpack a fresh corpus; returns its root.

    The corpus folder is rebuilt on every call, so no stray file can slip into a benchmark run.
    """
    corpus = cache / "corpus"
    if corpus.exists():
        shutil.rmtree(corpus)
    for package in PACKAGES:
        files = extract(package, fetch_deb(package, cache / "debs", log), corpus)
        log(f"{package.name} {package.version}: {len(files)} files")
    return corpus


def corpus_summary(corpus: Path) -> dict[str, dict[str, int]]:
    """Per package folder: files and bytes, and for PDFs their pages (the corpus's size in the report)."""
    from pypdf import PdfReader

    summary: dict[str, dict[str, int]] = {}
    for package in PACKAGES:
        files = sorted(p for p in (corpus / package.target).rglob("*") if p.is_file())
        row = {"files": len(files), "bytes": sum(p.stat().st_size for p in files)}
        pdfs = [p for p in files if p.suffix == ".pdf"]
        if pdfs:
            row["pdf_pages"] = sum(len(PdfReader(p).pages) for p in pdfs)
        summary[f"{package.name} {package.version}"] = row
    return summary
