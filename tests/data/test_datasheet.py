import pytest
import yaml

from ftaudit.cli import main
from ftaudit.data.datasheet import Datasheet, load_datasheet, missing_answers, parse_datasheet, template_text
from ftaudit.data.summary import NOT_ANSWERED
from ftaudit.errors import BadInput


def test_template_covers_every_field_and_parses_empty():
    text = template_text()
    doc = yaml.safe_load(text)
    assert set(doc) == set(Datasheet.model_fields)
    sheet = parse_datasheet(doc)
    assert len(missing_answers(sheet)) > 10  # an empty template answers nothing and invents nothing
    assert "GDPR Art. 6(1)" in text and "Directive (EU) 2019/790, Art. 4(3)" in text


def test_valid_datasheet(tmp_path):
    p = tmp_path / "ds.yaml"
    p.write_text("name: tickets v3\nlawful_basis: legitimate_interests\nlatest_acquisition_date: 2026-06-30\n"
                 "tdm_opt_out_honoured: true\nsource_types: [user_data]\ncontains_personal_data: true\n"
                 "special_category_review: {reviewed: true, reviewer: DPO, reviewed_on: 2026-07-01}\n")
    sheet = load_datasheet(p)
    assert sheet.latest_acquisition_date.isoformat() == "2026-06-30"
    missing = {m.field for m in missing_answers(sheet)}
    assert "name" not in missing and "legitimate_interest_assessment" in missing and "original_purpose" in missing


@pytest.mark.parametrize("text,needle", [
    ("tdm_opt_out_honoured: perhaps\n", "field 'tdm_opt_out_honoured'"),
    ("latest_acquisition_date: last summer\n", "field 'latest_acquisition_date'"),
    ("lawful_basis: because\n", "field 'lawful_basis'"),
    ("consent: {obtained: sometimes}\n", "field 'consent.obtained'"),
    ("source_types: crawled\n", "field 'source_types'"),
    ("licence_typo: MIT\n", "unknown field 'licence_typo'"),
    ("name: [unclosed\n", "malformed YAML at line"),
    ("- just\n- a list\n", "YAML mapping"),
])
def test_wrong_types_are_one_clear_line_naming_the_field(tmp_path, text, needle):
    p = tmp_path / "ds.yaml"
    p.write_text(text)
    with pytest.raises(BadInput) as exc:
        load_datasheet(p)
    assert needle in str(exc.value) and "\n" not in str(exc.value)


def test_bad_datasheet_on_the_cli_exits_1_and_writes_nothing(tmp_path, capsys):
    data = tmp_path / "d.jsonl"
    data.write_text('{"text": "hello there"}\n')
    ds = tmp_path / "ds.yaml"
    ds.write_text("tdm_opt_out_honoured: perhaps\n")
    out = tmp_path / "out"
    rc = main(["data", "scan", str(data), "--datasheet", str(ds), "-o", str(out), "--workers", "1", "--no-ner"])
    err = capsys.readouterr().err
    assert rc == 1 and err.count("\n") == 1 and "tdm_opt_out_honoured" in err
    assert not out.exists()


def test_missing_answers_become_not_answered_in_the_summary(tmp_path):
    from ftaudit.data.scan import ScanOptions, scan
    from ftaudit.data.summary import training_content_summary

    data = tmp_path / "d.jsonl"
    data.write_text('{"text": "hello there, general kenobi"}\n')
    ds = tmp_path / "ds.yaml"
    ds.write_text("source_types: [crawled]\nlatest_acquisition_date: 2026-01-31\n")
    s = training_content_summary(scan([data], datasheet=ds, options=ScanOptions(detect=False)))
    assert s["section_1_general_information"]["latest_acquisition_date"] == "2026-01-31"
    assert s["section_1_general_information"]["modalities"][0]["size_band"] == "less than 1 billion tokens"
    assert s["section_2_data_sources"]["2.3_crawled_and_scraped_data"]["used"] is True
    assert s["section_2_data_sources"]["2.3_crawled_and_scraped_data"]["crawler"] == NOT_ANSWERED
    assert s["section_3_data_processing"]["3.1_respect_of_tdm_opt_outs"]["honoured"] == NOT_ANSWERED
    assert "crawler" in s["missing_answers"] and "tdm_opt_out_honoured" in s["missing_answers"]


def test_size_bands():
    from ftaudit.data.summary import text_size_band

    assert text_size_band(999_999_999) == "less than 1 billion tokens"
    assert text_size_band(10**9) == "1 billion to 10 trillion tokens"
    assert text_size_band(10**13 + 1) == "more than 10 trillion tokens"


def test_template_command_never_overwrites(tmp_path, capsys):
    p = tmp_path / "ds.yaml"
    assert main(["data", "datasheet-template", "-o", str(p)]) == 0
    assert yaml.safe_load(p.read_text()) is not None
    p.write_text("name: mine\n")
    assert main(["data", "datasheet-template", "-o", str(p)]) == 1
    assert p.read_text() == "name: mine\n"
