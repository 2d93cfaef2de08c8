# Speed of the R package: annotate_seurat(pbmc_small) cold and warm, and the cost of the bridge
# (R -> JSON -> reticulate -> Python -> JSON -> R) per call next to calling the Python function
# directly. Prints its figures with the load average.
#
#   R CMD INSTALL --library=/tmp/rlib .
#   R_LIBS=/tmp/rlib CELLSCRIBE_PYTHON=$PWD/.venv/bin/python Rscript benchmarks/bench_r_bridge.R [reps]
#
# Every run uses a fresh answer cache (the prepared models are shared through a link), so "cold"
# really runs the model. Each cold figure is a fresh R process (Python starts once per process).
args <- commandArgs(trailingOnly = TRUE)
reps <- if (length(args)) as.integer(args[1]) else 20L
if (!requireNamespace("cellscribe", quietly = TRUE)) stop("install the R package first (see the header)")
if (!nzchar(Sys.getenv("CELLSCRIBE_PYTHON")) && !nzchar(Sys.getenv("RETICULATE_PYTHON"))) {
  stop("set CELLSCRIBE_PYTHON (e.g. to .venv/bin/python)")
}
models <- file.path(Sys.getenv("CELLSCRIBE_CACHE", path.expand("~/.cache/cellscribe")), "models")
cache <- tempfile("cellscribe-bench-")
dir.create(cache)
file.symlink(normalizePath(models), file.path(cache, "models"))
Sys.setenv(CELLSCRIBE_CACHE = cache)
load <- function() trimws(sub(".*load average:", "", system("uptime", intern = TRUE)))

# One fresh R process: load the packages, then time the first annotate_seurat() call.
cold <- function() {
  script <- tempfile(fileext = ".R")
  writeLines(c(
    "suppressPackageStartupMessages({library(Seurat); library(cellscribe)})",
    "t <- system.time(x <- suppressMessages(annotate_seurat(pbmc_small, tissue = 'PBMC')))[['elapsed']]",
    "cat(t, x@misc$cellscribe$stats$model_calls, '\\n')"
  ), script)
  out <- system2(file.path(R.home("bin"), "Rscript"), script, stdout = TRUE)
  as.numeric(strsplit(trimws(utils::tail(out, 1)), " ")[[1]])
}

cat(sprintf("load average before: %s\n", load()))
first <- cold()
cat(sprintf("annotate_seurat(pbmc_small), cold: fresh R session, empty answer cache (Python start, model load, %d model answers): %.2f s\n",
            as.integer(first[2]), first[1]))
again <- cold()
cat(sprintf("annotate_seurat(pbmc_small), cold: fresh R session, answers cached (Python start, %d model answers): %.2f s\n",
            as.integer(again[2]), again[1]))

suppressPackageStartupMessages({library(Seurat); library(cellscribe)})
invisible(suppressMessages(annotate_seurat(pbmc_small, tissue = "PBMC")))  # Python started, answers cached
warm <- replicate(5, system.time(suppressMessages(annotate_seurat(pbmc_small, tissue = "PBMC")))[["elapsed"]])
cat(sprintf("annotate_seurat(pbmc_small), warm: same session, answers cached: median %.3f s (of 5)\n", median(warm)))
markers <- FindAllMarkers(pbmc_small, only.pos = TRUE, verbose = FALSE)
fam <- replicate(5, system.time(FindAllMarkers(pbmc_small, only.pos = TRUE, verbose = FALSE))[["elapsed"]])
cat(sprintf("  of which FindAllMarkers(pbmc_small, only.pos = TRUE): median %.3f s\n", median(fam)))

# The bridge: the same markers and cached answers from R and from Python directly.
r_times <- replicate(reps, system.time(annotate_markers(markers, tissue = "PBMC", backend = "llamacpp"))[["elapsed"]])
csv <- tempfile(fileext = ".csv")
utils::write.csv(markers, csv, row.names = FALSE)
py <- reticulate::py_run_string(sprintf(paste(
  "import time, statistics, pandas as pd, cellscribe",
  "df = pd.read_csv(%s, dtype={'cluster': str})",
  "df['cluster'] = pd.Categorical(df['cluster'], categories=%s)",
  "times = []",
  "for _ in range(%d):",
  "    t = time.perf_counter(); cellscribe.annotate(df, tissue='PBMC', backend='llamacpp', progress=False)",
  "    times.append(time.perf_counter() - t)",
  "direct = statistics.median(times)", sep = "\n"),
  deparse(csv), paste0("[", paste0("'", levels(markers$cluster), "'", collapse = ", "), "]"), reps))
cat(sprintf("annotate_markers() from R, cached answers: median %.1f ms per call (of %d)\n", 1000 * median(r_times), reps))
cat(sprintf("cellscribe.annotate() called in the same Python directly: median %.1f ms per call (of %d)\n",
            1000 * py$direct, reps))
cat(sprintf("bridge overhead (JSON both ways + reticulate + building the data.frame): %.1f ms per call\n",
            1000 * (median(r_times) - py$direct)))
cat(sprintf("load average after: %s\n", load()))
unlink(cache, recursive = TRUE)
