# Finding Python, lazily. Nothing happens at library(cellscribe) time: the Python module is a
# reticulate proxy that is imported on first use, after select_python() has chosen the
# interpreter.

# Package state (the interpreter chosen and why, the last Python error).
.globals <- new.env(parent = emptyenv())

# The Python module cellscribe.bridge (a delay-loaded reticulate proxy).
mod <- NULL

.onLoad <- function(libname, pkgname) {
  mod <<- reticulate::import(
    "cellscribe.bridge",
    convert = TRUE,
    delay_load = list(
      before_load = select_python,
      on_load = restore_reticulate_python,
      on_error = function(e) {
        restore_reticulate_python()
        stop(python_missing_message(e), call. = FALSE)
      }
    )
  )
}

#' Choose the Python interpreter, in the documented order
#'
#' 1. `RETICULATE_PYTHON` (reticulate honours it itself);
#' 2. `options(cellscribe.python = )`, then the environment variable `CELLSCRIBE_PYTHON`;
#' 3. the virtualenv `r-cellscribe` made by [cellscribe_install()].
#'
#' Otherwise reticulate's own discovery runs (and importing cellscribe will most likely fail with
#' the message of `python_missing_message()`).
#' @noRd
select_python <- function() {
  if (reticulate::py_available(initialize = FALSE)) {
    .globals$python_source <- "already initialised in this R session"
    return(invisible(NULL))
  }
  if (nzchar(Sys.getenv("RETICULATE_PYTHON"))) {
    .globals$python_source <- "RETICULATE_PYTHON"
    return(invisible(NULL))
  }
  choice <- python_choice()
  if (!is.null(choice)) {
    if (!file.exists(choice$python)) {
      stop(sprintf("%s names %s, which does not exist. Point it at the python of an environment ",
                   choice$source, choice$python),
           "that has cellscribe (see ?cellscribe_install), or unset it.", call. = FALSE)
    }
    # Named through RETICULATE_PYTHON while Python starts: reticulate 1.28 would let a
    # pyproject.toml in the working directory (read as a Poetry project) outrank use_python().
    .globals$reticulate_python <- Sys.getenv("RETICULATE_PYTHON", unset = NA)
    Sys.setenv(RETICULATE_PYTHON = choice$python)
    .globals$python_source <- choice$source
    return(invisible(NULL))
  }
  .globals$python_source <- "reticulate's default discovery"
  invisible(NULL)
}

# Put RETICULATE_PYTHON back as it was before select_python() (once Python runs it is moot).
restore_reticulate_python <- function() {
  if (!exists("reticulate_python", envir = .globals, inherits = FALSE)) return(invisible(NULL))
  old <- .globals$reticulate_python
  rm("reticulate_python", envir = .globals)
  if (is.na(old)) Sys.unsetenv("RETICULATE_PYTHON") else Sys.setenv(RETICULATE_PYTHON = old)
  invisible(NULL)
}

# The interpreter named by the option, the environment variable or the default virtualenv, with
# where it came from; NULL when none is set or exists.
python_choice <- function() {
  option <- getOption("cellscribe.python")
  if (!is.null(option) && nzchar(option)) {
    return(list(python = path.expand(option), source = "options(cellscribe.python)"))
  }
  env <- Sys.getenv("CELLSCRIBE_PYTHON")
  if (nzchar(env)) {
    return(list(python = path.expand(env), source = "CELLSCRIBE_PYTHON"))
  }
  if (reticulate::virtualenv_exists(default_envname)) {
    return(list(python = reticulate::virtualenv_python(default_envname),
                source = sprintf("virtualenv %s", default_envname)))
  }
  NULL
}

default_envname <- "r-cellscribe"

python_missing_message <- function(e = NULL) {
  cause <- if (is.null(e)) "" else paste0("\n(reticulate said: ", conditionMessage(e), ")")
  python <- if (reticulate::py_available(initialize = FALSE)) {
    tryCatch(reticulate::py_config()$python, error = function(e) NULL)
  }
  paste0(
    "The cellscribe Python package could not be loaded",
    if (!is.null(python)) sprintf(" by %s", python) else "", ".\n",
    "Install it once with cellscribe_install() (a virtualenv named '", default_envname, "'), ",
    "or point options(cellscribe.python = ) or CELLSCRIBE_PYTHON at a python that has it; ",
    "then restart R.", cause
  )
}

#' Is the cellscribe Python package usable?
#'
#' Loads Python (choosing the interpreter as described in [cellscribe_status()]) and imports the
#' cellscribe Python package. Never fails: use it to skip examples or chunks when Python is absent.
#'
#' @returns `TRUE` or `FALSE`.
#' @seealso [cellscribe_status()] for details, [cellscribe_install()] to install.
#' @export
#' @examples
#' cellscribe_available()
cellscribe_available <- function() {
  isTRUE(tryCatch({
    bridge()
    TRUE
  }, error = function(e) FALSE))
}

# The loaded Python module; an R error with the install hint when it cannot be loaded. A failure
# is remembered: the interpreter cannot change within an R session.
bridge <- function() {
  if (!is.null(.globals$load_error)) stop(.globals$load_error, call. = FALSE)
  tryCatch({
    mod$`__name__`  # `$` resolves the delay-loaded proxy (before_load, then import)
    mod
  }, error = function(e) {
    msg <- conditionMessage(e)
    if (!startsWith(msg, "The cellscribe Python package")) msg <- python_missing_message(e)
    .globals$load_error <- msg
    stop(msg, call. = FALSE)
  })
}
