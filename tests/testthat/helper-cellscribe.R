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
# scripts/run_r_tests.sh checks the built vignette with pbmc_small_label_problems().
pbmc_small_types <- list(
  "0" = "natural killer|\\bNK\\b|\\bT cell|T lymphocyte|T-cell|cytotoxic",
  "1" = "monocyte",
  "2" = "\\bB cell|B lymphocyte|\\bB-cell"
)

# The problems of pbmc_small labels (clusters 0, 1, 2 in order): each must match its own type and
# none of the others'. An empty vector when they are right.
pbmc_small_label_problems <- function(labels) {
  problems <- character()
  for (i in 1:3) {
    if (!grepl(pbmc_small_types[[i]], labels[i], ignore.case = TRUE, perl = TRUE)) {
      problems <- c(problems, sprintf("cluster %d is labelled '%s'; expected /%s/", i - 1, labels[i],
                                      pbmc_small_types[[i]]))
    }
    for (j in setdiff(1:3, i)) {
      if (grepl(pbmc_small_types[[j]], labels[i], ignore.case = TRUE, perl = TRUE)) {
        problems <- c(problems, sprintf("cluster %d is labelled '%s', the type of cluster %d", i - 1,
                                        labels[i], j - 1))
      }
    }
  }
  problems
}

expect_pbmc_small_labels <- function(labels) {
  expect_length(labels, 3)
  expect_identical(pbmc_small_label_problems(labels), character())
}
