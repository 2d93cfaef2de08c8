# Rendering explanations for the console and R Markdown (no Python needed).

example_labels <- function() {
  labels <- data.frame(cluster = c("0", "1"), label = c("T cell", "B cell"),
                       broad_lineage = c("T cell", NA), confidence = c(0.9, NA),
                       title = c("Cytotoxic T cells", "B cells"))
  labels$bullets <- list(c("CD3D marks T cells.", "GZMA marks cytotoxicity.", "CCL5 too."),
                         c("MS4A1 is CD20.", "CD79A is in the BCR.", "CD19 too."))
  labels$supporting_markers <- list(c("CD3D", "GZMA"), character())
  labels
}

test_that("render_explanations writes a Markdown block per cluster", {
  out <- capture.output(text <- render_explanations(example_labels()))
  expect_identical(out, strsplit(text, "\n", fixed = TRUE)[[1]])
  expect_true("### Cluster 0: T cell" %in% out)
  expect_true("**Cytotoxic T cells**" %in% out)
  expect_identical(sum(startsWith(out, "- ")), 6L)
  expect_true("*Lineage: T cell; confidence 0.90; markers cited: CD3D, GZMA*" %in% out)
  expect_true("## Cluster 1: B cell" %in%
                capture.output(render_explanations(example_labels(), heading_level = 2)))
})

test_that("explanations print as plain text and knit as Markdown", {
  ex <- cellscribe_explanations(example_labels())
  expect_s3_class(ex, "cellscribe_explanations")
  printed <- capture.output(print(ex))
  expect_true("Cluster 0: T cell (T cell, confidence 0.90)" %in% printed)
  expect_true("  - CD3D marks T cells." %in% printed)
  expect_false(any(grepl("**", printed, fixed = TRUE)))
  knitted <- knitr::knit_print(ex)
  expect_s3_class(knitted, "knit_asis")
  expect_match(knitted, "### Cluster 1: B cell", fixed = TRUE)
})

test_that("cellscribe_explanations refuses objects without results", {
  expect_error(cellscribe_explanations(data.frame(a = 1)), "must be a Seurat object annotated")
  skip_if_not_installed("SeuratObject")
  expect_error(cellscribe_explanations(SeuratObject::pbmc_small), "run annotate_seurat\\(\\) first")
})

test_that("the case behind a label shows under its bullets, with the rendered bullets named", {
  labels <- example_labels()
  labels$bullet_sources <- list(c("model", "knowledge", "model"), character())
  labels$caveats <- list("PPBP and PF4 are markers of megakaryocyte, so the cluster may hold doublets.",
                         character())
  labels$case_markdown <- c(paste0("- **Evidence** (publications): CD3D (29; 34)\n",
                                   "- **Rival**: natural killer cell (probability 0.40)\n",
                                   "- **Caveat**: PPBP and PF4 are markers of megakaryocyte."), NA)
  md <- capture.output(render_explanations(labels))
  expect_true("The case:" %in% md)
  expect_true("- **Rival**: natural killer cell (probability 0.40)" %in% md)
  expect_true(any(grepl("Rendered from the case .*bullet 2", md)))
  printed <- capture.output(print(cellscribe_explanations(labels)))
  expect_true("  Case:" %in% printed)
  expect_true(any(grepl("Rival: natural killer cell", printed, fixed = TRUE)))
  expect_true("  (bullet 2 rendered from the case)" %in% printed)
  expect_false(any(grepl("**", printed, fixed = TRUE)))
  expect_identical(sum(printed == "  Case:"), 1L)  # the cluster without a case shows none
})
