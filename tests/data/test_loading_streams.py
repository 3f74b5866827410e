"""Loaders: every format, field paths, bad input (one clear line, no content quoted), streaming under a memory cap."""

from __future__ import annotations

import codecs
import json
import tracemalloc

import pytest

from ftaudit.cli import main
from ftaudit.data.loading import LoadError, iter_records, iter_texts
from ftaudit.data.pii import scan_records
from ftaudit.errors import BAD_INPUT, BadInput

ROWS = [{"text": "hello a@example.org"}, {"prompt": "p", "completion": "c"},
        {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "call +44 20 7946 0958"}]}]


def _all(path, **kw):
    return [(r.index, dict(iter_texts(r))) for r in iter_records(path, **kw)]


def test_jsonl_with_blank_lines_keeps_line_numbers(tmp_path):
    p = tmp_path / "d.jsonl"
    p.write_text(json.dumps(ROWS[0]) + "\n\n" + json.dumps(ROWS[2]) + "\n")
    got = _all(p)
    assert [i for i, _ in got] == [0, 2]
    assert got[1][1]["messages[1].content"] == "call +44 20 7946 0958"


def test_json_array_object_and_concatenated_objects(tmp_path):
    a = tmp_path / "a.json"
    a.write_text(json.dumps(ROWS, indent=2))
    assert [t for _, t in _all(a)][1] == {"prompt": "p", "completion": "c"}
    one = tmp_path / "one.json"
    one.write_text(json.dumps(ROWS[1]))
    assert len(_all(one)) == 1
    several = tmp_path / "lines.json"
    several.write_text("\n".join(json.dumps(r) for r in ROWS))
    assert len(_all(several)) == 3


def test_csv_tsv_text_parquet_and_hf_dataset(tmp_path):
    (tmp_path / "d.csv").write_text('text,n\n"multi\nline a@example.org",1\nx,2\n')
    assert _all(tmp_path / "d.csv")[0] == (0, {"text": "multi\nline a@example.org", "n": "1"})
    (tmp_path / "d.tsv").write_text("text\tn\nhello\t1\n")
    assert _all(tmp_path / "d.tsv") == [(0, {"text": "hello", "n": "1"})]
    (tmp_path / "d.txt").write_text("one\n\nthree\n")
    assert _all(tmp_path / "d.txt") == [(0, {"text": "one"}), (2, {"text": "three"})]
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist([{"text": "a", "n": 1}, {"text": "b", "n": 2}]), tmp_path / "d.parquet")
    assert _all(tmp_path / "d.parquet") == [(0, {"text": "a"}), (1, {"text": "b"})]
    import datasets

    datasets.Dataset.from_list([{"text": "x"}, {"text": "y@example.org"}]).save_to_disk(str(tmp_path / "ds"))
    assert [t for _, t in _all(tmp_path / "ds")] == [{"text": "x"}, {"text": "y@example.org"}]


