#' Annotate the clusters of a Seurat object and explain each label
#'
#' Finds the marker genes of each cluster (unless given), labels each cluster and explains the
#' label (by default a Cell Ontology type chosen from marker databases, explained by the local
#' language model; see `mode` and [annotate_markers()]), and writes the results into the object:
#' per-cell metadata columns and, in `object@misc`, the per-cluster explanations with the
#' provenance record.
#'
#' @param object A Seurat object.
#' @param markers Marker table of the same clusters (output of [Seurat::FindAllMarkers()]). When
#'   `NULL`, `Seurat::FindAllMarkers(object, only.pos = TRUE)` is run on the grouping.
#' @param group.by Column of the cell metadata holding the clusters; `NULL` for the active
#'   identities (`Idents(object)`).
#' @inheritParams annotate_markers
#' @param copy_number Check each cluster for copy-number changes inferred from its mean expression
#'   (human data with normalised expression, against the clusters expressing PTPRC/CD45): a
#'   cluster with two or more chromosome arms gained or lost is labelled "malignant cell", the
#'   normal type its markers resemble kept as the rival (see the README, "Tumour cells").
#' @param key Prefix of the metadata columns and name of the `misc` entry written.
#' @param ... Further arguments of [annotate_markers()] (`system_prompt`, `host`, `timeout`, ...).
#'
#' @returns The Seurat object with
#'   * `object[[paste0(key, "_label")]]`: the label of each cell's cluster (factor, levels in
#'     cluster order);
#'   * `object[[paste0(key, "_confidence")]]`: the cluster's confidence (numeric);
#'   * `object[[paste0(key, "_lineage")]]`: the cluster's broad lineage (factor);
#'   * `object[[paste0(key, "_cl_id")]]`: the cluster's Cell Ontology ID (with the default
#'     `mode = "grounded"`, and `"agentic"`; absent with `mode = "llm"`);
#'   * `object@misc[[key]]`: a list with `clusters` (the data.frame of [annotate_markers()]: label,
#'     lineage, confidence, title, explanation, bullets, supporting markers, markers per cluster),
#'     `provenance` (backend, model, model digest, prompt hash, parameters, package version, time),
#'     `params` (group.by, tissue, species, backend, model, top_n, explain), `stats` and, when
#'     the copy number was measured, `copy_number` (per cluster: cells, reference, score,
#'     malignant, gained and lost arms).
#'
#'   Cells of a cluster that had no marker gene get `NA`.
#' @seealso [cellscribe_explanations()] and [render_explanations()] to show the explanations.
#' @export
#' @examplesIf cellscribe_available() && requireNamespace("Seurat", quietly = TRUE)
#' pbmc <- annotate_seurat(SeuratObject::pbmc_small, tissue = "PBMC")
#' table(pbmc$cellscribe_label, SeuratObject::Idents(pbmc))
#' cellscribe_explanations(pbmc)
annotate_seurat <- function(object, markers = NULL, group.by = NULL, tissue = NULL,
                            species = "human", backend = "auto", model = NULL, top_n = 10,
                            explain = TRUE, mode = "grounded", ..., copy_number = TRUE,
                            key = "cellscribe") {
  if (!inherits(object, "Seurat")) {
    hint <- if (is.data.frame(object)) " For a marker table use annotate_markers()." else ""
    stop(sprintf("`object` must be a Seurat object; got %s.%s", describe_class(object), hint),
         call. = FALSE)
  }
  need_package("SeuratObject")
  check_scalars(list(key = key))
  groups <- cell_groups(object, group.by)
  if (is.null(markers)) {
    need_package("Seurat", "to find the marker genes (or pass markers =)")
    if (nlevels(droplevels(groups)) < 2) {
      stop("The object has a single group of cells; FindAllMarkers() needs at least two. ",
           "Cluster first (FindNeighbors(), FindClusters()) or pass group.by =.", call. = FALSE)
    }
    message("Finding markers: Seurat::FindAllMarkers(only.pos = TRUE)")
    grouped <- object
    SeuratObject::Idents(grouped) <- groups
    markers <- Seurat::FindAllMarkers(grouped, only.pos = TRUE, verbose = FALSE)
  }
  check_markers(markers)
  if (!is.null(markers$cluster)) {
    unknown <- setdiff(unique(as.character(markers$cluster)), levels(groups))
    if (length(unknown)) {
      stop(sprintf(paste0("The markers' cluster(s) %s are not groups of %s (groups: %s). Pass ",
                          "group.by = the metadata column the markers were computed on."),
                   paste(utils::head(unknown, 5), collapse = ", "),
                   if (is.null(group.by)) "Idents(object)" else sprintf("'%s'", group.by),
                   paste(utils::head(levels(groups), 10), collapse = ", ")), call. = FALSE)
    }
    if (!is.factor(markers$cluster)) {
      markers$cluster <- factor(as.character(markers$cluster), levels = levels(groups))
    }
  }
  if (!is.null(markers$gene)) check_marker_genes(unique(as.character(markers$gene)), rownames(object))
  if (identical(species, "human") && isTRUE(copy_number)) {
    attr(markers, "cellscribe_expression") <- cluster_expression(object, groups)
  }
  result <- annotate_markers(markers, tissue = tissue, species = species, backend = backend,
                             model = model, top_n = top_n, explain = explain, mode = mode, ...)

  row <- match(as.character(groups), result$cluster)
  label_levels <- unique(stats::na.omit(result$label))
  lineage_levels <- unique(stats::na.omit(result$broad_lineage))
  meta <- data.frame(
    label = factor(result$label[row], levels = label_levels),
    confidence = result$confidence[row],
    lineage = factor(result$broad_lineage[row], levels = lineage_levels),
    row.names = colnames(object)
  )
  if (!is.null(result$cl_id)) meta$cl_id <- result$cl_id[row]  # not with mode = "llm"
  names(meta) <- paste0(key, "_", names(meta))
  object <- SeuratObject::AddMetaData(object, metadata = meta)
  provenance <- attr(result, "provenance")
  params <- list(group.by = group.by, tissue = tissue, species = species, backend = backend,
                 model = provenance$model %||% model, top_n = top_n, explain = explain, mode = mode)
  stats <- attr(result, "stats")
  copy_number <- attr(result, "copy_number")
  attr(result, "provenance") <- NULL
  attr(result, "stats") <- NULL
  attr(result, "copy_number") <- NULL
  object@misc[[key]] <- list(clusters = result, provenance = provenance, params = params,
                             stats = stats)
  if (!is.null(copy_number)) object@misc[[key]]$copy_number <- copy_number
  object
}

