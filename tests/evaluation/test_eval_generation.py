"""Loading (full model, adapter, GGUF path handling, bad input) and batched generation/scoring."""

import pytest

from ftaudit.errors import BadInput, RuntimeFailure
from ftaudit.evaluation.generation import DecodingSettings, Runner
from ftaudit.evaluation.models import load_model, load_pair

PROMPTS = [
    "The capital of France is",
    "Message: where is order A-11?\nJSON:",
    "Hi",
    "Bees are known for making honey and",
]


def test_batched_equals_unbatched(tiny):
    lm = load_model(tiny["tuned"])
    batched = Runner(lm, DecodingSettings(batch_size=4, max_new_tokens=8))
    single = Runner(lm, DecodingSettings(batch_size=1, max_new_tokens=8))
    assert batched.generate(PROMPTS) == single.generate(PROMPTS)
    conts = [" Paris", ' {"intent"', " there", " wax"]
    for (a, na), (b, nb) in zip(batched.score(PROMPTS, conts), single.score(PROMPTS, conts), strict=True):
        assert na == nb and a == pytest.approx(b, abs=1e-4)
    assert batched.usage.generated_rows == 4 and batched.usage.truncated_prompts == 0


def test_overlong_prompt_is_truncated_and_counted(tiny):
    lm = load_model(tiny["base"])  # context window 256
    runner = Runner(lm, DecodingSettings(max_new_tokens=4))
    long_prompt = "word " * 400
    out = runner.generate([long_prompt, "short"])
    assert len(out) == 2 and runner.usage.truncated_prompts == 1
    ((lp, n),) = runner.score([long_prompt], [" end"])
    assert n >= 1 and lp < 0 and runner.usage.truncated_prompts == 2


def test_adapter_base_view_is_the_base_model(tiny):
    base_view, tuned_view = load_pair(tiny["base"], tiny["adapter"])
    plain = load_model(tiny["base"])
    s = DecodingSettings()
    ctx, cont = ["The capital of France is"], [" Paris"]
    base_lp = Runner(plain, s).score(ctx, cont)[0][0]
    assert Runner(base_view, s).score(ctx, cont)[0][0] == pytest.approx(base_lp, abs=1e-5)
    assert Runner(tuned_view, s).score(ctx, cont)[0][0] != pytest.approx(base_lp, abs=1e-5)  # the adapter changes it
    assert tuned_view.ref.kind == "adapter" and base_view.adapter_enabled is False


def test_adapter_that_does_not_fit_is_bad_input(tiny):
    with pytest.raises(BadInput, match="does not fit base model"):
        load_pair(tiny["base"], tiny["bad_adapter"])


def test_unloadable_and_missing_models(tiny, tmp_path):
    with pytest.raises(BadInput, match="no such"):
        load_model(str(tmp_path / "nope"))
    with pytest.raises(BadInput, match="no such GGUF file"):
        load_model(str(tmp_path / "model.gguf"))
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text('{"model_type": "llama", "vocab_size": 10}')
    with pytest.raises(RuntimeFailure, match="cannot be loaded"):
        load_model(str(broken))
    with pytest.raises(BadInput, match="PEFT adapter"):
        load_model(tiny["adapter"])
    with pytest.raises(BadInput, match="no chat template"):
        Runner(load_model(tiny["base"]), DecodingSettings(prompt_format="chat"))


def test_shared_context_scoring_equals_plain_scoring(tiny):
    lm = load_model(tiny["tuned"])
    runner = Runner(lm, DecodingSettings(batch_size=3))
    contexts = ["The capital of France is", "Message: where is order A-11?\nJSON:", "Hi", "A week has seven"]
    options = [
        [" Paris", " Berlin and Rome"],
        [' {"intent": "status"}', " no"],
        [" there", " you", " x y z"],
        [" days"],
    ]
    shared = runner.score_options(contexts, options)
    flat = runner.score(
        [c for c, opts in zip(contexts, options, strict=True) for _ in opts], [o for opts in options for o in opts]
    )
    got = [x for row in shared for x in row]
    assert [n for _, n in got] == [n for _, n in flat]
    for (a, _), (b, _) in zip(got, flat, strict=True):
        assert a == pytest.approx(b, abs=1e-4)


def test_generate_and_score_equals_separate_calls(tiny):
    lm = load_model(tiny["tuned"])
    runner = Runner(lm, DecodingSettings(batch_size=3, max_new_tokens=6))
    refs = [" Paris", ' {"intent": "status", "order_id": "A-11"}', " there", " honey"]
    texts, scores = runner.generate_and_score(PROMPTS, refs)
    assert texts == runner.generate(PROMPTS)
    for (a, na), (b, nb) in zip(scores, runner.score(PROMPTS, refs), strict=True):
        assert na == nb and a == pytest.approx(b, abs=1e-4)
