# annotate_seurat() on pbmc_small with the real embedded model.

test_that("annotate_seurat with the defaults (grounded) writes labels, Cell Ontology IDs, confidence and lineage per cell and explanations to misc", {
  needs_seurat()
  pbmc <- SeuratObject::pbmc_small
  # The README's call: no mode, no backend (no Ollama server here: the embedded model explains).
  expect_message(out <- annotate_seurat(pbmc, tissue = tissue), "FindAllMarkers")
  expect_s4_class(out, "Seurat")
  meta <- out@meta.data
  for (col in c("cellscribe_label", "cellscribe_confidence", "cellscribe_lineage",
                "cellscribe_cl_id")) {
    expect_true(col %in% names(meta))
    expect_length(meta[[col]], ncol(pbmc))
  }
  expect_false(anyNA(meta$cellscribe_label))
  entry <- out@misc$cellscribe
  clusters <- entry$clusters
  expect_identical(clusters$cluster, levels(SeuratObject::Idents(pbmc)))
  # The right types: NK/T (GNLY, CCL5, GZMA, PRF1, LCK), monocytes (S100A8, S100A9, LYZ), B cells.
  expect_pbmc_small_labels(clusters$label)
  expect_match(clusters$cl_id, "^CL:[0-9]{7}$")
  expect_identical(entry$params$mode, "grounded")
  expect_identical(entry$provenance$mode, "grounded")
  # Consistent with the idents: each cell carries its own cluster's answer.
  row <- match(as.character(SeuratObject::Idents(out)), clusters$cluster)
  expect_identical(as.character(meta$cellscribe_label), clusters$label[row])
  expect_identical(unname(as.character(meta$cellscribe_cl_id)), clusters$cl_id[row])
  expect_identical(meta$cellscribe_confidence, clusters$confidence[row])
  expect_identical(as.character(meta$cellscribe_lineage), clusters$broad_lineage[row])
  expect_identical(rownames(meta), colnames(pbmc))
  # The evidence: each label's genes among the cluster's markers; a probability as confidence.
  for (i in seq_len(nrow(clusters))) {
    expect_gt(length(clusters$evidence_genes[[i]]), 0)
    expect_true(all(clusters$evidence_genes[[i]] %in% clusters$markers[[i]]))
  }
  expect_true(all(clusters$confidence > 0 & clusters$confidence <= 1))
  # Per-cluster explanations by the embedded model and the provenance record.
  expect_identical(lengths(clusters$bullets), rep(3L, nrow(clusters)))
  expect_true(all(startsWith(clusters$explanation, "## **")))
  expect_identical(entry$provenance$backend, "llamacpp")
  expect_identical(entry$provenance$model, "qwen2.5-coder-1.5b")
  expect_match(entry$provenance$digest, "^[0-9a-f]{64}$")
  expect_match(entry$provenance$cellscribe_version, "^[0-9]+\\.[0-9]+")
  expect_identical(entry$params$tissue, tissue)
  # The answers are those of annotate_markers() on the same markers (served from the cache).
  direct <- annotate_markers(pbmc_markers(), tissue = tissue)
  expect_true(all(direct$cached))
  expect_identical(clusters$label, direct$label)
  expect_identical(clusters$explanation, direct$explanation)
  # Nothing else in the object changed.
  expect_identical(meta[, names(pbmc@meta.data)], pbmc@meta.data)
})

