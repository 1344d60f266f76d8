"""Semantic cache parts: embedders, vector indexes, the verifier and calibration.

The strategy is `costwise.strategies.SemanticCache`; this module holds what it is built
from, for users who pick an embedder, persist or share the index, or calibrate settings
on their own labelled pairs::

    from costwise.semantic import SemanticIndex, calibrate
    from costwise.strategies import ResponseCache, SemanticCache

    settings = calibrate(my_pairs, target_fhr=0.01)  # [(question_a, question_b, 0|1), ...]
    client = CostwiseClient(strategies=[
        ResponseCache(),
        SemanticCache(settings=settings, index=SemanticIndex(384, path="/var/cache/sem")),
    ])

Heavy dependencies (numpy, onnxruntime, tokenizers, usearch, redis) are imported on first
use only; install them with ``pip install costwise[semantic]``.
"""

from __future__ import annotations

from ._calibrate import SemanticSettings, calibrate, default_settings, upper_bound
from ._embedders import Embedder, LocalMiniLM, OpenAIEmbedder
from ._index import RedisSemanticIndex, SemanticIndex, VectorIndex
from ._verifier import FEATURES, Verifier, pair_features

__all__ = [
    "FEATURES",
    "Embedder",
    "LocalMiniLM",
    "OpenAIEmbedder",
    "RedisSemanticIndex",
    "SemanticIndex",
    "SemanticSettings",
    "Verifier",
    "VectorIndex",
    "calibrate",
    "default_settings",
    "pair_features",
    "upper_bound",
]
