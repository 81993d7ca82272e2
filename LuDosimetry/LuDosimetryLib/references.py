"""Full citations of the papers the methods and planning rules follow (cited in reports, summaries and help).

``REFERENCES`` maps a short key to the citation: ``short`` (in-text form), ``full`` (authors, title,
journal, year, volume, pages, DOI), ``used_for`` and the bibliographic fields ``journal``, ``year``
and ``doi`` (``None`` where no source at hand confirms it). Every field was checked against the paper
itself (the copies in /work/shared/seeds, whose first page carries authors, journal, year, volume and
DOI) or against a retrieved bibliographic record (PubMed / publisher / institutional repository page);
the comment above each entry says which. A field that could not be confirmed is left out rather than
guessed. ``Testing/test_references.py`` checks the seed-paper entries against the seed texts.

``cite(key)`` gives the short form "Macsuka et al., J Nucl Med 2026" used in running text;
``reference_list(keys)`` the numbered list for a report.
"""

from __future__ import annotations

REFERENCES = {
    # Checked against the paper (seed 000_31e744cf461754bc.txt): author list and title (lines 3-5),
    # "J Nucl Med 2026; 00:1–7" (line 13: no volume or pages yet), "DOI: 10.2967/jnumed.125.271039" (line 15).
    "macsuka2026": {
        "short": "Macsuka et al., J Nucl Med 2026",
        "full": "Macsuka MJ, Driscoll B, Yeung IWT, Publicover J, Metser U, Juergens R, Myrehaug SD, Laidley D, "
                "Wong RK, McGowan DR, Vallis KA. Cumulative absorbed dose and successive cyclic reduction in "
                "absorbed dose predict response to 177Lu-DOTATATE in neuroendocrine tumors. J Nucl Med. 2026 "
                "(online ahead of print). doi:10.2967/jnumed.125.271039",
        "journal": "J Nucl Med", "year": 2026, "doi": "10.2967/jnumed.125.271039",
        "used_for": "time-activity model (Eq. 1), 23 Gy cumulative kidney-dose planning rule, "
                    "minimum tumour volume, cAD, ΔAD/AA and AD/AA; population T_eff of kidneys and tumours "
                    "(Table 2)",
    },
    # Authors and title: the paper (seed 002_874ae17bed83e55e.txt, lines 6-8; "Published online: 22 April
    # 2022"). The seed text spells the second author "Sjögren Gleisner"; the publisher page
    # (springermedizin.de/20334116) and Lund University's record spell "Sjögreen Gleisner", used here.
    # Journal, volume, pages: Hebert et al. 2024 reference 20 (seed 001, line 284: "Eur J Nucl Med Mol
    # Imaging. 2022;49:3830–3840"). DOI: not printed in the seed and not confirmed by any retrieved
    # record, so omitted.
    "sundlov2022": {
        "short": "Sundlöv et al., Eur J Nucl Med Mol Imaging 2022",
        "full": "Sundlöv A, Sjögreen Gleisner K, Tennvall J, Ljungberg M, Warfvinge CF, Holgersson K, "
                "Hallqvist A, Bernhardt P, Svensson J. Phase II trial demonstrates the efficacy and safety of "
                "individualized, dosimetry-based 177Lu-DOTATATE treatment of NET patients. Eur J Nucl Med Mol "
                "Imaging. 2022;49:3830–3840.",
        "journal": "Eur J Nucl Med Mol Imaging", "year": 2022, "doi": None,
        "used_for": "renal BED planning rule (7.4 GBq cycles up to a renal BED of 27 ± 2 Gy; α/β 2.6 Gy, "
                    "repair half-time 2.8 h)",
    },
    # Checked against the paper (seed 001_c388860e2957777d.txt): authors and title (lines 3-5; the seed's
    # "Géliibert" is a transcription slip for Gélibert), "J Nucl Med 2024; 65:923–930" (line 14),
    # "DOI: 10.2967/jnumed.123.267023" (line 16).
    "hebert2024": {
        "short": "Hebert et al., J Nucl Med 2024",
        "full": "Hebert K, Santoro L, Monnier M, Castan F, Berkane I, Assénat E, Fersing C, Gélibert P, Pouget JP, "
                "Bardiès M, Kotzki PO, Deshayes E. Absorbed dose–response relationship in patients with "
                "gastroenteropancreatic neuroendocrine tumors treated with [177Lu]Lu-DOTATATE: one step closer "
                "to personalized medicine. J Nucl Med. 2024;65:923–930. doi:10.2967/jnumed.123.267023",
        "journal": "J Nucl Med", "year": 2024, "doi": "10.2967/jnumed.123.267023",
        "used_for": "single-time-point (ratio) dosimetry of later cycles and tumour dose–response",
    },
    # Checked against the journal's citation record (seed 003_e643cb18028176be.txt): T1 title, JO J Nucl Med,
    # SP 565 OP 571, DO 10.2967/jnumed.124.267809, VO 66, IS 4, A1 authors, YR 2025.
    "santoro2025": {
        "short": "Santoro-Fernandes et al., J Nucl Med 2025",
        "full": "Santoro-Fernandes V, Schott B, Weisman AJ, Lokre O, Cho SY, Perlman SB, Perk TG, Jeraj R. "
                "Full-body tumor response heterogeneity of metastatic neuroendocrine tumor patients undergoing "
                "peptide receptor radiopharmaceutical therapy. J Nucl Med. 2025;66(4):565–571. "
                "doi:10.2967/jnumed.124.267809",
        "journal": "J Nucl Med", "year": 2025, "doi": "10.2967/jnumed.124.267809",
        "used_for": "lesion-level response categories and tracking of lesions across cycles",
    },
    # Authors, title, journal and year: the paper (seed 004_b8e78065f58d8399.txt, lines 6-10 and line 36
    # "© 2025 ... Cancer Medicine"). Volume, article number and DOI are not printed in the seed; taken from
    # the PubMed record (PMID 40272146: "Cancer Med. 2025 May;14(9):e70744. doi: 10.1002/cam4.70744").
    "pavel2025": {
        "short": "Pavel et al., Cancer Med 2025",
        "full": "Pavel M, Caplin ME, Ruszniewski P, Hertelendi M, Krenning EP, Strosberg JR, on behalf of the "
                "NETTER-1 Study Group. Relationship between best tumor shrinkage and progression-free survival "
                "and overall survival in patients with progressive midgut neuroendocrine tumors treated with "
                "[177Lu]Lu-DOTA-TATE: ad hoc analysis of the phase III NETTER-1 trial. Cancer Med. "
                "2025;14(9):e70744. doi:10.1002/cam4.70744",
        "journal": "Cancer Med", "year": 2025, "doi": "10.1002/cam4.70744",
        "used_for": "tumour shrinkage and survival",
    },
    # Not in the seeds. PubMed record (PMID 30218316): "Eur J Nucl Med Mol Imaging. 2018 Dec;45(13):2456-2474.
    # doi: 10.1007/s00259-018-4136-7", title, first author "Jonathan I Gear et al."; the publisher page
    # (rd.springer.com/article/10.1007/s00259-018-4136-7) and PMC6208822 carry the same text. The full
    # author list was not in the retrieved records, so only the first author is given.
    "gear2018": {
        "short": "Gear et al., Eur J Nucl Med Mol Imaging 2018",
        "full": "Gear JI, et al. EANM practical guidance on uncertainty analysis for molecular radiotherapy "
                "absorbed dose calculations. Eur J Nucl Med Mol Imaging. 2018;45(13):2456–2474. "
                "doi:10.1007/s00259-018-4136-7",
        "journal": "Eur J Nucl Med Mol Imaging", "year": 2018, "doi": "10.1007/s00259-018-4136-7",
        "used_for": "propagation of the absorbed-dose uncertainty",
    },
    # Not in the seeds as a paper; authors, title, journal, volume(issue) and pages from Sundlöv et al. 2022
    # reference 31 (seed 002, line 334: "... by a single measurement after 4 days. J Nucl Med.
    # 2017;59(1):75–81" – 2017 is the online year; volume 59 is the 2018 volume of J Nucl Med, as 65 is 2024's).
    # DOI from the rpt_dosi documentation (github.com/dsarrut/rpt_dosi, "hanscheid2018": 10.2967/jnumed.117.193706).
    "hanscheid2018": {
        "short": "Hänscheid et al., J Nucl Med 2018",
        "full": "Hänscheid H, Lapa C, Buck AK, Lassmann M, Werner RA. Dose mapping after endoradiotherapy with "
                "177Lu-DOTATATE/DOTATOC by a single measurement after 4 days. J Nucl Med. 2018;59(1):75–81. "
                "doi:10.2967/jnumed.117.193706",
        "journal": "J Nucl Med", "year": 2018, "doi": "10.2967/jnumed.117.193706",
        "used_for": "single-time-point time-integrated activity (one scan after about 4 days)",
    },
    # Not in the seeds. Only first author, year and DOI are confirmed (rpt_dosi documentation,
    # github.com/dsarrut/rpt_dosi: method "madsen2018", DOI 10.1002/mp.12886, a Medical Physics DOI); the
    # title, co-authors, volume and pages were not found in any retrieved record and are omitted.
    "madsen2018": {
        "short": "Madsen et al., Med Phys 2018",
        "full": "Madsen et al. Med Phys. 2018. doi:10.1002/mp.12886 (single-time-point dose estimate; title "
                "and pages not verified)",
        "journal": "Med Phys", "year": 2018, "doi": "10.1002/mp.12886",
        "used_for": "single-time-point integral with a known effective half-life, A(t)·e^(kt)/k",
    },
    # Not in the seeds. Bibliographic record (120.26.44.124 mirror of Web of Science): authors Schneider W,
    # Bortfeld T, Schlegel W; title; pages 459–478; DOI 10.1088/0031-9155/45/2/314 (Phys Med Biol vol 45,
    # issue 2, the 2000 volume).
    "schneider2000": {
        "short": "Schneider et al., Phys Med Biol 2000",
        "full": "Schneider W, Bortfeld T, Schlegel W. Correlation between CT numbers and tissue parameters needed "
                "for Monte Carlo simulations of clinical dose distributions. Phys Med Biol. 2000;45(2):459–478. "
                "doi:10.1088/0031-9155/45/2/314",
        "journal": "Phys Med Biol", "year": 2000, "doi": "10.1088/0031-9155/45/2/314",
        "used_for": "CT number (HU) to mass density",
    },
}


def cite(key: str) -> str:
    """Short in-text citation ("Macsuka et al., J Nucl Med 2026") of ``key`` in :data:`REFERENCES`."""
    return REFERENCES[key]["short"]


def reference_list(keys=None) -> list[str]:
    """Full citations of ``keys`` (all references when None), in the given order."""
    return [REFERENCES[k]["full"] for k in (keys or REFERENCES)]
