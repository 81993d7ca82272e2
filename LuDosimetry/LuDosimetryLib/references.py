"""Full citations of the papers the methods and planning rules follow (cited in reports, summaries and help).

``REFERENCES`` maps a short key to the citation text (authors, title, journal, year, volume, pages,
DOI where known; taken from the papers themselves where available). ``cite(key)`` gives the short
form "Macsuka et al., J Nucl Med 2026" used in running text; ``reference_list(keys)`` the numbered
list for a report.
"""

from __future__ import annotations

REFERENCES = {
    "macsuka2026": {
        "short": "Macsuka et al., J Nucl Med 2026",
        "full": "Macsuka MJ, Driscoll B, Yeung IWT, Publicover J, Metser U, Juergens R, Myrehaug SD, Laidley D, "
                "Wong RK, McGowan DR, Vallis KA. Cumulative absorbed dose and successive cyclic reduction in "
                "absorbed dose predict response to 177Lu-DOTATATE in neuroendocrine tumors. J Nucl Med. 2026 "
                "(online ahead of print). doi:10.2967/jnumed.125.271039",
        "used_for": "time-activity model (Eq. 1), 23 Gy cumulative kidney-dose planning rule, "
                    "minimum tumour volume, cAD, ΔAD/AA and AD/AA",
    },
    "sundlov2022": {
        "short": "Sundlöv et al., Eur J Nucl Med Mol Imaging 2022",
        "full": "Sundlöv A, Sjögren Gleisner K, Tennvall J, Ljungberg M, Warfvinge CF, Holgersson K, Hallqvist A, "
                "Bernhardt P, Svensson J. Phase II trial demonstrates the efficacy and safety of individualized, "
                "dosimetry-based 177Lu-DOTATATE treatment of NET patients. Eur J Nucl Med Mol Imaging. "
                "2022;49:3830–3840. doi:10.1007/s00259-022-05786-w",
        "used_for": "renal BED planning rule (7.4 GBq cycles up to a renal BED of 27 ± 2 Gy; α/β 2.6 Gy, "
                    "repair half-time 2.8 h)",
    },
    "hebert2024": {
        "short": "Hebert et al., J Nucl Med 2024",
        "full": "Hebert K, Santoro L, Monnier M, Castan F, Berkane I, Assénat E, Fersing C, Gélibert P, Pouget JP, "
                "Bardiès M, Kotzki PO, Deshayes E. Absorbed dose–response relationship in patients with "
                "gastroenteropancreatic neuroendocrine tumors treated with [177Lu]Lu-DOTATATE: one step closer "
                "to personalized medicine. J Nucl Med. 2024;65:923–930. doi:10.2967/jnumed.123.267023",
        "used_for": "single-time-point dosimetry and tumour dose–response thresholds",
    },
    "santoro2025": {
        "short": "Santoro-Fernandes et al., J Nucl Med 2025",
        "full": "Santoro-Fernandes V, Schott B, Weisman AJ, Lokre O, Cho SY, Perlman SB, Perk TG, Jeraj R. "
                "Full-body tumor response heterogeneity of metastatic neuroendocrine tumor patients undergoing "
                "peptide receptor radiopharmaceutical therapy. J Nucl Med. 2025;66(4):565–571. "
                "doi:10.2967/jnumed.124.267809",
        "used_for": "lesion-level response categories and tracking of lesions across cycles",
    },
    "pavel2025": {
        "short": "Pavel et al., Cancer Med 2025",
        "full": "Pavel M, Caplin ME, Ruszniewski P, Hertelendi M, Krenning EP, Strosberg JR, on behalf of the "
                "NETTER-1 Study Group. Relationship between best tumor shrinkage and progression-free survival "
                "and overall survival in patients with progressive midgut neuroendocrine tumors treated with "
                "[177Lu]Lu-DOTA-TATE: ad hoc analysis of the phase III NETTER-1 trial. Cancer Med. 2025.",
        "used_for": "tumour shrinkage and survival",
    },
    "gear2018": {
        "short": "Gear et al., Eur J Nucl Med Mol Imaging 2018",
        "full": "Gear JI, Cox MG, Gustafsson J, Sjögreen Gleisner K, Murray I, Glatting G, Konijnenberg M, "
                "Flux GD. EANM practical guidance on uncertainty analysis for molecular radiotherapy absorbed "
                "dose calculations. Eur J Nucl Med Mol Imaging. 2018;45:2456–2474. "
                "doi:10.1007/s00259-018-4136-7",
        "used_for": "propagation of the absorbed-dose uncertainty",
    },
    "hanscheid2018": {
        "short": "Hänscheid et al., J Nucl Med 2018",
        "full": "Hänscheid H, Lapa C, Buck AK, Lassmann M, Werner RA. Dose mapping after endoradiotherapy with "
                "177Lu-DOTATATE/DOTATOC by a single measurement after 4 days. J Nucl Med. 2018;59(1):75–81. "
                "doi:10.2967/jnumed.117.193706",
        "used_for": "single-time-point time-integrated activity",
    },
}


def cite(key: str) -> str:
    """Short in-text citation ("Macsuka et al., J Nucl Med 2026") of ``key`` in :data:`REFERENCES`."""
    return REFERENCES[key]["short"]


def reference_list(keys=None) -> list[str]:
    """Full citations of ``keys`` (all references when None), in the given order."""
    return [REFERENCES[k]["full"] for k in (keys or REFERENCES)]
