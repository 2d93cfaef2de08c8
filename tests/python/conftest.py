"""Shared fixtures: an isolated cache per test, the real local models, loopback servers.

Models are real GGUF files prepared by `make setup` (scripts/setup.sh); a missing model fails
the test with the command that prepares it, it never skips.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import cellscribe
from cellscribe.llm import local_models

DATA = Path(__file__).parent / "_data"
USER_MODELS = local_models.REGISTRY["smollm2-135m"].path.parent  # resolved before any test changes settings


def cli_env(cache: str | Path | None = None, **extra: str) -> dict[str, str]:
    """The environment of a ``cellscribe`` subprocess: this process's (PATH, the certificate and
    pip settings a machine may need to reach PyPI; OLLAMA_HOST is already removed per test) with the
    test's cache."""
    return {**os.environ, "CELLSCRIBE_CACHE": str(cache or cellscribe.settings.cache_dir), **extra}


@pytest.fixture(autouse=True)
def isolated_cache(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
                   monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test gets its own cache folder (answers, knowledge); models are shared read-only, and so
    is the gene index (built once per session; marker readers check symbols against it), except for
    tests marked ``fresh_gene_index``."""
    root = tmp_path_factory.mktemp("cache")
    (root / "models").symlink_to(USER_MODELS, target_is_directory=True)
    if request.node.get_closest_marker("fresh_gene_index") is None:
        from cellscribe.knowledge import genes

        index = root / "knowledge" / genes.index_path().name
        index.parent.mkdir()
        index.symlink_to(request.getfixturevalue("_gene_index_file"))
    monkeypatch.setattr(cellscribe.settings, "cache_dir", root)
    monkeypatch.setattr(cellscribe.settings, "progress", False)
    monkeypatch.delenv("OLLAMA_HOST", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    return root


def require_model(name: str) -> Path:
    if not local_models.is_ready(name):
        pytest.fail(f"local model {name} is not prepared: run `make setup` "
                    f"(or `cellscribe models prepare {name}`)", pytrace=False)
    return local_models.REGISTRY[name].path


@pytest.fixture(scope="session")
def qwen15_path() -> Path:
    return require_model("qwen2.5-coder-1.5b")


@pytest.fixture(scope="session")
def qwen05_path() -> Path:
    return require_model("qwen2.5-coder-0.5b")


@pytest.fixture(scope="session")
def smollm_path() -> Path:
    return require_model("smollm2-135m")


@pytest.fixture(scope="session")
def llama_server(qwen15_path: Path):
    """A real OpenAI-compatible llama.cpp server (llama_cpp.server) on loopback with the 1.5B model."""
    from _servers import LlamaServer

    with LlamaServer(qwen15_path) as server:
        yield server


@pytest.fixture(scope="session")
def ollama_server(qwen05_path: Path):
    """A loopback server speaking Ollama's /api/tags and /api/chat, answering with a real model."""
    from _servers import OllamaProtocolServer

    with OllamaProtocolServer(qwen05_path, model_name="qwen2.5-coder:0.5b") as server:
        yield server


@pytest.fixture(scope="session")
def _gene_index_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The gene-facts index of ``cellscribe.knowledge.genes``, built once per session (~8 s)."""
    from cellscribe.knowledge import genes

    path = tmp_path_factory.mktemp("gene-index") / genes.index_path().name
    genes._build(path)
    return path


@pytest.fixture
def gene_index(isolated_cache: Path, _gene_index_file: Path) -> Path:
    """The session's gene index in this test's cache (``knowledge/genes-v*.sqlite``)."""
    from cellscribe.knowledge import genes

    target = genes.index_path()
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(_gene_index_file)
    return target


@pytest.fixture(scope="session")
def gptcelltype_dev() -> Path:
    """``../shared/benchmarks/gptcelltype/dev.csv`` beside the checkout (CI has ``../shared``); fails, never skips."""
    path = Path(__file__).resolve().parents[2].parent / "shared" / "benchmarks" / "gptcelltype" / "dev.csv"
    if not path.is_file():
        pytest.fail(f"GPTCelltype benchmark table not found at {path}: the tests expect the shared folder "
                    "(../shared/benchmarks/gptcelltype/) beside the repository, as in CI.", pytrace=False)
    return path
