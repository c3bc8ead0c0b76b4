"""The documentation a user follows: every relative link and image in the README,
CONTRIBUTING.md and docs/*.md leads to a file that exists (and, with a #fragment, to a
heading that exists), the README stays a front door, and the project's address is written
once, in pyproject.toml."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from helpers import ROOT

DOCUMENTS = sorted([ROOT / "README.md", ROOT / "CONTRIBUTING.md", *(ROOT / "docs").glob("*.md")])
FENCE = re.compile(r"^(```|~~~).*?^\1", re.M | re.S)
INLINE_CODE = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.M)


def _prose(text: str) -> str:
    """The text without code blocks and code spans: a link shown as code is no link."""
    return INLINE_CODE.sub("", FENCE.sub("", text))


def links(path: Path) -> list[str]:
    return LINK.findall(_prose(path.read_text(encoding="utf-8")))


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading: its text
    text = re.sub(r"[^\w\- ]", "", text.lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    found = set()
    for heading in HEADING.findall(FENCE.sub("", path.read_text(encoding="utf-8"))):
        base = slug(heading)
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def test_the_documents_exist_and_link_somewhere() -> None:
    names = {p.relative_to(ROOT).as_posix() for p in DOCUMENTS}
    assert {"README.md", "CONTRIBUTING.md", "docs/settings.md", "docs/troubleshooting.md"} <= names
    assert len(links(ROOT / "README.md")) > 10 and links(ROOT / "CONTRIBUTING.md")


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_relative_link_and_image_resolves(document: Path) -> None:
    broken = []
    for target in links(document):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto: ...: not ours to check here
            continue
        path_part, _, fragment = target.partition("#")
        linked = (document.parent / path_part).resolve() if path_part else document
        if not linked.exists():
            broken.append(f"{target}: no such file")
        elif not linked.is_relative_to(ROOT):
            broken.append(f"{target}: outside the repository")
        elif fragment and linked.suffix == ".md" and fragment not in anchors(linked):
            broken.append(f"{target}: no heading #{fragment} in {linked.relative_to(ROOT)}")
    assert not broken, broken


def test_the_link_checker_sees_a_broken_link_an_image_and_a_fragment(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "# Top\n\n## The `state` document\n\n![a picture](pic.png) [gone](missing.md) "
        "[here](#the-state-document) [there](#nowhere) `[code](not-a-link.md)`\n\n"
        "```\n[fenced](not-a-link-either.md)\n```\n"
    )
    assert links(page) == ["pic.png", "missing.md", "#the-state-document", "#nowhere"]
    assert anchors(page) == {"top", "the-state-document"}
    assert slug("What it costs Home Assistant's recorder") == "what-it-costs-home-assistants-recorder"
    assert slug("Raspberry Pi or Debian, with install.sh") == "raspberry-pi-or-debian-with-installsh"


def test_the_readme_is_a_front_door() -> None:
    """About 200 lines: what it is, the demo, wiring, each way to install, is it working,
    the settings that matter, where it shows up. The test suite's command stays, late, as
    a developer's command (it installs packages: not for the Pi)."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 220
    headings = HEADING.findall(readme)
    for wanted in ("Try it", "Wiring", "Install", "Is it working?", "Development"):
        assert any(h.startswith(wanted) for h in headings), wanted
    assert "python3 chargery.py --demo\n" in readme
    assert "mosquitto_sub -v -t 'chargerybms/#'" in readme
    tests_at = readme.index("sudo ./.ci/run")
    assert tests_at > readme.index("## Is it working?") and tests_at > readme.index("## Development")
    for page in ("home-assistant-app.md", "container.md", "several-packs.md", "raspberry-pi.md"):
        assert f"(docs/{page})" in readme, page


def test_the_project_address_is_written_once_in_pyproject() -> None:
    urls = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["urls"]
    repository = urls["Repository"]
    assert re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+", repository)
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert f"git clone {repository} " in readme
    assert "<this repository>" not in readme
    owner_name = repository.removeprefix("https://github.com/")
    for document in DOCUMENTS:
        text = document.read_text(encoding="utf-8")
        for url in re.findall(r"https://(?:github\.com|raw\.githubusercontent\.com)/[\w.-]+/chargery\b", text):
            assert url.endswith(owner_name), (document.name, url)
