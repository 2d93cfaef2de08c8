# The result table crosses the bridge with its column kinds (cellscribe.results): R builds its
# data.frame from them, so no column the Python side returns is dropped or mistyped.

# The R type each kind must become.
expect_kind <- function(value, kind, name) {
  switch(kind,
    id = ,
    text = expect_true(is.character(value), info = name),
    number = expect_true(is.double(value), info = name),
    flag = expect_true(is.logical(value), info = name),
    list = {
      expect_true(is.list(value), info = name)
      expect_true(all(vapply(value, is.character, logical(1))), info = name)
    },
    stop("unknown kind ", kind)
  )
}

# R's name of each column of a bridge reply (explanation_markdown is R's `explanation`).
r_names <- function(columns) {
  unname(vapply(columns, function(col) column_name(col$name), character(1)))
}

two_clusters <- data.frame(cluster = c("T", "T", "T", "B", "B", "B"),
                           gene = c("CD3D", "CD3E", "IL7R", "CD79A", "MS4A1", "CD19"))

test_that("annotate_markers has every column the Python side returns, with the R type of its kind", {
  needs_python()
  # The default (grounded) with explain = FALSE: no language model runs.
  options <- list(tissue = tissue, explain = FALSE, progress = FALSE)
  reply <- call_bridge("annotate", markers_to_json(two_clusters), options_to_json(options))
  res <- annotate_markers(two_clusters, tissue = tissue, explain = FALSE)
  expect_identical(names(res), r_names(reply$columns))
  # ... and those are the columns cellscribe.annotate() writes in grounded mode, in its order.
  schema <- reticulate::import("cellscribe.results")
  expected <- unlist(schema$columns("base", "grounded"))
  expect_identical(vapply(reply$columns, function(col) col$name, character(1)), expected)
  expect_true(all(c("candidates", "evidence_genes", "cl_id", "chosen_by") %in% names(res)))
  for (col in reply$columns) expect_kind(res[[column_name(col$name)]], col$kind, col$name)
  expect_identical(res$cluster, c("T", "B"))
  expect_identical(res$markers, list(c("CD3D", "CD3E", "IL7R"), c("CD79A", "MS4A1", "CD19")))
  expect_identical(res$candidates[[2]][1], res$label[2])
})

test_that("clusters that failed come back with an error, the partial table typed the same", {
  needs_python()
  # mode = "llm" with a model given a millisecond per answer: every cluster fails, quickly.
  err <- expect_clean_error(
    annotate_markers(two_clusters, backend = "llamacpp", model = "smollm2-135m", timeout = 0.001,
                     mode = "llm", max_retries = 0, cache = FALSE),
    "2 of 2 cluster\\(s\\) failed", class = "cellscribe_AnnotationError"
  )
  expect_identical(names(err$partial), r_names(err$data$columns))
  expect_identical(names(err$partial)[ncol(err$partial)], "error")
  for (col in err$data$columns) expect_kind(err$partial[[column_name(col$name)]], col$kind, col$name)
  expect_identical(err$partial$cluster, c("T", "B"))
  expect_true(all(grepl("^APITimeoutError", err$partial$error)))
  expect_identical(lengths(err$partial$bullets), c(0L, 0L))
})

test_that("records_to_frame builds each kind, nulls as NA, in the reply's column order", {
  columns <- list(list(name = "cluster", kind = "id"), list(name = "label", kind = "text"),
                  list(name = "confidence", kind = "number"), list(name = "cached", kind = "flag"),
                  list(name = "explanation_markdown", kind = "text"),
                  list(name = "agent_tools", kind = "list"), list(name = "cl_id", kind = "id"),
                  list(name = "error", kind = "text"))
  records <- list(
    list(cluster = "0", label = "T cell", confidence = 1L, cached = TRUE, explanation_markdown = "x",
         agent_tools = list("lookup_markers", "gene_facts"), cl_id = "CL:0000084", error = NULL),
    list(cluster = "1", label = NULL, confidence = NULL, cached = NULL, explanation_markdown = NULL,
         agent_tools = list(), cl_id = NULL, error = "timed out")
  )
  df <- records_to_frame(columns, records)
  expect_identical(names(df), c("cluster", "label", "confidence", "cached", "explanation",
                                "agent_tools", "cl_id", "error"))
  expect_identical(df$confidence, c(1, NA))
  expect_identical(df$cached, c(TRUE, NA))
  expect_identical(df$label, c("T cell", NA))
  expect_identical(df$agent_tools, list(c("lookup_markers", "gene_facts"), character()))
  expect_identical(df$cl_id, c("CL:0000084", "unmapped"))
  expect_identical(df$error, c(NA, "timed out"))
  # no clusters: the columns all the same
  empty <- records_to_frame(columns, list())
  expect_identical(names(empty), names(df))
  expect_identical(nrow(empty), 0L)
  expect_true(is.list(empty$agent_tools))
})
