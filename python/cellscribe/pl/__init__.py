"""Plots (scanpy's ``pl`` convention). Each function returns the matplotlib figure and saves it
when ``path`` is given."""

from ._umap import umap

__all__ = ["umap"]
