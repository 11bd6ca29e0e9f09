"""Text encoding of a file, decided over the whole file and biased towards Western 8-bit text.

Statistical detectors (charset_normalizer, which unstructured uses) score cp1250, cp1252 and
cp1257 equally on French or German text and pick the first, so 'crèche' became 'crčche' and
'Café crème' became 'Cafķ crĶme': the words were then unsearchable. Here BOMs and UTF-8 decide
first; then, if every word with a non-ASCII byte reads as a plausible Western word in cp1252
(accented letters inside otherwise Latin words), it is cp1252 (a superset of the printable
Latin-1 range); only text that does not (Cyrillic, Greek, most Central European text) goes to
charset_normalizer, whose ties are still broken in favour of cp1252.
"""

from __future__ import annotations

import codecs
import re

# Letters a cp1252 decoding of Western European text contains (no ð/þ: in cp1251/cp1253 text
# decoded as cp1252 they stand for very frequent Cyrillic and Greek letters).
_WESTERN_LETTERS = frozenset("ÀÁÂÃÄÅÆÇÈÉÊËÌÍÎÏÑÒÓÔÕÖØÙÚÛÜÝßàáâãäåæçèéêëìíîïñòóôõöøùúûüýÿŒœŠšŽžŸªºµ")
# Punctuation allowed inside a word (l’école, col·legi) and at its edges (« », ¿Qué?, 15,50 €).
_INNER_PUNCT = "’‘·–—…"
_EDGE_PUNCT = "“”„‚«»‹›…–—¡¿®™°€£¥¢§©±×÷²³" + "!\"#$%&()*+,./:;<=>?@[\\]^_`{|}~0123456789"
_HIGH_TOKEN = re.compile(rb"[^\s]*[\x80-\xff][^\s]*")
_CP1252_UNDEFINED = re.compile(rb"[\x81\x8d\x8f\x90\x9d]")
_SAMPLE_TOKENS = 20_000
# Words with a letter no Western language writes (ð/þ stand for frequent Cyrillic and Greek
# letters in cp1252) or a symbol inside: about a quarter of Russian or Greek words, none in
# French or German; a little room for stray symbols.
_MAX_FOREIGN_SHARE = 0.05


def detect_encoding(data: bytes, complete: bool = True) -> str:
    """A Python codec name that decodes `data` as its author meant it.

    `complete=False` for a head of a file: a multi-byte sequence cut at the end is not an error.
    """
    for bom, name in ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF32_LE, "utf-32"),
                      (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF16_LE, "utf-16"),
                      (codecs.BOM_UTF16_BE, "utf-16")):  # fmt: skip
        if data.startswith(bom):
            return name
    if b"\x00" in data[:65536]:
        wide = _bomless_wide(data[:65536])
        if wide:
            return wide
    if _is_utf8(data, complete):
        return "utf-8"
    if not _CP1252_UNDEFINED.search(data) and _reads_as_western(data):
        return "cp1252"
    return _statistical(data)


def _is_utf8(data: bytes, complete: bool) -> bool:
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        for start in range(0, len(data), 1 << 20):  # chunks: no 100 MB string for a yes/no
            decoder.decode(data[start : start + (1 << 20)], final=False)
        decoder.decode(b"", final=complete)
    except UnicodeDecodeError:
        return False
    return True


def _bomless_wide(sample: bytes) -> str | None:
    """UTF-16/32 without a BOM: mostly-ASCII text has its zero bytes in fixed lanes."""
    sample = sample[: len(sample) - len(sample) % 4]
    if not sample:
        return None
    lanes = [sample[i::4].count(0) / (len(sample) / 4) for i in range(4)]
    candidates = []
    if lanes[1] > 0.7 and lanes[2] > 0.7 and lanes[3] > 0.7:
        candidates.append("utf-32-le")
    if lanes[0] > 0.7 and lanes[1] > 0.7 and lanes[2] > 0.7:
        candidates.append("utf-32-be")
    if lanes[1] > 0.5 and lanes[3] > 0.5:
        candidates.append("utf-16-le")
    if lanes[0] > 0.5 and lanes[2] > 0.5:
        candidates.append("utf-16-be")
    for name in candidates:
        try:
            codecs.getincrementaldecoder(name)().decode(sample, final=False)
            return name
        except UnicodeDecodeError:
            continue
    return None


def _reads_as_western(data: bytes) -> bool:
    """The words holding non-ASCII bytes, decoded as cp1252, look like Western words.

    Western text: accented letters inside otherwise Latin words ('crèche'), almost never a
    symbol or an Icelandic letter inside a word. Cyrillic or Greek read as cp1252 gives words
    of accented letters only, many with ð/þ; Polish gives symbols inside words ('Za¿ó³æ').
    """
    verdicts = {"latin": 0, "neutral": 0, "foreign": 0}
    for count, match in enumerate(_HIGH_TOKEN.finditer(data)):
        verdicts[_word_verdict(match.group().decode("cp1252"))] += 1
        if count >= _SAMPLE_TOKENS:
            break
    total = sum(verdicts.values())
    return total > 0 and verdicts["foreign"] <= total * _MAX_FOREIGN_SHARE and verdicts["latin"] >= verdicts["neutral"]


def _word_verdict(token: str) -> str:
    core = token.strip(_EDGE_PUNCT)
    if not any(char.isalpha() for char in core):
        return "neutral"  # numbers and symbols: '15,50 €', '½'
    ascii_letters = 0
    for char in core:
        if char.isascii():
            ascii_letters += char.isalpha()
        elif char not in _WESTERN_LETTERS and char not in _INNER_PUNCT:
            return "foreign"
    return "latin" if ascii_letters else "neutral"  # 'à', 'äöüß' could be anything


def _statistical(data: bytes) -> str:
    from charset_normalizer import from_bytes

    matches = list(from_bytes(data))
    if not matches:
        return "cp1252" if not _CP1252_UNDEFINED.search(data) else "latin-1"
    best = matches[0]
    for match in matches:  # a tie with cp1250/cp1257 goes to the Western code page
        if match.encoding == "cp1252" and match.chaos <= best.chaos and match.coherence >= best.coherence:
            return "cp1252"
    return "utf-8" if best.encoding in ("ascii", "utf_8") else best.encoding


_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.I)
# WHATWG: browsers read these labels as windows-1252, and so do authors who wrote them.
_AS_CP1252 = {"latin_1", "ascii", "iso8859_1", "cp1252"}


def html_encoding(data: bytes) -> str:
    """The charset an HTML file declares when its bytes agree with it, else detection."""
    if not data.startswith((codecs.BOM_UTF8, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        match = _META_CHARSET.search(data[:4096])
        if match:
            try:
                name = codecs.lookup(match.group(1).decode("ascii")).name.replace("-", "_")
            except LookupError:
                name = ""
            if name in _AS_CP1252 and not _CP1252_UNDEFINED.search(data):
                name = "cp1252"
            if name and not name.startswith("utf_16") and not name.startswith("utf_32"):
                try:
                    data.decode(name)
                    return name
                except UnicodeDecodeError:
                    pass  # the declaration lies (a cp1252 page that says utf-8): detect instead
    return detect_encoding(data)
