"""Learned routing: outcomes files, the N-model router and its knob, the replay provider."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Any

import httpx2
import openai
import pytest

from costwise._exceptions import ConfigurationError
from costwise.ledger import MemoryStore
from costwise.routing import AnswerScorer, LearnedRouter, Outcome, load_outcomes
from costwise.strategies.router import Router
from costwise.testing import fake_client
from costwise.testing._replay import PLACEHOLDER, ReplayProvider

CHEAP, MID, STRONG = "gpt-4o-mini", "gpt-4.1-mini", "gpt-4o"
EASY = ["add", "name", "list", "spell", "define"]
HARD = ["prove", "derive", "optimise", "integrate", "factor"]


def rows(n: int = 120, seed: int = 0) -> list[dict[str, Any]]:
    """Easy prompts every model gets right; hard ones only the strong model."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        hard = i % 2 == 1
        verb = rng.choice(HARD if hard else EASY)
        prompt = f"Please {verb} the thing number {i} for me"
        out.append(
            {
                "id": f"r{i}",
                "prompt": prompt,
                "models": {
                    CHEAP: {"correct": not hard, "response": f"cheap answer {i}"},
                    MID: {
                        "score": 0.4 if hard else 1.0,
                        "response": f"mid answer {i}",
                        "samples": [f"s{i}a", f"s{i}b"],
                    },
                    STRONG: {"correct": True, "response": f"strong answer {i}", "cost_usd": 0.01},
                },
            }
        )
    return out


@pytest.fixture
def outcomes_file(tmp_path: Path) -> Path:
    path = tmp_path / "outcomes.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows()) + "\n")
    return path


@pytest.fixture(scope="module")
def fitted() -> LearnedRouter:
    from costwise.routing._outcomes import _parse

    data = list(_parse([json.dumps(r) for r in rows()], "mem"))
    return LearnedRouter().fit(data)


def test_load_outcomes(outcomes_file: Path) -> None:
    """Files with correct/score/samples/cost_usd load; malformed lines name their line."""
    data = load_outcomes(outcomes_file)
    assert len(data) == 120 and isinstance(data[0], Outcome)
    assert data[1].models[CHEAP].score == 0.0 and data[1].models[MID].score == 0.4
    assert data[0].models[MID].samples == ("s0a", "s0b")
    assert data[0].models[STRONG].cost_usd == 0.01
    bad = outcomes_file.with_name("bad.jsonl")
    bad.write_text('{"prompt": "x", "models": {"m": {}}}\n')
    with pytest.raises(ConfigurationError, match=r"bad.jsonl:1"):
        load_outcomes(bad)


def test_routes_by_predicted_success(fitted: LearnedRouter) -> None:
    """Hard prompts go to the strong model, easy ones to a cheaper one; cheapest first."""
    assert fitted.models[0] == CHEAP and fitted.models[-1] == STRONG
    fitted.calibrate(target_strong_share=0.5)
    easy, hard = "Please define the thing number 999 for me", "Please prove the thing number 9"
    assert fitted.route(easy) != STRONG
    assert fitted.route(hard) == STRONG
    assert fitted.route(hard, allowed=[CHEAP]) == CHEAP
    costs = fitted.costs_for(hard)
    assert costs[CHEAP] < costs[STRONG]
    assert fitted.costs_for(hard * 20)[STRONG] > costs[STRONG]  # longer prompts cost more


def test_the_knob_trades_cost_for_quality(fitted: LearnedRouter) -> None:
    """wtp=inf picks the model predicted best; a tiny wtp the cheapest."""
    p = {CHEAP: 0.5, MID: 0.7, STRONG: 0.9}
    c = {CHEAP: 0.001, MID: 0.002, STRONG: 0.01}
    assert fitted.choose(p, c, wtp=math.inf) == STRONG
    assert fitted.choose(p, c, wtp=1e-6) == CHEAP
    assert fitted.choose(p, c, wtp=0.01) == MID
    with pytest.raises(ConfigurationError):
        LearnedRouter(wtp=0)


