"""The documentation a user follows: every relative link and image in the README,
CONTRIBUTING.md and docs/*.md leads to a file that exists (and, with a #fragment, to a
heading that exists), the README stays a front door, and the project's address is written
once, in pyproject.toml."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import tomllib
from pathlib import Path

import pytest
from helpers import ROOT

DOCUMENTS = sorted([ROOT / "README.md", ROOT / "CONTRIBUTING.md", ROOT / "DOCS.md", *(ROOT / "docs").glob("*.md")])
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


FILE_NAMED = re.compile(
    r"(?<![\w/.])((?:chargerybms|bench|examples|tests|docs|\.ci)/[\w./@-]*\.(?:py|sh|md|json|yaml|js|vue|png))\b"
)


def test_every_file_the_documents_name_exists() -> None:
    """A module or script named in prose (`chargerybms/outputs/discovery.py`, `bench/...`):
    a file that moved is renamed here too. Links are the test above."""
    stale = []
    for document in DOCUMENTS:
        for name in FILE_NAMED.findall(links_free(document)):
            if not (ROOT / name).exists():
                stale.append(f"{document.relative_to(ROOT)}: {name}")
    assert not stale, stale


def links_free(document: Path) -> str:
    """The text without its links' targets (those are checked as links)."""
    return LINK.sub(" ", document.read_text(encoding="utf-8"))


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


def test_install_sh_ships_the_pages_and_pictures_the_readme_links_to(tmp_path: Path) -> None:
    """The unit's Documentation= is the installed README: its docs/ links work there too."""
    env = {k: v for k, v in os.environ.items() if k != "DESTDIR"} | {"DESTDIR": str(tmp_path)}
    subprocess.run(["sh", str(ROOT / "install.sh")], env=env, capture_output=True, text=True, check=True)
    installed = tmp_path / "opt" / "chargery"
    wanted = [target.partition("#")[0] for target in links(installed / "README.md") if target.startswith("docs/")]
    assert "docs/dashboard.png" in wanted and "docs/settings.md" in wanted
    missing = [target for target in wanted if (ROOT / target).is_file() and not (installed / target).is_file()]
    assert not missing, missing


# --- the code map in CONTRIBUTING.md against the tree ---------------------------------------

NAME = re.compile(r"[\w.-]+(?:\.py|/)")


def code_map() -> dict[str, int]:
    """Each path the map names (relative to the repository) and its line, top to bottom."""
    text = (ROOT / "CONTRIBUTING.md").read_text(encoding="utf-8")
    block = text.split("## The code map", 1)[1].split("```\n", 2)[1]
    named: dict[str, int] = {}
    folders: list[str] = []  # the folder open at each depth
    for number, line in enumerate(block.splitlines()):
        depth = (len(line) - len(line.lstrip(" "))) // 2
        words = line.split()
        names = []
        for word in words:
            if not NAME.fullmatch(word):
                break
            names.append(word)
        if not names:  # a description carried over to the next line
            continue
        del folders[depth:]
        for name in names:
            path = "".join(folders) + name
            named[path.rstrip("/")] = number
        if names[-1].endswith("/"):
            folders.append(names[-1])
    return named


def imports(module: Path) -> set[Path]:
    """The package's modules a module imports when it runs (not those for type hints only)."""
    package = ROOT / "chargerybms"
    here = module.parent
    found: set[Path] = set()

    def resolve(base: Path, dotted: str | None) -> Path:
        return base.joinpath(*dotted.split(".")) if dotted else base

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.ImportFrom) and node.level:
            base = here
            for _ in range(node.level - 1):
                base = base.parent
            target = resolve(base, node.module)
            for alias in node.names:
                candidates = [target / alias.name, target]
                for candidate in candidates:
                    if candidate.with_suffix(".py").is_file():
                        found.add(candidate.with_suffix(".py"))
                        break
                    if (candidate / "__init__.py").is_file():
                        found.add(candidate)
                        break
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(module.read_text(encoding="utf-8")))
    return found - {package, module}


def test_the_code_map_names_every_module_and_only_what_exists() -> None:
    named = code_map()
    assert "chargerybms/protocol.py" in named and "chargerybms/registry.py" in named
    missing = [path for path in named if not (ROOT / path).exists()]
    assert not missing, f"on the map but not in the tree: {missing}"
    package = ROOT / "chargerybms"
    modules = [p for p in package.rglob("*.py") if p.name != "__init__.py" and "__pycache__" not in p.parts]
    folders = [p for p in package.rglob("*") if p.is_dir() and p.name != "__pycache__"]
    paths = [p.relative_to(ROOT).as_posix() for p in [*modules, *folders]]
    unnamed = [path for path in paths if path not in named]
    assert not unnamed, f"in the tree but not on the map: {unnamed}"


# Imports that point up the map, each with its reason, should one ever be needed; the list
# only shrinks (the test below fails on an entry that no longer exists). None today.
KNOWN_UPWARD: frozenset[tuple[str, str]] = frozenset()


def test_no_import_points_up_the_code_map() -> None:
    named = code_map()
    upward = []
    for module in (ROOT / "chargerybms").rglob("*.py"):
        if "__pycache__" in module.parts:
            continue
        me = module.parent if module.name == "__init__.py" else module
        rank = named.get(me.relative_to(ROOT).as_posix(), 0) if me != ROOT / "chargerybms" else 0
        for target in imports(module):  # a module missing from the map: the test above says so
            pair = (me.relative_to(ROOT).as_posix(), target.relative_to(ROOT).as_posix())
            if named.get(pair[1], rank) < rank and pair not in KNOWN_UPWARD:
                upward.append(f"{pair[0]} imports {pair[1]}")
    assert not upward, upward


def test_the_known_upward_imports_are_still_there() -> None:
    """An exception that no longer exists comes off the list."""
    for importer, imported in KNOWN_UPWARD:
        assert ROOT / imported in imports(ROOT / importer), (importer, imported)


def _log_formats() -> list[re.Pattern[str]]:
    """Every %-format string the package logs with, as a pattern over its output."""
    patterns = []
    for module in (ROOT / "chargerybms").rglob("*.py"):
        for node in ast.walk(ast.parse(module.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and "%" in node.value:
                parts = re.split(r"%(?:\.\d+)?[sdf]", node.value)
                if not re.search(r"[a-z]{3}", parts[0]):  # "%s", "%s: %s": would match any line
                    continue
                patterns.append(re.compile(".+".join(re.escape(part) for part in parts)))
    return patterns


def test_the_healthy_log_in_the_readme_is_what_the_daemon_logs() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = readme.split("**The log.**", 1)[1].split("```\n", 2)[1]
    lines = [line.removeprefix("INFO ") for line in block.splitlines()]
    assert len(lines) == 4 and all(line != "" for line in lines)
    formats = _log_formats()
    unknown = [line for line in lines if not any(f.fullmatch(line) for f in formats)]
    assert not unknown, unknown
