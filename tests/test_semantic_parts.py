"""The semantic cache's parts: index, persistence, Redis sharing, verifier, calibration."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from costwise import CostwiseWarning
from costwise.semantic import (
    FEATURES,
    RedisSemanticIndex,
    SemanticIndex,
    SemanticSettings,
    VectorIndex,
    Verifier,
    calibrate,
    default_settings,
    pair_features,
    upper_bound,
)
from redisserver import redis_url, start_redis

__all__ = ["redis_url"]  # the session fixture, re-exported for pytest


def unit(n: int, dim: int = 32, seed: int = 0) -> Any:
    """`n` random unit vectors."""
    v = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_exact_search_finds_the_nearest() -> None:
    """Small indexes search exactly, best first, and skip removed entries."""
    vectors = unit(50)
    index = VectorIndex(32)
    index.add_many(np.arange(50), vectors)
    assert not index.approximate
    (key, cos), *_ = index.search(vectors[7], k=3)
    assert key == 7 and cos == pytest.approx(1.0, abs=1e-5)
    assert index.remove(7) and not index.remove(7)
    assert all(k != 7 for k, _ in index.search(vectors[7], k=50))
    assert len(index) == 49


def test_switches_to_hnsw_and_agrees_with_exact() -> None:
    """Past approximate_after the HNSW graph answers, with the same nearest neighbours."""
    vectors = unit(400)
    index = VectorIndex(32, approximate_after=100)
    index.add_many(np.arange(400), vectors)
    assert index.approximate
    hits = sum(index.search(vectors[i], k=1)[0][0] == i for i in range(0, 400, 7))
    assert hits >= 0.95 * len(range(0, 400, 7))
    index.add(1000, vectors[3])
    index.remove(3)
    assert index.search(vectors[3], k=1)[0][0] == 1000


def test_int8_graph_reports_exact_cosines(tmp_path: Path) -> None:
    """The int8 graph finds the neighbours; the cosines returned are the exact f32 ones."""
    vectors = unit(400)
    query = unit(1, seed=9)[0]
    index = VectorIndex(32, approximate_after=100)
    index.add_many(np.arange(400), vectors)
    assert index.approximate and index.dtype == "i8"
    found = index.search(query, k=4)
    assert [c for _, c in found] == sorted((c for _, c in found), reverse=True)
    for key, cosine in found:
        assert cosine == pytest.approx(float(vectors[key] @ query), abs=1e-6)
    assert found[0][0] == int(np.argmax(vectors @ query))


def test_graphs_saved_as_f32_still_load(tmp_path: Path) -> None:
    """An index saved with float32 vectors in its graph loads and answers (mapped or not)."""
    vectors = unit(400)
    old = VectorIndex(32, approximate_after=100, dtype="f32")
    old.add_many(np.arange(400), vectors)
    old.save(tmp_path)
    for view in (True, False):
        index = VectorIndex.load(tmp_path, view=view, approximate_after=100)
        assert index.approximate
        ((key, cosine),) = index.search(vectors[42], k=1)
        assert key == 42 and cosine == pytest.approx(1.0, abs=1e-6)


def test_save_and_load_without_rebuilding(tmp_path: Path) -> None:
    """A saved HNSW index loads as HNSW with the same answers; exact ones stay exact."""
    vectors = unit(300)
    index = VectorIndex(32, approximate_after=100)
    index.add_many(np.arange(300), vectors)
    index.remove(5)
    index.save(tmp_path / "a")
    loaded = VectorIndex.load(tmp_path / "a", approximate_after=100)
    assert loaded.approximate and len(loaded) == 299 and 5 not in loaded
    assert loaded.search(vectors[9], k=1)[0][0] == 9
    small = VectorIndex(32)
    small.add_many(np.arange(10), vectors[:10])
    small.save(tmp_path / "b")
    assert not VectorIndex.load(tmp_path / "b").approximate


def test_semantic_index_partitions_and_persists(tmp_path: Path) -> None:
    """Partitions never see each other's entries, and a path survives a restart."""
    vectors = unit(4)
    index = SemanticIndex(32, path=tmp_path)
    index.add("tenant-a", 1, vectors[0])
    index.add("tenant-b", 2, vectors[0])
    assert [k for k, _ in index.search("tenant-a", vectors[0])] == [1]
    assert index.search("nobody", vectors[0]) == []
    index.save()
    again = SemanticIndex(32, path=tmp_path)
    assert sorted(again.partitions()) == ["tenant-a", "tenant-b"]
    assert [k for k, _ in again.search("tenant-b", vectors[0])] == [2]
    with pytest.raises(ValueError, match="path"):
        SemanticIndex(32).save()


