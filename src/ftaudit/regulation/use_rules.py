"""The use-based rules of the AI Act, as data: Art. 5 prohibited practices, Annex III high-risk areas, the Art. 6(3)
exception conditions and the Art. 50 transparency duties (docs/regulation.md §3).

Each entry carries its citation and a few *indicator* phrases. An indicator found in the stated intended purpose is
a prompt for a human to look closer, never a legal finding: the classification stays "provisional" until a person
answers the questions (`ftaudit docs --answers`). Matching is deliberately plain (lower-case word-boundary phrases)
so that a reviewer can see exactly why a flag was raised.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ftaudit.regulation.citations import AI_ACT

DIGITAL_OMNIBUS_NOTE = ("Reading: the 2026 'digital omnibus' amendment (adopted by the Council 29 June 2026) moves "
                        "the Annex III high-risk duties to 2 December 2027.")


@dataclass(frozen=True)
class UseRule:
    id: str
    title: str
    citation: str
    indicators: tuple[str, ...]


# Art. 5(1)(a)–(h): the practices are prohibited whatever the compute or the role.
ART5_PRACTICES: tuple[UseRule, ...] = (
    UseRule("art5_1_a", "Subliminal, manipulative or deceptive techniques that materially distort behaviour",
            f"{AI_ACT}, Art. 5(1)(a)", ("manipulat", "subliminal", "deceive users", "dark pattern", "persuade")),
    UseRule("art5_1_b", "Exploiting vulnerabilities due to age, disability or social or economic situation",
            f"{AI_ACT}, Art. 5(1)(b)", ("vulnerab", "children", "elderly", "disabilit", "debt")),
    UseRule("art5_1_c", "Social scoring leading to detrimental or unfavourable treatment",
            f"{AI_ACT}, Art. 5(1)(c)", ("social scor", "social credit", "trustworthiness score", "citizen score")),
    UseRule("art5_1_d", "Predicting a person's risk of committing a crime from profiling or personality traits alone",
            f"{AI_ACT}, Art. 5(1)(d)", ("predict crime", "crime predict", "predictive policing", "reoffend",
                                        "criminal risk")),
    UseRule("art5_1_e", "Untargeted scraping of facial images to build facial recognition databases",
            f"{AI_ACT}, Art. 5(1)(e)", ("facial image", "face scrap", "facial recognition database")),
    UseRule("art5_1_f", "Inferring emotions in the workplace or in education (except medical or safety reasons)",
            f"{AI_ACT}, Art. 5(1)(f)", ("emotion", "sentiment of employees", "mood of students")),
    UseRule("art5_1_g", "Biometric categorisation inferring race, political opinions, trade union membership, "
            "religious or philosophical beliefs, sex life or sexual orientation", f"{AI_ACT}, Art. 5(1)(g)",
            ("biometric categoris", "infer race", "infer sexual orientation", "infer religion",
             "infer philosophical belief", "infer political opinion")),
    UseRule("art5_1_h", "Real-time remote biometric identification in public spaces for law enforcement",
            f"{AI_ACT}, Art. 5(1)(h)", ("real-time biometric", "remote biometric identification", "live facial")),
)

# Annex III points 1–8 (Art. 6(2)).
ANNEX_III_AREAS: tuple[UseRule, ...] = (
    UseRule("1", "Biometrics (remote identification, categorisation, emotion recognition)",
            f"{AI_ACT}, Annex III point 1", ("biometric", "facial", "fingerprint", "voice identification")),
    UseRule("2", "Critical infrastructure (safety components of digital infrastructure, traffic, water, gas, heating, "
            "electricity)", f"{AI_ACT}, Annex III point 2",
            ("critical infrastructure", "power grid", "electricity", "water supply", "traffic control")),
    UseRule("3", "Education and vocational training (admission, evaluating learning outcomes, proctoring)",
            f"{AI_ACT}, Annex III point 3", ("admission", "exam", "grading", "student", "proctor")),
    UseRule("4", "Employment and workers management (recruitment, promotion, termination, task allocation, "
            "monitoring)", f"{AI_ACT}, Annex III point 4",
            ("recruit", "hiring", "job applica", "cv screening", "candidate", "employee", "promotion")),
    UseRule("5", "Access to essential private and public services (public benefits, creditworthiness, life and "
            "health insurance pricing, emergency call triage)", f"{AI_ACT}, Annex III point 5",
            ("credit", "loan", "benefit", "insurance", "emergency", "triage", "welfare")),
    UseRule("6", "Law enforcement", f"{AI_ACT}, Annex III point 6", ("police", "law enforcement", "evidence "
                                                                     "reliability", "investigation")),
    UseRule("7", "Migration, asylum and border control management", f"{AI_ACT}, Annex III point 7",
            ("migration", "asylum", "visa", "border")),
    UseRule("8", "Administration of justice and democratic processes (courts, elections)",
            f"{AI_ACT}, Annex III point 8", ("court", "judge", "judicial", "election", "voting", "legal dispute")),
)
ANNEX_III_IDS = tuple(a.id for a in ANNEX_III_AREAS)

# Art. 6(3) first subparagraph (a)–(d): an Annex III system is not high-risk if it does not pose a significant risk
# and one of these holds; second subparagraph: never when it profiles natural persons.
ART6_3_CONDITIONS: tuple[tuple[str, str, str], ...] = (
    ("art6_3_narrow_procedural_task", "It performs a narrow procedural task", f"{AI_ACT}, Art. 6(3)(a)"),
    ("art6_3_improves_completed_human_activity", "It improves the result of a previously completed human activity",
     f"{AI_ACT}, Art. 6(3)(b)"),
    ("art6_3_detects_patterns_without_replacing_review", "It detects decision-making patterns or deviations and is "
     "not meant to replace or influence the completed human assessment without proper human review",
     f"{AI_ACT}, Art. 6(3)(c)"),
    ("art6_3_preparatory_task", "It performs a preparatory task to an assessment relevant to an Annex III use case",
     f"{AI_ACT}, Art. 6(3)(d)"),
)
ART6_3_PROFILING = ("art6_3_profiling", "It performs profiling of natural persons (then always high-risk)",
                    f"{AI_ACT}, Art. 6(3) second subparagraph")


@dataclass(frozen=True)
class TransparencyDuty:
    id: str
    question: str | None  # the answers key; None when the duty follows from what the model is
    title: str
    duty: str
    citation: str
    indicators: tuple[str, ...] = ()


ART50_DUTIES: tuple[TransparencyDuty, ...] = (
    TransparencyDuty("art50_1", "interacts_with_natural_persons", "Systems that interact directly with people",
                     "Inform people that they are interacting with an AI system, unless obvious from the context.",
                     f"{AI_ACT}, Art. 50(1)", ("chat", "assistant", "customer", "conversation", "reply", "agent")),
    TransparencyDuty("art50_2", None, "Systems that generate synthetic text, audio, image or video",
                     "Mark the outputs in a machine-readable format and make them detectable as artificially "
                     "generated (not for assistive standard editing that does not substantially alter the input).",
                     f"{AI_ACT}, Art. 50(2)"),
    TransparencyDuty("art50_3", "emotion_recognition_or_biometric_categorisation",
                     "Emotion recognition or biometric categorisation systems",
                     "Inform the people exposed to it of the operation of the system (deployer duty).",
                     f"{AI_ACT}, Art. 50(3)", ("emotion", "biometric")),
    TransparencyDuty("art50_4", "generates_deepfakes_or_public_interest_text",
                     "Deep fakes, and text published to inform the public on matters of public interest",
                     "Disclose that the content has been artificially generated or manipulated (deployer duty).",
                     f"{AI_ACT}, Art. 50(4)", ("news", "deepfake", "deep fake", "press release", "journalis")),
)


def indicator_hits(text: str, indicators: tuple[str, ...]) -> list[str]:
    """The indicator phrases found at a word start in `text` (case-insensitive), in table order."""
    low = text.lower()
    return [ind for ind in indicators if re.search(r"\b" + re.escape(ind.lower()), low)]