@pytest.mark.parametrize(("damage", "says"), [
    (lambda d: next(d.glob("*.arrow")).unlink(), "listed in .*state.json but missing; save the dataset again"),
    (lambda d: next(d.glob("*.arrow")).write_bytes(b"\x00" * 64), "not a readable Arrow file of a saved dataset"),
    (lambda d: (d / "state.json").write_text("{}"), "state.json: not the state.json that datasets' save_to_disk"),
])
def test_a_damaged_saved_dataset_is_one_line(tmp_path, capsys, damage, says):
    import datasets

    datasets.Dataset.from_list([{"text": "a@example.org"}] * 3).save_to_disk(str(tmp_path / "ds"))
    damage(tmp_path / "ds")
    capsys.readouterr()  # datasets' own progress bar
    with pytest.raises(BadInput, match=says):
        list(iter_records(tmp_path / "ds"))
    code = main(["data", "scan", str(tmp_path / "ds"), "--no-ner", "--output-dir", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == BAD_INPUT and len(err.strip().splitlines()) == 1 and "a@example" not in err
    assert not (tmp_path / "o" / "data_report.json").exists()


def test_field_paths_quote_unusual_keys_and_missing_field_is_bad_input(tmp_path):
    p = tmp_path / "d.jsonl"
    p.write_text(json.dumps({"first name": "x", "meta": {"tags": ["a", 1]}}) + "\n")
    rec = next(iter_records(p))
    assert dict(iter_texts(rec)) == {'["first name"]': "x", "meta.tags[0]": "a"}
    with pytest.raises(BadInput, match=r"record 0 has no field 'text'"):
        list(iter_texts(rec, ["text"]))


def test_invalid_json_line_stop_or_skip(tmp_path):
    p = tmp_path / "d.jsonl"
    p.write_text('{"text": "ok"}\n{"text": "secret 4111111111111111"\n[1]\n{"text": "fine"}\n')
    with pytest.raises(BadInput) as exc:
        list(iter_records(p))
    assert "line 2" in str(exc.value) and "4111" not in str(exc.value)
    errors: list[LoadError] = []
    assert [r.index for r in iter_records(p, on_error="skip", errors=errors)] == [0, 3]
    assert [(e.index, "line" in e.message) for e in errors] == [(1, True), (2, True)]


@pytest.mark.parametrize("name,content,message", [
    ("empty.jsonl", b"", "empty"),
    ("latin1.jsonl", '{"text": "café"}\n'.encode("latin-1"), "not valid UTF-8"),
    ("utf16.jsonl", '{"text": "x"}\n'.encode("utf-16"), "UTF-16"),
    ("binary.txt", b"\x00\x01\x02binary", "binary"),
    ("latin1.csv", "text\ncafé\n".encode("latin-1"), "not valid UTF-8"),
    ("bad.parquet", b"PAR1 not really", "Parquet"),
    ("blank.jsonl", b"\n\n  \n", "no records"),
    ("open.json", b'[{"text": "a"}, {"text": ', "not closed"),
    ("data.xlsx", b"PK", "unsupported"),
])
def test_bad_files_give_one_clear_line(tmp_path, name, content, message):
    p = tmp_path / name
    p.write_bytes(content)
    with pytest.raises(BadInput, match=message):
        list(iter_records(p))


def test_missing_file_and_plain_directory(tmp_path):
    with pytest.raises(BadInput, match="no such file"):
        list(iter_records(tmp_path / "nope.jsonl"))
    with pytest.raises(BadInput, match="not a Hugging Face dataset"):
        list(iter_records(tmp_path))


def test_streaming_stays_far_below_file_size(tmp_path):
    """A ~24 MB JSONL and a ~24 MB JSON array are read with a traced peak under 2 MB: a file larger than a set
    memory cap (here 2 MB) streams."""
    line = json.dumps({"text": "x" * 2000 + " mail me at someone@example.org"}) + "\n"
    big = tmp_path / "big.jsonl"
    with open(big, "w") as fh:
        for _ in range(12_000):
            fh.write(line)
    arr = tmp_path / "big.json"
    with open(arr, "w") as fh:
        fh.write("[" + ",".join([line.strip()] * 12_000) + "]")
    for path in (big, arr):
        size = path.stat().st_size
        tracemalloc.start()
        n = sum(1 for _ in iter_records(path))
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert n == 12_000 and size > 20_000_000 and peak < 2_000_000, (path.name, peak)


def test_a_50_mb_single_line_is_scanned(tmp_path):
    p = tmp_path / "one.jsonl"
    filler = "lorem ipsum dolor sit amet " * (50_000_000 // 27)
    p.write_text(json.dumps({"text": filler + "write to last.line@example.org"}) + "\n")
    found = list(scan_records(p, workers=1, ner=False, special=False))
    assert [(f.record, f.type, f.end - f.start) for f in found] == [(0, "EMAIL_ADDRESS", 21)]
    assert found[0].start == len(filler) + len("write to ")


def test_scan_records_multiprocess_matches_single_process(tmp_path):
    p = tmp_path / "d.jsonl"
    with open(p, "w") as fh:
        for i in range(3000):
            fh.write(json.dumps({"id": i, "text": f"user{i}@example.org card 4111 1111 1111 1111"}) + "\n")
    import ftaudit.data.pii as pii

    one = list(scan_records(p, workers=1, ner=False))
    old = pii.BATCH_ITEMS
    pii.BATCH_ITEMS = 200  # several batches → the pool is really used
    try:
        two = list(scan_records(p, workers=2, ner=False))
    finally:
        pii.BATCH_ITEMS = old
    assert one == two and len(one) == 6000 and one[-1].record == 2999


def test_jsonl_lines_that_start_with_a_bom_are_read(tmp_path):
    """Files concatenated with `cat` carry each one's UTF-8 BOM at a line start; bad UTF-8 is still one line."""
    p = tmp_path / "cat.jsonl"
    p.write_bytes(codecs.BOM_UTF8 + b'{"text": "a"}\n' + codecs.BOM_UTF8 + '{"text": "é"}\n'.encode())
    assert [r.data["text"] for r in iter_records(p)] == ["a", "é"]
    p.write_bytes(b'{"text": "a"}\n{"text": "\xff"}\n')
    with pytest.raises(BadInput, match=r"line 2 is not valid UTF-8 \(byte 10 of the line\); convert the file"):
        list(iter_records(p))
