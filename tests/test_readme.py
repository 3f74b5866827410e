"""The README stays a ten-minute read whose example config validates and whose links resolve."""

import re
from pathlib import Path

import pytest
import yaml

from ftaudit.pipeline.config import config_from_dict

ROOT = Path(__file__).resolve().parents[1]


def test_readme_is_short_and_its_run_config_validates(tmp_path):
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 250
    example = re.search(r"```yaml\n(.*?)```", text, re.S).group(1)
    cfg = config_from_dict(yaml.safe_load(example), base_dir=tmp_path)
    assert cfg.compute_policy.accepted_role == "downstream_modifier"


def test_every_relative_link_of_the_readme_and_docs_resolves():
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text(encoding="utf-8")):
            if "://" in target:
                continue
            assert (page.parent / target).exists(), f"{page.name}: {target}"


def test_the_exit_code_table_is_the_one_in_errors_py(capsys):
    from ftaudit.cli import main
    from ftaudit.errors import EXIT_CODES, markdown_table

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert markdown_table() in readme, "regenerate the README's table: python -m ftaudit.errors"
    with pytest.raises(SystemExit):
        main(["--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert all(f"{code} {' '.join(meaning.split())}" in help_text for code, meaning in EXIT_CODES.items())
