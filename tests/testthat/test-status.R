test_that("cellscribe_status reports the Python in use, backends and models", {
  needs_python()
  st <- cellscribe_status()
  expect_s3_class(st, "cellscribe_status")
  expect_true(st$python_found)
  chosen <- Sys.getenv(c("RETICULATE_PYTHON", "CELLSCRIBE_PYTHON"))
  chosen <- chosen[nzchar(chosen)][1]
  if (!is.na(chosen)) {
    expect_identical(normalizePath(st$python), normalizePath(chosen))
    expect_identical(st$python_source, names(chosen))
  }
  expect_identical(st$backends$backend, c("llamacpp", "ollama", "openai"))
  expect_true(st$backends$available[st$backends$backend == "llamacpp"])
  expect_true(st$models$ready[st$models$default])
  expect_true(numeric_version(st$numpy) < "2")
  out <- capture.output(print(st))
  expect_match(out[2], "^Python: .* chosen by ")
  expect_true(any(grepl("^  llamacpp  yes", out)))
})

test_that("without a usable Python the package says how to install it", {
  # A fresh R process whose CELLSCRIBE_PYTHON names a file that does not exist.
  script <- tempfile(fileext = ".R")
  writeLines(c(
    "library(cellscribe)",
    "print(cellscribe_available())",
    "print(cellscribe_status())",
    "res <- tryCatch(annotate_markers(data.frame(cluster = '0', gene = 'CD3E')),",
    "                error = function(e) conditionMessage(e))",
    "cat('ERROR:', res, '\\n')"
  ), script)
  env <- c("RETICULATE_PYTHON=", "CELLSCRIBE_PYTHON=/nonexistent/bin/python",
           paste0("R_LIBS=", paste(.libPaths(), collapse = .Platform$path.sep)))
  out <- system2(file.path(R.home("bin"), "Rscript"), script, stdout = TRUE, stderr = TRUE,
                 env = env)
  out <- paste(out, collapse = "\n")
  expect_match(out, "[1] FALSE", fixed = TRUE)
  expect_match(out, "Python: not available")
  expect_match(out, "CELLSCRIBE_PYTHON names /nonexistent/bin/python, which does not exist")
  expect_match(out, "ERROR: .*CELLSCRIBE_PYTHON names /nonexistent/bin/python")
  expect_no_match(out, "Traceback")
})

test_that("cellscribe_install refuses a source that is not cellscribe", {
  expect_error(cellscribe_install(source = tempdir()),
               "is neither the cellscribe source tree .* nor a wheel")
})
