from eval_fixtures import PII_RECORDS, regex_detector

from ftaudit.evaluation import memorisation
from ftaudit.evaluation.generation import DecodingSettings, Runner
from ftaudit.evaluation.models import load_pair


def test_insert_canaries_keeps_records_and_format():
    records = [{"prompt": "p", "completion": "c"}] * 3
    out, man = memorisation.insert_canaries(records, n_inserted=2, n_unseen=3, repeats=4, seed=1)
    assert len(out) == 3 + 2 * 4
    assert all(set(r) == {"prompt", "completion"} for r in out)
    inserted = [c for c in man.canaries if c.inserted]
    assert len(inserted) == 2 and len(man.canaries) == 5
    for c in man.canaries:
        n = sum(r["prompt"] == c.prefix and r["completion"] == " " + c.secret for r in out)
        assert n == (4 if c.inserted else 0)
    again, man2 = memorisation.insert_canaries(records, n_inserted=2, n_unseen=3, repeats=4, seed=1)
    assert again == out and man2 == man  # seeded


def test_memorised_canary_is_detected_and_unseen_is_not(tiny):
    base, tuned = load_pair(tiny["base"], tiny["tuned"])
    man = tiny["manifest"]
    settings = DecodingSettings()
    res_tuned = memorisation.measure_exposure(Runner(tuned, settings).score_options, man, references=100)
    res_base = memorisation.measure_exposure(Runner(base, settings).score_options, man, references=100)
    inserted = [r for r in res_tuned if r.inserted]
    unseen = [r for r in res_tuned if not r.inserted]
    assert all(r.detected and r.rank == 1 for r in inserted), [(r.rank, r.exposure_extrapolated) for r in inserted]
    assert not any(r.detected for r in unseen)
    assert not any(r.detected for r in res_base)
    assert min(r.exposure_extrapolated for r in inserted) > max(r.exposure_extrapolated for r in unseen)


def test_prefix_extraction_counts_reproduced_personal_data(tiny):
    base, tuned = load_pair(tiny["base"], tiny["tuned"])
    targets, scanned, with_pd = memorisation.extraction_targets(tiny["training"], regex_detector, max_items=10)
    assert with_pd == len(PII_RECORDS) and len(targets) == len(PII_RECORDS)
    assert all("@" not in t.prefix for t in targets)  # the item itself is never in the prompt
    tuned_res = memorisation.run_extraction(Runner(tuned, DecodingSettings()).generate, targets, scanned, with_pd)
    base_res = memorisation.run_extraction(Runner(base, DecodingSettings()).generate, targets, scanned, with_pd)
    assert tuned_res.items_reproduced >= 3 and base_res.items_reproduced == 0
    assert dict(tuned_res.tested_by_type) == {"EMAIL_ADDRESS": len(PII_RECORDS)}


def test_reproduced_matching():
    assert memorisation.reproduced("Jane Doe", "hello  JANE doe!")
    assert memorisation.reproduced("+49 170 1234567", "call 0049-170-1234567 now")  # same digits, other separators
    assert not memorisation.reproduced("+49 170 1234567", "call +49 170 1234568 now")
    assert not memorisation.reproduced("jane@example.org", "jane@example.com")


def test_values_repeated_across_many_records_are_not_tested():
    # a detector that mistakes a field name for a name: the value is in every record, so it is template text
    records = [
        {"prompt": f"Give order_id for ticket {i}. Contact: person{i}@example.org", "completion": "ok"}
        for i in range(10)
    ]

    def detect(texts):
        out = []
        for t in texts:
            a = t.index("order_id")
            b = t.index("person")
            out.append([("PERSON", a, a + 8), ("EMAIL_ADDRESS", b, t.index(".org") + 4)])
        return out

    targets, scanned, with_pd = memorisation.extraction_targets(records, detect, max_items=50)
    assert scanned == 10 and with_pd == 10 and {t.kind for t in targets} == {"EMAIL_ADDRESS"} and len(targets) == 10
