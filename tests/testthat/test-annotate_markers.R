# annotate_markers() with the real embedded model (Qwen2.5-Coder-1.5B through llama.cpp) and the
# real marker databases.

test_that("annotate_markers defaults to grounded: Cell Ontology types with evidence, explained", {
  needs_seurat()
  markers <- pbmc_markers()
  res <- annotate_markers(markers, tissue = tissue, host = no_ollama)
  expect_identical(res$cluster, levels(markers$cluster))
  expect_pbmc_small_labels(res$label)
  expect_match(res$cl_id, "^CL:[0-9]{7}$")
  expect_identical(res$cl_name, res$label)
  expect_true(all(res$confidence > 0 & res$confidence <= 1))
  for (i in seq_len(nrow(res))) {
    expect_gt(length(res$evidence_genes[[i]]), 0)
    expect_true(all(res$evidence_genes[[i]] %in% res$markers[[i]]))
    expect_identical(res$title[i], paste0(toupper(substr(res$label[i], 1, 1)),
                                          substring(res$label[i], 2)))
  }
  expect_identical(lengths(res$bullets), rep(3L, nrow(res)))
  prov <- attr(res, "provenance")
  expect_identical(prov$mode, "grounded")
  expect_identical(prov$parameters$mode, "grounded")
  expect_identical(prov$backend, "llamacpp")
})

test_that("mode = 'llm': the model labels and explains every cluster of FindAllMarkers output", {
  needs_seurat()
  markers <- pbmc_markers()
  # backend = "auto" with no Ollama server answering falls back to the embedded model.
  expect_message(
    res <- annotate_markers(markers, tissue = tissue, host = no_ollama, mode = "llm"),
    "using the embedded model qwen2.5-coder-1.5b"
  )
  expect_s3_class(res, "data.frame")
  expect_identical(res$cluster, levels(markers$cluster))
  expect_true(all(nzchar(res$label) & !is.na(res$label)))
  expect_true(all(nzchar(res$broad_lineage) & !is.na(res$broad_lineage)))
  expect_true(all(res$confidence >= 0 & res$confidence <= 1))
  # The seed's format: a bold H2 title and exactly three bullets.
  expect_identical(lengths(res$bullets), rep(3L, nrow(res)))
  for (i in seq_len(nrow(res))) {
    lines <- strsplit(res$explanation[i], "\n", fixed = TRUE)[[1]]
    expect_identical(lines[1], sprintf("## **%s**", res$title[i]))
    expect_identical(sum(startsWith(lines, "- ")), 3L)
    expect_true(all(res$supporting_markers[[i]] %in% res$markers[[i]]))
  }
  # The markers sent are each cluster's own, best first.
  top <- markers[markers$cluster == "2", ]
  expect_identical(res$markers[[3]][1], top$gene[1])
  # Cluster 2 of pbmc_small is the B cells (CD79A, CD79B, MS4A1, TCL1A): the 1.5B model alone
  # gets at least the lineage right (label or broad lineage).
  expect_false("cl_id" %in% names(res))
  expect_match(paste(res$label[3], res$broad_lineage[3]), "\\bB\\b|B[- ]cell|B lymph",
               ignore.case = TRUE)
  prov <- attr(res, "provenance")
  expect_identical(prov$backend, "llamacpp")
  expect_identical(prov$model, "qwen2.5-coder-1.5b")
  expect_match(prov$prompt_hash, "^[0-9a-f]{64}$")
  expect_identical(prov$parameters$tissue, tissue)
  expect_identical(attr(res, "stats")$failed, 0L)
})

test_that("a second run is served from the answer cache with the same answers", {
  needs_seurat()
  for (mode in c("grounded", "llm")) {
    first <- annotate_markers(pbmc_markers(), tissue = tissue, backend = "llamacpp", mode = mode)
    again <- annotate_markers(pbmc_markers(), tissue = tissue, backend = "llamacpp", mode = mode)
    expect_true(all(again$cached))
    expect_identical(attr(again, "stats")$model_calls, 0L)
    expect_identical(again$label, first$label)
    expect_identical(again$explanation, first$explanation)
  }
})

test_that("explain = FALSE gives labels only", {
  needs_seurat()
  # mode = "llm": the model answers with a label only.
  res <- annotate_markers(pbmc_markers(), tissue = tissue, backend = "llamacpp", explain = FALSE,
                          mode = "llm")
  expect_identical(nrow(res), 3L)
  expect_true(all(nzchar(res$label)))
  expect_true(all(is.na(res$explanation)))
  expect_identical(lengths(res$bullets), rep(0L, 3))
  expect_false(attr(res, "provenance")$parameters$explain)
  expect_false("cl_id" %in% names(res))
  expect_identical(attr(res, "provenance")$backend, "llamacpp")
  # The default (grounded): no model runs at all; the same labels as with explanations.
  res <- annotate_markers(pbmc_markers(), tissue = tissue, explain = FALSE)
  expect_identical(attr(res, "stats")$model_calls, 0L)
  expect_true(all(is.na(res$explanation)))
  expect_identical(res$label, annotate_markers(pbmc_markers(), tissue = tissue,
                                               backend = "llamacpp")$label)
})

test_that("a two-column cluster/gene table works and keeps the factor's cluster order", {
  needs_python()
  markers <- data.frame(
    cluster = factor(c("T", "T", "T", "B", "B", "B"), levels = c("T", "B")),
    gene = c("CD3D", "CD3E", "IL7R", "CD79A", "MS4A1", "CD19")
  )
  res <- annotate_markers(markers, tissue = tissue, backend = "llamacpp", explain = FALSE)
  expect_identical(res$cluster, c("T", "B"))
  expect_identical(res$markers, list(c("CD3D", "CD3E", "IL7R"), c("CD79A", "MS4A1", "CD19")))
  expect_match(res$label[2], "B", ignore.case = FALSE)
})

test_that("a cluster whose markers no database knows is 'unmapped', next to a known one", {
  needs_python()
  markers <- data.frame(cluster = c("known", "known", "known", "odd", "odd"),
                        gene = c("CD79A", "MS4A1", "CD19", "NOTAGENE1", "NOTAGENE2"))
  expect_warning(res <- annotate_markers(markers, tissue = tissue, explain = FALSE),
                 "not human gene symbols known to NCBI Gene \\(NOTAGENE1, NOTAGENE2\\)")
  expect_identical(res$cluster, c("known", "odd"))
  expect_match(res$cl_id[1], "^CL:[0-9]{7}$")
  expect_identical(res$cl_id[2], "unmapped")
  expect_identical(res$label[2], "unmapped")
  expect_identical(res$evidence_genes[[2]], character())
  expect_identical(res$confidence[2], 0)
  expect_true(length(res$candidates[[1]]) >= 1 && res$candidates[[1]][1] == res$label[1])
})