# Each cluster's mean log-normalised expression, cell count and share of cells expressing PTPRC,
# for the copy-number check (cellscribe.copynumber); NULL when the object has no normalised data
# (run NormalizeData()) or too few genes for it to mean anything.
cluster_expression <- function(object, groups) {
  data <- if (utils::packageVersion("SeuratObject") >= "5.0.0") {
    SeuratObject::GetAssayData(object, layer = "data")
  } else {
    SeuratObject::GetAssayData(object, slot = "data")
  }
  if (nrow(data) < 2000 || !length(data@x) || max(data@x) > 50) return(NULL)
  groups <- droplevels(groups[colnames(data)])
  member <- Matrix::sparseMatrix(i = seq_along(groups), j = as.integer(groups), x = 1,
                                 dims = c(length(groups), nlevels(groups)))
  n_cells <- Matrix::colSums(member)
  means <- as.matrix(Matrix::t(data %*% member)) / n_cells
  share <- if ("PTPRC" %in% rownames(data)) {
    as.numeric(Matrix::crossprod(member, as.numeric(data["PTPRC", ] > 0))) / n_cells
  } else {
    rep(0, length(n_cells))
  }
  list(clusters = levels(groups), genes = rownames(data), means = unname(round(means, 4)),
       n_cells = as.numeric(n_cells), reference_share = share)
}

# The cluster of each cell, as a factor named by cell.
cell_groups <- function(object, group.by) {
  if (is.null(group.by)) {
    groups <- SeuratObject::Idents(object)
  } else {
    check_scalars(list(group.by = group.by))
    meta <- object@meta.data
    if (!group.by %in% names(meta)) {
      stop(sprintf("The object has no metadata column '%s'; columns: %s.", group.by,
                   paste(names(meta), collapse = ", ")), call. = FALSE)
    }
    groups <- meta[[group.by]]
    names(groups) <- rownames(meta)
  }
  if (!is.factor(groups)) groups <- factor(groups)
  groups
}

need_package <- function(pkg, why = "") {
  if (!requireNamespace(pkg, quietly = TRUE)) {
    stop(sprintf("The R package %s is needed%s; install it (Debian: r-cran-%s).", pkg,
                 if (nzchar(why)) paste0(" ", why) else "", tolower(pkg)), call. = FALSE)
  }
}

`%||%` <- function(x, y) if (is.null(x)) y else x

# Marker genes must be genes of the object: markers of another object (or another assay) would
# label these cells from someone else's data. Most missing: an error; a few: a warning.
check_marker_genes <- function(genes, features) {
  missing <- setdiff(genes, features)
  if (!length(missing)) return(invisible(NULL))
  what <- sprintf("%d of the %d marker genes (%s) are not features of the object", length(missing),
                  length(genes), paste(utils::head(missing, 5), collapse = ", "))
  if (length(missing) > length(genes) / 2) {
    stop(what, ". Were the markers computed on another object or assay? Pass the markers of this ",
         "object, or leave markers = NULL to compute them.", call. = FALSE)
  }
  warning(what, "; they are annotated as given.", call. = FALSE)
  invisible(NULL)
}
