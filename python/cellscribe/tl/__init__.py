"""Tools that take an AnnData and write results into it (scanpy's ``tl`` convention)."""

from ._annotate import annotate

__all__ = ["annotate"]
