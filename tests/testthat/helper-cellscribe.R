# Shared helpers. Tests that need Python skip only when it is absent; with
# CELLSCRIBE_TESTS_NEED_PYTHON=true (scripts/run_tests.sh, CI) they fail instead.

needs_python <- function() {
  if (cellscribe_available()) return(invisible(TRUE))
  why <- paste("the cellscribe Python package is not available:", cellscribe_status()$error)
  if (identical(Sys.getenv("CELLSCRIBE_TESTS_NEED_PYTHON"), "true")) stop(why, call. = FALSE)
  skip(why)
}

needs_seurat <- function() {
  needs_python()
  for (pkg in c("Seurat", "SeuratObject")) {
    if (!requireNamespace(pkg, quietly = TRUE)) {
      if (identical(Sys.getenv("CELLSCRIBE_TESTS_NEED_PYTHON"), "true")) stop(pkg, " is not installed")
      skip(paste(pkg, "is not installed"))
    }
  }
}

fixtures <- new.env(parent = emptyenv())

# FindAllMarkers(pbmc_small, only.pos = TRUE), computed once per test run.
pbmc_markers <- function() {
  if (is.null(fixtures$markers)) {
    fixtures$markers <- Seurat::FindAllMarkers(SeuratObject::pbmc_small, only.pos = TRUE,
                                               verbose = FALSE)
  }
  fixtures$markers
}

# A loopback address where nothing listens: backend = "auto" must fall back to the embedded model.
no_ollama <- "http://127.0.0.1:9"

# Every test and the vignette ask the same questions (tissue "PBMC", the same markers), so the
# answer cache (CELLSCRIBE_CACHE) serves all but the first run of each prompt.
tissue <- "PBMC"

expect_clean_error <- function(expr, pattern, class = "error") {
  err <- tryCatch(expr, error = function(e) e)
  expect_s3_class(err, class)
  expect_match(conditionMessage(err), pattern)
  expect_no_match(conditionMessage(err), "Traceback|py_call_impl|File \"")
  invisible(err)
}

# What pbmc_small's three clusters are, from their markers: 0 cytotoxic lymphocytes, NK or T
# (GNLY, CCL5, GZMA, PRF1, LCK), 1 monocytes (S100A8, S100A9, LYZ, CST3), 2 B cells (CD79A, CD79B,
# MS4A1, TCL1A). `labels` holds the labels of clusters 0, 1, 2 in that order.
# scripts/run_r_tests.sh checks the built vignette with the same patterns.
pbmc_small_types <- list(
  "0" = "natural killer|\\bNK\\b|\\bT cell|T lymphocyte|T-cell|cytotoxic",
  "1" = "monocyte",
  "2" = "\\bB cell|B lymphocyte|\\bB-cell"
)

expect_pbmc_small_labels <- function(labels) {
  expect_length(labels, 3)
  for (i in 1:3) {
    expected <- pbmc_small_types[[i]]
    others <- unlist(pbmc_small_types[-i])
    expect_match(labels[i], expected, ignore.case = TRUE,
                 info = sprintf("cluster %d of pbmc_small labelled '%s'", i - 1, labels[i]))
    for (other in others) {
      expect_no_match(labels[i], other, ignore.case = TRUE,
                      info = sprintf("cluster %d of pbmc_small labelled '%s'", i - 1, labels[i]))
    }
  }
}
