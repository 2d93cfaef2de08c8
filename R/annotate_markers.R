#' Label and explain clusters from their marker genes
#'
#' Labels each cluster from its top marker genes and returns one row per cluster: the cell type
#' (by default a Cell Ontology term chosen from marker databases, see `mode`), its broad lineage,
#' a confidence, and an explanation in the format of the seed workflow (a bold title and exactly
#' three bullet points) written by a language model. By default the model is
#' Qwen2.5-Coder-1.5B running inside the R session (through llama.cpp, no server), or an Ollama
#' server when one answers with the model. Answers are cached on disk, so a rerun is instant and
#' an interrupted run resumes.
#'
#' @param markers A data.frame from [Seurat::FindAllMarkers()] (columns `p_val, avg_log2FC,
#'   pct.1, pct.2, p_val_adj, cluster, gene`), or a two-column data.frame `cluster, gene` with
#'   genes in rank order. Positive markers are ranked by adjusted p-value, then fold change.
#' @param tissue Tissue of origin, put in the prompt (e.g. `"PBMC"`); `NULL` for none.
#' @param species `"human"` or `"mouse"`.
#' @param backend `"auto"` (an Ollama server when it answers and has the model, otherwise the
#'   embedded model), `"llamacpp"` (embedded), `"ollama"`, `"openai"` (also any
#'   OpenAI-compatible server via `base_url =`) or `"transformers"` (a Hugging Face model run by
#'   the `transformers` library, in Python's `cellscribe[ml]` extra).
#' @param model The model for that backend: a local model name (`"qwen2.5-coder-1.5b"`, the
#'   default for the embedded backend) or a `.gguf` path, an Ollama tag (`"gpt-oss:20b"`), an
#'   OpenAI model name. `NULL` for the backend's default.
#' @param top_n Marker genes per cluster sent to the model.
#' @param system_prompt Text (or a file path) replacing the packaged system prompt.
#' @param explain `TRUE` for a title and three bullets per cluster, written by the model from
#'   the label's case (evidence genes, Cell Ontology definition, nearest rival, caveats) and
#'   checked against it before they are returned: a bullet that names a gene the cluster lacks,
#'   claims a marker the databases do not back, misdescribes a gene or is cut off goes back to the
#'   model once and is otherwise rendered from the case (`bullet_sources` says which).
#'   `"knowledge"`: all three rendered from the case, no model (instant). `FALSE`: labels and
#'   confidence only (with `mode = "grounded"` no language model runs at all).
#' @param mode How the label is chosen.
#'   * `"grounded"` (the default): candidate types from marker databases (CellMarker 2.0,
#'     singleCellBase) and curated marker sets (Pegasus, besca) merged into Cell Ontology terms and ranked by a learned re-ranker, which
#'     chooses; the label is a Cell Ontology name with its ID (`cl_id`), the confidence is the
#'     re-ranker's calibrated probability, `evidence_genes` are the cluster's markers the
#'     databases support for that type, and the local model writes the explanation, checked
#'     against the case.
#'   * `"llm"`: the language model alone names the type from the markers (no Cell Ontology ID).
#'   * `"agentic"`: the model calls local tools (marker lookup with the re-ranked candidates, gene
#'     facts, the Cell Ontology) and names the type, which is mapped to the Cell Ontology; needs a
#'     backend that calls tools (an OpenAI-compatible server such as `llama_cpp.server`).
#'   * `"markers"` is deprecated and means `mode = "grounded", explain = FALSE` (Python warns).
#'
#'   Measured on the development part of the GPTCelltype benchmark (447 marker lists with expert
#'   labels, mean agreement with the expert label, 1 for a match, 0.5 for a partial one):
#'   `"grounded"` 0.631 (its re-ranker cross-validated leave-one-dataset-out, so no dataset is
#'   scored by a re-ranker trained on it), the 1.5B model alone (`"llm"`) 0.131, and GPT-4, from
#'   the published study, 0.588 on the same rows.
#' @param ... Further arguments of the Python `cellscribe.annotate()`: `style` (`"json"` or
#'   `"markdown"`), `template`, `temperature`, `seed`, `max_tokens`, `cache` (`FALSE`, or a file),
#'   `on_error` (`"keep"` returns failed clusters with an `error` column), and backend options
#'   such as `host`, `base_url`, `api_key_env`, `timeout`, `think`.
#'
#' @returns A data.frame with one row per cluster and every column of the Python result table
#'   (`cellscribe.results`), in its order, each with the R type of its kind: text and IDs as
#'   character, numbers as numeric, flags as logical, lists as list columns of character vectors.
#'   * `cluster`, `label`, `broad_lineage`, `confidence` (0 to 1), `title`;
#'   * `bullets` (list column) and `explanation` (Python's `explanation_markdown`): Markdown,
#'     `## **title**` and three `- ` bullets (`NA` and empty when `explain = FALSE`);
#'   * `bullet_sources` (list column: `"model"` or `"knowledge"` per bullet), `supporting_markers`
#'     (the sent markers that the explanation cites) and `markers` (the markers sent): list
#'     columns;
#'   * `cached` (answer served from the cache) and `seconds` (time spent on the cluster);
#'   * with the default `mode = "grounded"` (and `"agentic"`): `cl_id` and `cl_name` (the Cell
#'     Ontology term, `"unmapped"` when no marker is known), `evidence_genes` (list column: the
#'     markers with real support for the type), `candidates` (list column, the re-ranked
#'     alternatives, most probable first), `chosen_by` (what chose the label), `rival` (the nearest
#'     other type), `caveats` (list column: low-information or two-lineage markers, a close rival;
#'     they also lower the confidence) and `case_markdown` (the case, shown by
#'     [cellscribe_explanations()]). With `mode = "llm"` these columns are absent;
#'   * with `mode = "agentic"`: `agent_tools` (list column, the tools the model called, in order);
#'   * with `on_error = "keep"` and a failed cluster: `error`.
#'
#'   Attributes `provenance` (backend, model, model digest, prompt hash, parameters, package
#'   version, time) and `stats` (model calls, cache hits).
#'
#'   Errors are R errors of class `cellscribe_error` whose message names the problem and the fix;
#'   when some clusters failed (class `cellscribe_AnnotationError`) the condition's `partial` holds
#'   the table of every cluster as the same data.frame, the failed ones with an `error`.
#' @seealso [annotate_seurat()] to write the labels into a Seurat object,
#'   [cellscribe_explanations()] to show the explanations, [cellscribe_status()].
#' @export
#' @examples
#' if (cellscribe_available() && requireNamespace("Seurat", quietly = TRUE)) {
#'   markers <- Seurat::FindAllMarkers(SeuratObject::pbmc_small, only.pos = TRUE)
#'   labels <- annotate_markers(markers, tissue = "PBMC")
#'   labels[, c("cluster", "label", "broad_lineage", "confidence")]
#'   cellscribe_explanations(labels)
#' }
annotate_markers <- function(markers, tissue = NULL, species = "human", backend = "auto",
                             model = NULL, top_n = 10, system_prompt = NULL, explain = TRUE,
                             mode = "grounded", ...) {
  # `mode` is a formal argument: inside `...` R would match it partially to `model`.
  check_markers(markers)
  options <- c(list(tissue = tissue, species = species, backend = backend, model = model,
                    top_n = top_n, system_prompt = system_prompt, explain = explain, mode = mode),
               list(...))
  check_scalars(options[c("tissue", "species", "backend", "model", "system_prompt", "mode")])
  if (!is.numeric(top_n) || length(top_n) != 1 || is.na(top_n) || top_n < 1 || top_n %% 1 != 0) {
    stop("`top_n` must be a single positive whole number, e.g. 10.", call. = FALSE)
  }
  options$top_n <- as.integer(top_n)
  reply <- tryCatch(
    call_bridge("annotate", markers_to_json(markers), options_to_json(options)),
    cellscribe_AnnotationError = function(e) {
      e$partial <- records_to_frame(e$data$columns, e$data$clusters)
      stop(e)
    }
  )
  result <- records_to_frame(reply$columns, reply$clusters)
  attr(result, "provenance") <- reply$provenance
  attr(result, "stats") <- reply$stats
  if (!is.null(reply$copy_number)) attr(result, "copy_number") <- reply$copy_number
  result
}

