"""Transformers backend: any causal LM run in-process with PyTorch, optionally with a LoRA adapter.

This is how a model fine-tuned by :func:`cellscribe.reasoner.finetune` answers: the base model
(a registry name such as ``smollm2-135m`` or a ``.gguf`` path, dequantised by transformers; or
a transformers model folder) plus a peft adapter folder, merged once at load time.

JSON-schema answers use **constrained generation** where the schema is flat (cellscribe's own
answers, string enums included): the same field-by-field filler as the llama.cpp backend
(:func:`cellscribe.llm._decoding.fill_json`) drives the torch model through
:class:`TorchDecoder`, so the answer is valid JSON by construction and greedy decoding is
deterministic. Other schemas, and sampling (temperature > 0), use **generate-then-validate**: free
generation whose text the caller parses, repairs or sends back (the core's retry policy). Like the
llama.cpp backend, the key/value cache of the longest common prompt prefix is reused between
calls.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import os
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..config import settings
from ..errors import APITimeoutError, ModelNotFoundError
from . import local_models
from ._base import Backend, ChatResponse, Message, ModelIdentity, Usage
from ._decoding import CHUNK, fill_json, generate, plan

#: Base model when none is named (small enough to fine-tune on a CPU).
DEFAULT_TRANSFORMERS_MODEL = "smollm2-135m"

_LOADED: dict[tuple[str, str], tuple[Any, Any]] = {}
_LOAD_LOCK = threading.Lock()
_MAX_LOADED = 2


def base_source(model: str | os.PathLike | None) -> tuple[Path | str, dict[str, Any]]:
    """Where ``from_pretrained`` reads a base model: ``(folder or hub id, extra kwargs)``."""
    name = str(model or DEFAULT_TRANSFORMERS_MODEL)
    if name in local_models.REGISTRY or name.lower().endswith(".gguf"):
        path = local_models.resolve(name)
        return path.parent, {"gguf_file": path.name}
    path = Path(name).expanduser()
    if path.is_dir():
        return path, {}
    if path.exists():
        raise ModelNotFoundError(f"{name!r} is neither a transformers model folder, a .gguf file, nor a "
                                 f"registry model ({', '.join(local_models.REGISTRY)}).")
    return name, {}  # a hub id (needs a reachable hub or HF_HOME holding it)


def load_base(model: str | os.PathLike | None) -> tuple[Any, Any]:
    """``(model, tokenizer)`` of a causal LM in float32 on the CPU, in training mode off."""
    # optional heavy dependencies (the ml extra)
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(settings.n_threads)
    source, kwargs = base_source(model)
    try:
        # transformers draws a progress bar per GGUF tensor (plain tqdm on stderr); keep logs readable
        with contextlib.redirect_stderr(io.StringIO()):
            tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
            lm = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32, **kwargs)
    except (OSError, ValueError) as exc:
        raise ModelNotFoundError(f"transformers could not load {model!r}: {exc}") from exc
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    lm.eval()
    return lm, tokenizer


def load_model(model: str | os.PathLike | None = None, adapter: str | os.PathLike | None = None) -> tuple[Any, Any]:
    """``(model, tokenizer)`` with the LoRA ``adapter`` merged in; loaded once per process."""
    key = (str(model or DEFAULT_TRANSFORMERS_MODEL), str(Path(adapter).resolve()) if adapter else "")
    with _LOAD_LOCK:
        if key not in _LOADED:
            lm, tokenizer = load_base(model)
            if adapter:
                lm = _merge_adapter(lm, Path(adapter))
            while len(_LOADED) >= _MAX_LOADED:
                _LOADED.pop(next(iter(_LOADED)))
            _LOADED[key] = (lm, tokenizer)
        return _LOADED[key]


def _merge_adapter(lm: Any, adapter: Path) -> Any:
    from peft import PeftModel  # optional heavy dependency (the ml extra)

    if not (adapter / "adapter_config.json").is_file():
        raise ModelNotFoundError(f"{adapter} is not a peft adapter folder (no adapter_config.json).")
    merged = PeftModel.from_pretrained(lm, str(adapter)).merge_and_unload()
    merged.eval()
    return merged


def _digest(paths: list[Path]) -> str:
    h = hashlib.sha256()
    for p in sorted(paths):
        h.update(p.name.encode())
        h.update(local_models.file_sha256(p).encode())
    return h.hexdigest()


@functools.lru_cache(maxsize=1)
def _byte_decoder() -> dict[str, int]:
    from transformers.convert_slow_tokenizer import bytes_to_unicode  # optional heavy dependency (the ml extra)

    return {v: k for k, v in bytes_to_unicode().items()}


class TorchDecoder:
    """Greedy token-level access to a transformers causal LM with a reusable key/value cache.

    It offers what :func:`~cellscribe.llm._decoding.fill_json` and
    :func:`~cellscribe.llm._decoding.generate` need (``prompt_tokens``, ``start``, ``feed``,
    ``tokenize``, ``logits``, ``best``, ``piece``, ``is_end``). Prompts are evaluated in chunks
    aligned to absolute positions, as in the llama.cpp decoder, so an answer does not depend on
    what was cached before it.
    """

    def __init__(self, model: Any, tokenizer: Any) -> None:
        self.model, self.tokenizer = model, tokenizer
        self.ids: list[int] = []
        self.cache: Any = None
        self._logits: np.ndarray | None = None
        self._pieces: dict[int, bytes] = {}
        self._ends = {t for t in (tokenizer.eos_token_id, *tokenizer.all_special_ids) if t is not None}

    def prompt_tokens(self, messages: list[Message]) -> list[int]:
        text = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        return list(self.tokenizer(text, add_special_tokens=False).input_ids)

    def _eval(self, tokens: list[int]) -> None:
        import torch  # optional heavy dependency (the ml extra)

        with torch.inference_mode():
            out = self.model(input_ids=torch.tensor([tokens]), past_key_values=self.cache, use_cache=True,
                             logits_to_keep=1)
        self.cache = out.past_key_values
        self.ids.extend(tokens)
        self._logits = out.logits[0, -1].float().numpy()

    def start(self, tokens: list[int]) -> None:
        """Evaluate a prompt, reusing whole cached chunks of the longest common prefix."""
        n = 0
        for a, b in zip(self.ids, tokens, strict=False):
            if a != b:
                break
            n += 1
        n = min(n, len(tokens) - 1)
        n -= n % CHUNK
        if self.cache is None or n == 0:
            self.cache, self.ids = None, []
        elif len(self.ids) > n:
            self.cache.crop(n - len(self.ids))  # a negative value removes that many tokens
            self.ids = self.ids[:n]
        for i in range(n, len(tokens), CHUNK):
            self._eval(tokens[i: i + CHUNK])

    def feed(self, tokens: list[int]) -> None:
        if tokens:
            self._eval(list(tokens))

    def tokenize(self, text: bytes) -> list[int]:
        return list(self.tokenizer(text.decode("utf-8", "replace"), add_special_tokens=False).input_ids) if text else []

    def logits(self) -> np.ndarray:
        assert self._logits is not None
        return self._logits

    def best(self) -> int:
        return int(np.argmax(self.logits()))

    def piece(self, token: int) -> bytes:
        if token not in self._pieces:
            text = self.tokenizer.convert_ids_to_tokens(token)
            table = _byte_decoder()
            if isinstance(text, str) and text and all(c in table for c in text):
                self._pieces[token] = bytes(table[c] for c in text)
            else:
                self._pieces[token] = self.tokenizer.decode([token]).encode("utf-8")
        return self._pieces[token]

    def is_end(self, token: int) -> bool:
        return token in self._ends

    def reset(self) -> None:
        """Forget the cached prefix."""
        self.cache, self.ids, self._logits = None, [], None


class TransformersBackend(Backend):
    """A transformers causal LM in this process, optionally with a LoRA adapter.

    Parameters
    ----------
    model
        A registry name (``smollm2-135m``, the default; loaded from its GGUF and dequantised), a
        ``.gguf`` path, a transformers model folder, or a hub id available offline.
    adapter
        A peft adapter folder (as written by :func:`cellscribe.reasoner.finetune`), merged into
        the base model at load time.
    timeout
        Seconds allowed for one answer.
    """

    name = "transformers"
    max_concurrency = 1
    uses_schema_extensions = True

    def __init__(self, model: str | os.PathLike | None = None, *, adapter: str | os.PathLike | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.model_name = str(model or DEFAULT_TRANSFORMERS_MODEL)
        self.adapter = Path(adapter).expanduser() if adapter else None
        if self.adapter is not None and not (self.adapter / "adapter_config.json").is_file():
            raise ModelNotFoundError(f"{self.adapter} is not a peft adapter folder (no adapter_config.json).")
        base_source(self.model_name)  # fails early on an unknown name or an unprepared model
        self._lock = threading.Lock()
        self._identity: ModelIdentity | None = None
        self._dec: TorchDecoder | None = None

    @property
    def loaded(self) -> tuple[Any, Any]:
        return load_model(self.model_name, self.adapter)

    @property
    def identity(self) -> ModelIdentity:
        if self._identity is None:
            source, kwargs = base_source(self.model_name)
            spec = local_models.REGISTRY.get(self.model_name)
            if spec is not None:
                digest = spec.sha256
            elif "gguf_file" in kwargs:
                digest = local_models.file_sha256(Path(source) / kwargs["gguf_file"])
            elif Path(source).is_dir():
                digest = _digest([p for p in Path(source).iterdir() if p.suffix in (".safetensors", ".bin")])
            else:
                digest = None
            name = self.model_name
            if self.adapter is not None:
                weights = [p for p in self.adapter.iterdir() if p.suffix in (".safetensors", ".bin")]
                digest = hashlib.sha256(f"{digest}+{_digest(weights)}".encode()).hexdigest()
                name = f"{self.model_name}+{self.adapter.name}"
            self._identity = ModelIdentity(backend=self.name, model=name, digest=digest)
        return self._identity

    def check(self) -> None:
        self.loaded  # noqa: B018 - loading is the check

    def decoder(self) -> TorchDecoder:
        lm, tokenizer = self.loaded
        if self._dec is None or self._dec.model is not lm:
            self._dec = TorchDecoder(lm, tokenizer)
        return self._dec

    def _chat(
        self,
        messages: list[Message],
        *,
        schema: dict[str, Any] | None,
        temperature: float,
        seed: int,
        max_tokens: int,
    ) -> ChatResponse:
        deadline = time.monotonic() + self.timeout
        try:
            with self._lock:
                decoder = self.decoder()
                fields = plan(schema) if schema is not None else None
                if temperature > 0:
                    text, finish, n_prompt, n_gen = self._sample(decoder, messages, temperature, seed, max_tokens)
                elif fields is not None:
                    text, finish, n_prompt, n_gen = fill_json(decoder, messages, fields, max_tokens=max_tokens,
                                                              deadline=deadline)
                else:
                    text, finish, n_prompt, n_gen = generate(decoder, messages, max_tokens=max_tokens,
                                                             deadline=deadline)
        except APITimeoutError:
            raise APITimeoutError(
                f"{self.model_name} did not finish within {self.timeout:g} s; raise timeout= or ask for a "
                "shorter answer."
            ) from None
        return ChatResponse(content=text, model=self.identity.model, finish_reason=finish,
                            usage=Usage(prompt_tokens=n_prompt, completion_tokens=n_gen))

    @staticmethod
    def _sample(decoder: TorchDecoder, messages: list[Message], temperature: float, seed: int,
                max_tokens: int) -> tuple[str, str, int, int]:
        """Sampling through ``model.generate`` (the caller validates the text)."""
        import torch  # optional heavy dependency (the ml extra)

        prompt = decoder.prompt_tokens(messages)
        torch.manual_seed(seed)
        with torch.inference_mode():
            out = decoder.model.generate(torch.tensor([prompt]), do_sample=True, temperature=temperature,
                                         max_new_tokens=max_tokens, pad_token_id=decoder.tokenizer.pad_token_id)
        new = out[0, len(prompt):].tolist()
        ended = bool(new) and decoder.is_end(new[-1])
        text = decoder.tokenizer.decode(new, skip_special_tokens=True)
        return text, "stop" if ended or len(new) < max_tokens else "length", len(prompt), len(new)
