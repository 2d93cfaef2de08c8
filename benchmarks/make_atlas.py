"""Build synthetic atlases on disk: real PBMC cells resampled with noise, ~2,000 genes per cell.

Each synthetic cell copies a random cell of scanpy's pbmc68k_reduced (its 765 genes, expected
counts from the log-normalised ``.raw``, Poisson noise and a random library size) and adds about
1,500 background genes drawn from the (flattened) real mean profile of wu2020's 30,000 genes (so ~2,000
detected genes per cell, as in 10x data). ``obs`` ships the template's cluster (``louvain``) and
expert label (``bulk_labels``), as atlases ship theirs. Written chunk by chunk (vectorised NumPy,
appended to ``X`` with anndata's sparse dataset), so memory stays flat.

    python benchmarks/make_atlas.py 100000 /tmp/cellscribe-atlas/atlas_100k.h5ad
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import scanpy as sc
from anndata.io import sparse_dataset, write_elem
from scipy import sparse

from cellscribe import datasets

BACKGROUND_PER_CELL = 2200


def templates() -> tuple[np.ndarray, pd.DataFrame, np.ndarray, list[str]]:
    """Template rates (cells x genes, expected counts at library 1), their obs, background gene
    probabilities and all gene names."""
    pbmc = sc.datasets.pbmc68k_reduced()
    rates = np.expm1(pbmc.raw.X.toarray() if sparse.issparse(pbmc.raw.X) else pbmc.raw.X).astype(np.float64)
    rates /= rates.sum(axis=1, keepdims=True)
    wu = datasets.wu2020()
    own = set(map(str.upper, pbmc.raw.var_names))
    keep = [i for i, g in enumerate(wu.var_names) if str(g).upper() not in own]
    mean = np.asarray(wu.X[:, keep].mean(axis=0)).ravel()
    nz = mean > 0
    bg_genes = [str(wu.var_names[keep[i]]) for i in np.flatnonzero(nz)]
    p = np.sqrt(mean[nz])  # flattened: more distinct genes per draw, as in deeper sequencing
    p /= p.sum()
    return rates, pbmc.obs[["louvain", "bulk_labels"]], p, list(map(str, pbmc.raw.var_names)) + bg_genes


def make_chunk(rng: np.random.Generator, rates: np.ndarray, bg_cum: np.ndarray, n: int
               ) -> tuple[sparse.csr_matrix, np.ndarray]:
    """``n`` synthetic cells (counts, float32 CSR) and their template indices."""
    pick = rng.integers(0, rates.shape[0], n)
    lib = rng.lognormal(np.log(2500), 0.3, n)
    own = rng.poisson(rates[pick] * lib[:, None]).astype(np.float32)
    own_csr = sparse.csr_matrix(own)
    draws = np.searchsorted(bg_cum, rng.random((n, BACKGROUND_PER_CELL)))
    draws = np.minimum(draws, len(bg_cum) - 1)
    rows = np.repeat(np.arange(n), BACKGROUND_PER_CELL)
    bg = sparse.csr_matrix((np.ones(rows.size, dtype=np.float32), (rows, draws.ravel())),
                           shape=(n, len(bg_cum)))
    bg.sum_duplicates()
    return sparse.hstack([own_csr, bg], format="csr", dtype=np.float32), pick


def build(n_cells: int, path: Path, *, chunk: int = 20_000, seed: int = 0) -> None:
    """Write ``n_cells`` synthetic cells to ``path`` (``.h5ad``)."""
    rates, obs_t, p, genes = templates()
    bg_cum = np.cumsum(p)
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    picks = []
    t0 = time.perf_counter()
    nnz = 0
    with h5py.File(path, "w") as f:
        done = 0
        while done < n_cells:
            n = min(chunk, n_cells - done)
            X, pick = make_chunk(rng, rates, bg_cum, n)
            X.indices = X.indices.astype(np.int32)
            X.indptr = X.indptr.astype(np.int64)
            if done == 0:
                write_elem(f, "X", X)
            else:
                sparse_dataset(f["X"]).append(X)
            picks.append(pick)
            nnz += X.nnz
            done += n
            print(f"{done}/{n_cells} cells, {time.perf_counter() - t0:.0f} s", flush=True)
        pick = np.concatenate(picks)
        obs = pd.DataFrame({c: pd.Categorical(obs_t[c].to_numpy()[pick]) for c in obs_t.columns},
                           index=pd.Index([f"cell{i}" for i in range(n_cells)]))
        write_elem(f, "obs", obs)
        write_elem(f, "var", pd.DataFrame(index=pd.Index(genes)))
        write_elem(f, "uns", {})
        for key in ("obsm", "varm", "obsp", "varp", "layers"):
            write_elem(f, key, {})
        f.attrs["encoding-type"] = "anndata"
        f.attrs["encoding-version"] = "0.1.0"
    size = path.stat().st_size / 1e9
    print(f"wrote {path}: {n_cells} cells x {len(genes)} genes, {nnz / n_cells:.0f} genes per cell, "
          f"{size:.2f} GB, {time.perf_counter() - t0:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n_cells", type=int)
    parser.add_argument("path", type=Path)
    parser.add_argument("--chunk", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    build(args.n_cells, args.path, chunk=args.chunk, seed=args.seed)


if __name__ == "__main__":
    main()
