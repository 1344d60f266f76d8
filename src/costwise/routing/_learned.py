"""`TextScorer` (text → probability of success) and `LearnedRouter` (N models)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from typing_extensions import Self

from .._exceptions import ConfigurationError
from ._outcomes import Outcome
from ._single import Analyzed, TfidfOne, expit, linear_logit, logistic_one

if TYPE_CHECKING:
    from ..pricing import PriceTable

__all__ = ["LearnedRouter", "TextScorer"]


class TextScorer:
    """Predicts from a text the probability that something went well (a logistic regression).

    Use it as the building block of a learned check or router: fit it on texts labelled
    with a score in [0, 1] (say, a cheap model's answer and whether it was right), then
    ``predict`` on new texts. Features are TF-IDF word uni/bi-grams plus character
    2-5-grams, which pick up topic and form without any network or model download; a graded
    score is fit as a weighted pair of positive and negative rows. numpy and scikit-learn are
    imported when fitting.

    Args:
        c: inverse regularisation strength of the logistic regression.
        max_features: the vocabulary size of each of the two feature sets.
    """

    def __init__(self, *, c: float = 1.0, max_features: int = 100_000) -> None:
        self.c = c
        self.max_features = max_features
        self._vectorizers: list[Any] = []
        self._model: Any = None
        self._constant: float | None = None
        self._single: tuple[list[TfidfOne], list[int], Any, float] | None = None

    def _features(self, texts: Sequence[str], *, fit: bool) -> Any:
        from scipy.sparse import hstack  # type: ignore[import-untyped]  # sklearn's own dep
        from sklearn.feature_extraction.text import TfidfVectorizer

        if fit:
            self._vectorizers = [
                TfidfVectorizer(
                    ngram_range=(1, 2), min_df=2, sublinear_tf=True, max_features=self.max_features
                ),
                TfidfVectorizer(
                    analyzer="char_wb",
                    ngram_range=(2, 5),
                    min_df=3,
                    sublinear_tf=True,
                    max_features=self.max_features,
                ),
            ]
            parts = [v.fit_transform(texts) for v in self._vectorizers]
        else:
            parts = [v.transform(texts) for v in self._vectorizers]
        return hstack(parts).tocsr()

    def fit(self, texts: Sequence[str], scores: Sequence[float]) -> Self:
        """Fit on `texts` with `scores` in [0, 1]; returns self.

        Raises:
            ConfigurationError: no texts, or lengths differ.
        """
        if not texts or len(texts) != len(scores):
            msg = f"TextScorer.fit needs as many scores as texts (got {len(texts)}, {len(scores)})"
            raise ConfigurationError(msg)
        import numpy as np
        from scipy.sparse import vstack
        from sklearn.linear_model import LogisticRegression

        self._single = None
        x = self._features(list(texts), fit=True)
        s = np.clip(np.asarray(scores, dtype=float), 0.0, 1.0)
        if s.min() == s.max():  # one class only: nothing to learn, predict the constant
            self._constant, self._model = float(s[0]), None
            return self
        self._constant = None
        labels = np.concatenate([np.ones(len(s)), np.zeros(len(s))])
        weights = np.concatenate([s, 1.0 - s])
        keep = weights > 0
        model = LogisticRegression(C=self.c, max_iter=2000)
        model.fit(vstack([x, x]).tocsr()[keep], labels[keep], sample_weight=weights[keep])
        self._model = model
        return self

    def predict(self, texts: Sequence[str]) -> Any:
        """The probability of success of each text (a numpy array)."""
        import numpy as np

        if self._constant is not None:
            return np.full(len(texts), self._constant)
        if self._model is None:
            msg = "TextScorer: call fit() first"
            raise ConfigurationError(msg)
        if len(texts) == 1:  # the request path: one text, without sklearn's batch machinery
            return np.array([self.predict_one(Analyzed(texts[0]))])
        return self._model.predict_proba(self._features(list(texts), fit=False))[:, 1]

    def predict_one(self, text: Analyzed) -> float:
        """`predict` for one analyzed text (equal to the batch path to rounding)."""
        if self._constant is not None:
            return self._constant
        if self._model is None:
            msg = "TextScorer: call fit() first"
            raise ConfigurationError(msg)
        single = self._single
        if single is None:
            tfidfs = [TfidfOne(v) for v in self._vectorizers]
            offsets = [sum(t.size for t in tfidfs[:i]) for i in range(len(tfidfs))]
            coef = self._model.coef_[0].astype(float)
            single = self._single = (tfidfs, offsets, coef, float(self._model.intercept_[0]))
        tfidfs, offsets, coef, intercept = single
        return expit(linear_logit(coef, intercept, [text.row(t) for t in tfidfs], offsets))

    def __call__(self, text: str) -> float:
        """The probability of success of one text."""
        return float(self.predict([text])[0])


class _TopicPrior:
    """Per-topic success rates of each model: prompts clustered by their wording.

    Many prompts are hard for a model because of their topic (a field, a kind of task), and
    a topic's success rate is estimated from many more rows than one prompt's words. Prompts
    are clustered by TF-IDF words reduced with SVD and k-means; each model's rate per cluster
    is smoothed towards its overall rate.
    """

    def __init__(self, k: int, *, smoothing: float = 10.0, seed: int = 0) -> None:
        self.k, self.smoothing, self.seed = k, smoothing, seed
        self._parts: Any = None
        self._rates: dict[str, Any] = {}
        self._single: tuple[TfidfOne, Any, Any] | None = None

    def fit(self, texts: Sequence[str], columns: Mapping[str, Sequence[float | None]]) -> Self:
        import numpy as np
        from sklearn.cluster import KMeans
        from sklearn.decomposition import TruncatedSVD
        from sklearn.feature_extraction.text import TfidfVectorizer

        vectorizer = TfidfVectorizer(min_df=2, sublinear_tf=True, stop_words="english")
        x = vectorizer.fit_transform(texts)
        svd = TruncatedSVD(min(100, x.shape[1] - 1), random_state=self.seed)
        z = svd.fit_transform(x)
        z /= np.linalg.norm(z, axis=1, keepdims=True) + 1e-9
        kmeans = KMeans(self.k, n_init=3, random_state=self.seed).fit(z)
        labels = kmeans.labels_
        for model, scores in columns.items():
            known = np.array([v is not None for v in scores])
            values = np.array([0.0 if v is None else v for v in scores])
            prior = values[known].mean() if known.any() else 0.5
            rates = np.full(self.k, prior)
            for j in range(self.k):
                mask = known & (labels == j)
                rates[j] = (values[mask].sum() + self.smoothing * prior) / (
                    mask.sum() + self.smoothing
                )
            self._rates[model] = rates
        self._parts = (vectorizer, svd, kmeans)
        self._single = None
        return self

    def predict(self, texts: Sequence[str]) -> dict[str, Any]:
        import numpy as np

        if len(texts) == 1:
            return {m: np.array([p]) for m, p in self.predict_one(Analyzed(texts[0])).items()}
        vectorizer, svd, kmeans = self._parts
        z = svd.transform(vectorizer.transform(texts))
        z /= np.linalg.norm(z, axis=1, keepdims=True) + 1e-9
        labels = kmeans.predict(z)
        return {model: rates[labels] for model, rates in self._rates.items()}

    def predict_one(self, text: Analyzed) -> dict[str, float]:
        """`predict` for one analyzed text: the nearest topic's rates."""
        import numpy as np

        if self._single is None:
            vectorizer, svd, kmeans = self._parts
            self._single = (
                TfidfOne(vectorizer),
                np.asarray(svd.components_, dtype=np.float64),
                np.asarray(kmeans.cluster_centers_, dtype=np.float64),
            )
        tfidf, components, centers = self._single
        indices, values = text.row(tfidf)
        z = components[:, indices] @ values
        z /= np.linalg.norm(z) + 1e-9
        label = int(np.argmin(((centers - z) ** 2).sum(axis=1)))
        return {model: float(rates[label]) for model, rates in self._rates.items()}


def _fit_prompt_models(
    rows: Sequence[Outcome], models: Sequence[str], c: float, topics: int
) -> tuple[dict[str, TextScorer], _TopicPrior | None]:
    scorers = {}
    for model in models:
        texts = [r.prompt for r in rows if model in r.models]
        scores = [r.models[model].score for r in rows if model in r.models]
        if texts:
            scorers[model] = TextScorer(c=c).fit(texts, scores)
        else:  # no outcome of this model in these rows: know nothing
            scorers[model] = TextScorer(c=c)
            scorers[model]._constant = 0.5
    prior = None
    if topics > 1 and len(rows) >= 20 * topics:  # enough rows for stable topic rates
        columns = {m: [r.models[m].score if m in r.models else None for r in rows] for m in models}
        prior = _TopicPrior(topics).fit([r.prompt for r in rows], columns)
    return scorers, prior


def _predict_prompt_models(
    scorers: Mapping[str, TextScorer], prior: _TopicPrior | None, prompts: Sequence[str]
) -> dict[str, Any]:
    """The averaged prediction (prompt's words and topic, equally weighted): no stacker."""
    if len(prompts) == 1:  # one Analyzed: analyzers shared by the models run once
        import numpy as np

        text = Analyzed(prompts[0])
        columns = {m: np.array([scorer.predict_one(text)]) for m, scorer in scorers.items()}
        topic = {} if prior is None else prior.predict_one(text)
        for m, rate in topic.items():
            columns[m] = (columns[m] + rate) / 2
        return columns
    columns = {m: scorer.predict(prompts) for m, scorer in scorers.items()}
    if prior is not None:
        for m, rates in prior.predict(prompts).items():
            columns[m] = (columns[m] + rates) / 2
    return columns


def _base_features(
    scorers: Mapping[str, TextScorer], prior: _TopicPrior | None, prompts: Sequence[str]
) -> Any:
    """Every base prediction of every model, as logits: one row per prompt."""
    import numpy as np

    if len(prompts) == 1:  # one Analyzed: analyzers shared by the models run once
        text = Analyzed(prompts[0])
        row = [scorer.predict_one(text) for scorer in scorers.values()]
        if prior is not None:
            row += list(prior.predict_one(text).values())
        columns = [np.array([v]) for v in row]
    else:
        columns = [scorer.predict(prompts) for scorer in scorers.values()]
        if prior is not None:
            columns += list(prior.predict(prompts).values())
    p = np.clip(np.column_stack(columns), 1e-4, 1 - 1e-4)
    return np.log(p / (1 - p))


class _Stack:
    """One small logistic regression per model over all models' base predictions.

    The base predictions (each model's words-based and topic-based success rate) are
    neither calibrated nor independent, and what routing needs is their *difference*
    between models. Learning each model's success from all of them, on out-of-fold
    predictions, calibrates that difference. In nested cross-validation inside the fit
    half of MMLU it raised the cost reduction at 95% of GPT-4's accuracy from about 50% (the
    average of the two) to about 52% (a first, non-nested estimate said 55%); on the
    held-out halves it was within the split-to-split spread of the average, and on GSM8K's
    small fit set the router did worse with it (docs/benchmarks.md).
    """

    def __init__(self, c: float) -> None:
        self.c = c
        self._center: Any = None
        self._scale: Any = None
        self._models: dict[str, Any] = {}
        self._constants: dict[str, float] = {}

    def fit(self, x: Any, columns: Mapping[str, Sequence[float | None]]) -> Self:
        import numpy as np
        from sklearn.linear_model import LogisticRegression

        self._center, self._scale = x.mean(axis=0), x.std(axis=0) + 1e-9
        z = (x - self._center) / self._scale
        for model, scores in columns.items():
            known = np.array([v is not None for v in scores])
            s = np.array([0.0 if v is None else float(v) for v in scores])[known]
            if not len(s) or s.min() == s.max():
                self._constants[model] = float(s[0]) if len(s) else 0.5
                continue
            # A graded score is a weighted pair of rows, as in TextScorer.
            labels = np.concatenate([np.ones(len(s)), np.zeros(len(s))])
            weights = np.concatenate([s, 1.0 - s])
            keep = weights > 0
            rows = np.vstack([z[known], z[known]])
            self._models[model] = LogisticRegression(C=self.c, max_iter=2000).fit(
                rows[keep], labels[keep], sample_weight=weights[keep]
            )
        return self

    def predict(self, x: Any) -> dict[str, Any]:
        import numpy as np

        z = (x - self._center) / self._scale
        out: dict[str, Any] = {m: np.full(len(x), v) for m, v in self._constants.items()}
        for model, lr in self._models.items():
            if len(x) == 1:  # one prompt: without sklearn's input validation
                out[model] = np.array([logistic_one(lr, z[0])])
            else:
                out[model] = lr.predict_proba(z)[:, 1]
        return out


class LearnedRouter:
    """Routes each prompt to the model with the best expected value: success minus cost.

    Use it when you have labelled outcomes for your traffic (prompts, and which models
    answered them well) and more than one model to choose from. It predicts each model's
    chance of a good answer from the prompt alone: one `TextScorer` per model (the prompt's
    words) and per-topic success rates (prompts clustered by wording) are the base
    predictions, and a small stacked logistic regression per model, fit on their
    out-of-fold values, turns all of them into calibrated probabilities. It
    estimates each model's cost for the prompt from its price (prompt length, typical answer
    length). For a new prompt it picks the model maximising
    ``P(good answer) - cost / wtp``: a pricier model is used only when its predicted gain in
    quality is worth its extra cost. The one knob, `wtp` (willingness to pay: the USD you
    would spend for one more good answer), trades cost for quality; `calibrate` sets it from
    a target share of calls to the most expensive model. Because cost enters per prompt, a
    long prompt needs a larger predicted gain before it goes to the expensive model.

    Give it to ``Router(learned=...)`` to use it on live calls.

    Args:
        wtp: willingness to pay, in USD per additional good answer (``inf``: always the
            model predicted best).
        c: inverse regularisation strength of each model's logistic regression.
        topics: how many topic clusters give the per-topic success rates; used when there
            are at least 20 fit rows per topic, ``0`` turns it off.
        stack: combine the base predictions with the stacked regression (needs at least
            ``2 * calibration_folds`` rows); ``False`` averages each model's word-based and
            topic-based rates, the simpler and weaker predictor.
        stack_c: inverse regularisation strength of the stacked regressions.

    Example:
        >>> router = LearnedRouter().fit(load_outcomes("outcomes.jsonl"))
        >>> router.calibrate(target_strong_share=0.4)
        >>> router.route("What is 2 + 2?")
        'mixtral-8x7b-instruct'
    """

    def __init__(
        self,
        *,
        wtp: float = 1.0,
        c: float = 1.0,
        topics: int = 20,
        stack: bool = True,
        stack_c: float = 0.1,
    ) -> None:
        if not wtp > 0:
            msg = f"LearnedRouter: wtp must be positive, got {wtp!r}"
            raise ConfigurationError(msg)
        self.wtp = wtp
        self.c = c
        self.topics = topics
        self.stack = stack
        self.stack_c = stack_c
        self.models: list[str] = []
        """Model names, cheapest first."""
        self.rates: dict[str, tuple[float, float]] = {}
        """USD per input token and per output token of each model (when priced by tokens)."""
        self.call_costs: dict[str, float] = {}
        """A fixed cost per call of each model (when recorded or given instead of prices)."""
        self.output_tokens: dict[str, float] = {}
        """The typical answer length of each model, in tokens."""
        self._scorers: dict[str, TextScorer] = {}
        self._prior: _TopicPrior | None = None
        self._stack: _Stack | None = None
        self._calibration: list[tuple[dict[str, float], dict[str, float]]] = []
        self._memo: dict[str, dict[str, float]] = {}

    # -- fitting ---------------------------------------------------------------------------

    def fit(
        self,
        outcomes: Iterable[Outcome],
        *,
        prices: PriceTable | None = None,
        costs: Mapping[str, float] | None = None,
        output_tokens: int | None = None,
        calibration_folds: int = 5,
    ) -> Self:
        """Fit on labelled outcomes; returns self.

        Costs: `costs` (USD per call, one per model) if given for every model, else the
        mean recorded ``cost_usd`` when every model has one on every row, else each model's
        price from `prices` (default: the bundled table) applied to the prompt's length
        (about 4 bytes per token) and the model's typical answer length: the mean length of
        its recorded answers, else `output_tokens` (default 256). Out-of-fold predictions on
        the fit rows are kept for `calibrate`, so calibration never sees a prediction made
        on a row the model was trained on.

        Raises:
            ConfigurationError: no rows, fewer than two models, or a model with no cost.
        """
        rows = list(outcomes)
        names = sorted({m for row in rows for m in row.models})
        if not rows or len(names) < 2:
            msg = "LearnedRouter.fit needs outcomes for at least two models"
            raise ConfigurationError(msg)
        self._set_costs(rows, names, prices, costs, output_tokens)
        typical = {m: self._cost(m, 4 * 200) for m in names}  # a 200-token prompt
        self.models = sorted(names, key=lambda m: (typical[m], m))
        folds = calibration_folds
        # Every fold must have the same base predictions as the final fit: topic rates
        # only when even a fold's training part has enough rows for them.
        smallest = len(rows) - -(-len(rows) // max(folds, 1))
        topics = self.topics if smallest >= 20 * self.topics else 0
        self._scorers, self._prior = _fit_prompt_models(rows, self.models, self.c, topics)
        self._stack = None
        oof = self._out_of_fold(rows, folds, topics)
        self._calibration = [
            (pred, self.costs_for(row.prompt)) for pred, row in zip(oof, rows, strict=False)
        ]
        self._memo = {}
        return self

    def _set_costs(
        self,
        rows: list[Outcome],
        names: list[str],
        prices: PriceTable | None,
        costs: Mapping[str, float] | None,
        output_tokens: int | None,
    ) -> None:
        self.rates, self.call_costs, self.output_tokens = {}, {}, {}
        if costs is not None and all(m in costs for m in names):
            self.call_costs = {m: float(costs[m]) for m in names}
            return
        recorded = {m: [r.models[m].cost_usd for r in rows if m in r.models] for m in names}
        # Recorded costs are only comparable with each other: use them when every model has
        # them on every row, else prices for all (never a mix of the two).
        if all(v and all(c is not None for c in v) for v in recorded.values()):
            self.call_costs = {
                m: math.fsum(c for c in v if c is not None) / len(v) for m, v in recorded.items()
            }
            return
        table = prices
        if table is None:
            from ..pricing import PriceTable

            table = PriceTable.default()
        for model in names:
            price = table.lookup(model)
            if price is None:
                msg = f"LearnedRouter: no cost for model {model!r}; pass costs= or prices="
                raise ConfigurationError(msg)
            self.rates[model] = (float(price.input) / 1e6, float(price.output) / 1e6)
            answers = [r.models[model].response for r in rows if model in r.models]
            texts = [a for a in answers if a is not None]
            if texts:
                self.output_tokens[model] = sum(len(t.encode()) for t in texts) / 4 / len(texts)
            else:
                self.output_tokens[model] = float(output_tokens or 256)

    def _cost(self, model: str, prompt_bytes: int) -> float:
        if model in self.call_costs:
            return self.call_costs[model]
        rate_in, rate_out = self.rates[model]
        return (prompt_bytes / 4 + 8) * rate_in + self.output_tokens[model] * rate_out

    def costs_for(self, prompt: str) -> dict[str, float]:
        """Each model's estimated cost (USD) of answering `prompt`."""
        size = len(prompt.encode())
        return {m: self._cost(m, size) for m in self.models}

    def _out_of_fold(self, rows: list[Outcome], folds: int, topics: int) -> list[dict[str, float]]:
        """Out-of-fold predictions on the fit rows; fits the stacker on the way."""
        if folds < 2 or len(rows) < 2 * folds:
            return []
        import numpy as np

        held_out = [[i for i in range(len(rows)) if i % folds == k] for k in range(folds)]
        base: Any = None
        columns: dict[str, Any] = {}
        for k, held in enumerate(held_out):
            train = [r for i, r in enumerate(rows) if i % folds != k]
            scorers, prior = _fit_prompt_models(train, self.models, self.c, topics)
            prompts = [rows[i].prompt for i in held]
            if self.stack:
                x = _base_features(scorers, prior, prompts)
                if base is None:
                    base = np.zeros((len(rows), x.shape[1]))
                base[held] = x
            else:
                for m, v in _predict_prompt_models(scorers, prior, prompts).items():
                    columns.setdefault(m, np.zeros(len(rows)))[held] = v
        if self.stack:
            scores = {
                m: [r.models[m].score if m in r.models else None for r in rows] for m in self.models
            }
            self._stack = _Stack(self.stack_c).fit(base, scores)
            # The stacker's own out-of-fold predictions, for calibration.
            for k, held in enumerate(held_out):
                train_idx = [i for i in range(len(rows)) if i % folds != k]
                part = _Stack(self.stack_c).fit(
                    base[train_idx], {m: [v[i] for i in train_idx] for m, v in scores.items()}
                )
                for m, v in part.predict(base[held]).items():
                    columns.setdefault(m, np.zeros(len(rows)))[held] = v
        return [{m: float(columns[m][i]) for m in self.models} for i in range(len(rows))]

    # -- predicting --------------------------------------------------------------------------

    def predict(self, prompts: Sequence[str]) -> list[dict[str, float]]:
        """Each model's predicted probability of a good answer, for each prompt."""
        if not self._scorers:
            msg = "LearnedRouter: call fit() first"
            raise ConfigurationError(msg)
        if self._stack is not None:
            columns = self._stack.predict(_base_features(self._scorers, self._prior, prompts))
        else:
            columns = _predict_prompt_models(self._scorers, self._prior, prompts)
        return [{m: float(columns[m][i]) for m in self.models} for i in range(len(prompts))]

    def choose(
        self,
        probabilities: Mapping[str, float],
        costs: Mapping[str, float],
        *,
        allowed: Iterable[str] | None = None,
        wtp: float | None = None,
    ) -> str | None:
        """The allowed model with the best ``probability - cost / wtp`` (ties: the cheaper)."""
        pool = [m for m in self.models if m in probabilities and m in costs]
        if allowed is not None:
            keep = set(allowed)
            pool = [m for m in pool if m in keep]
        if not pool:
            return None
        pay = self.wtp if wtp is None else wtp
        best, value = None, -math.inf
        for model in pool:  # cheapest first, so a tie keeps the cheaper model
            utility = probabilities[model] - (costs[model] / pay if math.isfinite(pay) else 0.0)
            if utility > value:
                best, value = model, utility
        return best

    def route(self, prompt: str, *, allowed: Iterable[str] | None = None) -> str | None:
        """The model for `prompt` (``None`` when no allowed model is known to the router)."""
        probabilities = self._memo.get(prompt)
        if probabilities is None:
            probabilities = self.predict([prompt])[0]
        return self.choose(probabilities, self.costs_for(prompt), allowed=allowed)

    def warm(self, prompts: Sequence[str]) -> None:
        """Predict `prompts` in one batch and remember the results for `route`.

        Use it when a known set of prompts will be routed many times (a replay, an
        evaluation sweeping the knob): batch prediction is much faster than one at a time.
        Refitting forgets the memo.
        """
        unique = list(dict.fromkeys(prompts))
        self._memo.update(zip(unique, self.predict(unique), strict=True))

    def _strong_threshold(self, p: Mapping[str, float], costs: Mapping[str, float]) -> float:
        """The smallest wtp above which the priciest model is chosen (inf: never)."""
        strong = self.models[-1]
        need = 0.0
        for m in self.models[:-1]:
            gain = p[strong] - p[m]
            if gain <= 0:
                return math.inf
            need = max(need, (costs[strong] - costs[m]) / gain)
        return need

    def calibrate(
        self, *, target_strong_share: float, prompts: Sequence[str] | None = None
    ) -> float:
        """Set `wtp` so that about `target_strong_share` of calls go to the priciest model.

        Use it to turn a budget ("at most 30% of calls on GPT-4") into the knob. It uses the
        out-of-fold predictions kept by `fit`, or the predictions on `prompts` if given.
        Shares above the share of prompts where the priciest model is predicted best at
        all cannot be reached; the router then sends every such prompt to it.

        Returns:
            The new `wtp`.

        Raises:
            ConfigurationError: the share is not in [0, 1], or there is nothing to
                calibrate on.
        """
        if not 0.0 <= target_strong_share <= 1.0:
            msg = f"target_strong_share must be in [0, 1], got {target_strong_share!r}"
            raise ConfigurationError(msg)
        if prompts is not None:
            pairs = list(zip(self.predict(prompts), map(self.costs_for, prompts), strict=True))
        else:
            pairs = self._calibration
        if not pairs:
            msg = "LearnedRouter.calibrate: no predictions to calibrate on; pass prompts="
            raise ConfigurationError(msg)
        needs = sorted(self._strong_threshold(p, c) for p, c in pairs)
        finite = [x for x in needs if math.isfinite(x)]
        k = min(round(target_strong_share * len(needs)), len(finite))
        if k <= 0:
            self.wtp = finite[0] / 2 if finite and finite[0] > 0 else 1e-12
        elif k >= len(finite):
            self.wtp = math.inf if len(finite) == len(needs) else finite[-1] * 2 + 1e-12
        else:
            # the k prompts that need the least willingness to pay go to the priciest model
            low, high = finite[k - 1], finite[k]
            self.wtp = math.sqrt(low * high) if low > 0 else high / 2
        return self.wtp