def test_redis_index_is_shared_between_workers(redis_url: str) -> None:
    """Two workers share entries through Redis: adds and removals reach the other one."""
    import redis

    prefix = "test-semantic-share:"
    vectors = unit(3)
    one = RedisSemanticIndex(32, client=redis.Redis.from_url(redis_url), prefix=prefix)
    two = RedisSemanticIndex(32, client=redis.Redis.from_url(redis_url), prefix=prefix)
    one.add("p", 11, vectors[0])
    assert [k for k, _ in two.search("p", vectors[0])] == [11]  # loaded on first use
    one.add("p", 12, vectors[1])
    assert two.sync(force=True) == 1
    assert two.search("p", vectors[1])[0][0] == 12
    one.remove("p", 11)
    two.sync(force=True)
    assert all(k != 11 for k, _ in two.search("p", vectors[0]))
    late = RedisSemanticIndex(32, client=redis.Redis.from_url(redis_url), prefix=prefix)
    assert [k for k, _ in late.search("p", vectors[1])] == [12]
    one.clear()
    for index in (one, two, late):
        index.close()


def test_redis_outage_degrades_to_local() -> None:
    """With Redis down the index warns once and keeps serving its local entries."""
    with start_redis() as server:
        index = RedisSemanticIndex(32, server.url, prefix="outage:", retry_after=60)
        vectors = unit(2)
        index.add("p", 1, vectors[0])
        server.stop()
        with pytest.warns(CostwiseWarning, match="unavailable"):
            index.add("p", 2, vectors[1])
        assert index.search("p", vectors[1])[0][0] == 2
        index.close()


def test_pair_features_flag_look_alikes() -> None:
    """Numbers, names, negation and question words that differ are flagged."""
    f = dict(zip(FEATURES, pair_features("Is 5 prime?", "Is 7 prime?", 0.9), strict=True))
    assert f["number_mismatch"] == 1.0
    f = dict(zip(FEATURES, pair_features("Why visit Spain?", "Why visit China?", 0.9), strict=True))
    assert f["name_mismatch"] == 2.0 and f["number_mismatch"] == 0.0
    f = dict(zip(FEATURES, pair_features("Is it safe?", "Isn't it safe?", 0.9), strict=True))
    assert f["negation_mismatch"] == 1.0
    f = dict(zip(FEATURES, pair_features("How do I cook?", "Why do I cook?", 0.9), strict=True))
    assert f["question_word_mismatch"] == 1.0
    same = dict(zip(FEATURES, pair_features("Hi there", "hi there", 1.0), strict=True))
    assert same["identical"] == 1.0 and same["content_jaccard"] == 1.0


def synthetic_pairs(n: int, seed: int) -> tuple[list[tuple[str, str, int]], Any]:
    """Positives: high cosine, same number; negatives: look-alikes with another number."""
    rng = np.random.default_rng(seed)
    pairs, cos = [], []
    for i in range(n):
        if i % 2:
            pairs.append((f"what is item {i} about", f"what's item {i} about", 1))
            cos.append(rng.uniform(0.8, 1.0))
        else:
            pairs.append((f"what is item {i} about", f"what is item {i + 1} about", 0))
            cos.append(rng.uniform(0.75, 0.98))
    return pairs, np.array(cos)


def test_calibrate_meets_the_target_on_new_pairs() -> None:
    """calibrate() picks settings whose FHR holds on pairs it was not fit on."""
    pairs, cos = synthetic_pairs(2000, seed=1)
    settings = calibrate(pairs, 0.02, cosines=cos)
    plain = calibrate(pairs, 0.02, cosines=cos, method="cosine")
    assert settings.verifier is not None and plain.verifier is None
    assert settings.fit_fhr is not None and settings.fit_fhr <= 0.02
    test, test_cos = synthetic_pairs(2000, seed=2)
    accepted = [settings.accepts(a, b, c) for (a, b, _), c in zip(test, test_cos, strict=True)]
    labels = np.array([p[2] for p in test])
    acc = np.array(accepted)
    assert acc[labels == 0].mean() <= 0.02
    assert acc[labels == 1].mean() > 0.9  # the number check beats any cosine threshold
    assert (plain.fit_recall or 0) < 0.5
    with pytest.raises(ValueError, match="negative"):
        calibrate([("a", "b", 1)], cosines=[0.9])


