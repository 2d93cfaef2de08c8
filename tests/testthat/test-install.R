# cellscribe_install() checks the Python that creates the virtualenv before using it, by running it
# from R (no Python package needed). The broken candidates are small shell scripts in a temporary
# folder that behave like the broken Pythons users have: one runs the real /usr/bin/python3 with
# an `ssl` module that fails to import as it does in a Python built without OpenSSL, one lacks
# ensurepip (Debian without python3-venv), one answers as an old Python.

# A folder with a python3 whose import of `module` fails with `error`.
broken_python <- function(module, error = sprintf("No module named '_%s'", module)) {
  dir <- tempfile("python-")
  dir.create(file.path(dir, "shadow"), recursive = TRUE)
  writeLines(sprintf("raise ModuleNotFoundError(%s)", encodeString(error, quote = '"')),
             file.path(dir, "shadow", paste0(module, ".py")))
  python <- file.path(dir, "python3")
  writeLines(c("#!/bin/sh",
               sprintf("PYTHONPATH='%s' exec /usr/bin/python3 \"$@\"", file.path(dir, "shadow"))),
             python)
  Sys.chmod(python, "755")
  python
}

# A python3 that answers as Python 3.9 with every module present.
old_python <- function() {
  python <- file.path(tempfile("python-"), "python3")
  dir.create(dirname(python))
  writeLines(c("#!/bin/sh", "echo 'version 3.9.18'", "echo 'ok venv'", "echo 'ok ssl'",
               "echo 'ok ensurepip'"), python)
  Sys.chmod(python, "755")
  python
}

# A folder that install_source() takes for the cellscribe source tree (nothing is installed from
# it: the checks below fail first).
fake_source <- function() {
  dir <- tempfile("source-")
  dir.create(dir)
  writeLines(c("[project]", "name = \"cellscribe\""), file.path(dir, "pyproject.toml"))
  dir
}

needs_system_python <- function() {
  skip_on_os("windows")
  skip_if_not(file.exists("/usr/bin/python3"), "no /usr/bin/python3 on this machine")
}

test_that("the system /usr/bin/python3 passes the check", {
  needs_system_python()
  check <- check_python("/usr/bin/python3")
  expect_true(check$ok)
  expect_null(check$problem)
  expect_true(numeric_version(check$version) >= "3.10")
})

test_that("a python whose ssl does not import is refused with a message naming ssl", {
  needs_system_python()
  python <- broken_python("ssl")
  check <- check_python(python)
  expect_false(check$ok)
  expect_match(check$version, "^3\\.[0-9]+\\.[0-9]+$")  # it runs, as the real one does
  expect_match(check$problem,
               paste0("^", python, ": cannot import ssl \\(ModuleNotFoundError: No module named ",
                      "'_ssl'\\); pip cannot reach PyPI without ssl"))
  # Given by the user: an error with the problem and the fix, before any virtualenv is made.
  envdir <- tempfile("venv-")
  err <- expect_error(cellscribe_install(envname = envdir, source = fake_source(), python = python,
                                         model = NULL),
                      "cannot import ssl")
  expect_match(conditionMessage(err), "The python given cannot create cellscribe's virtualenv: ",
               fixed = TRUE)
  expect_match(conditionMessage(err), "pass python = \"/usr/bin/python3\"", fixed = TRUE)
  expect_false(dir.exists(envdir))
})

test_that("a python without ensurepip (Debian without python3-venv) gets the apt fix", {
  needs_system_python()
  python <- broken_python("ensurepip", "No module named 'ensurepip'")
  check <- check_python(python)
  expect_false(check$ok)
  expect_match(check$problem, "cannot import ensurepip \\(ModuleNotFoundError: .*install the venv module \\(Debian/Ubuntu: sudo apt install python3-venv\\)")
})

test_that("an old python and a missing one are refused, each with its reason", {
  skip_on_os("windows")
  expect_match(check_python(old_python())$problem, "Python 3.9.18 is older than 3.10")
  expect_match(check_python("/nonexistent/python3")$problem, "^/nonexistent/python3: does not exist$")
  not_python <- tempfile()
  writeLines(c("#!/bin/sh", "echo 'bash: python3: command not found' >&2", "exit 127"), not_python)
  Sys.chmod(not_python, "755")
  expect_match(check_python(not_python)$problem,
               "does not run as Python \\(exit status 127: bash: python3: command not found\\)")
})

test_that("the chooser prefers /usr/bin/python3 and says why", {
  needs_system_python()
  expect_identical(python_candidates()[1], "/usr/bin/python3")
  expect_message(chosen <- choose_python(),
                 "^Using /usr/bin/python3 \\(Python 3\\.[0-9]+\\.[0-9]+\\) to create the virtualenv: the system Python")
  expect_identical(chosen, "/usr/bin/python3")
})

test_that("the chooser passes over a broken candidate, saying why, and takes the next", {
  needs_system_python()
  broken <- broken_python("ssl")
  messages <- character()
  chosen <- withCallingHandlers(
    choose_python(c(broken, "/usr/bin/python3")),
    message = function(m) {
      messages <<- c(messages, conditionMessage(m))
      invokeRestart("muffleMessage")
    }
  )
  expect_identical(chosen, "/usr/bin/python3")
  expect_length(messages, 2)
  expect_match(messages[1], paste0("^Not using ", broken, ": cannot import ssl"))
  expect_match(messages[2], "^Using /usr/bin/python3 .*\\(1 earlier candidate\\(s\\) unusable\\)")
})

test_that("when no candidate works the error lists each one with its problem", {
  needs_system_python()
  no_ssl <- broken_python("ssl")
  old <- old_python()
  err <- expect_error(suppressMessages(choose_python(c(no_ssl, old, "/nonexistent/python3"))),
                      "No usable Python")
  msg <- conditionMessage(err)
  expect_match(msg, paste0("  \\* ", no_ssl, ": cannot import ssl"))
  expect_match(msg, paste0("  \\* ", old, ": Python 3.9.18 is older than 3.10"))
  expect_match(msg, "  \\* /nonexistent/python3: does not exist")
  expect_match(msg, "pass python = ", fixed = TRUE)
})
