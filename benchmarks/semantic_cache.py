"""Semantic cache benchmark: false hits versus recall on real pairs, FAQ traffic, and speed.

Needs the third-party data in ``../shared/data`` (see its README.md); nothing is copied into
the repository. Run from the repository root::

    .venv/bin/python benchmarks/semantic_cache.py --data ../shared/data/qqp_pairs_dev.jsonl
    .venv/bin/python benchmarks/semantic_cache.py --data ../shared/data/banking77_train.csv
    .venv/bin/python benchmarks/semantic_cache.py  # both, plus the speed figures

``--data`` accepts any file of either shape:

- pairs (JSON lines): ``{"text_a", "text_b", "label"}`` (label 1 = same question), or
  GPTCache's ``{"origin", "similar"}`` (all positives). The pairs are split in two halves by
  a seeded shuffle (``--seed``, default 0): the verifier and thresholds are fit on the
  *fit* half and every figure is measured on the *report* half. "recall at FHR x" is the
  share of duplicate pairs caught at the best threshold whose false-hit rate on the report
  half is at most x (the ROC operating point), for the plain cosine threshold and for the
  full method (cosine + verifier) with the same embedder. The "calibrated" rows choose the
  threshold on the fit half only (``calibrate()``) and show what happens on the report
  half: the honest deployment figure. ``default_*`` is the shipped default setting.
- questions with intents (CSV ``text,category``): streamed in file order through an empty
  cache at the default setting; a hit is correct when the cached question has the same
  intent. ``hit_rate`` = hits / questions, ``false_hit_rate`` = wrong hits / hits.

The shipped default (``src/costwise/data/semantic_default.json``) is made by::

    .venv/bin/python benchmarks/semantic_cache.py --data ../shared/data/qqp_pairs_dev.jsonl \\
        --write-default src/costwise/data/semantic_default.json --no-speed

which runs ``calibrate(target_fhr=0.02)`` on the fit half (seed 0) of QQP only.

Embedding 40k sentences with the local model takes several minutes on 2 cores, so vectors
are cached in ``$COSTWISE_BENCH_CACHE`` (default: ``<tmpdir>/costwise-semantic-bench``, outside
the repository), keyed by the data file's SHA-256 and the embedder; reruns take seconds. The
100k-entry HNSW index used for the speed figures is cached there too (its first build is
timed and printed).

The last line printed is one JSON object with the headline figures.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from costwise.semantic import LocalMiniLM, SemanticSettings, VectorIndex, calibrate
from costwise.semantic._calibrate import default_settings, pick_threshold

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / ".." / "shared" / "data"
DEFAULT_DATA = [DATA / "qqp_pairs_dev.jsonl", DATA / "banking77_train.csv"]
TARGETS = (0.01, 0.02, 0.05)


# -- data ------------------------------------------------------------------------------


def load(path: Path) -> tuple[str, list[Any]]:
    """("pairs", [(a, b, label)]) or ("intents", [(text, intent)]) from the file's shape."""
    text = path.read_text(encoding="utf-8")
    if path.suffix in {".jsonl", ".json", ".ndjson"}:
        lines = [json.loads(line) for line in text.splitlines() if line.strip()]
        if not lines:
            raise SystemExit(f"{path}: empty")
        first = lines[0]
        if "text_a" in first:
            return "pairs", [(str(o["text_a"]), str(o["text_b"]), int(o["label"])) for o in lines]
        if "origin" in first:
            return "pairs", [(str(o["origin"]), str(o["similar"]), 1) for o in lines]
        if "text" in first:
            key = next(k for k in ("category", "intent", "label") if k in first)
            return "intents", [(str(o["text"]), str(o[key])) for o in lines]
        raise SystemExit(f"{path}: unknown row format {sorted(first)}")
    reader = csv.reader(text.splitlines())
    cols = [h.strip().lower() for h in next(reader)]
    ti = cols.index("text") if "text" in cols else 0
    ci = next((cols.index(c) for c in ("category", "intent", "label") if c in cols), 1)
    return "intents", [(r[ti], r[ci]) for r in reader if len(r) > max(ti, ci)]


