"""What each GPAI role owes (docs/regulation.md §2), as data with citations.

A downstream modifier that stays below its threshold owes nothing under Art. 53–55 for the model itself; the
original provider keeps those obligations. A modifier that becomes a provider owes them limited to the modification
(recital 109) when the original was itself a GPAI model whose provider carries the rest.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from ftaudit.regulation.citations import CODE_OF_PRACTICE, act, dsm, template
from ftaudit.regulation.thresholds import NOTIFICATION_DEADLINE_DAYS

Role = Literal["downstream_modifier", "gpai_provider", "gpai_provider_systemic_risk"]
ROLES: tuple[str, ...] = ("downstream_modifier", "gpai_provider", "gpai_provider_systemic_risk")

OPEN_SOURCE_NOTE = (
    "Exempt when the model is released under a free and open-source licence with its weights, architecture and "
    "usage information public (Art. 53(2)); the exemption does not apply to models with systemic risk."
)
OPEN_SOURCE_NOTE_SYSTEMIC = "No open-source exemption: the model has systemic risk (Art. 53(2), Art. 54(6))."


class Obligation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    article: str = Field(description="Short reference, e.g. 'Art. 53(1)(a)'.")
    title: str
    citation: str = Field(description="Full citation a reader can check.")
    applies_because: str
    scope: Literal["modification", "whole_model"] = Field(
        description="'modification' when recital 109 limits the duty to the modification; 'whole_model' otherwise."
    )
    open_source_exempt: bool = Field(description="Whether an open-source release exempts this duty (Art. 53(2)).")
    note: str = ""


def obligations_for(role: str, *, scope: Literal["modification", "whole_model"], because: str,
                    established_in_eu: bool | None = None) -> list[Obligation]:
    """The obligations of `role`, each with the reason it applies. `because` names the crossing that caused it.

    Art. 54 (an authorised representative) binds only a provider established outside the Union: it is listed
    unless `established_in_eu` is True, and conditionally while the establishment is not known (None).
    """
    if role == "downstream_modifier":
        return []
    systemic = role == "gpai_provider_systemic_risk"
    exempt_note = OPEN_SOURCE_NOTE_SYSTEMIC if systemic else OPEN_SOURCE_NOTE
    scope_text = (
        "limited to the modification (recital 109)" if scope == "modification" else "covering the whole model"
    )
    provider = "provider of a GPAI model with systemic risk" if systemic else "provider of a GPAI model"
    why = f"{because}; you are the {provider}, {scope_text}"

    def ob(article: str, title: str, citation: str, *, exempt: bool, note: str = "") -> Obligation:
        return Obligation(
            article=article,
            title=title,
            citation=citation,
            applies_because=why,
            scope=scope,
            open_source_exempt=exempt and not systemic,
            note=note,
        )

    out = [
        ob(
            "Art. 53(1)(a)",
            "Technical documentation of the model (Annex XI §1" + (" and §2)" if systemic else ")"),
            act("Art. 53(1)(a), Annex XI; recital 109"),
            exempt=True,
            note=exempt_note,
        ),
        ob(
            "Art. 53(1)(b)",
            "Information and documentation for downstream providers (Annex XII)",
            act("Art. 53(1)(b), Annex XII; recital 109"),
            exempt=True,
            note=exempt_note,
        ),
        ob(
            "Art. 53(1)(c)",
            "Policy to comply with Union copyright law, honouring text-and-data-mining opt-outs",
            f"{act('Art. 53(1)(c)')}; {dsm('Art. 4(3)')}",
            exempt=False,
            note=f"Measures in the {CODE_OF_PRACTICE} are one way to show compliance; ftaudit writes the "
            "policy as docs/copyright_policy.md.",
        ),
        ob(
            "Art. 53(1)(d)",
            "Public summary of the content used for training, on the AI Office template",
            f"{act('Art. 53(1)(d)')}; {template('§1–3')}",
            exempt=False,
        ),
    ]
    if established_in_eu is not True:
        out.append(ob(
            "Art. 54",
            "Authorised representative in the Union" + ("" if established_in_eu is False else
                                                         ", if the provider is established outside the EU"),
            act("Art. 54(1)"),
            exempt=True,
            note=(OPEN_SOURCE_NOTE_SYSTEMIC if systemic else "Open-source models are exempt unless they have "
                  "systemic risk (Art. 54(6))."),
        ))
    if systemic:
        out.insert(
            0,
            ob(
                "Art. 52(1)",
                f"Notify the Commission within {NOTIFICATION_DEADLINE_DAYS} days (two weeks) of meeting the "
                "systemic-risk condition or of knowing that it will be met",
                act("Art. 52(1); recital 112"),
                exempt=False,
                note="The notification may argue that the model exceptionally does not present systemic risks "
                "(Art. 52(2)).",
            ),
        )
        out.append(
            ob(
                "Art. 55(1)(a)–(d)",
                "Evaluate the model with state-of-the-art protocols incl. adversarial testing; assess and mitigate "
                "systemic risks; track and report serious incidents to the AI Office; ensure cybersecurity of the "
                "model and its infrastructure",
                act("Art. 55(1)(a)–(d)"),
                exempt=False,
            )
        )
    return out
