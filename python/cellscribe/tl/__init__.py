"""Tools that take an AnnData and write results into it (scanpy's ``tl`` convention)."""

from ._annotate import annotate
from ._cells import annotate_cells, budget_cells, refine_with_reasoner
from ._cluster import cluster
from ._genept import genept
from ._screader import screader

__all__ = ["annotate", "annotate_cells", "budget_cells", "cluster", "genept", "refine_with_reasoner", "screader"]
