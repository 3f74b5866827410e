"""The README stays a ten-minute read whose example config validates and whose links resolve."""

import re
from pathlib import Path

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
