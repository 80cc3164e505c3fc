"""The README and docs/: one copy of every section, every link to a file that exists, and a
README short enough to be read first."""

import re

import pytest

from helpers import ROOT

PAGES = [ROOT / "README.md", ROOT / "data" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _headings(text):
  outside_code = re.sub(r"```.*?```", "", text, flags=re.S)
  return re.findall(r"^(#{1,3} .+)$", outside_code, flags=re.M)


def test_the_readme_has_each_section_once_and_stays_short():
  text = (ROOT / "README.md").read_text()
  headings = _headings(text)
  assert len(headings) == len(set(headings)), [h for h in headings if headings.count(h) > 1]
  assert len(text.splitlines()) <= 300
  quick_start = text.split("## Quick start")[1].split("\n## ")[0]
  assert "python3 -m pip install -e . && ./base_model.sh" in quick_start
  assert "python3 -m pip install -e '.[test]' && python3 -m pytest --slow" in quick_start


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_link_leads_to_a_file_that_exists(page):
  for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
    if target.startswith(("http://", "https://", "#", "mailto:")):
      continue
    path = (page.parent / target.split("#")[0]).resolve()
    assert path.exists(), f"{page.name} links to {target}, which does not exist"


def test_ci_runs_the_readmes_test_command():
  ci = (ROOT / ".ci" / "run").read_text()
  assert "python3 -m pip install -e '.[test]'" in ci and "python3 -m pytest --slow" in ci
