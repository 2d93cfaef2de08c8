#' What cellscribe runs on: Python, backends, local models
#'
#' Loads Python if needed and reports the interpreter in use and how it was chosen, the versions
#' of the R and Python packages, which language-model backends are reachable, and which local
#' models are ready. Never fails: when Python cannot be loaded the report says so and how to fix
#' it.
#'
#' The interpreter is chosen, in this order, from
#' 1. the environment variable `RETICULATE_PYTHON`;
#' 2. `options(cellscribe.python = "/path/to/python")`, then the environment variable
#'    `CELLSCRIBE_PYTHON`;
#' 3. the virtualenv `r-cellscribe` made by [cellscribe_install()];
#' 4. reticulate's own discovery.
#'
#' Python is chosen once per R session, on first use.
#'
#' @returns A list of class `cellscribe_status` with `r_package` (version), `python_found`,
#'   `python` (path), `python_source` (which of the rules above chose it), `python_version`,
#'   `cellscribe_version`, `numpy`, `pandas`, `cache_dir`, `backends` (data.frame: `backend,
#'   available, detail`), `models` (data.frame: `name, ready, default, path, description`), and
#'   `error` when Python could not be loaded.
#' @seealso [cellscribe_install()].
#' @export
#' @examples
#' cellscribe_status()
cellscribe_status <- function() {
  out <- list(r_package = as.character(utils::packageVersion("cellscribe")), python_found = FALSE)
  reply <- tryCatch(call_bridge("status"), error = function(e) e)
  out$python_source <- .globals$python_source
  if (inherits(reply, "error")) {
    out$error <- conditionMessage(reply)
    return(structure(out, class = "cellscribe_status"))
  }
  out$python_found <- TRUE
  for (field in c("python", "python_version", "cellscribe_version", "numpy", "pandas",
                  "cache_dir")) {
    out[[field]] <- reply[[field]] %||% NA_character_
  }
  out$backends <- data.frame(
    backend = vapply(reply$backends, function(b) b$backend, character(1)),
    available = vapply(reply$backends, function(b) isTRUE(b$available), logical(1)),
    detail = vapply(reply$backends, function(b) b$detail, character(1))
  )
  out$models <- data.frame(
    name = vapply(reply$models, function(m) m$name, character(1)),
    ready = vapply(reply$models, function(m) isTRUE(m$ready), logical(1)),
    default = vapply(reply$models, function(m) isTRUE(m$default), logical(1)),
    path = vapply(reply$models, function(m) m$path, character(1)),
    description = vapply(reply$models, function(m) m$description, character(1))
  )
  structure(out, class = "cellscribe_status")
}

#' @export
print.cellscribe_status <- function(x, ...) {
  cat("cellscribe (R package)", x$r_package, "\n")
  if (!isTRUE(x$python_found)) {
    cat("Python: not available (", x$python_source %||% "no interpreter chosen", ")\n", sep = "")
    cat(x$error, "\n")
    return(invisible(x))
  }
  cat(sprintf("Python: %s (%s), chosen by %s\n", x$python, x$python_version, x$python_source))
  cat(sprintf("cellscribe (Python) %s; numpy %s, pandas %s\n", x$cellscribe_version, x$numpy,
              x$pandas))
  if (!is.na(x$numpy) && numeric_version(x$numpy) >= "2") {
    cat("  Warning: numpy >= 2 cannot cross reticulate 1.28; install numpy < 2 there.\n")
  }
  cat("Cache:", x$cache_dir, "\n")
  cat("Backends:\n")
  for (i in seq_len(nrow(x$backends))) {
    b <- x$backends[i, ]
    cat(sprintf("  %-9s %-4s %s\n", b$backend, if (b$available) "yes" else "no", b$detail))
  }
  cat("Local models:\n")
  for (i in seq_len(nrow(x$models))) {
    m <- x$models[i, ]
    cat(sprintf("  %-20s %-9s %s%s\n", m$name, if (m$ready) "ready" else "not ready",
                m$description, if (m$default) " [default]" else ""))
  }
  invisible(x)
}
