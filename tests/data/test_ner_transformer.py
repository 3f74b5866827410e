"""Names and places by a transformer token-classification model (`--ner-model DIR`). No model hub here: the test
trains a small BERT tagger from a config on a synthetic set (templates × name and city lists), saves it, and
checks that the scan finds the names and cities of sentences the model never saw, in short texts and in texts
longer than the NER window and the model's own window (its stride), and that the report names the model."""

from __future__ import annotations

import json
import random

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from ftaudit.cli import main  # noqa: E402
from ftaudit.data.pii import NER_WINDOW, _ner_entities_many, detect_many  # noqa: E402
from ftaudit.data.scan import ScanOptions, scan  # noqa: E402

FIRST = "Anna Marek Sofia Jonas Lena Pierre Chiara Tomasz Ingrid Mateo Yusuf Elena Nadia Oskar".split()
LAST = "Schmidt Kowalski Rossi Dubois Larsen Novak Garcia Jansen Berg Moreau Keller Horvat".split()
CITIES = "Berlin Warsaw Lyon Turin Oslo Porto Ghent Graz Cork Malmo Tallinn Bilbao".split()
TRAIN = ["{p} lives in {c}.", "Please call {p} about the parcel sent to {c}.", "Yesterday {p} flew from {c} to {d}.",
         "The invoice for {p} was posted in {c}.", "We met {p} at the office in {c} last week.",
         "The parcel was late again.", "Thanks for the quick refund.", "A parcel came on Monday.",
         "On Friday a refund was sent."]
HELD_OUT = ["On Monday {p} moved to {c} for good.", "A letter from {p} arrived from {c} today."]
LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]


def _sentence(rng: random.Random, template: str) -> tuple[str, list[tuple[int, int, str]]]:
    """A filled template and its entities (start, end, PER|LOC)."""
    values = {"p": (f"{rng.choice(FIRST)} {rng.choice(LAST)}", "PER"), "c": (rng.choice(CITIES), "LOC"),
              "d": (rng.choice(CITIES), "LOC")}
    text, ents, pos = "", [], 0
    while (i := template.find("{", pos)) >= 0:
        text += template[pos:i]
        value, label = values[template[i + 1]]
        ents.append((len(text), len(text) + len(value), label))
        text += value
        pos = i + 3
    return text + template[pos:], ents


@pytest.fixture(scope="module")
def ner_model(tmp_path_factory):
    import re

    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import BertConfig, BertForTokenClassification, PreTrainedTokenizerFast

    rng = random.Random(3)
    data = [_sentence(rng, rng.choice(TRAIN)) for _ in range(1500)]
    # A fixed vocabulary (the corpus's words and characters, sorted): a trained one differs between processes.
    corpus = " ".join(TRAIN + HELD_OUT + FIRST + LAST + CITIES)
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    pieces = sorted(set(re.findall(r"\w+|[^\w\s]", corpus)) | set(corpus.replace(" ", "")))
    vocab = {token: i for i, token in enumerate(specials + pieces + ["##" + c for c in sorted(set(corpus) - {" "})])}
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=False)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[(s, tok.token_to_id(s)) for s in ("[CLS]", "[SEP]")])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                                   sep_token="[SEP]", mask_token="[MASK]", model_max_length=64)
    torch.manual_seed(0)
    model = BertForTokenClassification(BertConfig(
        vocab_size=len(fast), hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128,
        max_position_embeddings=64, num_labels=len(LABELS), id2label=dict(enumerate(LABELS)),
        label2id={name: i for i, name in enumerate(LABELS)}))
    enc = fast([t for t, _ in data], padding=True, return_offsets_mapping=True, return_tensors="pt")
    labels = torch.full(enc["input_ids"].shape, -100)
    for row, (_, ents) in enumerate(data):
        for col, (s, e) in enumerate(enc["offset_mapping"][row].tolist()):
            if e > s:
                hit = next(((es, lab) for es, ee, lab in ents if es <= s and e <= ee), None)
                labels[row, col] = LABELS.index(("B-" if hit[0] == s else "I-") + hit[1]) if hit else 0
    optim = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(200):
        rows = torch.randint(0, len(data), (32,))
        loss = model(input_ids=enc["input_ids"][rows], attention_mask=enc["attention_mask"][rows],
                     labels=labels[rows]).loss
        loss.backward()
        optim.step()
        optim.zero_grad()
    model.eval()
    path = tmp_path_factory.mktemp("ner") / "tiny-bert-ner"
    model.save_pretrained(path)
    fast.save_pretrained(path)
    return str(path)


def _found(texts, ents_of, spans_of) -> tuple[float, list]:
    """Recall of the planted entities (a span of the right type covering it), and the spans that cover none."""
    hits = total = 0
    stray = []
    for text, ents, spans in zip(texts, ents_of, spans_of, strict=True):
        wanted = {(s, e, {"PER": "PERSON", "LOC": "LOCATION"}[lab]) for s, e, lab in ents}
        total += len(wanted)
        hits += sum(any(sp.type == t and sp.start <= s and e <= sp.end for sp in spans) for s, e, t in wanted)
        stray += [text[sp.start:sp.end] for sp in spans if sp.type in ("PERSON", "LOCATION")
                  and not any(sp.start < e and s < sp.end for s, e, _ in wanted)]
    return hits / total, stray


