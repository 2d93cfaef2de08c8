"""Greedy decoding for the embedded llama.cpp backend: reproducible, fast, and exact about JSON.

Prompts are evaluated in chunks aligned to fixed positions (``CHUNK`` tokens), also when a prefix
is reused from the key/value cache: llama.cpp's arithmetic depends on how tokens are batched, so
this keeps every answer identical whatever ran before it (a resumed run equals an uninterrupted
one), at the cost of re-evaluating at most ``CHUNK - 1`` cached tokens.

Structured answers use one of two strategies:

* :func:`fill_json` for flat schemas (strings, string enums, numbers, fixed-length string
  arrays, all required; cellscribe's own answers). cellscribe writes the JSON syntax itself, feeding each
  literal run (``", "title": "``) to the model as one batch, and the model generates only the
  values. A decoding step costs ~35 ms on two cores while a batch of a few literal tokens costs
  about as much as one, so the ~35 syntax tokens of an answer cost ~5 steps instead of ~35.
* :class:`Grammar` for any other schema: a llama.cpp grammar, checked on the model's best token
  first and applied to the whole 150k-token vocabulary only when that token is rejected (as
  llama.cpp's ``common_sampler_sample`` does; llama-cpp-python applies it to the whole vocabulary
  at every step, ~20 ms per token here).
"""

from __future__ import annotations

import ctypes
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import APITimeoutError

# --------------------------------------------------------------------------- schema plans
from ._base import MAX_SENTENCES_KEY, TRUNCATE_KEY

#: Prompt evaluation chunk (tokens), aligned to absolute positions.
CHUNK = 32


@dataclass(frozen=True)
class _Field:
    name: str
    kind: str  # "string", "number", "strings" or "choice" (a string enum)
    max_chars: int = 400
    n_items: int = 1
    max_sentences: int | None = None
    choices: tuple[str, ...] = ()
    truncate: bool = False


def plan(schema: dict[str, Any]) -> list[_Field] | None:
    """The fields of a flat schema in order, or ``None`` when :func:`fill_json` cannot do it."""
    props = schema.get("properties")
    if schema.get("type") != "object" or not isinstance(props, dict):
        return None
    if set(schema.get("required", [])) != set(props):
        return None
    string_keys = {"type", "maxLength", "minLength", MAX_SENTENCES_KEY, TRUNCATE_KEY}
    fields = []
    for name, prop in props.items():
        kind = prop.get("type")
        if kind == "string" and "enum" in prop and not set(prop) - {"type", "enum"}:
            if not prop["enum"] or not all(isinstance(c, str) and c for c in prop["enum"]):
                return None
            fields.append(_Field(name, "choice", choices=tuple(prop["enum"])))
        elif kind == "string" and not set(prop) - string_keys:
            fields.append(_Field(name, "string", int(prop.get("maxLength", 400)),
                                 max_sentences=prop.get(MAX_SENTENCES_KEY), truncate=bool(prop.get(TRUNCATE_KEY))))
        elif kind in ("number", "integer") and not set(prop) - {"type", "minimum", "maximum"}:
            fields.append(_Field(name, "number"))
        elif kind == "array" and not set(prop) - {"type", "items", "minItems", "maxItems"}:
            items, n = prop.get("items", {}), prop.get("minItems")
            if items.get("type") != "string" or set(items) - string_keys or n is None or n != prop.get("maxItems"):
                return None
            fields.append(_Field(name, "strings", int(items.get("maxLength", 400)), int(n),
                                 max_sentences=items.get(MAX_SENTENCES_KEY), truncate=bool(items.get(TRUNCATE_KEY))))
        else:
            return None
    return fields


# --------------------------------------------------------------------------- the decoder


