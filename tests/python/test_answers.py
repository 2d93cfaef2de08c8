"""Answer parsing, repair and the seed's explanation format; prompt templates."""

from __future__ import annotations

import pytest

from cellscribe import prompts
from cellscribe.answers import (
    ClusterAnswer,
    LabelAnswer,
    cited_markers,
    count_sentences,
    json_schema,
    parse_json,
    parse_markdown,
    render_markdown,
)
from cellscribe.errors import InputError
from cellscribe.llm import OutputFormatError

GOOD = {"label": "CD8+ T cell", "broad_lineage": "T cell", "confidence": 0.8, "title": "Cytotoxic T cells",
        "bullets": ["CD8A and CD8B mark CD8+ T cells.", "GZMK marks effector memory cells.",
                    "They kill infected cells."]}


def test_valid_json_answer():
    import json

    a = parse_json(json.dumps(GOOD), ClusterAnswer)
    assert a.label == "CD8+ T cell" and len(a.bullets) == 3


def test_json_in_code_fence_with_trailing_text_is_repaired():
    a = parse_json('Here you go:\n```json\n{"label": "B cell", "confidence": 0.7}\n```\nHope it helps.', LabelAnswer)
    assert (a.label, a.confidence) == ("B cell", 0.7)


def test_json_missing_closing_brace_is_repaired():
    assert parse_json('{"label": "Monocyte", "confidence": 0.9', LabelAnswer).label == "Monocyte"


@pytest.mark.parametrize(
    "text, problem",
    [
        ("The cells are T cells.", "not a JSON object"),
        ('{"label": "", "confidence": 0.5}', "label"),
        ('{"label": "T cell", "confidence": 3}', "confidence"),
        ('{"label": "T cell"}', "confidence: Field required"),
    ],
)
def test_bad_json_names_the_problem(text, problem):
    with pytest.raises(OutputFormatError, match=problem):
        parse_json(text, LabelAnswer)


def test_explanation_needs_exactly_three_one_or_two_sentence_bullets():
    import json

    two = dict(GOOD, bullets=GOOD["bullets"][:2])
    with pytest.raises(OutputFormatError, match="bullets"):
        parse_json(json.dumps(two), ClusterAnswer)
    long = dict(GOOD, bullets=["One. Two. Three sentences here.", "Fine.", "Fine too."])
    with pytest.raises(OutputFormatError, match="bullet 1 has 3 sentences"):
        parse_json(json.dumps(long), ClusterAnswer)


def test_sentence_counting_ignores_abbreviations():
    assert count_sentences("CD14+ monocytes, e.g. classical ones, ingest debris.") == 1
    assert count_sentences("CD3D marks T cells. They fight infection.") == 2
    assert count_sentences("no full stop") == 1


def test_seed_markdown_format_round_trip():
    text = render_markdown("Naive CD4+ T cells", ["CCR7 and SELL mark naive cells.", "IL7R supports survival.",
                                                  "They circulate through lymph nodes."])
    assert text.startswith("## **Naive CD4+ T cells**\n\n- CCR7")
    parsed = parse_markdown(text)
    assert parsed.title == "Naive CD4+ T cells" and len(parsed.bullets) == 3


def test_markdown_variants_are_repaired():
    text = ("**NK cells**\n\n* GNLY and NKG7 are cytotoxic.\n1. KLRD1 is an NK receptor\n   shared with some T cells.\n"
            "+ They kill tumour cells.")
    parsed = parse_markdown(text)
    assert parsed.title == "NK cells"
    assert parsed.bullets[1] == "KLRD1 is an NK receptor shared with some T cells."


@pytest.mark.parametrize(
    "text, problem",
    [
        ("## **T cells**\n- one.\n- two.", "2 bullet points; exactly 3"),
        ("## **T cells**\n- a.\n- b.\n- c.\n- d.", "4 bullet points"),
        ("- a.\n- b.\n- c.", "no title"),
        ("## **T**\n- " + "word " * 310 + ".\n- b.\n- c.", "the limit is 300"),
    ],
)
def test_markdown_problems(text, problem):
    with pytest.raises(OutputFormatError, match=problem):
        parse_markdown(text)


def test_cited_markers_match_whole_symbols():
    assert cited_markers(["CD3D", "CD3", "IL7R"], "CD3D and IL7R-high cells", "not CD3E") == ["CD3D"]


def test_schema_order_and_extension():
    schema = json_schema(ClusterAnswer)
    assert list(schema["properties"]) == ["label", "broad_lineage", "confidence", "title", "bullets"]
    assert schema["properties"]["bullets"]["minItems"] == schema["properties"]["bullets"]["maxItems"] == 3


def test_prompt_puts_genes_last_and_carries_tissue_and_species():
    ps = prompts.load()
    msgs = ps.messages(["CD3D", "CD3E"], tissue="lung", species="mouse", cluster="3", explain=True)
    system = "You are a helpful assistant on gene functions and cellular markers."
    assert msgs[0] == {"role": "system", "content": system}
    assert "mouse lung" in msgs[1]["content"] and msgs[1]["content"].endswith("CD3D, CD3E")


def test_seed_system_prompt_for_markdown_style():
    system = prompts.load("markdown").system
    assert system.startswith("You are a helpful assistant on gene functions and cellular markers.")
    assert "Exactly three bullet points" in system and "300 words" in system


def test_custom_system_prompt_and_template(tmp_path):
    tpl = tmp_path / "t.j2"
    tpl.write_text("Cluster {{ cluster }} in {{ tissue }}: {{ genes|join('/') }}")
    ps = prompts.load(system_prompt="Be brief.", template=tpl)
    assert ps.messages(["A", "B"], tissue="liver", species="human", cluster="7", explain=True) == [
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": "Cluster 7 in liver: A/B"}]
    assert ps.hash != prompts.load().hash


def test_bad_template_is_a_clear_error():
    with pytest.raises(InputError, match="not valid Jinja2"):
        prompts.load(template="{{ genes ")
    with pytest.raises(InputError, match="Variables available: genes, tissue"):
        prompts.load(template="{{ nonsense.attr }}").messages(["A"], tissue="", species="human", cluster="0",
                                                              explain=True)
    with pytest.raises(InputError, match="style must be one of json, markdown"):
        prompts.load("yaml")
