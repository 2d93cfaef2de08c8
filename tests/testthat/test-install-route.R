# The README's R route, end to end, as a new user takes it:
#   1. R CMD INSTALL of the package's files into a fresh library;
#   2. in a new R process, cellscribe_install(source = <the source tree>) into a fresh virtualenv
#      (reticulate's virtualenv root pointed at a temporary folder; nothing of the user's is used);
#   3. in another new R process ("restart R"), with no CELLSCRIBE_PYTHON or RETICULATE_PYTHON,
#      library(cellscribe) and annotate_seurat(pbmc_small, tissue = "PBMC") with the defaults.
# pip takes its packages from PyPI through its own cache, and llama-cpp-python from the wheel that
# `make setup` keeps in $CELLSCRIBE_CACHE/wheels (linked here with the models, so nothing is built
# or downloaded again); the answer cache is fresh, so the model really runs. That takes minutes,
# so the test runs only when CELLSCRIBE_TEST_INSTALL_ROUTE names the cellscribe source tree
# (scripts/run_r_tests.sh sets it).

route_rscript <- function(code, env, log, timeout) {
  script <- tempfile(fileext = ".R")
  writeLines(code, script)
  unset <- c("CELLSCRIBE_PYTHON", "RETICULATE_PYTHON", "RETICULATE_PYTHON_ENV",
             "CELLSCRIBE_SOURCE", "CELLSCRIBE_TESTS_NEED_PYTHON")
  args <- c(as.vector(rbind("-u", unset)), env, shQuote(file.path(R.home("bin"), "Rscript")),
            shQuote(script))
  started <- Sys.time()
  status <- system2("env", args, stdout = log, stderr = log, timeout = timeout)
  list(status = status, seconds = as.numeric(difftime(Sys.time(), started, units = "secs")),
       log = readLines(log, warn = FALSE))
}

show_log <- function(step) {
  paste0("\n---- last lines of its output ----\n",
         paste(utils::tail(step$log, 40), collapse = "\n"))
}

