"""The local compressor: lossless-first rewrites that need no model.

Everything here removes characters a model does not need to read the same content:
runs of spaces, trailing whitespace, stacks of blank lines, decorative rules, HTML comments
and tags that carry no text, pretty-printed JSON, lines repeated back to back and paragraphs
repeated verbatim. Code blocks, inline code and ``<<keep>>`` spans are passed through
untouched (JSON in a ```json block is minified, which changes no value). HTML comments are
dropped: they are not content (``markup=False`` keeps them). It is cheap (linear in the text) and
deterministic, so it is safe to enable by default.
"""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass

from ._facts import _FENCE, _INLINE_CODE, _KEEP

__all__ = ["LocalCompressor", "minify_json"]

_SPACES = re.compile(r"(?<=\S)[ \t\u00a0]{2,}")
_TRAILING = re.compile(r"[ \t\u00a0]+(?=\n)")
_BLANKS = re.compile(r"\n{3,}")
_RULE = re.compile(r"^([ \t]*)([-=*_~#+])\2{3,}[ \t]*$", re.MULTILINE)
_HTML_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
_EMPTY_TAGS = re.compile(
    r"</?(?:p|div|span|br|hr|b|i|em|strong|u|font|center|small|big|section|article)"
    # only presentational attributes: a tag with alt=, title=, href= carries text
    r"(?:\s+(?:class|style|align|id|width|height|dir)=(?:\"[^\"<>]*\"|'[^'<>]*'|[\w-]+))*\s*/?>",
    re.IGNORECASE,
)
_BREAK_TAGS = frozenset({"p", "br", "div", "hr", "section", "article", "center"})
_ENTITY = re.compile(r"&(?:nbsp|amp|lt|gt|quot|#39|#x27|apos);")
_JSON_START = re.compile(r"^[ \t]*[\[{]", re.MULTILINE)
_JSON_FENCE = re.compile(r"\A([ \t]*)(```|~~~)[ \t]*json[ \t]*\n(.*?)\n\1\2[ \t]*\Z", re.DOTALL)


def minify_json(text: str) -> str | None:
    """`text` without the whitespace JSON ignores, or ``None`` when it is not JSON.

    One space is kept after ``,`` and ``:`` outside strings.

    The bytes of every string and number are kept as written (no re-serialisation), so
    ``1e5`` stays ``1e5`` and duplicate keys stay duplicated: the result is the same JSON
    document.
    """
    try:
        json.loads(text)
    except ValueError:
        return None
    out: list[str] = []
    in_string = escaped = False
    for ch in text:
        if ch in " \t\r\n" and not in_string:
            continue
        if out and not in_string and out[-1] in ",:":
            # One space after separators: it costs no token ("a": 1 and "a":1 tokenise
            # alike) and keeps [1, 2] from reading as the number "1,2".
            out.append(" ")
        if in_string:
            out.append(ch)
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
            out.append(ch)
        else:
            out.append(ch)
    return "".join(out)