def test_unseen_sentences_names_and_places_found(ner_model):
    rng = random.Random(99)
    held = [_sentence(rng, rng.choice(HELD_OUT)) for _ in range(60)]
    spans = detect_many([t for t, _ in held], ner=True, ner_model=ner_model, special=False)
    recall, stray = _found([t for t, _ in held], [e for _, e in held], spans)
    assert recall >= 0.9 and len(stray) <= 3, (recall, stray)


def test_a_text_longer_than_both_windows_is_read_whole_and_once(ner_model):
    rng = random.Random(5)
    text, ents = "", []

    def add(sentence, found):
        nonlocal text
        ents.extend((s + len(text), e + len(text), lab) for s, e, lab in found)
        text += sentence + " "

    while len(text) < NER_WINDOW - 100:
        add(*_sentence(rng, rng.choice(HELD_OUT)))
    # The first NER window ends at its last space: the one inside this name, so the window sees "Lena" alone.
    text += " " * (NER_WINDOW - 2 - len(text) - len("On Monday Lena"))
    add("On Monday Lena Novak moved to Oslo for good.", [(10, 20, "PER"), (30, 34, "LOC")])
    while len(text) < 2.5 * NER_WINDOW:
        add(*_sentence(rng, rng.choice(HELD_OUT)))
    spans = detect_many([text], ner=True, ner_model=ner_model, special=False)[0]
    recall, stray = _found([text], [ents], [spans])
    # Stray spans are the small model's own mistakes (sentence-initial "On", "A" in mid-text windows), not seams.
    assert recall >= 0.9 and len(stray) <= len(ents) // 20, (recall, stray[:10])
    raw = _ner_entities_many([text], ner_model)[0]  # before overlap resolution, which would hide a stump
    # The name across the cut is found whole (by the second window), and the first window's "Lena" is dropped.
    assert (NER_WINDOW - 6, NER_WINDOW + 4, "PER") in raw and (NER_WINDOW - 6, NER_WINDOW - 2, "PER") not in raw
    assert len(raw) == len(set(raw))
    assert ents[-1][1] > 2 * NER_WINDOW and any(sp.start > 2 * NER_WINDOW for sp in spans)  # the tail was read


def test_scan_states_the_model_and_workers_agree(ner_model, tmp_path):
    rng = random.Random(8)
    data = tmp_path / "d.jsonl"
    with open(data, "w") as fh:
        for _ in range(40):
            fh.write(json.dumps({"text": _sentence(rng, rng.choice(HELD_OUT + TRAIN[-4:]))[0]}) + "\n")
    runs = [scan([data], options=ScanOptions(workers=w, ner_model=ner_model, shard_bytes=1024),
                 findings_path=tmp_path / f"f{w}.jsonl") for w in (1, 2)]
    detection = runs[0].findings.detection
    assert "transformer-ner" in detection.detectors and "spacy-ner" not in detection.detectors
    assert "tiny-bert-ner" in detection.note and "here: cpu" in detection.note
    types = {json.loads(line)["type"] for line in open(tmp_path / "f1.jsonl")}
    assert {"PERSON", "LOCATION"} <= types
    assert (tmp_path / "f1.jsonl").read_text() == (tmp_path / "f2.jsonl").read_text()


@pytest.mark.parametrize("args,message", [
    (["--ner-model", "{tmp}/nowhere"], "not a model directory (no config.json)"),
    (["--ner-model", "{tmp}/broken"], "not a token-classification model"),
    (["--no-ner", "--ner-model", "{tmp}/broken"], "NER is off"),
])
def test_bad_ner_model(tmp_path, capsys, args, message):
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.json").write_text("{}")
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"text": "Anna Schmidt lives in Berlin."}) + "\n")
    argv = [a.format(tmp=tmp_path) for a in args]
    assert main(["data", "scan", str(data), "-o", str(tmp_path / "o"), *argv]) == 1
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err
    assert not (tmp_path / "o").exists()


def test_anonymize_replaces_the_names_the_model_finds(ner_model, tmp_path, capsys):
    rng = random.Random(13)
    data, out = tmp_path / "d.jsonl", tmp_path / "out.jsonl"
    held = [_sentence(rng, rng.choice(HELD_OUT)) for _ in range(20)]
    data.write_text("".join(json.dumps({"text": t}) + "\n" for t, _ in held))
    assert main(["data", "anonymize", str(data), str(out), "--strategy", "redact", "--ner-model", ner_model]) == 0
    assert "tiny-bert-ner" in capsys.readouterr().out
    copies = [json.loads(line)["text"] for line in open(out)]
    names = [text[s:e] for text, ents in held for s, e, _ in ents]
    left = [n for n in names if any(n in c for c in copies)]
    assert len(left) <= len(names) // 10, left
    assert sum("<PERSON>" in c for c in copies) >= 18
    assert main(["data", "anonymize", str(data), str(tmp_path / "o2.jsonl"), "--no-ner", "--ner-model",
                 ner_model]) == 1
    assert "NER is off" in capsys.readouterr().err
    assert main(["data", "anonymize", str(data), str(tmp_path / "o3.jsonl"), "--ner-model",
                 str(tmp_path / "nowhere")]) == 1
    assert "not a model directory" in capsys.readouterr().err and not (tmp_path / "o3.jsonl").exists()
