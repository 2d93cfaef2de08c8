"""Plots (scanpy's ``pl`` convention). Each function returns the matplotlib figure and saves it
when ``path`` is given."""

from ._confusion import confusion_matrix
from ._embed import embedding_umaps
from ._qc import qc
from ._umap import umap

__all__ = ["confusion_matrix", "embedding_umaps", "qc", "umap"]
