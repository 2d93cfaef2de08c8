#' cellscribe: annotate and explain single-cell clusters with language models
#'
#' From `FindAllMarkers()` output to a label, a lineage, a confidence and an expert-style
#' explanation (a bold title and three bullet points) per cluster. By default the label is a Cell
#' Ontology type chosen from marker databases by a learned re-ranker, and a language model that
#' runs on your own machine explains it (see `mode` in [annotate_markers()]). The work is done by
#' the cellscribe Python package, called through reticulate; you never have to touch Python.
#'
#' * [annotate_markers()]: a marker table in, one row per cluster out.
#' * [annotate_seurat()]: a Seurat object in, the same object with labels, Cell Ontology IDs,
#'   confidence and lineage as cell metadata and the explanations in `object@misc$cellscribe` out.
#' * [cellscribe_explanations()], [render_explanations()]: the explanations in the console and
#'   in R Markdown.
#' * [cellscribe_install()], [cellscribe_status()], [cellscribe_available()]: the Python side.
#'
#' @keywords internal
"_PACKAGE"
