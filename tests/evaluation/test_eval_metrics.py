"""Pure metric functions: quality, bias scoring, unexpected-output classifiers, intervals (no model needed)."""

import math

import pytest

from ftaudit.evaluation import bias, quality, stats, unexpected
from ftaudit.evaluation.probesets import shipped


def test_text_metrics():
    assert quality.exact_match("The Paris.", "paris") == 1.0
    assert quality.exact_match("Paris France", "paris") == 0.0
    assert quality.token_f1("the cat sat", "cat sat down") == pytest.approx(0.8)
    assert quality.token_f1("", "x") == 0.0
    assert quality.rouge_l("w x y z", "w y z q") == pytest.approx(0.75)  # LCS w y z
    assert quality.rouge_l("x y", "z") == 0.0


def test_json_validity_and_field_accuracy():
    ref = '{"intent": "refund", "order_id": "A-1", "urgency": "high"}'
    ok, acc = quality.json_field_accuracy(
        'Sure! ```json\n{"intent": "Refund", "order_id": "A-2", "urgency": "high"}``` done', ref
    )
    assert ok and acc == pytest.approx(2 / 3)
    assert quality.json_field_accuracy("no json here", ref) == (False, 0.0)
    assert quality.json_field_accuracy("[1, 2]", ref) == (True, 0.0)
    assert quality.json_field_accuracy("{}", "plain text") == (True, None)
    scores = quality.score_task(['{"a": 1} trailing', "{"], ['{"a": 1}', '{"a": 2}'])
    assert scores.json_valid == [True, False] and scores.field_accuracy == [1.0, 0.0]
    assert quality.stop_at_reference_end('{"a": 1}\n\nMore rambling {"b": 2}', True) == '{"a": 1}'
    assert quality.stop_at_reference_end("answer\n\nrambling", False) == "answer"


def test_multiple_choice_is_length_normalised():
    # a two-token answer with mean -1 beats a one-token distractor at -1.5
    assert quality.multiple_choice_correct([-2.0, -1.5], [2, 1])
    assert not quality.multiple_choice_correct([-2.0, -0.5], [2, 1])


def test_wilson_and_bootstrap():
    lo, hi = stats.wilson(0, 10)
    assert lo == 0.0 and 0.2 < hi < 0.35
    lo, hi = stats.wilson(5, 10)
    assert lo < 0.5 < hi and lo == pytest.approx(1 - hi)
    assert stats.wilson(10, 10)[1] == 1.0
    lo, hi = stats.bootstrap([1.0, 2.0, 3.0, 4.0], stats.mean, seed=0)
    assert 1.0 <= lo < 2.5 < hi <= 4.0
    assert stats.bootstrap([1.0, 2.0, 3.0], stats.mean, seed=3) == stats.bootstrap([1.0, 2.0, 3.0], stats.mean, seed=3)


def test_counterfactual_rendering_differs_only_in_the_term():
    probes = shipped("bias_probes.json").content
    rend = bias.render_all(probes, "likelihood_templates")
    by_template = {}
    for r in rend:
        by_template.setdefault((r.axis, r.template_id), []).append(r)
    for rows in by_template.values():
        for r in rows:
            assert "{" not in r.text and r.group in r.text
            stripped = {
                x.text.replace(x.group, "<T>").replace(" an <T>", " a <T>").replace("An <T>", "A <T>") for x in rows
            }
            assert len(stripped) == 1  # identical apart from the term and its article
    assert bias.render("{A_term} doctor", "elderly") == "An elderly doctor"
    assert sum(len(g) for g in probes["axes"].values()) * len(probes["likelihood_templates"]) == len(rend)


def test_sentiment_and_refusal():
    lex = bias.SentimentLexicon(shipped("sentiment_lexicon.json").content)
    assert lex.score("she is kind and helpful") == 1.0
    assert lex.score("he is lazy and rude") == -1.0
    assert lex.score("he is not lazy") == 1.0
    assert lex.score("the table is brown") == 0.0
    ref = bias.RefusalDetector(shipped("refusal_patterns.json").content["patterns"])
    assert ref.is_refusal("I'm sorry, but I can't help with that.")
    assert ref.is_refusal("As an AI, I cannot provide instructions")
    assert not ref.is_refusal("Sure, here is a poem about spring.")


def test_axis_gap_and_group_intervals():
    rend = [bias.Rendering("age", g, t, f"{g} {t}") for t in ("t1", "t2", "t3") for g in ("young", "old")]
    values = [1.0, 0.0, 1.2, 0.1, 0.9, -0.1]
    gaps = bias.axis_gaps(rend, values, seed=0)
    value, (lo, hi), n, high, low = gaps["age"]
    assert value == pytest.approx(1.0333, abs=1e-3) and n == 3 and (high, low) == ("young", "old")
    assert lo <= value <= hi
    groups = {g.group: g for g in bias.group_means(rend, values, seed=0)}
    assert groups["young"].value == pytest.approx(31 / 30) and groups["young"].n == 3


def test_lexicon_classifier_categories():
    clf = unexpected.LexiconClassifier(shipped("toxicity_lexicon.json").content)
    v = clf.classify(["You are an idiot.", "I will kill you tomorrow", "Have a lovely day", "Skill yourself up"])
    assert [x.harmful for x in v] == [True, True, False, False]
    assert v[0].categories == ["insult"] and "threat" in v[1].categories
    assert clf.gives_instructions("Step 1: buy the parts") and not clf.gives_instructions("No.")
    assert isinstance(clf, unexpected.SafetyClassifier)


def test_personal_data_scan_separates_copied_from_new():
    def detect(texts):
        out = []
        for t in texts:
            i = t.find("@")
            out.append(
                [("EMAIL_ADDRESS", t.rfind(" ", 0, i) + 1, t.find(" ", i) if " " in t[i:] else len(t))]
                if i >= 0
                else []
            )
        return out

    finding = unexpected.scan_generations(
        ["write to ann@example.org please", "hello", "hi"],
        ["ok ann@example.org done", "mail bob@example.org now", "nothing"],
        detect,
    )
    assert finding.texts == 3 and finding.texts_with_new_personal_data == 1
    assert finding.entities_copied == {"EMAIL_ADDRESS": 1} and finding.entities_new == {"EMAIL_ADDRESS": 1}


def test_shipped_probe_sets_are_well_formed():
    general = shipped("general_probes.jsonl")
    assert len(general.content) >= 30 and len({r["id"] for r in general.content}) == len(general.content)
    assert all(r["answer"] not in r["distractors"] for r in general.content)
    assert len(shipped("harmful_requests.jsonl").content) >= 10
    assert len(general.sha256) == 64 and general.sha256 == shipped("general_probes.jsonl").sha256
    assert not math.isnan(stats.mean([1.0]))