class Decoder:
    """Greedy token-level access to a ``llama_cpp.Llama``, sharing its prompt-prefix cache."""

    def __init__(self, llama: Any) -> None:
        from llama_cpp import llama_chat_format

        self.llama = llama
        model = llama._model
        eos, bos = llama.token_eos(), llama.token_bos()
        # The same chat formatting create_chat_completion uses for GGUF chat templates.
        self._format = llama_chat_format.Jinja2ChatFormatter(
            template=llama.metadata["tokenizer.chat_template"],
            eos_token=model.token_get_text(eos) if eos != -1 else "",
            bos_token=model.token_get_text(bos) if bos != -1 else "",
        )
        self._pieces: dict[int, bytes] = {}
        self._n_vocab = llama.n_vocab()

    def prompt_tokens(self, messages: list[dict[str, str]]) -> list[int]:
        prompt = self._format(messages=messages).prompt
        return self.llama.tokenize(prompt.encode("utf-8"), add_bos=False, special=True)

    def start(self, tokens: list[int]) -> None:
        """Evaluate a prompt, reusing whole cached chunks of the longest common prefix."""
        llama = self.llama
        n = 0
        for a, b in zip(llama.input_ids[: llama.n_tokens], tokens, strict=False):  # lengths differ
            if a != b:
                break
            n += 1
        n = min(n, len(tokens) - 1)  # re-evaluate at least one token for fresh logits
        llama.n_tokens = n - n % CHUNK
        for i in range(llama.n_tokens, len(tokens), CHUNK):
            llama.eval(tokens[i: i + CHUNK])

    def feed(self, tokens: list[int]) -> None:
        if tokens:
            self.llama.eval(tokens)

    def tokenize(self, text: bytes) -> list[int]:
        return self.llama.tokenize(text, add_bos=False, special=False) if text else []

    def logits(self) -> np.ndarray:
        """Logits of the last evaluated position (a view; copy before the next evaluation)."""
        import llama_cpp

        ptr = llama_cpp.llama_get_logits_ith(self.llama._ctx.ctx, -1)
        return np.ctypeslib.as_array(ptr, shape=(self._n_vocab,))

    def best(self) -> int:
        return int(np.argmax(self.logits()))

    def piece(self, token: int) -> bytes:
        if token not in self._pieces:
            self._pieces[token] = self.llama.detokenize([token])
        return self._pieces[token]

    def is_end(self, token: int) -> bool:
        import llama_cpp

        return bool(llama_cpp.llama_vocab_is_eog(self.llama._model.vocab, token))


# --------------------------------------------------------------------------- filling


_SENTENCE_END = re.compile(rb"(?<!\be\.g)(?<!\bi\.e)(?<!\bvs)[.!?](?=\s)")


def _string_end(max_sentences: int | None) -> Callable[[bytes, int], int]:
    """An end finder for string values: an unescaped quote, a newline, or the end of the
    ``max_sentences``-th sentence (the punctuation is kept)."""

    def end(buf: bytes, start: int) -> int:
        i = start
        while i < len(buf):
            c = buf[i]
            if c == 0x5C:  # backslash: skip the escaped byte
                i += 2
                continue
            if c in (0x22, 0x0A):  # '"' or newline
                return i
            i += 1
        if max_sentences:
            ends = list(_SENTENCE_END.finditer(buf))
            if len(ends) >= max_sentences and ends[max_sentences - 1].end() > start - 1:
                return ends[max_sentences - 1].end()
        return -1

    return end


def _cut(buf: bytes, max_chars: int) -> bytes:
    """The first ``max_chars`` characters of a JSON string value's bytes, without a dangling
    escape (a trailing backslash would swallow the closing quote)."""
    text = buf.decode("utf-8", "ignore")[:max_chars]
    for drop in range(6):  # a cut escape (a lone backslash, half of \\uXXXX) would break the JSON
        try:
            json.loads(f'"{text[:len(text) - drop]}"')
            return text[:len(text) - drop].encode("utf-8")
        except ValueError:
            continue
    return text.encode("utf-8")  # invalid for another reason than the cut: validation reports it


_NUMBER_BYTES = frozenset(b"0123456789.-+eE ")


def _number_end(buf: bytes, start: int) -> int:
    for i in range(start, len(buf)):
        if buf[i] not in _NUMBER_BYTES:
            return i
    return -1


