# Conversion between R and the Python bridge, in one place.
#
# Data crosses as JSON strings (reticulate 1.28 cannot convert numpy 2 / pandas >= 2.3 objects,
# and R vectors of length one would arrive as scalars): R sends the marker table by column and
# the options as a JSON object; Python answers with a JSON document (see cellscribe.bridge) that
# becomes R values here: data.frames, character vectors, lists. No Python object reaches the user.

# Call a bridge function with JSON arguments; parse its reply; replay Python warnings and
# messages; turn an error reply into an R error of class `cellscribe_error`.
call_bridge <- function(fun, ...) {
  py <- bridge()
  reply <- jsonlite::fromJSON(py[[fun]](...), simplifyVector = FALSE)
  for (m in reply$messages) message(m)
  for (w in reply$warnings) {
    warning(new_condition(c(paste0("cellscribe_", w$class), "cellscribe_warning", "warning"), w$message))
  }
  if (!isTRUE(reply$ok)) {
    .globals$last_error <- reply
    msg <- reply$error
    if (isTRUE(reply$internal)) {
      msg <- paste0("Unexpected error in the cellscribe Python package: ", msg,
                    "\ncellscribe_last_error() shows the Python traceback; please report it.")
    }
    stop(new_condition(c(paste0("cellscribe_", reply$error_class), "cellscribe_error", "error"), msg,
                   data = reply))
  }
  reply
}

new_condition <- function(class, message, call = NULL, ...) {
  structure(class = c(class, "condition"), list(message = message, call = call, ...))
}

#' The last error reported by the cellscribe Python package
#'
#' Errors from the Python side are shown as plain R errors. This returns the full record of the
#' last one: its message, the Python class, and for unexpected errors the Python traceback.
#'
#' @returns A list with `error`, `error_class` and, for unexpected errors, `traceback`; `NULL`
#'   when there was none.
#' @export
#' @examples
#' cellscribe_last_error()
cellscribe_last_error <- function() {
  .globals$last_error
}

# A marker data.frame as the JSON document cellscribe.bridge.annotate() reads.
markers_to_json <- function(markers) {
  columns <- lapply(markers, function(col) {
    if (is.factor(col)) as.character(col) else col
  })
  levels <- if (is.factor(markers$cluster)) levels(markers$cluster) else NULL
  payload <- list(columns = columns, cluster_levels = levels)
  # annotate_seurat() attaches each cluster's mean expression for the copy-number check
  expression <- attr(markers, "cellscribe_expression")
  if (!is.null(expression)) payload$expression <- expression
  jsonlite::toJSON(payload, dataframe = "columns", matrix = "rowmajor",
                   na = "null", null = "null", digits = NA, auto_unbox = FALSE)
}

# Options for Python as a JSON object: NULLs are dropped (Python's defaults apply), vectors of
# length one become scalars.
options_to_json <- function(options) {
  options <- options[!vapply(options, is.null, logical(1))]
  if (length(options) && (is.null(names(options)) || any(!nzchar(names(options))))) {
    stop("Every extra argument must be named (e.g. timeout = 60).", call. = FALSE)
  }
  jsonlite::toJSON(options, auto_unbox = TRUE, null = "null", na = "null", digits = NA,
                   force = TRUE)
}

# R's name of a result column where it differs from Python's (cellscribe.results): the R package
# has always called the explanation `explanation` (as does cellscribe.interop in Seurat's misc).
r_column_names <- c(explanation_markdown = "explanation")

# The result table of a bridge reply as a data.frame, one row per cluster: every column the reply
# lists in `columns`, in that order, built from its kind (cellscribe.results): id and text as
# character, number as numeric, flag as logical, list as a list column of character vectors.
# A JSON null is NA (an empty character vector in a list column).
records_to_frame <- function(columns, records) {
  build <- list(
    id = function(key) scalars(records, key, NA_character_, as.character),
    text = function(key) scalars(records, key, NA_character_, as.character),
    number = function(key) scalars(records, key, NA_real_, as.numeric),
    flag = function(key) scalars(records, key, NA, as.logical),
    list = function(key) lapply(records, function(r) as.character(unlist(r[[key]])))
  )
  df <- data.frame(row.names = seq_along(records))
  for (col in columns) {
    df[[column_name(col$name)]] <- (build[[col$kind]] %||% build$text)(col$name)  # unknown kind: text
  }
  rownames(df) <- NULL
  # A cluster whose markers no database knows has no Cell Ontology term: "unmapped", as in
  # cellscribe.tl.annotate's obs column.
  if (!is.null(df$cl_id)) df$cl_id[is.na(df$cl_id)] <- "unmapped"
  df
}

# One value per record of `key`, `missing` where the record has none.
scalars <- function(records, key, missing, as) {
  vapply(records, function(r) if (is.null(r[[key]])) missing else as(r[[key]]), missing)
}

column_name <- function(name) {
  if (name %in% names(r_column_names)) r_column_names[[name]] else name
}
