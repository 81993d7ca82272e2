"""Citations printed in reports (LuDosimetryLib/references.py) match the papers they cite.

The seed papers' header facts (journal, year, volume/pages, DOI, a title fragment) are copied here with
the seed line they come from, so the check of references.py runs everywhere (CI has no
/work/shared/seeds). Where the seed texts are available, a second test checks that each copied fact
really is in the seed file, so a mistyped expected value cannot hide a wrong citation.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import pytest
from LuDosimetryLib.references import REFERENCES, cite, reference_list

SEEDS = Path("/work/shared/seeds")

#: key -> (seed file prefix, facts that must appear in both the seed text and the entry's "full" text)
SEED_FACTS = {
    # 000: "**J Nucl Med 2026; 00:1–7**" (line 13), "DOI: 10.2967/jnumed.125.271039" (line 15), title line 3
    "macsuka2026": ("000_", ["J Nucl Med", "2026", "10.2967/jnumed.125.271039",
                             "Cumulative Absorbed Dose and Successive Cyclic Reduction in Absorbed Dose"]),
    # 001: "J Nucl Med 2024; 65:923–930" (line 14), "DOI: 10.2967/jnumed.123.267023" (line 16)
    "hebert2024": ("001_", ["J Nucl Med", "2024", "65:923–930", "10.2967/jnumed.123.267023",
                            "One Step Closer to Personalized Medicine"]),
    # 002: title (line 6), "© The Author(s) 2022" (line 13); journal/volume/pages are in seed 001 (below)
    "sundlov2022": ("002_", ["2022", "Phase II trial demonstrates the efficacy and safety of individualized"]),
    # 003: "JO J Nucl Med ... SP 565 OP 571 DO 10.2967/jnumed.124.267809 VO 66 IS 4 ... YR 2025" (line 1)
    "santoro2025": ("003_", ["J Nucl Med", "2025", "565", "571", "10.2967/jnumed.124.267809",
                             "Full-Body Tumor Response Heterogeneity"]),
    # 004: "*Cancer Medicine*" and "© 2025" (line 36), title (line 6)
    "pavel2025": ("004_", ["Cancer Med", "2025", "Relationship Between Best Tumor Shrinkage"]),
}
#: Facts of cited papers taken from another seed's reference list.
CROSS_SEED_FACTS = {
    # 001 line 284: "Sundlov A, Gleisner KS, ... Eur J Nucl Med Mol Imaging*. 2022;49:3830–3840."
    "sundlov2022": ("001_", ["Eur J Nucl Med Mol Imaging", "2022;49:3830–3840"]),
    # 002 line 334: "Hanscheid H, Lapa C, Buck AK, Lassmann M, Werner RA. Dose mapping after endoradiotherapy
    # with (177)Lu-DOTATATE/DOTATOC by a single measurement after 4 days. *J Nucl Med*. 2017;59(1):75–81."
    "hanscheid2018": ("002_", ["Lapa C, Buck AK, Lassmann M, Werner RA", "by a single measurement after 4 days",
                               "J Nucl Med", "59(1):75–81"]),
}
#: Papers not in the seeds: fields from the retrieved records named in references.py.
RECORD_FACTS = {
    "gear2018": ["Eur J Nucl Med Mol Imaging", "2018", "45(13):2456–2474", "10.1007/s00259-018-4136-7"],  # PMID 30218316
    "pavel2025": ["14(9):e70744", "10.1002/cam4.70744"],  # PMID 40272146
    "schneider2000": ["Phys Med Biol", "459–478", "10.1088/0031-9155/45/2/314"],
    "madsen2018": ["Med Phys", "2018", "10.1002/mp.12886"],
}


def _norm(text: str) -> str:
    """Case-, whitespace- and Markdown-emphasis-insensitive text for fact matching (seed texts carry Markdown)."""
    text = unicodedata.normalize("NFC", text).replace("*", "")
    return re.sub(r"\s+", " ", text).casefold()


def _seed_text(prefix: str) -> str:
    files = sorted(SEEDS.glob(prefix + "*.txt"))
    assert len(files) == 1, f"{SEEDS}: expected one {prefix}*.txt, found {files}"
    return files[0].read_text(encoding="utf-8")


def _all_facts():
    for table in (SEED_FACTS, CROSS_SEED_FACTS):
        for key, (prefix, facts) in table.items():
            for fact in facts:
                yield key, prefix, fact


@pytest.mark.parametrize("key, prefix, fact", list(_all_facts()))
def test_reference_entry_carries_seed_fact(key, prefix, fact):
    """Runs without the seeds: the copied header facts are in references.py's citation."""
    assert _norm(fact) in _norm(REFERENCES[key]["full"]), (key, fact)


@pytest.mark.skipif(not SEEDS.is_dir(), reason=f"{SEEDS} not available (facts checked against copies only)")
@pytest.mark.parametrize("key, prefix, fact", list(_all_facts()))
def test_seed_text_carries_copied_fact(key, prefix, fact):
    """With the seeds: every copied fact really is in the seed paper's text."""
    assert _norm(fact) in _norm(_seed_text(prefix)), (key, prefix, fact)


@pytest.mark.parametrize("key", sorted(RECORD_FACTS))
def test_reference_entry_carries_record_facts(key):
    full = REFERENCES[key]["full"]
    for fact in RECORD_FACTS[key]:
        assert fact in full, (key, fact)


@pytest.mark.parametrize("key", sorted(REFERENCES))
def test_structured_fields_agree_with_citation_text(key):
    ref = REFERENCES[key]
    assert ref["journal"] in ref["full"] and str(ref["year"]) in ref["full"]
    assert ref["short"] == cite(key)
    assert ref["short"].endswith(f"{ref['journal']} {ref['year']}"), ref["short"]
    if ref["doi"] is None:
        assert "doi:" not in ref["full"], "an unverified DOI must not be printed"
    else:
        assert re.fullmatch(r"10\.\d{4,5}/\S+", ref["doi"]) and f"doi:{ref['doi']}" in ref["full"]


def test_reference_list_has_every_entry_once():
    refs = reference_list()
    assert len(refs) == len(REFERENCES) == len(set(refs))
    assert not any(re.search(r"seed\s*0\d\d", r, re.IGNORECASE) for r in refs)
