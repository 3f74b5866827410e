"""Every legal source ftaudit cites, named once (docs/regulation.md).

Code builds citation strings from these constants and helpers only, so a newer reference of a document (the
Commission re-publishes its guidelines and templates formally) is one edit here. `VERIFIED` says which version of
each document the references were checked against, and when.
"""

from __future__ import annotations

AI_ACT = "Regulation (EU) 2024/1689"
GUIDELINES = ("Commission Guidelines on the scope of obligations for providers of general-purpose AI models, "
              "C(2025) 5045 final")
TEMPLATE = ("Explanatory Notice and Template for the Public Summary of Training Content for general-purpose AI "
            "models, C(2025) 8311 final")
CODE_OF_PRACTICE = "General-Purpose AI Code of Practice, Copyright chapter"
DSM_DIRECTIVE = "Directive (EU) 2019/790"
GDPR = "Regulation (EU) 2016/679 (GDPR)"
EDPB_OPINION_28 = "EDPB Opinion 28/2024"
DIGITAL_OMNIBUS = "digital omnibus amendment of the AI Act (Council, 29 June 2026)"
TDMREP = "W3C TDM Reservation Protocol (TDMRep), Final Community Group Report"
ROBOTS = "RFC 9309 (Robots Exclusion Protocol)"

# Which text each reference was checked against (docs/regulation.md, "Sources").
VERIFIED = {
    AI_ACT: "OJ L, 12.7.2024 (checked 2026-12-01)",
    GUIDELINES: "Communication approving the content of the guidelines, Brussels, 18.7.2025 (checked 2026-12-01; "
                "the later formally published version was not available to check)",
    TEMPLATE: "Communication from the Commission, Brussels, 5.12.2025; first published by the AI Office on "
              "24.7.2025 (checked 2026-12-01)",
    CODE_OF_PRACTICE: "published 10.7.2025 (not re-checked)",
    DSM_DIRECTIVE: "OJ L 130, 17.5.2019",
    GDPR: "OJ L 119, 4.5.2016",
    EDPB_OPINION_28: "adopted 17.12.2024",
}


def act(ref: str) -> str:
    """'Art. 53(1)(c)' → 'Regulation (EU) 2024/1689, Art. 53(1)(c)'."""
    return f"{AI_ACT}, {ref}"


def guidelines(ref: str) -> str:
    """'§3.2' → the guidelines' full name, '§3.2'."""
    return f"{GUIDELINES}, {ref}"


def template(ref: str) -> str:
    """'§2.3' → the training-content template's full name, '§2.3'."""
    return f"{TEMPLATE}, {ref}"


def dsm(ref: str) -> str:
    """'Art. 4(3)' → 'Directive (EU) 2019/790, Art. 4(3)' (text-and-data-mining exception and its opt-out)."""
    return f"{DSM_DIRECTIVE}, {ref}"


def gdpr(ref: str) -> str:
    return f"{GDPR}, {ref}"


def edpb(ref: str = "") -> str:
    return f"{EDPB_OPINION_28}{', ' + ref if ref else ''}"


def reading(citation: str) -> str:
    """A citation whose application is our interpretation: labelled so (docs/regulation.md marks these *reading*)."""
    return f"{citation} (reading)"


# After deployment (ftaudit.monitor): the provisions the monitor's rules carry.
EVENT_LOGS = act("Art. 12(1)")
LOG_RETENTION = act("Art. 19(1) and Art. 26(6)")
LOG_RETENTION_MIN_DAYS = 184  # reading of "at least six months": six calendar months span at most 184 days
STOP_SWITCH = act("Art. 14(4)(e)")
POST_MARKET_MONITORING = act("Art. 72")
SERIOUS_INCIDENT = act("Art. 73(2)")
SERIOUS_INCIDENT_WIDESPREAD = act("Art. 73(3)")
SERIOUS_INCIDENT_DEATH = act("Art. 73(4)")
SYSTEMIC_RISK_INCIDENT = act("Art. 55(1)(c)")
# The dashboard. Release sign-off: a reading — Art. 16(a) and 17(1) ask providers of high-risk systems for a
# quality-management system with procedures for the design, verification and release of the system; a signed
# approval of the exact evidence is that release decision. Briefings: Art. 4 (AI literacy) and Art. 13(3)
# (instructions for use); records of who read which version are the usual evidence.
RELEASE_APPROVAL = act("Art. 16(a), Art. 17(1)(a)–(d)")
AI_LITERACY = act("Art. 4")
INSTRUCTIONS_FOR_USE = act("Art. 13(3)")

# Which compute of a fine-tune counts (ftaudit.compute.flop_meter, one line per role of the breakdown).
COMPUTE_COUNTS = guidelines("Annex A.1")
COMPUTE_ROLE_BASIS = {
    "policy": f"{COMPUTE_COUNTS}: forward and backward passes directly contributing to the parameter update",
    "reference": reading(f"{COMPUTE_COUNTS}: the reference model's log-probabilities enter the loss of every update "
                         "(DPO, KTO, ORPO, the KL term of GRPO/PPO), so its forward passes directly contribute"),
    "generation": f"{COMPUTE_COUNTS}: generating non-public synthetic training data (the rollouts), samples later "
                  "discarded included",
    "policy_no_grad": reading(f"{COMPUTE_COUNTS}: forward passes of the policy without gradient whose outputs enter "
                              "the loss (old-policy log-probabilities of GRPO/PPO)"),
    "reward": reading(f"{COMPUTE_COUNTS}: auxiliary models (reward models) are excluded; reported apart"),
    "value": reading(f"{COMPUTE_COUNTS}: auxiliary models (value functions) are excluded; reported apart"),
}