@dataclass(frozen=True, kw_only=True, slots=True)
class LocalCompressor:
    """Shrink a prompt without a model and without losing content.

    Use it on long system prompts, retrieved documents and tool output before they are sent:
    it removes formatting noise (spaces, blank lines, rules, HTML wrappers, JSON
    indentation) and verbatim repetition. Each rewrite can be switched off.

    Args:
        whitespace: fold runs of spaces, trailing spaces and stacks of blank lines.
        markup: drop HTML comments and text-free tags, decode common entities, shorten
            decorative rules (``-----`` to ``---``).
        json: minify JSON documents (whole blocks, ```json fences, JSON lines).
        repeats: drop a line repeated back to back and any paragraph repeated verbatim.
        min_paragraph_chars: a repeated paragraph is dropped only when at least this long
            (short repeats such as "Yes." are often meaningful).
        strip_markers: remove the ``<<keep>>`` markers (their content is always kept).

    Example:
        >>> LocalCompressor()("Hello,      world!\\n\\n\\n\\nBye")
        'Hello, world!\\n\\nBye'
    """

    whitespace: bool = True
    markup: bool = True
    json: bool = True
    repeats: bool = True
    min_paragraph_chars: int = 40
    strip_markers: bool = True

    def __call__(self, text: str) -> str:
        """The compressed text."""
        return self.compress(text)

    def compress(self, text: str) -> str:
        """The compressed text (see the class docstring for what changes)."""
        text = text.replace("\r\n", "\n").replace("\r", "\n")
        # Protected segments (kept spans, fenced code) are cut out first and glued back
        # afterwards, so no rewrite can touch them; repeated paragraphs are found across
        # all prose segments.
        seen: set[str] = set()
        out: list[str] = []
        pos = 0
        for kind, start, end, body in _protected(text):
            out.append(self._prose(text, pos, start, seen))
            if kind == "keep":
                out.append(body if self.strip_markers else text[start:end])
            else:
                out.append(self._code(body))
            pos = end
        out.append(self._prose(text, pos, len(text), seen))
        result = "".join(out)
        return result.lstrip("\n").rstrip() if self.whitespace else result

    def _code(self, block: str) -> str:
        if not self.json:
            return block
        m = _JSON_FENCE.match(block)
        if m is None:
            return block
        minified = minify_json(m.group(3))
        if minified is None:
            return block
        return f"{m.group(1)}{m.group(2)}json\n{minified}\n{m.group(1)}{m.group(2)}"

    def _prose(self, full: str, start: int, end: int, seen: set[str]) -> str:
        """Rewrite ``full[start:end]``, a stretch of text between protected segments."""
        text = full[start:end]
        if not text:
            return text
        # A stretch that starts mid-line: a sentinel stands for the text before it, so a
        # run of spaces there is folded like any other (not kept as indentation).
        mid_line = start > 0 and full[start - 1] != "\n"
        pieces = self._json_spans(text) if self.json else [(False, text)]
        out = []
        for is_json, piece in pieces:
            out.append(piece if is_json else self._plain(piece))
        text = "".join(out)
        if mid_line and self.whitespace:
            text = _SPACES.sub(" ", "\x00" + text)[1:]
        if self.repeats:
            text = self._drop_repeated_paragraphs(text, seen)
        if self.whitespace:
            text = _BLANKS.sub("\n\n", text)
        return text

    def _plain(self, text: str) -> str:
        if self.markup:
            text = _HTML_COMMENT.sub("", text)
            text = _EMPTY_TAGS.sub(_tag_break, text)
            text = _ENTITY.sub(lambda m: html.unescape(m.group(0)).replace("\u00a0", " "), text)
            text = _RULE.sub(lambda m: m.group(1) + m.group(2) * 3, text)
        if self.whitespace:
            text = _TRAILING.sub("", text)
            text = _SPACES.sub(" ", text)
        if self.repeats:
            lines = text.split("\n")
            kept = [
                line
                for i, line in enumerate(lines)
                if i == 0 or not line.strip() or line != lines[i - 1]
            ]
            text = "\n".join(kept)
        return text

    def _json_spans(self, text: str) -> list[tuple[bool, str]]:
        """Split out JSON documents that start a line (payloads, JSON lines), minified."""
        decoder = json.JSONDecoder()
        out: list[tuple[bool, str]] = []
        pos = 0
        for m in _JSON_START.finditer(text):
            start = m.end() - 1
            if start < pos:
                continue
            try:
                _, end = decoder.raw_decode(text, start)
            except ValueError:
                continue
            minified = minify_json(text[start:end]) if end - start >= 2 else None
            if minified is None:
                continue
            out.append((False, text[pos:start]))
            out.append((True, minified))
            pos = end
        out.append((False, text[pos:]))
        return out

    def _drop_repeated_paragraphs(self, text: str, seen: set[str]) -> str:
        kept: list[str] = []
        for para in text.split("\n\n"):
            key = para.strip()
            if len(key) >= self.min_paragraph_chars:
                if key in seen:
                    # keep the surrounding line breaks so neighbours stay apart
                    kept.append(para[: len(para) - len(para.lstrip())] + para[len(para.rstrip()) :])
                    continue
                seen.add(key)
            kept.append(para)
        return "\n\n".join(kept)


def _protected(text: str) -> list[tuple[str, int, int, str]]:
    """The kept spans and fenced code blocks of `text`, in order, not overlapping."""
    spans = [("keep", m.start(), m.end(), m.group(1)) for m in _KEEP.finditer(text)]
    for pattern in (_FENCE, _INLINE_CODE):
        for m in pattern.finditer(text):
            if not any(s < m.end() and m.start() < e for _, s, e, _ in spans):
                spans.append(("code", m.start(), m.end(), m.group(0)))
    return sorted(spans, key=lambda s: s[1])


def _tag_break(m: re.Match[str]) -> str:
    """Block-level tags become a line break (they separate text); inline tags vanish."""
    name = re.match(r"</?\s*(\w+)", m.group(0))
    return "\n" if name is not None and name.group(1).lower() in _BREAK_TAGS else ""