def cache_dir() -> Path:
    default = Path(tempfile.gettempdir()) / "costwise-semantic-bench"
    d = Path(os.environ.get("COSTWISE_BENCH_CACHE", default))
    d.mkdir(parents=True, exist_ok=True)
    return d


def embed_cached(path: Path, texts: list[str], embedder: Any) -> dict[str, np.ndarray]:
    """Vectors of the unique `texts`, cached outside the repo keyed by the file's hash."""
    digest = hashlib.sha256(path.read_bytes() + embedder.name.encode()).hexdigest()[:24]
    file = cache_dir() / f"{digest}.npz"
    unique = list(dict.fromkeys(texts))
    if file.exists():
        data = np.load(file, allow_pickle=False)
        if list(data["texts"]) == unique:
            print(f"  (embeddings from cache {file})", file=sys.stderr)
            return dict(zip(unique, data["vectors"], strict=True))
    out = np.empty((len(unique), embedder.dim), dtype=np.float32)
    t0 = time.perf_counter()
    step = 2048
    for s in range(0, len(unique), step):
        out[s : s + step] = embedder.embed(unique[s : s + step])
        done = min(s + step, len(unique))
        rate = done / (time.perf_counter() - t0)
        print(f"  embedded {done}/{len(unique)} ({rate:.0f}/s)", file=sys.stderr, flush=True)
    np.savez(file, texts=np.array(unique), vectors=out)
    return dict(zip(unique, out, strict=True))


# -- pairs -----------------------------------------------------------------------------


def recall_at(scores: np.ndarray, labels: np.ndarray, fhr: float) -> tuple[float, float]:
    """Best recall with FHR <= `fhr` on these pairs (ROC operating point): (recall, fhr)."""
    neg = np.sort(scores[labels == 0])[::-1]
    pos = scores[labels == 1]
    if len(neg) == 0 or len(pos) == 0:
        return float("nan"), float("nan")
    allowed = int(np.floor(fhr * len(neg) + 1e-9))
    threshold = np.nextafter(neg[allowed], np.inf) if allowed < len(neg) else -np.inf
    return float((pos >= threshold).mean()), float((neg >= threshold).mean())