def test_calibrate_hits_the_target_share(fitted: LearnedRouter) -> None:
    """calibrate() sets the knob so about the target share goes to the priciest model."""
    prompts = [r["prompt"] for r in rows(200, seed=1)]
    for share in (0.0, 0.25, 0.5, 1.0):
        fitted.calibrate(target_strong_share=share, prompts=prompts)
        got = sum(fitted.route(p) == STRONG for p in prompts) / len(prompts)
        assert abs(got - share) <= 0.05
    fitted.calibrate(target_strong_share=0.5)  # on the out-of-fold fit predictions
    with pytest.raises(ConfigurationError):
        fitted.calibrate(target_strong_share=1.5)


def test_fit_errors() -> None:
    """One model, or an unpriced model without costs, is a clear error."""
    one = [Outcome(id="a", prompt="p", models={CHEAP: load_one()})]
    with pytest.raises(ConfigurationError, match="two models"):
        LearnedRouter().fit(one)
    two = [Outcome(id="a", prompt="p", models={CHEAP: load_one(), "mystery-model": load_one()})]
    with pytest.raises(ConfigurationError, match="no cost"):
        LearnedRouter().fit(two)


def load_one() -> Any:
    from costwise.routing import ModelOutcome

    return ModelOutcome(score=1.0)


def test_answer_scorer_learns_bad_answers() -> None:
    """AnswerScorer separates answers that hedge from clear ones."""
    rng = random.Random(0)
    prompts, answers, scores = [], [], []
    for i in range(90):
        good = i % 4 != 0
        prompts.append(f"question {i} about {rng.choice(EASY + HARD)}")
        answers.append(f"so it is {i}.\n#### {i}" if good else "However, I am not sure, maybe")
        scores.append(1.0 if good else 0.0)
    scorer = AnswerScorer().fit(prompts, answers, scores)
    assert len(scorer.oof) == 90
    assert scorer("question 7 about add", "so it is 7.\n#### 7") > 0.7
    assert scorer("question 7 about add", "However, I am not sure, maybe") < 0.3


def replay_client(provider: ReplayProvider, **kw: Any) -> Any:
    return fake_client(http_client=httpx2.Client(transport=httpx2.MockTransport(provider)), **kw)


def test_replay_serves_recorded_answers(outcomes_file: Path) -> None:
    """Recorded text, real token counts, samples for n, API-shaped errors, no grades."""
    provider = ReplayProvider(outcomes_file)
    client = replay_client(provider)
    msgs = [{"role": "user", "content": rows()[0]["prompt"]}]
    resp = client.chat.completions.create(model=CHEAP, messages=msgs)
    assert resp.choices[0].message.content == "cheap answer 0"
    assert resp.usage and resp.usage.prompt_tokens > 5 and resp.usage.completion_tokens >= 3
    many = client.chat.completions.create(model=MID, messages=msgs, n=3)
    assert [c.message.content for c in many.choices] == ["s0a", "s0b", "s0a"]
    assert "correct" not in resp.model_dump_json()
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="gpt-4.1", messages=msgs)
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=CHEAP, messages=[{"role": "user", "content": "?"}])


def test_replay_placeholder_without_text() -> None:
    """A file with grades only serves the same neutral placeholder for every model."""
    data = [Outcome(id="a", prompt="Q?", models={CHEAP: load_one(), STRONG: load_one()})]
    client = replay_client(ReplayProvider(data))
    msgs = [{"role": "user", "content": "Q?"}]
    texts = {
        client.chat.completions.create(model=m, messages=msgs).choices[0].message.content
        for m in (CHEAP, STRONG)
    }
    assert texts == {PLACEHOLDER}


