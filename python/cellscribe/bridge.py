"""Entry points for the R package (called through reticulate).

Everything that crosses the bridge is a JSON string or a plain ``str``: reticulate 1.28 cannot
convert numpy 2 / pandas >= 2.3 objects back to R, and R vectors of length one arrive as scalars,
so R sends its marker table and options as JSON and gets a JSON document back. Nothing here
raises: a :class:`~cellscribe.errors.CellscribeError` becomes ``{"ok": false, "error": message,
"error_class": name}``, which R shows as a plain R error (never a Python traceback); an unexpected
exception comes back the same way with ``"internal": true`` and its traceback, which the R package
keeps for ``cellscribe_last_error()``. Python warnings and cellscribe's log records of level
WARNING and above come back in ``"warnings"`` / ``"messages"`` so that R can replay them as R
warnings and messages.

Every reply has ``"ok"``, ``"warnings"`` and ``"messages"``; the other keys depend on the call.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import platform
import sys
import traceback
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import pandas as pd

from . import copynumber, results
from .config import settings
from .engine import annotate as annotate_markers
from .errors import AnnotationError, CellscribeError, InputError
from .llm import ollama_host, ollama_models
from .llm.local_models import DEFAULT_LOCAL_MODEL
from .llm.local_models import status as model_status
from .version import __version__

__all__ = ["annotate", "status"]


def annotate(markers_json: str, options_json: str = "{}") -> str:
    """Annotate a marker table sent by R.

    Parameters
    ----------
    markers_json
        ``{"columns": {name: [values]}, "cluster_levels": [...] | null}``: the marker table by
        column (R's ``FindAllMarkers()`` output; ``null`` for ``NA``) and, when R's ``cluster``
        column was a factor, its levels, which then fix the cluster order.
    options_json
        Keyword arguments of :func:`cellscribe.annotate` as a JSON object (``tissue``,
        ``species``, ``backend``, ``model``, ``top_n``, ``explain``, ``system_prompt``, backend
        options, ...). ``mode`` defaults to grounded, as in Python. Progress goes to standard
        error as plain lines (R's console, RStudio and logs are not terminals) unless
        ``progress=False``.

    Returns
    -------
    A JSON document: ``columns`` (the result table's columns in order, each ``{"name", "kind"}``
    with the kinds of :mod:`cellscribe.results`: id, text, number, flag, list), ``clusters`` (one
    record per cluster, :func:`cellscribe.results.records`: the columns of the mode that ran, and
    ``error`` when ``on_error="keep"`` kept a failure), ``provenance`` and ``stats`` (``df.attrs``
    of :func:`cellscribe.annotate`), or the error; when some clusters failed, the error reply
    carries ``columns``, ``clusters`` (the partial table) and ``failures`` as well.
    """
    return _reply(lambda: _annotate(markers_json, options_json))


def status() -> str:
    """What the R package's ``cellscribe_status()`` shows, as a JSON document.

    Returns
    -------
    ``python`` (executable), ``python_version``, ``cellscribe_version``, ``numpy``, ``pandas``,
    ``cache_dir``, ``backends`` (one record per backend: ``backend, available, detail``) and
    ``models`` (:func:`cellscribe.llm.local_models.status`).
    """
    return _reply(_status)


# --------------------------------------------------------------------------- the calls


def _annotate(markers_json: str, options_json: str) -> dict[str, Any]:
    payload = _loads(markers_json, "markers_json")
    options = _loads(options_json, "options_json")
    if not isinstance(payload, dict) or not isinstance(payload.get("columns"), dict):
        raise InputError("markers_json must be a JSON object with a 'columns' mapping.")
    if not isinstance(options, dict):
        raise InputError("options_json must be a JSON object of keyword arguments.")
    columns = payload["columns"]
    lengths = {len(v) if isinstance(v, list) else 1 for v in columns.values()}
    if len(lengths) > 1:
        raise InputError("The marker table's columns have different lengths.")
    markers = pd.DataFrame(columns)
    levels = payload.get("cluster_levels")
    if levels and "cluster" in markers:
        markers["cluster"] = pd.Categorical(markers["cluster"].astype(str), categories=[str(x) for x in levels])
    expression = _expression(payload.get("expression"))
    try:
        df = annotate_markers(markers, **options)
    except TypeError as exc:  # an unknown keyword from R's `...`
        if "unexpected keyword argument" not in str(exc):
            raise
        raise InputError(f"{exc}. See ?annotate_markers for the arguments cellscribe accepts.") from None
    except AnnotationError as exc:
        return {"ok": False, "error": str(exc), "error_class": type(exc).__name__, **_table(exc.partial),
                "failures": exc.failures}
    calls = None
    if expression is not None and options.get("species", "human") == "human":
        calls = copynumber.copy_number_of_clusters(*expression)
    if calls is not None:
        df = copynumber.relabel(df, calls)
    reply = {**_table(df), "provenance": df.attrs.get("provenance", {}), "stats": df.attrs.get("stats", {})}
    if calls is not None:
        reply["copy_number"] = results.json_ready(calls.to_dict("records"))
    return reply


def _expression(data: Any) -> tuple[pd.DataFrame, pd.Series, pd.Series] | None:
    """Each cluster's mean log expression, cell count and share of PTPRC-expressing cells, as R's
    ``annotate_seurat()`` sends them (``clusters``, ``genes``, ``means`` (one row per cluster),
    ``n_cells``, ``reference_share``), for :func:`cellscribe.copynumber.copy_number_of_clusters`."""
    if not data:
        return None
    try:
        clusters = [str(c) for c in data["clusters"]]
        means = pd.DataFrame(data["means"], index=clusters, columns=[str(g) for g in data["genes"]], dtype=float)
        return (means, pd.Series(data["n_cells"], index=clusters, dtype=float),
                pd.Series(data["reference_share"], index=clusters, dtype=float))
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"The cluster expression sent with the markers is malformed ({exc}).") from None


def _status() -> dict[str, Any]:
    models = model_status()
    default_ready = any(m["name"] == DEFAULT_LOCAL_MODEL and m["ready"] for m in models)
    llama_installed = importlib.util.find_spec("llama_cpp") is not None
    if not llama_installed:
        llama_detail = "llama-cpp-python is not installed"
    elif default_ready:
        llama_detail = f"embedded model {DEFAULT_LOCAL_MODEL} is ready"
    else:
        llama_detail = f"run `cellscribe models prepare {DEFAULT_LOCAL_MODEL}` (or cellscribe_install())"
    host = ollama_host()
    tags = ollama_models(host)
    ollama_detail = (f"no server answers at {host}" if tags is None
                     else f"{host}: {len(tags)} model(s)" + (f" ({', '.join(sorted(tags)[:5])})" if tags else ""))
    openai_ready = bool(os.environ.get("OPENAI_API_KEY") or os.environ.get("OPENAI_BASE_URL"))
    openai_detail = ("OPENAI_API_KEY or OPENAI_BASE_URL is set" if openai_ready
                     else "set OPENAI_API_KEY (or pass base_url= for a compatible server)")
    return {
        "python": sys.executable,
        "python_version": platform.python_version(),
        "cellscribe_version": __version__,
        "numpy": _version("numpy"),
        "pandas": _version("pandas"),
        "cache_dir": str(settings.cache_dir),
        "backends": [
            {"backend": "llamacpp", "available": llama_installed and default_ready, "detail": llama_detail},
            {"backend": "ollama", "available": tags is not None, "detail": ollama_detail},
            {"backend": "openai", "available": openai_ready, "detail": openai_detail},
        ],
        "models": models,
    }


# --------------------------------------------------------------------------- plumbing


def _reply(call: Callable[[], dict[str, Any]]) -> str:
    """Run ``call`` and wrap its result, warnings, log records or error in a JSON document."""
    with _captured() as (caught, records):
        try:
            result = {"ok": True, **call()}
        except CellscribeError as exc:
            result = {"ok": False, "error": str(exc), "error_class": type(exc).__name__}
        except Exception as exc:  # noqa: BLE001 - everything must reach R as a message
            result = {"ok": False, "internal": True, "error_class": type(exc).__name__,
                      "error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}
    result["warnings"] = [{"class": w.category.__name__, "message": str(w.message)} for w in caught]
    result["messages"] = [r.getMessage() for r in records]
    return json.dumps(results.json_ready(result), ensure_ascii=False, default=str)


@contextmanager
def _captured() -> Iterator[tuple[list[warnings.WarningMessage], list[logging.LogRecord]]]:
    """Collect warnings and cellscribe's WARNING+ log records instead of printing them."""
    records: list[logging.LogRecord] = []

    class _Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    logger = logging.getLogger("cellscribe")
    handler = _Keep(logging.WARNING)
    logger.addHandler(handler)
    propagate, logger.propagate = logger.propagate, False
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield caught, records
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


def _table(df: pd.DataFrame) -> dict[str, Any]:
    """A result table as ``columns`` (name and kind of each, in order) and ``clusters`` (records)."""
    kinds = results.kinds(df.columns)
    return {"columns": [{"name": name, "kind": kind} for name, kind in kinds.items()],
            "clusters": results.records(df)}


def _loads(text: str, name: str) -> Any:
    try:
        return json.loads(text)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{name} is not valid JSON ({exc}).") from None


def _version(dist: str) -> str | None:
    try:
        return version(dist)
    except PackageNotFoundError:
        return None