def split(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[: n // 2]), np.sort(order[n // 2 :])


def run_pairs(path: Path, rows: list[Any], seed: int, write_default: Path | None) -> dict[str, Any]:
    embedder = LocalMiniLM(batch_size=128)
    vecs = embed_cached(path, [t for r in rows for t in r[:2]], embedder)
    cos = np.array([float(vecs[a] @ vecs[b]) for a, b, _ in rows])
    labels = np.array([r[2] for r in rows])
    fit, rep = split(len(rows), seed)
    fit_rows = [rows[i] for i in fit]
    rep_rows = [rows[i] for i in rep]
    n_pos, n_neg = int((labels[rep] == 1).sum()), int((labels[rep] == 0).sum())
    print(
        f"\n== {path.name}: {len(rows)} pairs; fit half {len(fit)}, report half {len(rep)} "
        f"({n_pos} duplicates, {n_neg} non-duplicates), seed {seed}"
    )

    out: dict[str, Any] = {"data": path.name, "pairs_reported": len(rep), "seed": seed}
    has_neg = (labels[fit] == 0).any() and n_neg > 0
    if has_neg:
        t0 = time.perf_counter()
        full = calibrate(
            fit_rows, 0.02, cosines=cos[fit], source=f"{path.name} fit half seed {seed}"
        )
        fit_seconds = time.perf_counter() - t0
        assert full.verifier is not None
        from costwise.semantic import pair_features

        feats = np.array(
            [pair_features(a, b, c) for (a, b, _), c in zip(rep_rows, cos[rep], strict=True)]
        )
        full_scores = full.verifier.score_features(feats)
        print(f"verifier fit on {len(fit)} pairs in {fit_seconds:.1f}s: {full.verifier!r}")
        print("\nrecall at a false-hit rate (report half; threshold at the ROC point):")
        print(f"{'FHR <=':>8} {'plain cosine':>14} {'costwise':>10} {'x':>6}")
        for target in TARGETS:
            base_r, _ = recall_at(cos[rep], labels[rep], target)
            full_r, _ = recall_at(full_scores, labels[rep], target)
            tag = f"{int(target * 100)}"
            out[f"recall_at_fhr_{tag}"] = round(full_r, 4)
            out[f"baseline_recall_at_fhr_{tag}"] = round(base_r, 4)
            print(
                f"{target:>8.0%} {base_r:>14.1%} {full_r:>10.1%} {full_r / max(base_r, 1e-9):>6.2f}"
            )

        print("\ncalibrated on the fit half only, measured on the report half:")
        print(
            f"{'target':>8} {'method':>14} {'threshold':>10} {'fit FHR':>8} {'FHR':>7} {'recall':>7}"
        )
        for target in TARGETS:
            for name, fit_scores, rep_scores in (
                ("plain cosine", cos[fit], cos[rep]),
                ("costwise", None, full_scores),
            ):
                if fit_scores is None:
                    s = full if target == 0.02 else calibrate(fit_rows, target, cosines=cos[fit])
                    assert s.verifier is not None
                    thr, fit_fhr = s.threshold, s.fit_fhr or 0.0
                else:
                    thr, fit_fhr, _ = pick_threshold(fit_scores, labels[fit], target)
                neg, pos = rep_scores[labels[rep] == 0], rep_scores[labels[rep] == 1]
                fhr, rec = float((neg >= thr).mean()), float((pos >= thr).mean())
                tag = "plain" if fit_scores is not None else "full"
                out[f"calibrated_{tag}_fhr_at_target_{int(target * 100)}"] = round(fhr, 4)
                out[f"calibrated_{tag}_recall_at_target_{int(target * 100)}"] = round(rec, 4)
                print(
                    f"{target:>8.0%} {name:>14} {thr:>10.4f} {fit_fhr:>8.2%} {fhr:>7.2%} {rec:>7.1%}"
                )
        if write_default is not None:
            write_default.write_text(json.dumps(full.to_dict(), indent=1) + "\n")
            print(f"\nwrote the default settings to {write_default}")

    if not has_neg:  # all positives (GPTCache's format): FHR is undefined, recall is not
        print("no non-duplicate pairs in both halves: false-hit rates are undefined (null)")
        for target in TARGETS:
            out[f"recall_at_fhr_{int(target * 100)}"] = None
            out[f"baseline_recall_at_fhr_{int(target * 100)}"] = None
        for t in (0.95, 0.80):
            r = float((cos[rep] >= t).mean())
            out[f"plain_{int(t * 100)}_recall"] = round(r, 4)
            print(f"plain cosine >= {t}: recall {r:.1%} of the report half")

    default = default_settings()
    if write_default is not None:
        default = SemanticSettings.load(write_default)
    accepted = np.array(
        [
            c >= default.min_cosine and default.score(a, b, c) >= default.threshold
            for (a, b, _), c in zip(rep_rows, cos[rep], strict=True)
        ]
    )
    rep_labels = labels[rep]
    d_fhr = float(accepted[rep_labels == 0].mean()) if n_neg else float("nan")
    d_rec = float(accepted[rep_labels == 1].mean()) if n_pos else float("nan")
    out["default_false_hit_rate"] = round(d_fhr, 4) if n_neg else None
    out["default_recall"] = round(d_rec, 4) if n_pos else None
    out["default_false_hits"] = int(accepted[rep_labels == 0].sum())
    print(
        f"\ndefault setting ({default.source or 'shipped'}; target FHR {default.target_fhr:.0%}):"
        f" report-half FHR {d_fhr:.2%} ({out['default_false_hits']} of {n_neg}), recall {d_rec:.1%}"
    )
    return out


# -- intents ---------------------------------------------------------------------------


def run_intents(path: Path, rows: list[Any], k: int = 4) -> dict[str, Any]:
    embedder = LocalMiniLM(batch_size=128)
    vecs = embed_cached(path, [r[0] for r in rows], embedder)
    default = default_settings()
    plain = SemanticSettings(embedder=default.embedder, min_cosine=0.95, threshold=0.95)
    print(
        f"\n== {path.name}: {len(rows)} questions, {len({r[1] for r in rows})} intents, "
        "streamed in file order from an empty cache"
    )
    print(f"{'setting':>28} {'hits':>6} {'hit rate':>9} {'wrong':>6} {'false-hit rate':>15}")
    out: dict[str, Any] = {"data": path.name, "questions": len(rows)}
    for label, settings in (("costwise default", default), ("plain cosine 0.95", plain)):
        index = VectorIndex(embedder.dim)
        texts: list[str] = []
        intents: list[str] = []
        hits = wrong = 0
        for text, intent in rows:
            v = vecs[text]
            best, best_score = -1, -1.0
            for key, c in index.search(v, k):
                if c < settings.min_cosine:
                    break
                score = settings.score(text, texts[key], c)
                if score >= settings.threshold and score > best_score:
                    best, best_score = key, score
            if best >= 0:
                hits += 1
                wrong += intents[best] != intent
            else:  # a miss: the answer is stored under this question
                index.add(len(texts), v)
                texts.append(text)
                intents.append(intent)
        rate, fhr = hits / len(rows), wrong / max(hits, 1)
        print(f"{label:>28} {hits:>6} {rate:>9.1%} {wrong:>6} {fhr:>15.1%}")
        if settings is default:
            out.update(
                hit_rate=round(rate, 4),
                false_hit_rate=round(fhr, 4),
                hits=hits,
                false_hits=wrong,
                false_hits_per_question=round(wrong / len(rows), 4),
            )
        else:
            out.update(plain_095_hit_rate=round(rate, 4), plain_095_false_hit_rate=round(fhr, 4))
    return out


# -- speed -----------------------------------------------------------------------------


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values), q))


