"""Tools that take an AnnData and write results into it (scanpy's ``tl`` convention)."""

from ._annotate import annotate
from ._cluster import cluster
from ._genept import genept
from ._screader import screader

__all__ = ["annotate", "cluster", "genept", "screader"]