class _Filler:
    """Writes the JSON syntax, lets the model write the values; everything emitted is fed."""

    def __init__(self, decoder: Decoder, prompt: list[int], max_tokens: int, deadline: float) -> None:
        self.decoder, self.prompt = decoder, prompt
        self.max_tokens, self.deadline = max_tokens, deadline
        self.chunks: list[bytes] = []
        self.pending = b""  # emitted but not yet fed to the model
        self.started = False
        self.generated = 0
        self.finish = "stop"

    def write(self, literal: str) -> None:
        self.pending += literal.encode("utf-8")

    def _flush(self) -> None:
        tokens = self.decoder.tokenize(self.pending)
        if self.started:
            self.decoder.feed(tokens)
        else:
            self.decoder.start(self.prompt + tokens)
            self.started = True
        self.chunks.append(self.pending)
        self.pending = b""

    def value(self, end: Callable[[bytes, int], int], max_chars: int, truncate: bool = False) -> bytes:
        """Generate one value; the token that ends it is not fed, only its part before the end.

        At ``max_chars`` the answer ends (finish reason ``"length"``), or with ``truncate`` only
        the value does."""
        self._flush()
        buf = b""
        while True:
            if time.monotonic() > self.deadline:
                raise APITimeoutError("generation did not finish within the timeout")
            token = self.decoder.best()
            if self.decoder.is_end(token):
                break
            piece = self.decoder.piece(token)
            stop = end(buf + piece, len(buf))
            if stop >= 0:
                self.pending = (buf + piece)[len(buf):stop]
                break
            self.decoder.feed([token])
            buf += piece
            self.generated += 1
            if self.generated >= self.max_tokens:
                self.finish = "length"
                break
            if len(buf.decode("utf-8", "ignore")) >= max_chars:
                if truncate:  # the last token may run past the limit: the value never does
                    buf = _cut(buf, max_chars)
                else:
                    self.finish = "length"
                break
        self.chunks.append(buf)
        return buf + self.pending

    def choose(self, choices: tuple[str, ...]) -> str:
        """Pick one of ``choices`` greedily, token by token, among the tokens that continue one.

        Each choice is tokenized once; at every step only the next tokens of the choices still
        alive compete (and the closing quote, where a choice is complete); once one choice is
        left, its remaining tokens are fed in one batch.
        """
        self._flush()
        options = [(c, self.decoder.tokenize(c.encode("utf-8"))) for c in dict.fromkeys(choices)]
        closers = {self.decoder.tokenize(q)[0] for q in (b'"', b'",', b'"}')}
        step = 0
        while True:
            if len(options) == 1:
                choice, tokens = options[0]
                self.decoder.feed(tokens[step:])
                self.generated += len(tokens) - step
                break
            if time.monotonic() > self.deadline:
                raise APITimeoutError("generation did not finish within the timeout")
            logits = self.decoder.logits()
            done = [c for c, t in options if len(t) == step]
            nexts = {t[step] for _, t in options if len(t) > step}
            best = max(nexts, key=lambda tok: logits[tok]) if nexts else None
            if done and (best is None or max(logits[q] for q in closers) >= logits[best]):
                choice = done[0]
                break
            options = [(c, t) for c, t in options if len(t) > step and t[step] == best]
            if len(options) > 1:  # with one left, the next round feeds it whole
                self.decoder.feed([best])
                self.generated += 1
                step += 1
        self.chunks.append(choice.encode("utf-8"))
        return choice

    def text(self) -> str:
        return b"".join([*self.chunks, self.pending]).decode("utf-8", "replace")


