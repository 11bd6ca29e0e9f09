"""Text for the page: untrusted strings made inert as Markdown, and times as people say them.

Almost everything Streamlit draws is Markdown: `st.markdown`, `st.caption`, alerts, the labels
of buttons, pills, expanders and metrics, and the cells of `st.table`. A document controls its
file name, folder, section titles, email subject and text, and the model's answer repeats what
documents say; rendered as Markdown, `![](//host/x.png)` makes every viewer's browser fetch that
address (a tracking beacon, or a GET fired at an internal host) and `[a](http://..)` is a live
link. So every such string goes through `md()` before it is put into Markdown. Plain-text
widgets (selectbox options, `st.dataframe` cells, `st.text`) show it as it is and must get the
raw string (they would show the backslashes), and `st.html` gets `html.escape`.
"""

from __future__ import annotations

import re
import time
from typing import Any

# Every ASCII punctuation character: CommonMark lets any of them be backslash-escaped, and an
# escaped one is always literal text. That covers images and links (`![`, `[`, `](`), reference
# definitions (`[1]: url`), autolinks and raw HTML (`<`), entities (`&`), emphasis, code,
# headings, lists, tables, LaTeX (`$`) and Streamlit's `:color[...]` / `:icon:` directives.
_PUNCTUATION = re.compile(r"([!-/:-@\[-`{-~])")
# GitHub-flavoured autolink literals are found *after* escapes are resolved (remark-gfm runs
# `/(https?:\/\/|www(?=\.))/gi` and an email pattern over the text), so `http\://x` is still
# linked. They only start after white space, punctuation or the start of the text: a WORD
# JOINER (U+2060, invisible, neither space nor punctuation) before `http://`/`www.` and after
# each `@` leaves nothing they accept.
WORD_JOINER = "\u2060"
_LITERAL_START = re.compile(r"(?i)(?=https?:/|www\.)|(?<=@)")
_NEWLINE = re.compile(r"\r\n?|\n")


def md(text: Any) -> str:
    """`text` (any untrusted value) as Markdown that renders as exactly its characters: no
    image, link, HTML, math or formatting; each line break stays one (two trailing spaces)."""
    value = _LITERAL_START.sub(WORD_JOINER, str(text))
    return _NEWLINE.sub("  \n", _PUNCTUATION.sub(r"\\\1", value))


def fmt_time(epoch: Any) -> str:
    if not isinstance(epoch, (int, float)):
        return "—"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch))


def fmt_ago(epoch: Any, now: float | None = None) -> str:
    if not isinstance(epoch, (int, float)):
        return "—"
    seconds = max(0.0, (time.time() if now is None else now) - epoch)
    if seconds < 60:
        return "just now"
    for unit, size in (("day", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            n = int(seconds // size)
            return f"{n} {unit}{'s' if unit == 'day' and n != 1 else ''} ago"
    return "just now"