test_that("annotate_seurat with mode = 'llm' writes the model's own labels, without Cell Ontology IDs", {
  needs_seurat()
  pbmc <- SeuratObject::pbmc_small
  out <- annotate_seurat(pbmc, markers = pbmc_markers(), tissue = tissue, backend = "llamacpp",
                         mode = "llm", key = "llm")
  clusters <- out@misc$llm$clusters
  expect_false("cl_id" %in% names(clusters))
  expect_false("llm_cl_id" %in% names(out@meta.data))
  expect_identical(out@misc$llm$params$mode, "llm")
  expect_identical(out@misc$llm$provenance$backend, "llamacpp")
  row <- match(as.character(SeuratObject::Idents(out)), clusters$cluster)
  expect_identical(as.character(out$llm_label), clusters$label[row])
  expect_identical(lengths(clusters$bullets), rep(3L, nrow(clusters)))
  # The same answers as annotate_markers(mode = "llm") (served from the cache).
  direct <- annotate_markers(pbmc_markers(), tissue = tissue, backend = "llamacpp", mode = "llm")
  expect_true(all(direct$cached))
  expect_identical(clusters$label, direct$label)
})

test_that("annotate_seurat takes group.by, given markers and another key", {
  needs_seurat()
  pbmc <- SeuratObject::pbmc_small
  out <- annotate_seurat(pbmc, group.by = "letter.idents", tissue = tissue, backend = "llamacpp",
                         explain = FALSE, key = "cs")
  expect_identical(out@misc$cs$clusters$cluster, c("A", "B"))
  row <- match(as.character(pbmc$letter.idents), out@misc$cs$clusters$cluster)
  expect_identical(as.character(out$cs_label), out@misc$cs$clusters$label[row])
  expect_identical(out@misc$cs$params$group.by, "letter.idents")
  expect_identical(SeuratObject::Idents(out), SeuratObject::Idents(pbmc))
  expect_null(out@misc$cellscribe)

  given <- annotate_seurat(pbmc, markers = pbmc_markers(), tissue = tissue, backend = "llamacpp")
  expect_true(all(given@misc$cellscribe$clusters$cached))
  expect_length(given$cellscribe_label, ncol(pbmc))
})

test_that("explain = FALSE (grounded, no model) adds the Cell Ontology ID per cell and the evidence per cluster", {
  needs_seurat()
  pbmc <- SeuratObject::pbmc_small
  out <- annotate_seurat(pbmc, markers = pbmc_markers(), tissue = tissue, explain = FALSE,
                         key = "db")
  clusters <- out@misc$db$clusters
  expect_true(all(c("cl_id", "cl_name", "evidence_genes", "chosen_by") %in% names(clusters)))
  expect_true(all(grepl("^CL:[0-9]{7}$", clusters$cl_id) | clusters$cl_id == "unmapped"))
  expect_pbmc_small_labels(clusters$label)
  expect_true(is.list(clusters$evidence_genes))
  # every evidence gene is one of the cluster's markers
  for (i in seq_len(nrow(clusters))) {
    expect_true(all(clusters$evidence_genes[[i]] %in% clusters$markers[[i]]))
  }
  row <- match(as.character(SeuratObject::Idents(out)), clusters$cluster)
  expect_identical(unname(as.character(out$db_cl_id)), clusters$cl_id[row])
  expect_identical(unname(as.character(out$db_label)), clusters$label[row])
  # No language model ran, and there is no explanation.
  expect_true(all(is.na(clusters$explanation)))
  expect_identical(attr(annotate_markers(pbmc_markers(), tissue = tissue, explain = FALSE),
                        "stats")$model_calls, 0L)
  expect_null(out@misc$db$provenance$backend)
})

test_that("the deprecated mode = 'markers' warns and gives the grounded labels without a model", {
  needs_seurat()
  expect_warning(old <- annotate_markers(pbmc_markers(), tissue = tissue, mode = "markers"),
                 "mode='markers' is deprecated; use mode='grounded', explain=False")
  new <- annotate_markers(pbmc_markers(), tissue = tissue, explain = FALSE)
  expect_identical(old$label, new$label)
  expect_identical(old$cl_id, new$cl_id)
  expect_true(all(is.na(old$explanation)))
})

