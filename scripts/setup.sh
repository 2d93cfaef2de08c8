#!/usr/bin/env bash
# Installs everything cellscribe needs on a fresh Debian 12 machine. Safe to run again: each step
# checks what is already there, so a second run takes seconds.
#
#   scripts/setup.sh python   the venv, the pinned packages, the local models and the gene databases
#                             (no R needed: `make demo` runs on this alone)
#   scripts/setup.sh r        the Debian R stack (R, Seurat, reticulate, testthat, ...) and then the
#                             Python packages that need R (the `interop` extra: rpy2, anndata2ri)
#   scripts/setup.sh all      both, in that order
#
# Environment: VENV (default .venv), PYTHON (interpreter for the venv; default Debian's
# /usr/bin/python3, which R can embed), CELLSCRIBE_CACHE (default ~/.cache/cellscribe; holds the
# llama-cpp-python wheel built once and the assembled models).
set -euo pipefail
cd "$(dirname "$0")/.."

what=${1:-all}
VENV=${VENV:-.venv}
CACHE=${CELLSCRIBE_CACHE:-$HOME/.cache/cellscribe}
LLAMA_VERSION=0.3.36
MODELS=(qwen2.5-coder-1.5b qwen2.5-coder-0.5b smollm2-135m)
PY_APT=(python3 python3-venv python3-dev build-essential cmake git)
R_APT=(r-base-core r-base-dev r-cran-reticulate r-cran-seurat r-cran-seuratobject r-cran-testthat
       r-cran-knitr r-cran-rmarkdown r-cran-jsonlite r-cran-roxygen2 r-bioc-singlecellexperiment
       r-bioc-limma r-bioc-org.hs.eg.db r-bioc-go.db pandoc)
# Gene facts (NCBI Gene, GO) come from these Debian packages' SQLite files. Without R they are
# unpacked into the cache (no R installed): cellscribe.knowledge.genes looks there too.
GENE_DEBS=(r-bioc-org.hs.eg.db r-bioc-go.db)

say() { printf '\n== %s\n' "$*"; }

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

# The gene databases for a machine without R: the .debs' files, unpacked into $CACHE/debian.
gene_databases() {
  local dest=$CACHE/debian
  if [ -f /usr/lib/R/site-library/org.Hs.eg.db/extdata/org.Hs.eg.sqlite ] \
     && [ -f /usr/lib/R/site-library/GO.db/extdata/GO.sqlite ]; then return 0; fi
  if [ -f "$dest/usr/lib/R/site-library/org.Hs.eg.db/extdata/org.Hs.eg.sqlite" ] \
     && [ -f "$dest/usr/lib/R/site-library/GO.db/extdata/GO.sqlite" ]; then return 0; fi
  say "gene databases: unpacking ${GENE_DEBS[*]} into $dest (no R needed)"
  local tmp
  tmp=$(mktemp -d)
  if ! (cd "$tmp" && apt-get download -qq "${GENE_DEBS[@]}" 2>/dev/null); then
    as_root apt-get update -qq
    (cd "$tmp" && apt-get download -qq "${GENE_DEBS[@]}")
  fi
  mkdir -p "$dest"
  for deb in "$tmp"/*.deb; do dpkg-deb -x "$deb" "$dest"; done
  find "$dest" -type f ! -name '*.sqlite' -delete   # the SQLite files are all cellscribe reads
  rm -rf "$tmp"
}

apt_install() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  say "apt: installing ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

setup_python() {
  apt_install "${PY_APT[@]}"
  local python=${PYTHON:-}
  if [ -z "$python" ]; then
    if [ -x /usr/bin/python3 ]; then python=/usr/bin/python3; else python=$(command -v python3); fi
  fi
  if [ ! -x "$VENV/bin/python" ]; then
    say "venv: $VENV with $($python --version)"
    "$python" -m venv "$VENV"
    "$VENV/bin/pip" install -q --upgrade pip wheel setuptools
  fi
  mkdir -p "$CACHE/wheels"
  if ! ls "$CACHE/wheels"/llama_cpp_python-"$LLAMA_VERSION"-*.whl >/dev/null 2>&1; then
    say "llama-cpp-python $LLAMA_VERSION: building the wheel once (about 5 minutes on 2 cores)"
    "$VENV/bin/pip" wheel -q --no-deps "llama-cpp-python==$LLAMA_VERSION" -w "$CACHE/wheels"
  fi
  local stamp="$VENV/.cellscribe-deps"
  local want
  want=$(cat pyproject.toml requirements/constraints.txt | sha256sum | cut -d' ' -f1)
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    say "pip: installing cellscribe and its pinned dependencies"
    # torch first and pinned: a bare `torch` would pull several GB of CUDA packages.
    "$VENV/bin/pip" install -q --find-links "$CACHE/wheels" -c requirements/constraints.txt "torch==2.13.0"
    # No `interop` extra here: rpy2 cannot be built without R (setup_r installs it after R).
    "$VENV/bin/pip" install -q --find-links "$CACHE/wheels" -c requirements/constraints.txt \
      -e ".[ml,server,dev]"
    echo "$want" > "$stamp"
  fi
  gene_databases
  say "models: ${MODELS[*]}"
  CELLSCRIBE_CACHE="$CACHE" "$VENV/bin/cellscribe" models prepare "${MODELS[@]}"
}

setup_r() {
  apt_install "${R_APT[@]}"
  [ -x "$VENV/bin/python" ] || return 0   # `setup.sh r` alone: the R stack only
  local stamp="$VENV/.cellscribe-interop"
  local want
  want=$(cat pyproject.toml requirements/constraints.txt | sha256sum | cut -d' ' -f1)
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    say "pip: the interop extra (rpy2, anndata2ri), built against R"
    "$VENV/bin/pip" install -q --find-links "$CACHE/wheels" -c requirements/constraints.txt -e ".[interop]"
    echo "$want" > "$stamp"
  fi
}

case "$what" in
  python) setup_python ;;
  r) setup_r ;;
  all) setup_python; setup_r ;;
  *) echo "usage: $0 [python|r|all]" >&2; exit 2 ;;
esac
