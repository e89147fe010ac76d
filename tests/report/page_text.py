"""A report page read as text: what a reader sees, and its headings in order."""

from __future__ import annotations

import re
from collections.abc import Sequence
from html.parser import HTMLParser


class _Text(HTMLParser):
    """The page's text as a reader sees it (no style sheet, no attributes)."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag, attrs):
        self._skip += tag == "style"

    def handle_endtag(self, tag):
        self._skip -= tag == "style"

    def handle_data(self, data):
        if not self._skip:
            self.parts.append(data)


def visible_text(html: str) -> str:
    parser = _Text()
    parser.feed(html)
    return re.sub(r"\s+", " ", " ".join(parser.parts))


def headings(html: str) -> list[str]:
    """The text of every h1-h4, in page order."""
    return [visible_text(h).strip() for h in re.findall(r"<h[1-4][^>]*>(.*?)</h[1-4]>", html, flags=re.S)]


def in_order(html: str, wanted: Sequence[str]) -> bool:
    """Whether a heading holding each of `wanted` exists, in that order."""
    found = headings(html)
    positions = [next(i for i, h in enumerate(found) if part in h) for part in wanted]
    return positions == sorted(positions)
