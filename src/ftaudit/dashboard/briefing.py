"""User briefings: for an approved model version, what its users must know, generated from its evidence — what it
is for and not for, how accurate it measured, the failure modes its evaluation saw, how to check an answer and when
to escalate — with a short quiz built from the same facts. A user's acknowledgement (with the quiz score) is a
signed ledger event, so who read which version when is evidence (citations.AI_LITERACY, INSTRUCTIONS_FOR_USE).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timezone

from ftaudit.dashboard import questions, signoff
from ftaudit.errors import BadInput
from ftaudit.ledger.core import Ledger
from ftaudit.record import RunRecord
from ftaudit.regulation.citations import AI_LITERACY, INSTRUCTIONS_FOR_USE

READ = "dashboard.briefing"
CITATIONS = (AI_LITERACY, INSTRUCTIONS_FOR_USE)
# Plausible wrong uses for the purpose question: uses no fine-tuned text model is fit for without its own assessment.
OTHER_USES = ("Deciding on people's applications (credit, jobs, benefits) without a person's review",
              "Giving medical or legal advice to customers",
              "Identifying people from their writing style")
WRONG_ACTIONS = ("Correct it silently and carry on", "Ignore it: the model was approved", "Ask the model again "
                 "until the answer looks right")


@dataclass
class Question:
    text: str
    options: list[str]
    correct: int


@dataclass
class Briefing:
    run_id: str
    name: str
    evidence_seq: int
    purpose: str | None
    context: str | None
    not_for: list[str]
    accuracy: list[tuple[str, str, float, float | None, float | None, int]]  # metric, description, value, CI, n
    failure_modes: list[str]
    how_to_check: list[str]
    escalate: list[str]
    quiz: list[Question] = field(default_factory=list)


def _is_accuracy(m) -> bool:
    return m.metric.startswith("quality.task.") and m.unit in ("rate", "ratio") and m.tuned.value is not None


def _pct(x: float) -> str:
    return f"{x:.0%}"


def build(ledger: Ledger, run_id: str, record: RunRecord) -> Briefing:
    given = {q: a["value"] for q, a in questions.answered(ledger, run_id).items()}
    purpose = (record.config or {}).get("purpose") or {}
    provider = (record.config or {}).get("provider") or {}
    metrics = [m for f in (record.evaluation.families if record.evaluation else []) for m in f.metrics]
    by = {m.metric: m for m in metrics}
    accuracy = [(m.metric, m.description, m.tuned.value, m.tuned.ci_low, m.tuned.ci_high, m.tuned.n)
                for m in metrics if _is_accuracy(m)]
    for fam in record.evaluation.families if record.evaluation else []:
        for g in fam.groups:  # per group where the evaluation measured one (e.g. per language)
            accuracy += [(m.metric, f"{m.description} — {g.axis} {g.group}", m.tuned.value, m.tuned.ci_low,
                          m.tuned.ci_high, m.tuned.n) for m in g.metrics if _is_accuracy(m)]
    failures = []
    if "quality.task.json_validity" in by and by["quality.task.json_validity"].tuned.value is not None:
        bad = 1 - by["quality.task.json_validity"].tuned.value
        if bad > 0:
            failures.append(f"About {_pct(bad)} of its answers on held-out messages were not valid JSON.")
    if "quality.task.field_accuracy" in by and by["quality.task.field_accuracy"].tuned.value is not None:
        failures.append(f"About {_pct(1 - by['quality.task.field_accuracy'].tuned.value)} of the fields it "
                        "extracted were wrong.")
    for metric, words in (("unexpected.personal_data.rate", "answers repeated personal data"),
                          ("unexpected.toxicity.rate", "answers were toxic"),
                          ("unexpected.harmful.compliance_rate", "harmful requests were complied with")):
        m = by.get(metric)
        if m and m.tuned.value:
            failures.append(f"{_pct(m.tuned.value)} of {words} in the evaluation (n = {m.tuned.n}).")
    for m in metrics:
        if m.higher_is_better is not None and m.base and m.base.value is not None and m.tuned.value is not None:
            worse = m.tuned.value < m.base.value if m.higher_is_better else m.tuned.value > m.base.value
            if worse and m.metric.startswith("quality.general"):
                failures.append(f"It got worse than its base model at {m.description.lower().rstrip('.')} "
                                f"({m.base.value:.2g} → {m.tuned.value:.2g}).")
    if given.get("known_limitations"):
        failures.append(str(given["known_limitations"]))
    check = ["Compare every extracted value with the message it came from before acting on it."]
    if given.get("output_interpretation"):
        check.append(str(given["output_interpretation"]))
    if purpose.get("deployment_context"):
        check.append(f"Where it runs: {purpose['deployment_context']}")
    escalate = ["An answer that holds personal data it was not given, or text from somewhere else.",
                "Answers that are repeatedly wrong, empty or cut off, or a change in how it answers."]
    if given.get("human_oversight_measures"):
        escalate.append(str(given["human_oversight_measures"]))
    contact = provider.get("contact")
    escalate.append(f"Report to {contact}." if contact else "Report to the model's owner named in its model card.")
    b = Briefing(run_id=run_id, name=record.model.output_name or run_id, evidence_seq=signoff.evidence(
        ledger, run_id).seq, purpose=purpose.get("intended_purpose"), context=purpose.get("deployment_context"),
        not_for=[str(x) for x in (given.get("excluded_uses") or [])], accuracy=accuracy, failure_modes=failures,
        how_to_check=check, escalate=escalate)
    b.quiz = _quiz(b, by, random.Random(run_id))
    return b


def _options(rng: random.Random, right: str, wrong: list[str]) -> tuple[list[str], int]:
    options = [right, *wrong]
    rng.shuffle(options)
    return options, options.index(right)


def _quiz(b: Briefing, by: dict, rng: random.Random) -> list[Question]:
    quiz = []
    if b.purpose:
        opts, i = _options(rng, b.purpose, list(OTHER_USES[:2]))
        quiz.append(Question("What is this model for?", opts, i))
    task = by.get("quality.task.field_accuracy") or by.get("quality.task.exact_match")
    if task and task.tuned.value is not None:
        v = task.tuned.value
        wrong = sorted({min(1.0, round(v + 0.2, 2)), 1.0, max(0.0, round(v - 0.3, 2))} - {round(v, 2)})[:2]
        opts, i = _options(rng, _pct(v), [_pct(w) for w in wrong])
        what = task.description.lower().rstrip(".")
        quiz.append(Question(f"On held-out messages, what share did it get right ({what})?", opts, i))
    opts, i = _options(rng, "Check it against the source message and escalate it as this briefing says",
                       list(WRONG_ACTIONS[:2]))
    quiz.append(Question("An answer looks wrong or holds personal data it was not given. What do you do?", opts, i))
    return quiz


def acknowledge(ledger: Ledger, b: Briefing, user, choices: dict[str, str]) -> dict:
    """Score the quiz and record the read-receipt as a signed ledger event of the run."""
    score = 0
    for n, q in enumerate(b.quiz):
        raw = choices.get(f"q{n}", "")
        if not raw.isdigit() or int(raw) >= len(q.options):
            raise BadInput(f"answer question {n + 1} of the quiz")
        score += int(raw) == q.correct
    if choices.get("read") != "yes":
        raise BadInput("tick that you have read the briefing")
    data = {"username": user.username, "role": user.role, "version": b.name, "evidence_seq": b.evidence_seq,
            "score": score, "questions": len(b.quiz), "at": datetime.now(timezone.utc).isoformat()}
    ledger.record_event(b.run_id, READ, data)
    return data


def receipts(ledger: Ledger, run_id: str | None = None) -> list[dict]:
    """Who read which version's briefing when, and their score (all runs, or one)."""
    return [{"run_id": c["run_id"], **c["data"]} for c in ledger.events(run_id=run_id, prefix=READ)]