def fill_json(
    decoder: Decoder,
    messages: list[dict[str, str]],
    fields: list[_Field],
    *,
    max_tokens: int,
    deadline: float,
) -> tuple[str, str, int, int]:
    """Generate a JSON object with the given fields, in order.

    Returns ``(json_text, finish_reason, prompt_tokens, completion_tokens)``; ``finish_reason`` is
    ``"length"`` when a value hit its ``maxLength`` or the answer hit ``max_tokens``.
    """
    prompt = decoder.prompt_tokens(messages)
    f = _Filler(decoder, prompt, max_tokens, deadline)
    for i, field in enumerate(fields):
        f.write(("{" if i == 0 else ", ") + json.dumps(field.name) + ": ")
        if field.kind == "number":
            raw = f.value(_number_end, 32)
            try:
                float(raw.strip())
            except ValueError:  # emit null: validation reports it and the question is asked again
                f.chunks[-1], f.pending = b"null", b""
        elif field.kind == "choice":
            f.write('"')
            f.choose(field.choices)
            f.write('"')
        elif field.kind == "string":
            f.write('"')
            f.value(_string_end(field.max_sentences), field.max_chars, field.truncate)
            f.write('"')
        else:
            for j in range(field.n_items):
                f.write('["' if j == 0 else '", "')
                f.value(_string_end(field.max_sentences), field.max_chars, field.truncate)
                if f.finish == "length":
                    break
            f.write('"]')
        if f.finish == "length":
            break
    f.write("}")
    return f.text(), f.finish, len(prompt), f.generated


# --------------------------------------------------------------------------- free text and grammars


def generate(
    decoder: Decoder,
    messages: list[dict[str, str]],
    *,
    max_tokens: int,
    deadline: float,
    grammar: Grammar | None = None,
) -> tuple[str, str, int, int]:
    """Greedy free text (optionally under a grammar) until the model ends its turn.

    Returns ``(text, finish_reason, prompt_tokens, completion_tokens)``.
    """
    prompt = decoder.prompt_tokens(messages)
    decoder.start(prompt)
    out = b""
    finish = "length"
    generated = 0
    while generated < max_tokens:
        if time.monotonic() > deadline:
            raise APITimeoutError("generation did not finish within the timeout")
        token = decoder.best() if grammar is None else grammar.best(decoder)
        if decoder.is_end(token):
            finish = "stop"
            break
        if grammar is not None:
            grammar.accept(token)
        decoder.feed([token])
        out += decoder.piece(token)
        generated += 1
    return out.decode("utf-8", "replace"), finish, len(prompt), generated


class Grammar:
    """A llama.cpp GBNF grammar, checked on the best token first (the fast path)."""

    _DTYPE = np.dtype([("id", np.intc), ("logit", np.single), ("p", np.single)])

    def __init__(self, llama: Any, gbnf: str) -> None:
        import llama_cpp

        self._lib = llama_cpp
        self._sampler = llama_cpp.llama_sampler_init_grammar(llama._model.vocab, gbnf.encode(), b"root")
        if not self._sampler:
            raise ValueError("llama.cpp could not parse the grammar")
        n_vocab = llama.n_vocab()
        self._full = (llama_cpp.llama_token_data * n_vocab)()
        self._full_np = np.ctypeslib.as_array(self._full).view(self._DTYPE)
        self._ids = np.arange(n_vocab, dtype=np.intc)
        self._one = (llama_cpp.llama_token_data * 1)()

    def _apply(self, data: Any, size: int) -> None:
        arr = self._lib.llama_token_data_array(data=data, size=size, selected=-1, sorted=False)
        self._lib.llama_sampler_apply(self._sampler, ctypes.byref(arr))

    def best(self, decoder: Decoder) -> int:
        """The best token the grammar allows next."""
        logits = decoder.logits()
        best = int(np.argmax(logits))
        self._one[0].id, self._one[0].logit = best, float(logits[best])
        self._apply(self._one, 1)
        if np.isfinite(self._one[0].logit):
            return best
        self._full_np["id"] = self._ids
        self._full_np["logit"] = logits
        self._apply(self._full, len(logits))
        return int(np.argmax(self._full_np["logit"]))

    def accept(self, token: int) -> None:
        self._lib.llama_sampler_accept(self._sampler, token)

    def __del__(self) -> None:
        sampler, self._sampler = getattr(self, "_sampler", None), None
        if sampler:
            self._lib.llama_sampler_free(sampler)
