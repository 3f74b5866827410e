"""The per-micro-batch counter and the counts → FLOP arithmetic, against hand counts."""

import math

import pytest
import torch
from meter_tiny import tiny_model

from ftaudit.compute.counting import BatchCounter, counts_from_vector
from ftaudit.compute.evidence import LineageRun, MeterCounts
from ftaudit.compute.flops import TrainingSetup, build_flop_model
from ftaudit.compute.meter import FlopRates, add_counts, cumulative, meter_flops


def counted(batches, varlen=False) -> MeterCounts:
    c = BatchCounter(varlen_kernel=varlen)
    for kw in batches:
        c.count((), kw)
    size = c.hist_size()
    return counts_from_vector(c.vector(size, torch.device("cpu")).tolist(), size, 0)


def padded(lengths, left=False):
    s = max(lengths)
    mask = torch.zeros(len(lengths), s, dtype=torch.long)
    for i, n in enumerate(lengths):
        if left:
            mask[i, s - n:] = 1
        else:
            mask[i, :n] = 1
    return {"input_ids": torch.ones(len(lengths), s, dtype=torch.long), "attention_mask": mask}


@pytest.mark.parametrize("left", [False, True])
def test_padded_rows_exact(left):
    c = counted([padded([7, 3, 5], left=left), padded([2, 9], left=left)])
    assert c.micro_batches == 2
    assert c.tokens_executed == 3 * 7 + 2 * 9
    assert c.tokens_effective == 7 + 3 + 5 + 2 + 9
    assert c.sequences_executed == 5 and c.sequences_effective == 5
    assert c.lengths_executed == {7: 3, 9: 2}
    assert c.lengths_effective == {2: 1, 3: 1, 5: 1, 7: 1, 9: 1}


def test_packed_position_ids_split_sequences():
    pos = torch.tensor([[0, 1, 2, 0, 1, 0, 1, 2, 3, 4], [0, 1, 2, 3, 4, 5, 0, 1, 2, 3]])
    c = counted([{"input_ids": torch.ones(2, 10, dtype=torch.long), "position_ids": pos}])
    assert c.tokens_executed == c.tokens_effective == 20
    assert c.lengths_effective == {2: 1, 3: 1, 4: 1, 5: 1, 6: 1}
    assert c.sequences_effective == 5
    assert c.lengths_executed == {10: 2}  # eager/SDPA run the whole packed row


def test_packed_with_padding_tail():
    pos = torch.tensor([[0, 1, 2, 0, 1, 0, 0, 0]])
    mask = torch.tensor([[1, 1, 1, 1, 1, 0, 0, 0]])
    c = counted([{"input_ids": torch.ones(1, 8, dtype=torch.long), "position_ids": pos, "attention_mask": mask}])
    assert c.lengths_effective == {3: 1, 2: 1} and c.tokens_effective == 5 and c.tokens_executed == 8


def test_cu_seqlens_and_varlen_kernel():
    cu = torch.tensor([0, 4, 10, 11], dtype=torch.int32)
    kw = {"input_ids": torch.ones(1, 11, dtype=torch.long), "cu_seq_lens_q": cu}
    c = counted([kw], varlen=True)
    assert c.lengths_effective == {4: 1, 6: 1, 1: 1}
    assert c.lengths_executed == c.lengths_effective  # flash varlen runs attention per sequence
    assert c.tokens_executed == 11 and c.tokens_effective == 11


def test_varlen_kernel_skips_padding_in_attention_only():
    c = counted([padded([6, 2])], varlen=True)
    assert c.tokens_executed == 12  # the linear layers still run on padding
    assert c.lengths_executed == {6: 1, 2: 1}


def test_positional_input_ids_and_embeds_and_unknown():
    c = BatchCounter(False)
    c.count((torch.ones(2, 5, dtype=torch.long),), {})
    c.count((), {"inputs_embeds": torch.zeros(3, 4, 8)})
    c.count((), {"pixel_values": torch.zeros(1)})
    size = c.hist_size()
    counts = counts_from_vector(c.vector(size, torch.device("cpu")).tolist(), size, 0)
    assert counts.tokens_executed == 10 + 12 and counts.micro_batches == 2 and c.uncounted == 1


def test_hist_grows_with_longer_batches():
    c = counted([padded([3, 2]), padded([40, 1])])
    assert c.lengths_effective == {1: 1, 2: 1, 3: 1, 40: 1}


@pytest.fixture(scope="module")
def flop_model():
    return build_flop_model(tiny_model().config.to_dict(), TrainingSetup(method="full"))