test_that("the README route: R CMD INSTALL, cellscribe_install(), restart, annotate_seurat()", {
  repo <- Sys.getenv("CELLSCRIBE_TEST_INSTALL_ROUTE")
  skip_if(!nzchar(repo), "CELLSCRIBE_TEST_INSTALL_ROUTE is not set (scripts/run_r_tests.sh sets it)")
  skip_on_os("windows")
  repo <- normalizePath(repo)
  home <- tempfile("route-")
  dirs <- file.path(home, c("pkg", "lib", "virtualenvs", "cache"))
  names(dirs) <- c("pkg", "lib", "venvs", "cache")
  for (d in dirs) dir.create(d, recursive = TRUE)
  on.exit(unlink(home, recursive = TRUE), add = TRUE)
  # The models and the llama-cpp-python wheel already on this machine; a fresh answer cache.
  shared <- Sys.getenv("CELLSCRIBE_CACHE", file.path(path.expand("~"), ".cache", "cellscribe"))
  for (part in c("models", "wheels")) {
    if (dir.exists(file.path(shared, part))) {
      file.symlink(normalizePath(file.path(shared, part)), file.path(dirs[["cache"]], part))
    }
  }
  env <- c(paste0("R_LIBS=", dirs[["lib"]]), paste0("R_LIBS_USER=", dirs[["lib"]]),
           paste0("WORKON_HOME=", dirs[["venvs"]]),
           paste0("RETICULATE_VIRTUALENV_ROOT=", dirs[["venvs"]]),
           paste0("CELLSCRIBE_CACHE=", dirs[["cache"]]))
  timings <- c()

  # 1. R CMD INSTALL (the package's own files, as scripts/run_r_tests.sh copies them).
  files <- c("DESCRIPTION", "NAMESPACE", "LICENSE", ".Rbuildignore", "R", "man", "vignettes")
  file.copy(file.path(repo, files), dirs[["pkg"]], recursive = TRUE)
  started <- Sys.time()
  out <- system2(file.path(R.home("bin"), "R"),
                 c("CMD", "INSTALL", "--no-multiarch", paste0("--library=", shQuote(dirs[["lib"]])),
                   shQuote(dirs[["pkg"]])), stdout = TRUE, stderr = TRUE)
  timings["R CMD INSTALL"] <- as.numeric(difftime(Sys.time(), started, units = "secs"))
  expect_true(dir.exists(file.path(dirs[["lib"]], "cellscribe")),
              info = paste(utils::tail(out, 20), collapse = "\n"))

  # 2. cellscribe_install() in a new R process, choosing the Python itself.
  # Run from the source tree, as a user who has just run `R CMD INSTALL .` there would.
  install <- route_rscript(c(
    sprintf("setwd(%s)", deparse(repo)),
    "library(cellscribe)",
    sprintf("cellscribe_install(source = %s)", deparse(repo))
  ), env, file.path(home, "install.log"), timeout = 2400)
  timings["cellscribe_install()"] <- install$seconds
  expect_identical(install$status, 0L, info = show_log(install))
  expect_true(any(grepl("^Using /usr/bin/python3 \\(Python 3", install$log)) ||
                !file.exists("/usr/bin/python3"), info = show_log(install))
  venv_python <- file.path(dirs[["venvs"]], "r-cellscribe", "bin", "python")
  expect_true(file.exists(venv_python), info = show_log(install))

  # 3. "Restart R": a new process that finds the virtualenv by itself and annotates pbmc_small
  #    with the defaults, as in the README.
  result <- file.path(home, "result.json")
  stderr_log <- file.path(home, "annotate.log")
  annotate <- route_rscript(c(
    sprintf("setwd(%s)", deparse(repo)),
    "suppressPackageStartupMessages({library(Seurat); library(cellscribe)})",
    "pbmc <- annotate_seurat(pbmc_small, tissue = \"PBMC\")",
    "clusters <- pbmc@misc$cellscribe$clusters",
    "status <- cellscribe_status()",
    "jsonlite::write_json(list(",
    "  cluster = clusters$cluster, label = clusters$label, cl_id = clusters$cl_id,",
    "  explanation = clusters$explanation, meta = names(pbmc@meta.data),",
    "  mode = pbmc@misc$cellscribe$params$mode, python = status$python,",
    "  python_source = status$python_source, library = find.package(\"cellscribe\")",
    sprintf("), %s, auto_unbox = TRUE)", deparse(result))
  ), env, stderr_log, timeout = 1200)
  timings["restart + annotate_seurat()"] <- annotate$seconds
  expect_identical(annotate$status, 0L, info = show_log(annotate))
  skip_if_not(file.exists(result), "the annotation wrote no result (see the failure above)")
  got <- jsonlite::read_json(result, simplifyVector = TRUE)
  expect_identical(got$library, normalizePath(file.path(dirs[["lib"]], "cellscribe")))
  expect_identical(got$python_source, "virtualenv r-cellscribe")
  expect_identical(normalizePath(got$python), normalizePath(venv_python))
  expect_identical(got$mode, "grounded")
  expect_true("cellscribe_cl_id" %in% got$meta)
  expect_identical(got$cluster, c("0", "1", "2"))
  expect_match(got$cl_id, "^CL:[0-9]{7}$")
  expect_pbmc_small_labels(got$label)
  expect_true(all(startsWith(got$explanation, "## **")))
  cat(sprintf("\nREADME route, wall time: %s; labels: %s\n",
              paste(sprintf("%s %.0f s", names(timings), timings), collapse = ", "),
              paste(sprintf("%s = %s (%s)", got$cluster, got$label, got$cl_id), collapse = "; ")))
  cat("The chooser said:", grep("^(Using|Not using) ", install$log, value = TRUE), sep = "\n  ")
  progress <- grep("^cellscribe: ", annotate$log, value = TRUE)
  cat("Progress lines R showed:", if (length(progress)) "" else "none", "\n",
      paste0("  ", utils::head(progress, 8), collapse = "\n"), "\n")
})
