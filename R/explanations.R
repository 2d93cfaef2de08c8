#' The per-cluster explanations, for the console and for R Markdown
#'
#' `cellscribe_explanations()` collects the explanations of an annotation: printed in the
#' console they read as plain text; in an R Markdown or knitr document they render as Markdown by
#' themselves (a heading per cluster, the bold title, the three bullets, the lineage, confidence
#' and the markers the explanation cites, then the case behind the label: the evidence genes with
#' their support in the marker databases, the Cell Ontology definition, the nearest rival and any
#' caveat, and which bullets were rendered from the case because the model's sentence failed a
#' check). `render_explanations()` writes the same Markdown with [cat()], for chunks with
#' `results = "asis"`.
#'
#' @param x A Seurat object annotated by [annotate_seurat()], or the data.frame returned by
#'   [annotate_markers()].
#' @param key The `misc` entry of the Seurat object (the `key` given to [annotate_seurat()]).
#' @param heading_level Markdown heading level of the per-cluster headings (3 gives `###`).
#'
#' @returns `cellscribe_explanations()`: an object of class `cellscribe_explanations` (a
#'   data.frame of `cluster, label, broad_lineage, confidence, title, bullets,
#'   supporting_markers, bullet_sources, caveats, case_markdown`). `render_explanations()`: the Markdown text, invisibly.
#' @seealso [annotate_seurat()], [annotate_markers()].
#' @export
#' @examples
#' labels <- data.frame(cluster = "0", label = "T cell", broad_lineage = "T cell",
#'                      confidence = 0.9, title = "Cytotoxic T cells")
#' labels$bullets <- list(c("CD3D and CD3E mark T cells.", "GZMA and PRF1 mark cytotoxicity.",
#'                          "CCL5 is made by effector T cells."))
#' labels$supporting_markers <- list(c("CD3D", "CD3E", "GZMA", "PRF1", "CCL5"))
#' cellscribe_explanations(labels)
#' render_explanations(labels)
cellscribe_explanations <- function(x, key = "cellscribe") {
  if (inherits(x, "cellscribe_explanations")) return(x)
  if (inherits(x, "Seurat")) {
    entry <- x@misc[[key]]
    if (is.null(entry$clusters)) {
      stop(sprintf("The Seurat object has no cellscribe results under @misc$%s; run ", key),
           "annotate_seurat() first.", call. = FALSE)
    }
    x <- entry$clusters
  }
  if (!is.data.frame(x) || !all(c("cluster", "label") %in% names(x))) {
    stop("`x` must be a Seurat object annotated by annotate_seurat() or the data.frame returned ",
         sprintf("by annotate_markers(); got %s.", describe_class(x)), call. = FALSE)
  }
  cols <- c("cluster", "label", "broad_lineage", "confidence", "title", "bullets",
            "supporting_markers", "bullet_sources", "caveats", "case_markdown")
  list_cols <- c("bullets", "supporting_markers", "bullet_sources", "caveats")
  for (col in setdiff(cols, names(x))) {
    x[[col]] <- if (col %in% list_cols) {
      replicate(nrow(x), character(), simplify = FALSE)
    } else {
      NA
    }
  }
  structure(x[, cols], class = c("cellscribe_explanations", "data.frame"))
}

#' @rdname cellscribe_explanations
#' @export
render_explanations <- function(x, key = "cellscribe", heading_level = 3) {
  text <- explanations_markdown(cellscribe_explanations(x, key = key), heading_level)
  cat(text, "\n", sep = "")
  invisible(text)
}

explanations_markdown <- function(x, heading_level = 3) {
  hashes <- strrep("#", heading_level)
  blocks <- vapply(seq_len(nrow(x)), function(i) {
    r <- x[i, ]
    bullets <- r$bullets[[1]]
    cited <- r$supporting_markers[[1]]
    facts <- c(
      if (!is.na(r$broad_lineage)) sprintf("Lineage: %s", r$broad_lineage),
      if (!is.na(r$confidence)) sprintf("confidence %.2f", r$confidence),
      if (length(cited)) sprintf("markers cited: %s", paste(cited, collapse = ", "))
    )
    paste(c(
      sprintf("%s Cluster %s: %s", hashes, r$cluster, label_text(r$label)),
      "",
      if (!is.na(r$title)) c(sprintf("**%s**", r$title), ""),
      if (length(bullets)) c(paste0("- ", bullets), ""),
      if (length(facts)) c(paste0("*", paste(facts, collapse = "; "), "*"), ""),
      case_lines(r)
    ), collapse = "\n")
  }, character(1))
  paste(sub("\n+$", "", blocks), collapse = "\n\n")
}

label_text <- function(label) if (is.na(label)) "(no label)" else label

# The case behind a label (Markdown lines from the bridge) and which bullets were rendered from it.
case_lines <- function(r) {
  rendered <- which(r$bullet_sources[[1]] == "knowledge")
  c(
    if (!is.na(r$case_markdown)) c("The case:", "", r$case_markdown, ""),
    if (length(rendered)) sprintf("*Rendered from the case (the model's sentence failed a check): bullet %s.*",
                                  paste(rendered, collapse = ", "))
  )
}

#' @export
format.cellscribe_explanations <- function(x, width = getOption("width"), ...) {
  width <- max(40, width - 2)
  unlist(lapply(seq_len(nrow(x)), function(i) {
    r <- x[i, ]
    conf <- if (is.na(r$confidence)) "" else sprintf(", confidence %.2f", r$confidence)
    lineage <- if (is.na(r$broad_lineage)) "" else sprintf(" (%s%s)", r$broad_lineage, conf)
    bullets <- unlist(lapply(r$bullets[[1]], function(b) {
      lines <- strwrap(b, width = width - 4)
      c(paste0("  - ", lines[1]), if (length(lines) > 1) paste0("    ", lines[-1]))
    }))
    cited <- r$supporting_markers[[1]]
    case <- if (is.na(r$case_markdown)) character() else gsub("\\*\\*", "", strsplit(r$case_markdown, "\n")[[1]])
    case <- unlist(lapply(sub("^- ", "", case), strwrap, width = width - 4, indent = 4, exdent = 6))
    rendered <- which(r$bullet_sources[[1]] == "knowledge")
    c(sprintf("Cluster %s: %s%s", r$cluster, label_text(r$label), lineage),
      if (!is.na(r$title)) paste0("  ", r$title),
      bullets,
      if (length(cited)) strwrap(paste("Markers cited:", paste(cited, collapse = ", ")),
                                 width = width, indent = 2, exdent = 4),
      if (length(case)) c("  Case:", case),
      if (length(rendered)) sprintf("  (bullet %s rendered from the case)", paste(rendered, collapse = ", ")),
      "")
  }))
}

#' @export
print.cellscribe_explanations <- function(x, ...) {
  cat(format(x, ...), sep = "\n")
  invisible(x)
}

#' @exportS3Method knitr::knit_print
knit_print.cellscribe_explanations <- function(x, ...) {
  knitr::asis_output(paste0(explanations_markdown(x), "\n"))
}
