"""What a compressed text must keep: code, numbers, names, links and marked spans.

A compressor (local or a model) may rewrite prose freely, but the facts a reader or a model
relies on must come through unchanged. `extract_facts` lists them once for the original
text; `Facts.missing` tells which of them a candidate text lost, so a lossy rewrite can be
rejected before it is sent.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["KEEP_CLOSE", "KEEP_OPEN", "Facts", "extract_facts"]

KEEP_OPEN = "<<keep>>"
"""Opens a span that every compressor passes through verbatim (the markers are removed)."""
KEEP_CLOSE = "<</keep>>"
"""Closes a span opened by `KEEP_OPEN`."""

_KEEP = re.compile(re.escape(KEEP_OPEN) + r"(.*?)" + re.escape(KEEP_CLOSE), re.DOTALL)
_FENCE = re.compile(r"^([ \t]*)(```|~~~)[^\n]*\n.*?^\1\2[ \t]*$", re.DOTALL | re.MULTILINE)
_INLINE_CODE = re.compile(r"`([^`\n]+)`")
_HTML_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
_JSON_FENCE_BODY = re.compile(
    r"^[ \t]*(?:```|~~~)[ \t]*json[ \t]*\n(.*?)\n[ \t]*(?:```|~~~)[ \t]*$", re.DOTALL | re.MULTILINE
)
_URL = re.compile(r"\b(?:https?://|www\.)[^\s<>()\"'`]+[^\s<>()\"'`.,;:!?]")
_EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")
# A number: digits with internal separators, an optional sign or currency, decimals.
_NUMBER = re.compile(r"(?<![\w.])\d+(?:[.,:/]\d+)*(?![\w])")
# A name: a capitalised word, an acronym, or an identifier (snake_case, camelCase, dotted).
_WORD = re.compile(r"\b[A-Za-z_][\w]*(?:\.[A-Za-z_]\w*)*\b")
_SENTENCE_START = re.compile(r"(?:^|[.!?:;]\s+|\n\s*(?:[-*+>#|]+\s*|\d+[.)]\s*)?|>)[\"'(\[*_]*$")


def _is_identifier(word: str) -> bool:
    if "." in word.strip("."):
        return True
    if "_" in word.strip("_"):
        return True
    # camelCase / PascalCase with an inner capital, or an acronym of two or more capitals
    return any(c.isupper() for c in word[1:]) or (len(word) >= 2 and word.isupper())


@dataclass(frozen=True, kw_only=True, slots=True)
class Facts:
    """The facts of a text that a compressed version must preserve.

    Use `extract_facts` to build one, then `missing` on each candidate compression. Names
    are capitalised words that appear somewhere other than at the start of a sentence
    (so "The" at a sentence start is not a name, but "Paris" in mid-sentence is),
    acronyms and identifiers; numbers are digit runs with their separators. HTML comments
    are not facts (they are invisible in the rendered text). A ```json block counts as kept
    when the same JSON document (whitespace aside) is present.

    Attributes:
        code: fenced code blocks and inline code spans, verbatim.
        keep: the contents of ``<<keep>>...<</keep>>`` spans, verbatim.
        numbers: every number as written (``3.14``, ``1,024``, ``2026-11-27`` parts).
        names: proper names, acronyms and identifiers.
        links: URLs and e-mail addresses.
    """

    code: frozenset[str]
    keep: frozenset[str]
    numbers: frozenset[str]
    names: frozenset[str]
    links: frozenset[str]

    @property
    def count(self) -> int:
        """How many distinct facts there are."""
        return (
            len(self.code) + len(self.keep) + len(self.numbers) + len(self.names) + len(self.links)
        )

    def missing(self, text: str) -> list[str]:
        """The facts `text` does not contain, sorted; empty when it kept them all.

        Code and kept spans must appear verbatim (ignoring trailing spaces on their lines);
        numbers, names and links must appear as whole tokens.
        """
        lost: list[str] = []
        folded = _fold_trailing(text)
        json_bodies = {_json_key(m.group(1)) for m in _JSON_FENCE_BODY.finditer(text)}
        lost += sorted(
            c
            for c in self.code | self.keep
            if _fold_trailing(c) not in folded and not _same_json(c, json_bodies)
        )
        numbers = set(_NUMBER.findall(text))
        lost += sorted(n for n in self.numbers if n not in numbers)
        words = set(_WORD.findall(text))
        lost += sorted(n for n in self.names if n not in words)
        lost += sorted(link for link in self.links if link not in text)
        return lost

    def preserved_share(self, text: str) -> float:
        """The share of facts that `text` kept (1.0 when there were none)."""
        total = self.count
        return 1.0 if total == 0 else 1.0 - len(self.missing(text)) / total


def _json_key(body: str) -> str | None:
    from ._local import minify_json

    return minify_json(body)


def _same_json(block: str, minified: set[str | None]) -> bool:
    """A ```json block counts as kept when the text holds the same document, minified."""
    m = _JSON_FENCE_BODY.fullmatch(block.strip())
    if m is None:
        return False
    key = _json_key(m.group(1))
    return key is not None and key in minified


def _fold_trailing(text: str) -> str:
    return "\n".join(line.rstrip() for line in text.splitlines())


def extract_facts(text: str) -> Facts:
    """List the facts of `text` that any compression of it must keep.

    Use it before compressing, then check candidates with `Facts.missing`. Marker syntax:
    ``<<keep>>exact text<</keep>>``.

    Args:
        text: the original text (markers included).

    Returns:
        The facts.

    Example:
        >>> sorted(extract_facts("Call Alice at 555-0100 before 9.").numbers)
        ['0100', '555', '9']
    """
    keep = frozenset(m.group(1) for m in _KEEP.finditer(text))
    # HTML comments are not content (a reader of the rendered text never sees them).
    text = _HTML_COMMENT.sub(lambda m: " " * len(m.group(0)), text)
    plain = _KEEP.sub(lambda m: " " * len(m.group(0)), text)
    code = [m.group(0) for m in _FENCE.finditer(plain)]
    prose = _FENCE.sub(lambda m: " " * len(m.group(0)), plain)
    code += _INLINE_CODE.findall(prose)
    prose = _INLINE_CODE.sub(" ", prose)
    links = set(_URL.findall(prose)) | set(_EMAIL.findall(prose))
    for link in links:
        prose = prose.replace(link, " ")
    numbers = frozenset(_NUMBER.findall(prose))
    names: set[str] = set()
    for m in _WORD.finditer(prose):
        word = m.group(0)
        before = prose[max(0, m.start() - 8) : m.start()]
        if _is_identifier(word) or (word[0].isupper() and not _SENTENCE_START.search(before)):
            names.add(word)
    return Facts(
        code=frozenset(c for c in code if c.strip()),
        keep=keep,
        numbers=numbers,
        names=frozenset(names),
        links=frozenset(links),
    )