def test_router_with_learned_router_end_to_end(fitted: LearnedRouter) -> None:
    """Router(learned=...) routes live calls; the ledger keeps the caller's model as baseline."""
    data = list(load_outcomes_rows())
    store = MemoryStore()
    fitted.calibrate(target_strong_share=0.5)
    client = replay_client(
        ReplayProvider(data), strategies=[Router(learned=fitted, detect=False)], ledger=store
    )
    for row in data[:6]:
        client.chat.completions.create(
            model=STRONG, messages=[{"role": "user", "content": row.prompt}]
        )
    chosen = [e.model == STRONG for e in store.entries()]
    assert chosen == [False, True, False, True, False, True]
    assert all(e.requested_model == STRONG for e in store.entries())


def load_outcomes_rows() -> list[Outcome]:
    from costwise.routing._outcomes import _parse

    return list(_parse([json.dumps(r) for r in rows(12, seed=5)], "mem"))


def test_outcomes_from_ledger_use_the_cascade_verdicts() -> None:
    """A cascade with record_prompt=True leaves labels a router can be fit on."""
    from costwise.routing import outcomes_from_ledger
    from costwise.strategies.cascade import Cascade
    from costwise.testing import FakeProvider, Reply

    provider = FakeProvider().script(Reply(""), model=CHEAP)
    store = MemoryStore()
    client = fake_client(
        provider, strategies=[Cascade([CHEAP, MID, STRONG], record_prompt=True)], ledger=store
    )
    for prompt in ("first question", "second question"):
        client.chat.completions.create(model=STRONG, messages=[{"role": "user", "content": prompt}])
    first, second = outcomes_from_ledger(store.entries())
    assert first.prompt == "first question"
    assert {m: o.score for m, o in first.models.items()} == {CHEAP: 0.0, MID: 1.0}
    assert {m: o.score for m, o in second.models.items()} == {CHEAP: 1.0}
    assert outcomes_from_ledger(fake_client().ledger.entries()) == []


def test_topic_prior_blends_in() -> None:
    """With enough rows per topic, predictions average the prompt's and its topic's rate."""
    from costwise.routing._outcomes import _parse

    data = list(_parse([json.dumps(r) for r in rows(120, seed=3)], "mem"))
    router = LearnedRouter(topics=2).fit(data)
    assert router._prior is not None
    (easy, hard) = router.predict(["Please add the thing number 5", "Please prove the thing 6"])
    assert easy[CHEAP] > hard[CHEAP]


def test_stacked_predictions_are_calibrated_per_model(fitted: LearnedRouter) -> None:
    """The stacked regressions keep each model's rates: graded MID sits between 0 and 1."""
    assert fitted._stack is not None
    assert len(fitted._calibration) == 120
    hard = fitted.predict(["Please prove the thing number 999 for me"])[0]
    easy = fitted.predict(["Please spell the thing number 998 for me"])[0]
    assert hard[CHEAP] < 0.3 < 0.7 < easy[CHEAP]
    assert 0.2 < hard[MID] < 0.7 < easy[MID]  # MID scores 0.4 on hard prompts
    assert hard[STRONG] == easy[STRONG] == 1.0  # one class only: the constant


def test_unstacked_and_tiny_fits_average_the_base_predictions() -> None:
    """stack=False, or too few rows for the folds, predicts without a stacker."""
    from costwise.routing._outcomes import _parse

    data = list(_parse([json.dumps(r) for r in rows()], "mem"))
    plain = LearnedRouter(stack=False).fit(data)
    assert plain._stack is None
    assert len(plain._calibration) == 120
    tiny = LearnedRouter().fit(data[:6])
    assert tiny._stack is None
    assert tiny._calibration == []
    for router in (plain, tiny):
        (p,) = router.predict(["Please add the thing number 5"])
        assert all(0.0 <= v <= 1.0 for v in p.values())
    (p,) = plain.predict(["Please prove the thing number 7 for me"])
    assert p[CHEAP] < p[STRONG]