def test_settings_round_trip(tmp_path: Path) -> None:
    """Settings (with the verifier) survive save/load and give the same scores."""
    pairs, cos = synthetic_pairs(400, seed=3)
    settings = calibrate(pairs, 0.05, cosines=cos, source="synthetic")
    settings.save(tmp_path / "s.json")
    again = SemanticSettings.load(tmp_path / "s.json")
    assert again == settings
    assert again.score("a 1", "a 2", 0.9) == pytest.approx(settings.score("a 1", "a 2", 0.9))
    with pytest.raises(ValueError, match="feature"):
        Verifier.from_dict({**settings.to_dict()["verifier"], "features": ["x"]})


def test_default_settings_are_calibrated_for_two_percent() -> None:
    """The shipped default uses the local embedder, a verifier, and a 2% target."""
    settings = default_settings()
    assert settings.embedder == "all-MiniLM-L6-v2-int8"
    assert settings.verifier is not None and settings.target_fhr == 0.02
    assert settings.fit_fhr is not None and settings.fit_fhr <= 0.02
    assert "qqp" in settings.source.lower()


def test_upper_bound_is_conservative() -> None:
    """The Wilson bound sits above the observed rate and shrinks with more data."""
    assert upper_bound(2, 100) > 0.02
    assert upper_bound(20, 1000) < upper_bound(2, 100)
    assert upper_bound(0, 0) == 1.0


def test_import_does_not_load_heavy_dependencies() -> None:
    """Importing costwise.semantic and the strategy loads no numpy/onnxruntime/usearch."""
    code = (
        "import sys, costwise.semantic, costwise.strategies; "
        "print([m for m in ('numpy', 'onnxruntime', 'usearch', 'tokenizers', 'redis') "
        "if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_mapped_index_takes_writes_and_removals(tmp_path: Path) -> None:
    """A memory-mapped index serves searches, new entries and removals, then turns writable."""
    vectors = unit(400)
    index = VectorIndex(32, approximate_after=100)
    index.add_many(np.arange(300), vectors[:300])
    index.save(tmp_path)
    mapped = VectorIndex.load(tmp_path, approximate_after=100)
    assert mapped.search(vectors[9], k=1)[0][0] == 9
    mapped.remove(9)
    assert all(k != 9 for k, _ in mapped.search(vectors[9], k=4))
    mapped.add(350, vectors[350])
    assert mapped.search(vectors[350], k=1)[0][0] == 350
    mapped.delta_max = 10
    mapped.add_many(np.arange(360, 380), vectors[360:380])  # past delta_max: graph loaded
    assert mapped.search(vectors[370], k=1)[0][0] == 370
    assert all(k != 9 for k, _ in mapped.search(vectors[9], k=4))
    assert len(mapped) == 300 - 1 + 1 + 20
    mapped.save(tmp_path / "again")
    assert VectorIndex.load(tmp_path / "again", view=False).search(vectors[350], k=1)[0][0] == 350


def test_index_then_embedder_does_not_crash(tmp_path: Path) -> None:
    """Loading an HNSW index before the first local embedding must not crash the process."""
    code = (
        "import sys, numpy as np\n"
        "from costwise.semantic import VectorIndex, LocalMiniLM\n"
        "v = np.eye(3, 8, dtype=np.float32)\n"
        "i = VectorIndex(8, approximate_after=1); i.add_many([1, 2, 3], v)\n"
        "import onnxruntime\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-500:]


def test_local_minilm_and_default_settings_offline() -> None:
    """The bundled local embedder runs offline; the default accepts a paraphrase only."""
    from costwise.semantic import LocalMiniLM

    embedder = LocalMiniLM()
    texts = [
        "How do I cancel my order?",
        "How can I cancel my order?",
        "How many days are in June?",
        "How many days are in July?",
    ]
    v = embedder.embed(texts)
    assert v.shape == (4, 384) and v.dtype == np.float32
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    settings = default_settings()
    assert settings.accepts(texts[0], texts[1], float(v[0] @ v[1]))
    assert not settings.accepts(texts[2], texts[3], float(v[2] @ v[3]))
    assert not settings.accepts(texts[0], texts[2], float(v[0] @ v[2]))
