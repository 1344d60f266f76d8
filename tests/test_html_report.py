"""The HTML report: self-contained, correct savings attribution, and it renders in Chromium."""

from __future__ import annotations

import os
import random
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import pytest

from costwise.ledger import LedgerEntry, MemoryStore, ReportRow, SQLiteStore, to_timestamp
from costwise.ledger._html import collect, render_html, split_savings

START = to_timestamp("2026-11-10") or 0.0
FEATURES = [
    "support-bot",
    "ticket-classify",
    "summarise",
    "translate",
    "code-help",
    "backoffice",
    "search",
    "faq",
]
STRATEGIES = [
    None,
    "cache",
    "semantic_cache",
    "router",
    "cascade",
    "compressor",
    "compressor+router",
    "batching",
]


def sample_entries(n: int = 1500, seed: int = 7) -> list[LedgerEntry]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        feature, strategy = rng.choice(FEATURES), rng.choice(STRATEGIES)
        base = rng.randint(1_000, 50_000) * 1_000 * (1 + FEATURES.index(feature))
        if strategy in ("cache", "semantic_cache"):
            cost = 0
        elif strategy is None:
            cost = base
        else:
            cost = int(base * rng.uniform(0.2, 1.1 if strategy == "cascade" else 0.9))
        out.append(
            LedgerEntry(
                id=f"{i:032x}",
                call_id=f"c{i}",
                ts=START + rng.uniform(0, 14 * 86400),
                feature=feature,
                requested_model="gpt-4o",
                model="gpt-4o-mini",
                kind="hit" if cost == 0 else "upstream",
                strategy=strategy,
                prompt_tokens=500,
                completion_tokens=80,
                cost_nanos=cost,
                baseline_nanos=base,
                final=True,
            )
        )
    return out


def row(key: str, cost: int, baseline: int) -> ReportRow:
    return ReportRow(
        key=key,
        calls=1,
        entries=1,
        prompt_tokens=0,
        completion_tokens=0,
        cached_tokens=0,
        reasoning_tokens=0,
        cost_nanos=cost,
        baseline_nanos=baseline,
        hits=0,
        escalations=0,
        errors=0,
        unknown_cost=0,
        estimated=0,
    )


def test_savings_split_by_strategy_field() -> None:
    """Each strategy group's saving goes to its strategy; joint groups split it equally."""
    savings = split_savings(
        [
            row("cache", 0, 100),
            row("compressor+router", 10, 111),
            row("cascade", 50, 40),
            row("none", 5, 5),
            row("batcher", 5, 10),
        ]
    )
    assert savings == {
        "cache": 100,
        "compressor": 51,
        "router": 50,
        "cascade": -10,
        "untouched": 0,
        "batching": 5,
    }
    # The steps always add up: baseline - sum(savings) == actual.
    assert sum(savings.values()) == (100 + 111 + 40 + 5 + 10) - (0 + 10 + 50 + 5 + 5)


def test_page_is_self_contained_and_escapes_names() -> None:
    """No external URL, script or font; feature names are HTML-escaped."""
    store = MemoryStore()
    store.write(
        [
            *sample_entries(200),
            LedgerEntry(
                id="x" * 32,
                call_id="x",
                ts=START,
                feature="<script>alert(1)</script>",
                requested_model="gpt-4o",
                model="gpt-4o",
                cost_nanos=10**9,
                baseline_nanos=10**9,
                final=True,
            ),
        ]
    )
    page = render_html(store)
    assert "<script>" not in page
    assert "&lt;script&gt;" in page
    for needle in ("http://", "https://", "<link", "@import", "src="):
        assert needle not in page
    assert page.count("<svg") == 2


def test_sqlite_and_memory_stores_give_the_same_data(tmp_path: Path) -> None:
    """The SQLite fast path for the time series agrees with the generic path."""
    entries = sample_entries(400)
    sqlite, memory = SQLiteStore(tmp_path / "l.sqlite"), MemoryStore()
    sqlite.write(entries)
    memory.write(entries)
    assert collect(sqlite) == collect(memory)
    since = START + 3 * 86400
    assert collect(sqlite, since=since).feature_days == collect(memory, since=since).feature_days


def _png_pixels(path: Path) -> tuple[int, int, list[bytes]]:
    """Decode an 8-bit RGB/RGBA PNG with the stdlib: (width, height, rows of RGB bytes)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width = 8, b"", 0
    height = color = 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, color = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and color in (2, 6)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    bpp = 3 if color == 2 else 4
    raw, stride = zlib.decompress(idat), width * bpp
    rows: list[bytes] = []
    prev = bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        f, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        for x in range(stride):
            a = line[x - bpp] if x >= bpp else 0
            b, c = prev[x], prev[x - bpp] if x >= bpp else 0
            if f == 1:
                line[x] = (line[x] + a) & 255
            elif f == 2:
                line[x] = (line[x] + b) & 255
            elif f == 3:
                line[x] = (line[x] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        prev = line
        rows.append(bytes(v for i, v in enumerate(line) if i % bpp < 3))
    return width, height, rows


def test_renders_in_headless_chromium(tmp_path: Path) -> None:
    """Chromium renders the page: a large, varied image with the chart colours in it."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium is not installed (apt-get install chromium) to screenshot the report")
    store = SQLiteStore(tmp_path / "l.sqlite")
    store.write(sample_entries())
    page = tmp_path / "report.html"
    page.write_text(render_html(collect(store)), encoding="utf-8")
    shot = Path(os.environ.get("COSTWISE_SCREENSHOT") or tmp_path / "report.png")
    subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}",
            f"--screenshot={shot}",
            "--window-size=1280,1600",
            "--hide-scrollbars",
            page.as_uri(),
        ],
        capture_output=True,
        timeout=90,
        check=True,
    )
    assert shot.stat().st_size > 20_000
    width, height, rows = _png_pixels(shot)
    assert (width, height) == (1280, 1600)
    colours = {r[i : i + 3] for r in rows[::4] for i in range(0, len(r), 12)}
    assert len(colours) > 60  # text, charts and cards, not a blank or single-colour page

    def present(rgb: tuple[int, int, int]) -> bool:
        return any(all(abs(c[k] - rgb[k]) <= 6 for k in range(3)) for c in colours)

    assert present((0x10, 0xB9, 0x81))  # the waterfall's green saving steps
    assert present((0x4F, 0x46, 0xE5))  # the actual-spend bar and the top feature
    assert present((0xF1, 0xF5, 0xF9))  # the page background
