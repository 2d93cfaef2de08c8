# Runs the testthat suite of the installed cellscribe R package and ends with the plain line
# "N passed, N failed" (tests, not expectations) that CI reads. Exit status 1 when a test failed
# or when no test ran.
#
#   Rscript scripts/testthat_summary.R tests/testthat
args <- commandArgs(trailingOnly = TRUE)
dir <- if (length(args)) args[1] else "tests/testthat"
suppressPackageStartupMessages(library(testthat))
results <- testthat::test_dir(dir, package = "cellscribe", load_package = "installed",
                              reporter = testthat::ProgressReporter$new(show_praise = FALSE),
                              stop_on_failure = FALSE)
df <- as.data.frame(results)
bad <- df$failed > 0 | df$error
skipped <- df$skipped & !bad
passed <- sum(!bad & !skipped)
if (any(skipped)) {
  cat(sprintf("%d R test(s) skipped: %s\n", sum(skipped), paste(df$test[skipped], collapse = "; ")))
}
if (passed == 0) cat("No R test passed: is the cellscribe R package installed?\n")
cat(sprintf("%d passed, %d failed\n", passed, sum(bad)))
quit(status = if (any(bad) || passed == 0) 1 else 0)