def test_rates_reproduce_estimator_batches(flop_model):
    rates = FlopRates(flop_model)
    counts = MeterCounts(tokens_executed=3 * 7, tokens_effective=15, lengths_executed={7: 3},
                         lengths_effective={7: 1, 3: 1, 5: 1})
    f = meter_flops(counts, rates)
    # executed: three rows of 7 (padding included); effective: the real sequences.
    assert math.isclose(f.executed.total, flop_model.batch([7, 7, 7]).training, rel_tol=1e-12)
    assert math.isclose(f.effective.total, flop_model.batch([7, 3, 5]).training, rel_tol=1e-12)
    assert f.regulatory == f.executed.total > f.effective.total


def test_rates_flash_and_derived_per_token():
    fm = build_flop_model(tiny_model().config.to_dict(), TrainingSetup(method="full", attention_kernel="flash"))
    rates = FlopRates(fm)
    counts = MeterCounts(tokens_effective=9, lengths_effective={4: 1, 5: 1})
    assert math.isclose(meter_flops(counts, rates).effective.total, fm.batch([4, 5]).training, rel_tol=1e-12)

    class NoCoefficients:  # an estimator without `per_token`: solved from two sequence lengths
        def sequence(self, n):
            return fm.sequence(n)

    derived = FlopRates(NoCoefficients())
    eager = build_flop_model(tiny_model().config.to_dict(), TrainingSetup(method="full"))
    d = FlopRates(type("E", (), {"sequence": lambda self, n: eager.sequence(n)})())
    one = MeterCounts(tokens_executed=100, lengths_executed={100: 1})
    assert math.isclose(d.figures(one).total, eager.sequence(100).training, rel_tol=1e-12)
    two = MeterCounts(tokens_executed=9, lengths_executed={4: 1, 5: 1})
    assert derived.figures(two).total == pytest.approx(fm.batch([4, 5]).training, rel=1e-12)


def test_gradient_checkpointing_recompute_reported_apart():
    fm = build_flop_model(tiny_model().config.to_dict(), TrainingSetup(method="full", gradient_checkpointing=True))
    f = meter_flops(MeterCounts(tokens_executed=8, tokens_effective=8, lengths_executed={8: 1},
                                lengths_effective={8: 1}), FlopRates(fm))
    assert f.executed.recompute > 0
    assert f.regulatory == pytest.approx(f.executed.forward + f.executed.backward)


def test_add_counts_and_lineage_sum():
    a = MeterCounts(micro_batches=1, tokens_executed=4, lengths_executed={4: 1})
    b = MeterCounts(micro_batches=2, tokens_executed=6, lengths_executed={4: 1, 2: 1})
    s = add_counts(a, b)
    assert s.micro_batches == 3 and s.tokens_executed == 10 and s.lengths_executed == {2: 1, 4: 2}
    runs = [LineageRun(run_id="a", regulatory_flops=1.0), LineageRun(run_id="b", regulatory_flops=2.0),
            LineageRun(run_id="a", regulatory_flops=5.0)]
    assert cumulative(runs) == 7.0  # a run listed twice counts once, at its latest figure


def test_setup_from_live_model_partial_checkpointing_and_4bit():
    from ftaudit.compute.live_model import _quant_bits, live_parameter_counts, setup_from_model

    model = tiny_model()
    for name, p in model.named_parameters():
        p.requires_grad = name.startswith(("lm_head", "model.layers.1."))
    (getattr(model, "activation_checkpointing_enable", None) or model.gradient_checkpointing_enable)()
    setup = setup_from_model(model)
    assert setup.method == "partial" and setup.gradient_checkpointing and setup.attention_kernel == "eager"
    fm = build_flop_model(model.config.to_dict(), setup)
    assert fm.n_trainable_parameters == live_parameter_counts(model)[1]

    class Params4bit(torch.nn.Parameter):  # stands in for bitsandbytes' packed 4-bit weight
        pass

    model = tiny_model()
    layer = model.model.layers[0].mlp.up_proj
    logical = layer.weight.numel()
    packed = Params4bit(torch.zeros(logical // 2, 1, dtype=torch.uint8), requires_grad=False)
    packed.quant_state = type("QS", (), {"shape": tuple(layer.weight.shape)})()
    before = live_parameter_counts(model)[0]
    layer.weight = packed
    assert live_parameter_counts(model)[0] == before  # logical, not packed storage
    assert _quant_bits(model) == 4