def test_answer_form_reads_the_arithmetic() -> None:
    """The answer scorer's form features see wrong steps and an underived final answer."""
    from costwise.routing._answer import _form

    prompt = "Tom has 16 eggs and eats 3. He sells the rest at $2 each."
    right = _form(prompt, "16 - 3 = 13 eggs, 13 * 2 = 26.\n#### 26")
    wrong = _form(prompt, "16 - 3 = 12 eggs, 12 * 2 = 24.\n#### 24")
    guessed = _form(prompt, "16 - 3 = 13 eggs, 13 * 2 = 26.\n#### 30")
    unused = _form(prompt, "3 * 2 = 6.\n#### 6")
    *_, r_checked, r_share, r_any, r_used, r_unsupported = right
    assert (r_share, r_any, r_used, r_unsupported) == (0.0, 0.0, 1.0, 0.0)
    assert r_checked > 0
    assert wrong[-3] == 1.0  # a wrong step
    assert guessed[-1] == 1.0  # 30 is none of the last results
    assert unused[-2] < 1.0  # 16 never used


# -- one prompt at a time: the request path skips scikit-learn's batch machinery -----------

WORDS = [
    "invoice",
    "refund",
    "card",
    "pin",
    "reset",
    "transfer",
    "abroad",
    "fee",
    "limit",
    "account",
    "statement",
    "loan",
    "rate",
    "prove",
    "derive",
    "integrate",
    "factor",
    "matrix",
    "eigenvalue",
    "theorem",
    "lemma",
    "probability",
    "variance",
    "poem",
    "story",
    "summary",
    "translate",
    "french",
    "german",
    "code",
    "python",
    "function",
    "bug",
    "error",
    "stack",
    "café",
    "naïve",
    "résumé",
    "東京",
    "données",
    "über",
]


def varied_rows(n: int, seed: int) -> list[Outcome]:
    """Prompts of varied words and numbers; success depends on a few of the words."""
    from costwise.routing._outcomes import _parse

    rng = random.Random(seed)
    out = []
    for i in range(n):
        words = rng.choices(WORDS, k=rng.randint(4, 16))
        prompt = " ".join(words) + f" #{rng.randint(0, 999)}?"
        hard = len({"prove", "derive", "integrate", "theorem"} & set(words)) > 0
        out.append(
            {
                "id": f"v{i}",
                "prompt": prompt,
                "models": {
                    CHEAP: {"correct": not hard and rng.random() < 0.9},
                    MID: {"score": rng.random()},
                    STRONG: {"correct": rng.random() < 0.95},
                },
            }
        )
    return list(_parse([json.dumps(r) for r in out], "mem"))


NEW_PROMPTS = [
    *(r.prompt for r in varied_rows(40, seed=99)),
    "",  # no token at all
    "qqqq zzzz xxxx",  # every token out of the vocabulary
    "PROVE THE THEOREM!!! " * 30,  # long, upper case, repeated
]


@pytest.mark.parametrize("stack", [True, False])
def test_one_prompt_equals_the_batch_path(stack: bool) -> None:
    router = LearnedRouter(topics=4, stack=stack).fit(varied_rows(240, seed=1))
    assert router._prior is not None and (router._stack is not None) == stack
    batch = router.predict(NEW_PROMPTS)
    for prompt, expected in zip(NEW_PROMPTS, batch, strict=True):
        (one,) = router.predict([prompt])
        assert one.keys() == expected.keys()
        for model, p in expected.items():
            assert one[model] == pytest.approx(p, abs=1e-9), (prompt, model)


def test_one_text_equals_the_batch_path_for_the_answer_scorer() -> None:
    data = varied_rows(200, seed=2)
    prompts = [r.prompt for r in data]
    answers = [f"The answer is {i % 7}" for i in range(len(data))]
    scores = [1.0 if r.models[CHEAP].score else 0.0 for r in data]
    scorer = AnswerScorer().fit(prompts, answers, scores)
    new = NEW_PROMPTS[:20]
    batch = scorer.predict(new, [f"It is {i}" for i in range(len(new))])
    for i, prompt in enumerate(new):
        assert scorer(prompt, f"It is {i}") == pytest.approx(batch[i], abs=1e-9)