check_markers <- function(markers) {
  if (inherits(markers, "Seurat")) {
    stop("`markers` is a Seurat object; use annotate_seurat() for Seurat objects, or pass ",
         "FindAllMarkers() output to annotate_markers().", call. = FALSE)
  }
  if (!is.data.frame(markers)) {
    stop(sprintf(paste0("`markers` must be a data.frame of marker genes from Seurat::FindAllMarkers() ",
                        "(columns cluster, gene, avg_log2FC, p_val_adj, ...); got %s."),
                 describe_class(markers)), call. = FALSE)
  }
  if (nrow(markers) == 0) {
    stop("The marker table is empty (0 rows). Did FindAllMarkers() find no markers? Check the ",
         "clustering (Idents) or relax its thresholds (logfc.threshold, min.pct).", call. = FALSE)
  }
  invisible(markers)
}

check_scalars <- function(args) {
  for (name in names(args)) {
    value <- args[[name]]
    if (!is.null(value) && !(is.character(value) && length(value) == 1 && !is.na(value))) {
      stop(sprintf("`%s` must be a single character string%s; got %s.", name,
                   if (name %in% c("tissue", "model", "system_prompt")) " or NULL" else "",
                   describe_class(value)), call. = FALSE)
    }
  }
}

describe_class <- function(x) {
  if (is.null(x)) return("NULL")
  kind <- class(x)[1]
  if (is.atomic(x) && is.null(dim(x))) {
    kind <- sprintf("a %s vector of length %d", kind, length(x))
  } else {
    kind <- sprintf("an object of class %s", paste(class(x), collapse = "/"))
  }
  kind
}
