#!/usr/bin/env bash
# The R package's checks, called by scripts/run_tests.sh:
#   1. R CMD INSTALL into a temporary library;
#   2. testthat against it, ending with the plain line "N passed, N failed"; one of the tests
#      (tests/testthat/test-install-route.R) takes the README's R route from scratch: R CMD INSTALL
#      into a fresh library, cellscribe_install() into a fresh virtualenv, then annotate_seurat()
#      with the defaults in a new R process (set CELLSCRIBE_TEST_INSTALL_ROUTE= to skip it);
#   3. R CMD build (which builds the vignette with the real embedded model), and a check that the
#      built vignette labels pbmc_small's clusters right;
#   4. R CMD check --no-manual on the tarball (no ERROR or WARNING allowed); its own run of the
#      tests and the vignette uses the same Python and answer cache, so it repeats no model call.
# R finds Python through CELLSCRIBE_PYTHON (default: the project venv), and the tests fail rather
# than skip when it is unusable. Answers are cached in a fresh folder for this run (the models
# are shared), so the first step that asks a question really runs the model.
# Exit status: 0 when every step passed.
set -uo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
VENV=${VENV:-.venv}
case $VENV in /*) ;; *) VENV=$repo/$VENV ;; esac
export CELLSCRIBE_PYTHON=${CELLSCRIBE_PYTHON:-$VENV/bin/python}
export CELLSCRIBE_TESTS_NEED_PYTHON=true
shared_cache=${CELLSCRIBE_CACHE:-$HOME/.cache/cellscribe}
models=$shared_cache/models
route=${CELLSCRIBE_TEST_INSTALL_ROUTE-$repo}

work=$(mktemp -d "${TMPDIR:-/tmp}/cellscribe-r.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/lib" "$work/cache"
ln -s "$models" "$work/cache/models"
# The llama-cpp-python wheel built once by scripts/setup.sh, for cellscribe_install() in the route test.
[ -d "$shared_cache/wheels" ] && ln -s "$shared_cache/wheels" "$work/cache/wheels"
export CELLSCRIBE_CACHE=$work/cache
export R_LIBS=$work/lib${R_LIBS:+:$R_LIBS}
export _R_CHECK_SYSTEM_CLOCK_=0     # no time server to ask here
status=0
begin=$SECONDS
step() { printf '\n== R: %s (at %ds)\n' "$*" $((SECONDS - begin)); }

# The R package's own files only: R CMD build copies its whole source folder before it applies
# .Rbuildignore, which in the repository would mean the 2 GB venv.
pkg=$work/src/cellscribe
mkdir -p "$pkg/tests"
cp -R DESCRIPTION NAMESPACE LICENSE .Rbuildignore R man vignettes "$pkg/"
cp -R tests/testthat.R tests/testthat "$pkg/tests/"
[ -d inst ] && cp -R inst "$pkg/"

# The vignette's "Cluster N: label" headings must name pbmc_small's types: the patterns and the
# check are pbmc_small_label_problems() in tests/testthat/helper-cellscribe.R (one definition).
vignette_labels() {
  local labels=() i
  for i in 0 1 2; do labels+=("$(grep -o "Cluster $i: [^<]*" <<<"$html" | head -n 1 | sed "s/^Cluster $i: //")"); done
  Rscript -e 'source("tests/testthat/helper-cellscribe.R")
    labels <- commandArgs(TRUE)
    problems <- pbmc_small_label_problems(labels)
    if (length(problems)) { writeLines(paste("the vignette:", problems)); quit(status = 1) }
    cat(sprintf("vignette labels right: %s\n", paste(sprintf("%d = %s", 0:2, sQuote(labels, FALSE)), collapse = " ")))' \
    "${labels[@]}"
}

step "R CMD INSTALL"
R CMD INSTALL --no-multiarch --library="$work/lib" "$pkg" >"$work/install.log" 2>&1 \
  || { cat "$work/install.log"; echo "R CMD INSTALL failed"; exit 1; }

step "testthat"
CELLSCRIBE_TEST_INSTALL_ROUTE=$route Rscript scripts/testthat_summary.R tests/testthat || status=1

step "R CMD build (with the vignette)"
if (cd "$work" && R CMD build "$pkg" >build.log 2>&1); then
  tarball=$(ls "$work"/cellscribe_*.tar.gz)
  html=$(tar -xzOf "$tarball" cellscribe/inst/doc/cellscribe.html 2>/dev/null)
  # The vignette ran for real: the explanations and the DimPlot are in it, and the labels of its
  # main call (the "Cluster N: label" headings of render_explanations()) are the right types.
  if grep -q "Cluster 0: " <<<"$html" && grep -q "<img" <<<"$html"; then
    echo "vignette built: explanations and plot present"
    vignette_labels || status=1
  else
    echo "the built vignette lacks the explanations or the plot"; status=1
  fi
else
  cat "$work/build.log"; echo "R CMD build failed"; status=1; tarball=
fi

if [ -n "$tarball" ]; then
  step "R CMD check --no-manual"
  (cd "$work" && R CMD check --no-manual "$tarball" >check.log 2>&1)
  log=$work/cellscribe.Rcheck/00check.log
  result=$(grep '^Status:' "$log" 2>/dev/null || echo "Status: R CMD check did not finish")
  grep -E "^\* .*(NOTE|WARNING|ERROR)$" -A8 "$log" 2>/dev/null
  echo "R CMD check $result"
  if ! grep -qE '^Status: (OK|[0-9]+ NOTEs?)$' <<<"$result"; then
    tail -n 40 "$work/check.log"
    for out in "$work"/cellscribe.Rcheck/tests/*.Rout.fail; do [ -f "$out" ] && tail -n 40 "$out"; done
    status=1
  fi
fi
step "done"
exit $status
