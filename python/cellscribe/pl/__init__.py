"""Plots (scanpy's ``pl`` convention). Each function returns the matplotlib figure and saves it
when ``path`` is given."""

from ._qc import qc
from ._umap import umap

__all__ = ["qc", "umap"]
