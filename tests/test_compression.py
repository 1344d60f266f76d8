"""The local compressor and the fact check: lossless rewrites, protected spans, lost facts."""

from __future__ import annotations

import json

from costwise.compression import (
    KEEP_CLOSE,
    KEEP_OPEN,
    LocalCompressor,
    extract_facts,
    minify_json,
)

CODE = "```python\ndef f(x):   \n    return  x\n\n\n    # spaced\n```"


def test_whitespace_is_folded() -> None:
    """Runs of spaces, trailing spaces and stacks of blank lines shrink."""
    out = LocalCompressor()("Hello,      world!   \n\n\n\n\nBye\t\t now")
    assert out == "Hello, world!\n\nBye now"


def test_leading_indentation_is_kept() -> None:
    """Indentation can carry structure (nested lists), so it is not folded."""
    assert LocalCompressor()("- a\n    - b") == "- a\n    - b"


def test_code_blocks_are_untouched() -> None:
    """Fenced code passes through byte for byte, spaces and blank lines included."""
    text = f"Intro   text.\n\n\n\n{CODE}\n\n\n\nOutro."
    out = LocalCompressor()(text)
    assert CODE in out
    assert out.startswith("Intro text.\n\n")


def test_keep_spans_are_verbatim_and_markers_removed() -> None:
    """A <<keep>> span keeps its spacing; the markers themselves are not sent."""
    text = f"Say:   {KEEP_OPEN}A   B    C{KEEP_CLOSE}   now"
    out = LocalCompressor()(text)
    assert out == "Say: A   B    C now"
    assert (
        LocalCompressor(strip_markers=False)(text) == f"Say: {KEEP_OPEN}A   B    C{KEEP_CLOSE} now"
    )


def test_json_is_minified_without_changing_values() -> None:
    """Pretty-printed JSON loses its indentation; every value is the same as written."""
    doc = {"plan": "gold  tier", "limit": 100000, "ids": [1, 2, 3], "nested": {"a": None}}
    pretty = json.dumps(doc, indent=4)
    out = LocalCompressor()(f"Account:\n{pretty}\nEnd")
    payload = out.split("\n")[1]
    assert json.loads(payload) == doc
    assert "gold  tier" in payload  # string contents are never touched
    assert len(out) < len(pretty)


def test_minify_json_keeps_number_spelling_and_rejects_non_json() -> None:
    """Numbers are not re-serialised (1e5 stays 1e5); non-JSON gives None."""
    assert minify_json('{ "a" : 1e5 ,\n "b": [1.50, 2] }') == '{"a": 1e5, "b": [1.50, 2]}'
    assert minify_json("{not json}") is None


def test_json_fence_is_minified() -> None:
    """A ```json block is minified (same document); other code blocks are not."""
    out = LocalCompressor()('```json\n{\n  "a": 1,\n  "b": 2\n}\n```')
    assert out == '```json\n{"a": 1, "b": 2}\n```'


def test_repeats_are_dropped() -> None:
    """Back-to-back repeated lines and verbatim repeated paragraphs go; short ones stay."""
    para = "Always be polite to every customer, whatever they write to us."
    text = f"Rules:\nRules:\n\n{para}\n\nYes.\n\nYes.\n\n{para}\n\nEnd."
    out = LocalCompressor()(text)
    assert out.count(para) == 1
    assert out.count("Rules:") == 1
    assert out.count("Yes.") == 2
    assert out.endswith("End.")


def test_markup_is_folded() -> None:
    """HTML comments and text-free tags go, entities are decoded, rules are shortened."""
    text = "<!-- draft -->\n<p>Price:&nbsp;<b>10</b> &amp; more</p>\n--------------------\nNext"
    out = LocalCompressor()(text)
    assert out == "Price: 10 & more\n\n---\nNext"


def test_rewrites_can_be_switched_off() -> None:
    """Each rewrite is optional."""
    text = "a    b\n\n\n\nc"
    assert LocalCompressor(whitespace=False)(text) == text


def test_local_compression_keeps_every_fact() -> None:
    """The local compressor never loses a number, name, link or code block."""
    text = (
        "You   are the assistant of Acme Corp in Berlin.\n\n\n"
        "Our hotline is 555-0100, open 9:30 to 17:00; see https://acme.example/help.\n"
        f"{CODE}\nUse `os.path.join` for paths. {KEEP_OPEN}Never  refund{KEEP_CLOSE}.\n"
    )
    facts = extract_facts(text)
    out = LocalCompressor()(text)
    assert facts.missing(out) == []
    assert facts.preserved_share(out) == 1.0


def test_facts_found() -> None:
    """Numbers, mid-sentence names, identifiers, links and code are facts; "The" is not."""
    facts = extract_facts(
        "The office of Acme is in Paris. Call 555-0100 or mail help@acme.example. "
        "Set MAX_RETRIES via `cfg.load`. The end."
    )
    assert {"Acme", "Paris", "MAX_RETRIES"} <= facts.names
    assert "The" not in facts.names
    assert {"555", "0100"} <= facts.numbers
    assert "help@acme.example" in facts.links
    assert "cfg.load" in facts.code


def test_missing_reports_lost_facts() -> None:
    """A rewrite that drops a number or a name or changes code is caught."""
    facts = extract_facts(f"Refunds for Acme take 14 days.\n{CODE}")
    lossy = "Refunds take two weeks.\n```python\ndef f(x): return x\n```"
    missing = facts.missing(lossy)
    assert "14" in missing
    assert "Acme" in missing
    assert any(m.startswith("```python") for m in missing)
    assert facts.preserved_share(lossy) < 1.0
    assert extract_facts("").preserved_share("anything") == 1.0


def test_inline_code_and_informative_tags_are_kept() -> None:
    """Inline code keeps its spacing; a tag with alt/title/href text is not dropped."""
    text = 'Run `a    =  b` now.  <img alt="Maven Central" src="x.png"> <b>bold</b>'
    out = LocalCompressor()(text)
    assert "`a    =  b`" in out
    assert '<img alt="Maven Central" src="x.png">' in out
    assert "<b>" not in out
    assert extract_facts(text).missing(out) == []


def test_html_comments_are_not_facts() -> None:
    """Comments are dropped by markup folding and are not counted as lost facts."""
    text = "<!-- Copyright 2024 Example Inc -->\nHello from Berlin, says Anna."
    out = LocalCompressor()(text)
    assert "2024" not in out
    assert extract_facts(text).missing(out) == []


def test_minified_json_fence_counts_as_kept() -> None:
    """A ```json block minified to the same document is not a lost fact."""
    text = '```json\n{\n  "path": "/a b",\n  "n": 1\n}\n```'
    out = LocalCompressor()(text)
    assert out != text
    assert extract_facts(text).missing(out) == []
    assert extract_facts(text).missing('```json\n{"path": "/a b", "n": 2}\n```') != []