test_that("markers of another object are refused (most genes missing) or reported (a few)", {
  needs_seurat()
  pbmc <- SeuratObject::pbmc_small
  foreign <- data.frame(cluster = factor(rep(c("0", "1", "2"), each = 4)),
                        gene = c("Cd3e", "Cd4", "Lck", "Zap70", "Lyz2", "Csf1r", "Adgre1", "Itgam",
                                 "Cd19", "Cd79a", "Ms4a1", "Pax5"),
                        avg_log2FC = 2, p_val_adj = 0.001)
  expect_clean_error(annotate_seurat(pbmc, markers = foreign, tissue = tissue, explain = FALSE),
                     "12 of the 12 marker genes .* are not features of the object.*another object or assay")
  some <- pbmc_markers()
  some$gene <- as.character(some$gene)
  some$gene[1:2] <- c("NOTAGENE1", "NOTAGENE2")
  said <- character()
  out <- withCallingHandlers(
    annotate_seurat(pbmc, markers = some, tissue = tissue, explain = FALSE),
    warning = function(w) {
      said <<- c(said, conditionMessage(w))
      invokeRestart("muffleWarning")
    })
  expect_true(any(grepl("2 of the [0-9]+ marker genes \\(NOTAGENE1, NOTAGENE2\\) are not features of the object",
                        said)))
  expect_length(out$cellscribe_label, ncol(pbmc))
})

test_that("annotate_seurat calls malignant clusters from copy number (the bundled oligodendroglioma)", {
  needs_seurat()
  # Tirosh et al.'s oligodendroglioma (184 cells, TPM-like values) from the Python package, as a
  # Seurat object with the published groups
  dir <- tempfile("oligodendroglioma")
  dir.create(dir)
  on.exit(unlink(dir, recursive = TRUE))
  reticulate::py_run_string(sprintf(paste(
    "import scipy.io, scipy.sparse as sp",
    "from cellscribe import datasets",
    "a = datasets.oligodendroglioma()",
    "scipy.io.mmwrite(r'%1$s/x.mtx', sp.csr_matrix(a.X).T)",
    "open(r'%1$s/genes.txt', 'w').write('\\n'.join(a.var_names) + '\\n')",
    "a.obs[['cell_type']].to_csv(r'%1$s/cells.csv')", sep = "\n"), dir))
  counts <- methods::as(Matrix::readMM(file.path(dir, "x.mtx")), "CsparseMatrix")
  rownames(counts) <- readLines(file.path(dir, "genes.txt"))
  cells <- utils::read.csv(file.path(dir, "cells.csv"), row.names = 1)
  colnames(counts) <- rownames(cells)
  obj <- suppressWarnings(SeuratObject::CreateSeuratObject(counts))
  obj <- Seurat::NormalizeData(obj, verbose = FALSE)
  obj$cell_type <- cells$cell_type
  out <- annotate_seurat(obj, group.by = "cell_type", tissue = "brain", explain = FALSE)
  clusters <- out@misc$cellscribe$clusters
  tumour <- startsWith(clusters$cluster, "malignant")
  expect_true(all(clusters$label[tumour] == "malignant cell"))
  expect_true(all(clusters$cl_id[tumour] == "CL:0001064"))
  expect_false(any(clusters$label[!tumour] == "malignant cell"))
  calls <- out@misc$cellscribe$copy_number
  called <- vapply(calls, function(r) isTRUE(r$malignant), logical(1))
  names(called) <- vapply(calls, function(r) r$cluster, character(1))
  expect_true(all(called[clusters$cluster[tumour]]) && !any(called[clusters$cluster[!tumour]]))
  lost_1p <- vapply(calls, function(r) "1p" %in% unlist(r$losses), logical(1))
  expect_identical(unname(lost_1p), unname(called))
  expect_true(all(out$cellscribe_label[startsWith(out$cell_type, "malignant")] == "malignant cell"))
  off <- annotate_seurat(obj, group.by = "cell_type", tissue = "brain", explain = FALSE,
                         copy_number = FALSE, key = "plain")
  expect_false("malignant cell" %in% off@misc$plain$clusters$label)
  expect_null(off@misc$plain$copy_number)
})
