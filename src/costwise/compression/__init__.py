"""Prompt compression: a local lossless-first compressor and the fact check every rewrite passes.

Use `LocalCompressor` to strip formatting noise and repetition from long prompts without a
model, and `extract_facts` / `Facts.missing` to check that any rewrite (local or by a
model) kept the code, numbers, names, links and ``<<keep>>...<</keep>>`` spans of the
original. The pipeline strategy that applies both, and optionally a model, is
`costwise.strategies.Compressor`.
"""

from __future__ import annotations

from ._facts import KEEP_CLOSE, KEEP_OPEN, Facts, extract_facts
from ._local import LocalCompressor, minify_json

__all__ = [
    "KEEP_CLOSE",
    "KEEP_OPEN",
    "Facts",
    "LocalCompressor",
    "extract_facts",
    "minify_json",
]