def run_speed(n_entries: int, rounds: int) -> dict[str, Any]:
    from costwise.strategies import SemanticCache
    from costwise.testing import FakeProvider, bare_client, fake_client

    print(f"\n== speed on this machine ({os.cpu_count()} cores), interleaved with the bare SDK")
    # Sentence vectors this benchmark cached (`<digest>.npz`); other files there are not ours.
    files = [f for f in sorted(cache_dir().glob("*.npz")) if "-" not in f.stem]
    pool = [np.load(f)["vectors"] for f in files if "vectors" in np.load(f)]
    base = np.concatenate(pool) if pool else np.random.default_rng(0).normal(size=(1000, 384))
    base = base.astype(np.float32)
    rng = np.random.default_rng(1)
    # Real sentence vectors, topped up with jittered copies of them to reach n_entries.
    extra = base[rng.integers(0, len(base), max(n_entries - len(base), 0))]
    extra = extra + rng.normal(scale=0.03, size=extra.shape).astype(np.float32)
    vectors = np.concatenate([base, extra])[:n_entries]
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    # Keyed by every vector: another data file embedded into the cache changes the pool.
    digest = hashlib.sha256(vectors.tobytes()).hexdigest()[:12]
    index_dir = cache_dir() / f"index-{n_entries}-{VectorIndex(384).dtype}-{digest}"
    build_seconds = None
    if not (index_dir / "hnsw.usearch").exists():
        t0 = time.perf_counter()
        index = VectorIndex(384)
        index.add_many(np.arange(n_entries), vectors)
        build_seconds = time.perf_counter() - t0
        index.save(index_dir)
        print(
            f"built the {n_entries}-entry HNSW index in {build_seconds:.1f}s (cached in {index_dir})"
        )
    loads, full_loads = [], []
    for _ in range(3):
        t0 = time.perf_counter()
        VectorIndex.load(index_dir, view=False)
        full_loads.append((time.perf_counter() - t0) * 1000)
    for _ in range(5):
        t0 = time.perf_counter()
        index = VectorIndex.load(index_dir)
        loads.append((time.perf_counter() - t0) * 1000)
    assert index.approximate and len(index) == n_entries
    size_mb = sum(f.stat().st_size for f in index_dir.iterdir()) / 2**20

    queries = vectors[rng.integers(0, n_entries, rounds)] + rng.normal(
        scale=0.05, size=(rounds, 384)
    ).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    exact_top = np.argmax(queries @ vectors.T, axis=1)

    provider = FakeProvider()
    bare = bare_client(provider)
    questions = [f"How do I change the PIN of card number {i}?" for i in range(50)]
    sem = SemanticCache(always=True)
    client = fake_client(provider, strategies=[sem])
    for q in questions:  # fill the cache (misses)
        client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": q}]
        )
    msg = [{"role": "user", "content": "hello"}]
    for _ in range(20):  # warm up every path
        bare.chat.completions.create(model="gpt-4o-mini", messages=msg)  # type: ignore[arg-type]
        index.search(queries[0], 4)
    bare_ms, search_ms, lookup_ms = [], [], []
    found = 0
    for i in range(rounds):
        t0 = time.perf_counter()
        bare.chat.completions.create(model="gpt-4o-mini", messages=msg)  # type: ignore[arg-type]
        t1 = time.perf_counter()
        res = index.search(queries[i], 4)
        t2 = time.perf_counter()
        if i % 4 == 0:  # a whole semantic hit through the costwise client (local embedder)
            q = questions[i % len(questions)]
            r = client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": q}]
            )
            lookup_ms.append((time.perf_counter() - t2) * 1000)
            assert sem.entry_of(r) is not None
        bare_ms.append((t1 - t0) * 1000)
        search_ms.append((t2 - t1) * 1000)
        found += bool(res) and res[0][0] == int(exact_top[i])
    b = statistics.median(bare_ms)
    out = {
        "bare_sdk_ms_p50": round(b, 3),
        "index_entries": n_entries,
        "index_search_ms_p50": round(pct(search_ms, 50), 3),
        "index_search_ms_p99": round(pct(search_ms, 99), 3),
        "hnsw_recall_at_1": round(found / rounds, 4),
        "lookup_ms_p50": round(statistics.median(lookup_ms), 3),
        "lookup_ms_p99": round(pct(lookup_ms, 99), 3),
        "lookup_over_bare": round(statistics.median(lookup_ms) / b, 2),
        "index_load_ms_p50": round(statistics.median(loads), 1),
        "index_load_ms_max": round(max(loads), 1),
        "index_full_read_ms_p50": round(statistics.median(full_loads), 1),
        "index_size_mb": round(size_mb, 1),
    }
    if build_seconds is not None:
        out["index_build_s"] = round(build_seconds, 1)
    print(f"{'measure':>44} {'p50':>8} {'p99':>8} {'x bare':>7}")
    print(f"{'bare SDK call (B, FakeProvider)':>44} {b:>8.3f} {pct(bare_ms, 99):>8.3f} {1:>7.2f}")
    print(
        f"{f'index search, {n_entries} entries, k=4':>44} {out['index_search_ms_p50']:>8.3f} "
        f"{out['index_search_ms_p99']:>8.3f} {out['index_search_ms_p50'] / b:>7.2f}"
    )
    print(
        f"{'whole semantic hit, local MiniLM':>44} {out['lookup_ms_p50']:>8.3f} "
        f"{out['lookup_ms_p99']:>8.3f} {out['lookup_over_bare']:>7.2f}"
    )
    print(
        f"index load on restart ({n_entries} entries, {size_mb:.0f} MB): "
        f"p50 {out['index_load_ms_p50']} ms, max {out['index_load_ms_max']} ms; "
        f"HNSW recall@1 vs exact {found / rounds:.1%}"
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--data", action="append", type=Path, help="pairs .jsonl or intents .csv (repeatable)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-speed", action="store_true")
    parser.add_argument("--speed-only", action="store_true")
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=2000)
    parser.add_argument("--write-default", type=Path)
    args = parser.parse_args()
    paths = [] if args.speed_only else (args.data or DEFAULT_DATA)
    for p in paths:
        if not p.exists():
            sys.exit(
                f"{p} not found: this benchmark needs the data in ../shared/data (see its README.md)"
            )
    result: dict[str, Any] = {}
    for p in paths:
        kind, rows = load(p)
        part = (
            run_pairs(p, rows, args.seed, args.write_default)
            if kind == "pairs"
            else run_intents(p, rows)
        )
        result.setdefault("data", []).append(part.pop("data"))
        for key, value in part.items():  # flat keys; a clash (two pairs files) nests
            if key in result:
                result[f"{p.stem}.{key}"] = value
            else:
                result[key] = value
    if not args.no_speed:
        result["speed"] = run_speed(args.entries, args.rounds)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
