# Bad input gives an R error naming the problem and the fix, never a Python traceback.

test_that("a marker table of the wrong class is refused", {
  expect_clean_error(annotate_markers("markers.csv"),
                     "`markers` must be a data.frame of marker genes from Seurat::FindAllMarkers\\(\\)")
  expect_clean_error(annotate_markers(list(cluster = "0", gene = "CD3E")),
                     "must be a data.frame.*got an object of class list")
  needs_seurat()
  expect_clean_error(annotate_markers(SeuratObject::pbmc_small),
                     "`markers` is a Seurat object; use annotate_seurat\\(\\)")
  expect_clean_error(annotate_seurat(pbmc_markers()),
                     "`object` must be a Seurat object.*For a marker table use annotate_markers\\(\\)")
})

test_that("missing gene or cluster columns are named", {
  needs_seurat()
  markers <- pbmc_markers()
  err <- expect_clean_error(annotate_markers(markers[, setdiff(names(markers), "gene")]),
                            "missing column\\(s\\) 'gene'.*found p_val, avg_log2FC",
                            class = "cellscribe_MarkerInputError")
  expect_s3_class(err, "cellscribe_error")
  expect_clean_error(annotate_markers(markers[, setdiff(names(markers), "cluster")]),
                     "missing column\\(s\\) 'cluster'", class = "cellscribe_MarkerInputError")
})

test_that("an empty marker table is refused", {
  expect_clean_error(annotate_markers(data.frame()), "The marker table is empty \\(0 rows\\)")
  needs_seurat()
  expect_clean_error(annotate_markers(pbmc_markers()[0, ]), "empty \\(0 rows\\).*FindAllMarkers")
})

test_that("an unknown backend is named with the choices", {
  needs_seurat()
  expect_clean_error(annotate_markers(pbmc_markers(), backend = "nope"),
                     "Unknown backend 'nope'; choose one of auto, llamacpp, ollama, openai",
                     class = "cellscribe_InputError")
})

test_that("bad options are refused before any model runs", {
  needs_seurat()
  markers <- pbmc_markers()
  expect_clean_error(annotate_markers(markers, top_n = 0), "`top_n` must be a single positive")
  expect_clean_error(annotate_markers(markers, tissue = c("a", "b")), "`tissue` must be a single")
  expect_clean_error(annotate_markers(markers, species = "zebrafish"),
                     "species must be one of human, mouse", class = "cellscribe_error")
  expect_clean_error(annotate_markers(markers, backend = "llamacpp", temprature = 0),
                     "temprature", class = "cellscribe_error")
  expect_clean_error(annotate_markers(markers, 0.5), "`tissue` must be a single character")
})

test_that("annotate_seurat checks the grouping against the markers", {
  needs_seurat()
  pbmc <- SeuratObject::pbmc_small
  expect_clean_error(annotate_seurat(pbmc, group.by = "nope"),
                     "no metadata column 'nope'; columns: orig.ident")
  markers <- pbmc_markers()
  expect_clean_error(annotate_seurat(pbmc, markers = markers, group.by = "groups"),
                     "cluster\\(s\\) 0, 1, 2 are not groups of 'groups' \\(groups: g1, g2\\)")
})

test_that("cluster IDs stay as written and bad options are named (the bad-input cases from R)", {
  needs_python()
  markers <- data.frame(cluster = c("01", "01", "3.1", "3.1", "3.10", "3.10"),
                        gene = c("CD3D", "CD3E", "MS4A1", "CD79A", "CD14", "LYZ"))
  res <- annotate_markers(markers, tissue = "PBMC", explain = FALSE, progress = FALSE)
  expect_identical(res$cluster, c("01", "3.1", "3.10"))
  expect_match(res$label[2], "B cell")
  expect_match(res$label[3], "monocyte")
  expect_clean_error(annotate_markers(markers, mode = "llm", template = "nosuch.j2"),
                     "The template file nosuch.j2 does not exist", class = "cellscribe_InputError")
  expect_clean_error(annotate_markers(markers, concurrency = -3),
                     "concurrency must be a positive whole number", class = "cellscribe_InputError")
  expect_clean_error(annotate_markers(markers, backend = "nosuch", explain = FALSE),
                     "Unknown backend 'nosuch'", class = "cellscribe_InputError")
  expect_warning(annotate_markers(markers, tissue = strrep("peripheral blood ", 20), explain = FALSE,
                                  progress = FALSE),
                 "tissue is 339 characters long")
})
