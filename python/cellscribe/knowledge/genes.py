"""Gene facts from NCBI Gene and the Gene Ontology, read from Bioconductor's SQLite files.

Source: Debian's ``r-bioc-org.hs.eg.db`` (NCBI Gene for human: symbol, full name, gene type,
aliases, cytogenetic band, Ensembl IDs, GO annotations) and ``r-bioc-go.db`` (GO term names),
installed by ``scripts/setup.sh r``, or, on a machine without R, unpacked from those Debian
packages into ``<settings.cache_dir>/debian`` by ``scripts/setup.sh python``. Their SQLite files
are found through R itself (``system.file("extdata", ..., package=...)``) or, without R on the
``PATH``, in the standard R library folders and then in that unpacked copy. The first use builds a
small index of what cellscribe needs, ``<settings.cache_dir>/knowledge/genes-v2.sqlite`` (a few
seconds, ~30 MB), and every later lookup reads that index. :func:`positions` gives the genes'
places on the GRCh38 chromosomes (UCSC, as org.Hs.eg.db records them), for copy-number inference.

>>> from cellscribe.knowledge import genes
>>> f = genes.lookup("MS4A1")
>>> f.name, f.band, f.go_bp[:2]
('membrane spanning 4-domains A1', '11q12.2', [...])
>>> genes.facts(["CD3E", "Cd19", "NOTAGENE"])          # known genes only, keyed by the query
>>> genes.is_known("CD20")                               # True: an alias of MS4A1
>>> print(f.short())                                     # one line for a prompt

Name resolution (``GeneFacts.matched_by``), in this order:

1. ``"symbol"``: the official human symbol, exactly.
2. ``"case"``: the symbol ignoring case. For mouse genes (``Cd3e``, ``Ms4a1``) this is the mapping
   to the human gene of the same name, which holds for most one-to-one orthologues.
3. ``"alias"``: a previous symbol or alias (``CD20`` -> ``MS4A1``), ignoring case. An alias shared
   by several genes resolves to a protein-coding gene first, then the lowest Entrez ID.
   Mitochondrial genes written ``MT-ND3`` (``mt-Nd3`` in mouse) resolve through the alias without
   the hyphen (``MTND3`` -> ``ND3``), as NCBI names them ``ND3``, ``COX1``, ...
4. ``"ensembl"``: a human Ensembl gene ID (``ENSG00000156738``, version suffix ignored).

This mouse mapping is a convenience, not orthology: mouse genes without a same-named human gene
(``H2-Ab1``, ``Klra8``, most ``Gm`` genes, predicted genes) stay unknown, and a few same-named genes
are not orthologues. ``GeneFacts.species`` records the species of the query.

GO terms are the gene's direct annotations, per ontology, ordered so the most telling come first:
manually curated evidence before electronic (``IEA``), then specific terms (annotated to few human
genes) before general ones (``protein binding``). The three root terms are dropped.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
import shutil
import sqlite3
import subprocess
import tempfile
import threading
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import pandas as pd

from ..config import settings
from ..errors import GeneKnowledgeUnavailableError, InputError
from ..progress import say
from ..wheels import one_at_a_time

log = logging.getLogger(__name__)

Species = Literal["human", "mouse"]
SPECIES: tuple[str, ...] = ("human", "mouse")

#: Bumped when the index layout or its content rules change; a new version builds a new file.
INDEX_VERSION = 2
ORGDB = ("org.Hs.eg.db", "org.Hs.eg.sqlite", "r-bioc-org.hs.eg.db")
GODB = ("GO.db", "GO.sqlite", "r-bioc-go.db")
#: Evidence codes of electronic annotation (ranked after every manually curated code).
ELECTRONIC_EVIDENCE = ("IEA",)
#: GO root terms (no information about a gene).
GO_ROOTS = ("GO:0008150", "GO:0003674", "GO:0005575")
#: R library folders searched when ``Rscript`` is not on the PATH (Debian's layout, then R_LIBS*).
_STANDARD_R_LIBS = ("/usr/lib/R/site-library", "/usr/local/lib/R/site-library", "/usr/lib/R/library")
_ENSEMBL = re.compile(r"^ENSG\d{11}(\.\d+)?$", re.IGNORECASE)


@dataclass(frozen=True)
class GeneFacts:
    """What NCBI Gene and GO say about one human gene.

    Attributes
    ----------
    query
        The name that was looked up (as given).
    symbol
        Official human symbol (``MS4A1``).
    entrez_id
        NCBI Gene ID.
    name
        Official full name (``membrane spanning 4-domains A1``).
    gene_type
        NCBI gene type (``protein-coding``, ``ncRNA``, ``pseudo``, ...).
    band
        Cytogenetic band (``11q12.2``), ``""`` when unknown.
    aliases
        Other symbols of the gene (``CD20``, ``B1``, ...), without the official one.
    go_bp, go_mf, go_cc
        Names of the gene's GO biological processes, molecular functions and cellular components,
        most telling first (see the module docstring).
    matched_by
        ``"symbol"``, ``"case"``, ``"alias"`` or ``"ensembl"``: how ``query`` was resolved.
    species
        Species of the query; facts are always those of the human gene.
    """

    query: str
    symbol: str
    entrez_id: int
    name: str
    gene_type: str
    band: str
    aliases: tuple[str, ...] = ()
    go_bp: tuple[str, ...] = ()
    go_mf: tuple[str, ...] = ()
    go_cc: tuple[str, ...] = ()
    matched_by: str = "symbol"
    species: str = "human"

    def short(self, n_terms: int = 3) -> str:
        """One line for a prompt: ``MS4A1 (membrane spanning 4-domains A1, 11q12.2): B cell ...``."""
        head = f"{self.symbol} ({self.name}" + (f", {self.band}" if self.band else "") + ")"
        if self.query.upper() != self.symbol.upper():
            head = f"{self.query} = {head}"
        terms = list(self.go_bp[:n_terms]) + list(self.go_mf[:1])
        return head + (": " + "; ".join(terms) if terms else f": {self.gene_type} gene")

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass
class _Index:
    path: Path
    db: sqlite3.Connection
    lock: threading.Lock = field(default_factory=threading.Lock)


# --------------------------------------------------------------------------- public API


def lookup(symbol: str, *, species: Species = "human") -> GeneFacts | None:
    """Facts about one gene, or ``None`` when the name resolves to no human gene."""
    return facts([symbol], species=species).get(symbol)


def facts(symbols: Iterable[str], *, species: Species = "human") -> dict[str, GeneFacts]:
    """Facts about several genes, keyed by the query names that resolve (unknown names are left out).

    Parameters
    ----------
    symbols
        Gene symbols, aliases or Ensembl IDs; human or mouse (see ``species``).
    species
        ``"human"`` or ``"mouse"``; mouse symbols resolve to the human gene of the same name or
        alias (see the module docstring).
    """
    _check_species(species)
    queries = [str(s) for s in dict.fromkeys(symbols) if s is not None and str(s).strip()]
    ids = _resolve(queries)
    if not ids:
        return {}
    rows = _fetch_genes({gid for gid, _ in ids.values()})
    out: dict[str, GeneFacts] = {}
    for q in queries:
        if q not in ids:
            continue
        gid, how = ids[q]
        r = rows[gid]
        out[q] = GeneFacts(
            query=q, symbol=r["symbol"], entrez_id=gid, name=r["name"], gene_type=r["gene_type"], band=r["band"],
            aliases=tuple(a for a in json.loads(r["aliases"]) if a != r["symbol"]),
            go_bp=tuple(json.loads(r["go_bp"])), go_mf=tuple(json.loads(r["go_mf"])),
            go_cc=tuple(json.loads(r["go_cc"])), matched_by=how, species=species,
        )
    return out


def positions(symbols: Iterable[str], *, species: Species = "human") -> pd.DataFrame:
    """Where the genes lie on the human chromosomes (GRCh38), for the names that resolve.

    Returns a table indexed by the query names that resolve to a gene with a place on chromosomes
    1-22, X or Y (in input order), with columns ``chromosome`` (``"chr1"``, ... as infercnvpy
    expects), ``start``, ``end`` (base pairs) and ``arm`` (``"1p"``, ``"19q"``; ``""`` when the
    cytogenetic band does not say). Mouse names resolve as in :func:`facts`, but the places are
    those of the human genes: do not use them for mouse copy number.
    """
    _check_species(species)
    queries = [str(s) for s in dict.fromkeys(symbols) if s is not None and str(s).strip()]
    ids = _resolve(queries)
    wanted = sorted({gid for gid, _ in ids.values()})
    idx = _index()
    found: dict[int, tuple[str, int, int, str]] = {}
    with idx.lock:
        for chunk in _chunks(wanted, 500):
            marks = ",".join("?" * len(chunk))
            for gid, chrom, start, end, band in idx.db.execute(
                f"SELECT p.gene_id, p.chromosome, p.start, p.end, g.band FROM positions p "
                f"JOIN genes g USING (gene_id) WHERE p.gene_id IN ({marks})", chunk,
            ):
                found[gid] = (f"chr{chrom}", start, end, _arm(chrom, band))
    rows = {q: found[ids[q][0]] for q in queries if q in ids and ids[q][0] in found}
    return pd.DataFrame.from_dict(rows, orient="index", columns=["chromosome", "start", "end", "arm"])


def _arm(chromosome: str, band: str) -> str:
    """``"1p"`` from chromosome ``"1"`` and band ``"1p36.33"`` (the first band when several)."""
    m = re.match(rf"{re.escape(chromosome)}([pq])", band or "")
    return f"{chromosome}{m.group(1)}" if m else ""


def is_known(symbol: str, *, species: Species = "human") -> bool:
    """Whether a symbol, alias or Ensembl ID resolves to a human gene."""
    _check_species(species)
    return str(symbol) in _resolve([str(symbol)])


def unknown(symbols: Iterable[str], *, species: Species = "human") -> list[str]:
    """The names among ``symbols`` that resolve to no gene, in input order (for warnings)."""
    _check_species(species)
    queries = [str(s) for s in dict.fromkeys(symbols)]
    found = _resolve(queries)
    return [q for q in queries if q not in found]


def to_human(symbols: Iterable[str], *, species: Species = "mouse") -> dict[str, str]:
    """``{query: official human symbol}`` for the names that resolve (mouse ``Cd3e`` -> ``CD3E``)."""
    return {q: f.symbol for q, f in facts(symbols, species=species).items()}


def source_info() -> dict[str, str]:
    """Versions of the sources the index was built from (for provenance): NCBI Gene and GO dates."""
    idx = _index()
    with idx.lock:
        return dict(idx.db.execute("SELECT key, value FROM meta").fetchall())


def index_path() -> Path:
    """Where the index lives (built on first use): ``<cache_dir>/knowledge/genes-v<N>.sqlite``."""
    return Path(settings.cache_dir) / "knowledge" / f"genes-v{INDEX_VERSION}.sqlite"


def find_database(package: str, filename: str, debian_package: str) -> Path:
    """Path of a Bioconductor annotation package's SQLite file.

    Asks R (``system.file``) once per process when ``Rscript`` is available; otherwise searches
    ``R_LIBS``, ``R_LIBS_SITE``, ``R_LIBS_USER``, the standard Debian R library folders and the
    Debian packages unpacked into ``<settings.cache_dir>/debian`` (no R needed).

    Raises
    ------
    GeneKnowledgeUnavailableError
        Naming the Debian package that provides the file.
    """
    path = _r_system_file(package, filename)
    if path is None:
        folders = [p for var in ("R_LIBS", "R_LIBS_SITE", "R_LIBS_USER")
                   for p in os.environ.get(var, "").split(os.pathsep) if p]
        unpacked = Path(settings.cache_dir) / "debian" / "usr" / "lib" / "R" / "site-library"
        for folder in (*folders, *_STANDARD_R_LIBS, unpacked):
            candidate = Path(folder).expanduser() / package / "extdata" / filename
            if candidate.is_file():
                path = candidate
                break
    if path is None:
        raise GeneKnowledgeUnavailableError(
            f"The gene knowledge base needs the R annotation package {package} ({filename}), which is not "
            f"installed. Install the Debian package {debian_package}: `scripts/setup.sh python` unpacks it "
            f"into the cache without R, or `apt-get install r-bioc-org.hs.eg.db r-bioc-go.db`."
        )
    return path


def rebuild() -> Path:
    """Build the index again from the Bioconductor files (after upgrading them)."""
    _index.cache_clear()
    index_path().unlink(missing_ok=True)
    return _index().path


# --------------------------------------------------------------------------- resolution


def _check_species(species: str) -> None:
    if species not in SPECIES:
        raise InputError(f"species must be one of {', '.join(SPECIES)}; got {species!r}.")


def _resolve(queries: list[str]) -> dict[str, tuple[int, str]]:
    """``{query: (entrez_id, matched_by)}`` for the queries that resolve."""
    if not queries:
        return {}
    idx = _index()
    keys = {q: q.strip().upper() for q in queries}
    hits: dict[str, list[tuple[int, str, str, int]]] = {}
    with idx.lock:
        wanted = {v for k in keys.values() for v in (k, k.split(".")[0], k.replace("MT-", "MT", 1))}
        for chunk in _chunks(sorted(wanted), 500):
            marks = ",".join("?" * len(chunk))
            for key, gid, kind, sym, coding in idx.db.execute(
                f"SELECT n.key, n.gene_id, n.kind, g.symbol, g.gene_type = 'protein-coding' "
                f"FROM names n JOIN genes g USING (gene_id) WHERE n.key IN ({marks})", chunk,
            ):
                hits.setdefault(key, []).append((gid, kind, sym, coding))
    out: dict[str, tuple[int, str]] = {}
    for q, key in keys.items():
        if _ENSEMBL.match(key):
            cands = [(gid, "ensembl") for gid, kind, _, _ in hits.get(key.split(".")[0], []) if kind == "ensembl"]
            if cands:
                out[q] = min(cands)
            continue
        cands = hits.get(key, [])
        symbols = [(gid, sym) for gid, kind, sym, _ in cands if kind == "symbol"]
        exact = [gid for gid, sym in symbols if sym == q.strip()]
        if exact:
            out[q] = (exact[0], "symbol")
        elif symbols:
            out[q] = (min(gid for gid, _ in symbols), "case")
        else:
            if not cands and key.startswith("MT-"):  # mitochondrial genes: MT-ND3 / mt-Nd3 are the alias MTND3
                cands = hits.get(key.replace("MT-", "MT", 1), [])
            aliases = [(-coding, gid) for gid, kind, _, coding in cands if kind in ("alias", "symbol")]
            if aliases:
                out[q] = (min(aliases)[1], "alias")
    return out


def _fetch_genes(ids: set[int]) -> dict[int, sqlite3.Row]:
    idx = _index()
    rows: dict[int, sqlite3.Row] = {}
    with idx.lock:
        for chunk in _chunks(sorted(ids), 500):
            marks = ",".join("?" * len(chunk))
            for r in idx.db.execute(f"SELECT * FROM genes WHERE gene_id IN ({marks})", chunk):
                rows[r["gene_id"]] = r
    return rows


def _chunks(items: list, n: int) -> Iterable[list]:
    for i in range(0, len(items), n):
        yield items[i:i + n]


# --------------------------------------------------------------------------- the index


@functools.lru_cache(maxsize=None)
def _r_system_file(package: str, filename: str) -> Path | None:
    rscript = shutil.which("Rscript")
    if rscript is None:
        return None
    expr = f'cat(system.file("extdata", "{filename}", package = "{package}"))'
    try:
        proc = subprocess.run([rscript, "--vanilla", "-e", expr], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    out = proc.stdout.strip()
    return Path(out) if proc.returncode == 0 and out and Path(out).is_file() else None


def _index() -> _Index:
    path = index_path()
    return _open_index(str(path), str(settings.cache_dir))


@functools.lru_cache(maxsize=4)
def _open_index(path_str: str, _cache_dir: str) -> _Index:
    path = Path(path_str)
    if not path.is_file():
        with one_at_a_time(path, "the gene index"):
            if not path.is_file():  # or another process built it while we waited
                _build(path)
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
    db.row_factory = sqlite3.Row
    return _Index(path=path, db=db)


_index.cache_clear = _open_index.cache_clear  # type: ignore[attr-defined]


def _build(path: Path) -> None:
    """Build the index from the Bioconductor files into a temporary file, then move it into place."""
    orgdb = find_database(*ORGDB)
    godb = find_database(*GODB)
    log.info("building the gene index from %s and %s", orgdb, godb)
    say("building the gene index from org.Hs.eg.db and GO.db (first use only, about 10 s)")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".genes-", suffix=".sqlite")
    os.close(fd)
    try:
        db = sqlite3.connect(f"file:{tmp}", uri=True)  # uri=True lets ATTACH open the sources read-only
        db.execute("ATTACH DATABASE ? AS org", (f"file:{orgdb}?mode=ro&immutable=1",))
        db.execute("ATTACH DATABASE ? AS go", (f"file:{godb}?mode=ro&immutable=1",))
        _fill(db)
        db.commit()
        db.execute("DETACH DATABASE org")
        db.execute("DETACH DATABASE go")
        db.execute("VACUUM")
        db.close()
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def _fill(db: sqlite3.Connection) -> None:
    db.executescript("""
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT);
        CREATE TABLE genes (gene_id INTEGER PRIMARY KEY, symbol TEXT, name TEXT, gene_type TEXT, band TEXT,
                            aliases TEXT, go_bp TEXT, go_mf TEXT, go_cc TEXT);
        CREATE TABLE names (key TEXT, gene_id INTEGER, kind TEXT);
        CREATE TABLE positions (gene_id INTEGER PRIMARY KEY, chromosome TEXT, start INTEGER, end INTEGER);
    """)
    db.execute("""
        INSERT INTO meta SELECT 'ncbi_gene_' || lower(name), value FROM org.metadata
        WHERE name IN ('EGSOURCEDATE', 'GOEGSOURCEDATE', 'ENSOURCEDATE', 'ORGANISM')""")
    db.execute("INSERT INTO meta SELECT 'go_' || lower(name), value FROM go.metadata WHERE name LIKE 'GOSOURCE%'")
    db.execute("INSERT INTO meta VALUES ('index_version', ?)", (str(INDEX_VERSION),))
    genes = {
        _id: [int(gid), sym, name, gtype, band or "", [], {"BP": [], "MF": [], "CC": []}]
        for _id, gid, sym, name, gtype, band in db.execute("""
            SELECT g._id, g.gene_id, i.symbol, i.gene_name, t.gene_type,
                   (SELECT group_concat(cytogenetic_location, ' | ') FROM org.cytogenetic_locations c
                    WHERE c._id = g._id)
            FROM org.genes g JOIN org.gene_info i USING (_id) JOIN org.genetype t USING (_id)""")
    }
    for _id, alias in db.execute("SELECT _id, alias_symbol FROM org.alias"):
        if _id in genes:
            genes[_id][5].append(alias)
    marks = ",".join("?" * len(ELECTRONIC_EVIDENCE))
    roots = ",".join("?" * len(GO_ROOTS))
    for onto in ("BP", "MF", "CC"):
        table = f"org.go_{onto.lower()}"
        query = f"""
            WITH best AS (
                SELECT _id, go_id, MIN(CASE WHEN evidence IN ({marks}) THEN 1 ELSE 0 END) AS tier
                FROM {table} WHERE evidence != 'ND' AND go_id NOT IN ({roots}) GROUP BY _id, go_id),
            size AS (SELECT go_id, COUNT(DISTINCT _id) AS n FROM {table} GROUP BY go_id)
            SELECT b._id, t.term FROM best b JOIN size s USING (go_id) JOIN go.go_term t USING (go_id)
            ORDER BY b._id, b.tier, s.n, t.term"""
        for _id, term in db.execute(query, (*ELECTRONIC_EVIDENCE, *GO_ROOTS)):
            if _id in genes:
                genes[_id][6][onto].append(term)
    ensembl: list[tuple[str, int, str]] = []
    for _id, ens in db.execute("SELECT _id, ensembl_id FROM org.ensembl"):
        if _id in genes:
            ensembl.append((ens.upper(), genes[_id][0], "ensembl"))
    db.executemany(
        "INSERT INTO genes VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [(g[0], g[1], g[2], g[3], g[4], json.dumps(g[5]), json.dumps(g[6]["BP"]), json.dumps(g[6]["MF"]),
          json.dumps(g[6]["CC"])) for g in genes.values()],
    )
    names = {(g[1].upper(), g[0], "symbol") for g in genes.values()}
    names |= {(a.upper(), g[0], "alias") for g in genes.values() for a in g[5] if a.upper() != g[1].upper()}
    db.executemany("INSERT INTO names VALUES (?, ?, ?)", sorted(names | set(ensembl)))
    db.execute("CREATE INDEX names_key ON names (key)")
    # one place per gene on the primary assembly (alternative haplotypes such as 6_GL000251v2_alt left
    # out); org.Hs.eg.db writes minus-strand coordinates as negative numbers
    db.execute("""
        INSERT INTO positions
        SELECT g.gene_id, l.seqname, MIN(ABS(l.start_location)), MAX(ABS(l.end_location))
        FROM org.chromosome_locations l JOIN org.genes g USING (_id)
        WHERE l.seqname IN ('1','2','3','4','5','6','7','8','9','10','11','12','13','14','15','16','17','18',
                            '19','20','21','22','X','Y')
        GROUP BY g.gene_id HAVING COUNT(DISTINCT l.seqname) = 1""")
