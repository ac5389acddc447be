"""Every citation of a specification names a spec shipped with the docs and a section it has.

The networks and adapters reproduce the official code down to its quirks, and say where each quirk
is described: "docs/specs/dic.md §2.1" is section 2.1 of the DIC specification in this repository
(docs/specs/, also pages of the documentation site). A citation without its spec file ("spec §3")
could not be followed by a reader of the code, so every § must belong to a full citation.
"""

from __future__ import annotations

import re
from pathlib import Path

from _support import REPO_ROOT

SPECS = REPO_ROOT / "docs" / "specs"

#: One section reference: ``§2``, ``§2.4`` (subsection 2.4, or item 4 of the numbered list of §2).
SECTION = r"§\d+(?:\.\d+)?"

#: A citation: the spec's path in the repository, then one or more sections.
CITATION = re.compile(rf"docs/specs/([\w-]+\.md) ({SECTION}(?:(?:, | and |–){SECTION})*)")


#: Text that is data, not a citation: the normalisation description the SPARNet adapter writes into
#: config.json, byte for byte what the published zoo cards (zoo/*/config.json) hold.
DATA_NOT_CITATIONS = ("lr_size differs (sparnet.md §5)",)


def cited_files() -> list[Path]:
    folders = ("dicsr", "examples", "benchmarks", "tests")
    paths = (path for folder in folders for path in (REPO_ROOT / folder).rglob("*.py"))
    return sorted(path for path in paths if path != Path(__file__).resolve())


def citations() -> list[tuple[str, str, str]]:
    """``(where, spec file, section)`` for every section cited in the code."""
    found = []
    for path in cited_files():
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for match in CITATION.finditer(line):
                for section in re.findall(r"§(\d+(?:\.\d+)?)", match.group(2)):
                    found.append((f"{path.relative_to(REPO_ROOT)}:{number}", match.group(1), section))
    return found


def has_section(spec: str, section: str) -> bool:
    """Section ``n`` is a ``## n.`` heading; ``n.m`` a ``### n.m`` heading or item ``m.`` of the
    numbered list in section ``n``."""
    text = (SPECS / spec).read_text(encoding="utf-8")
    major, _, minor = section.partition(".")
    body = re.search(rf"^## {major}\.[^\n]*\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    if body is None:
        return False
    if not minor:
        return True
    return bool(re.search(rf"^### {major}\.{minor}\b|^{minor}\. ", body.group(1), re.M))


def test_spec_citations_name_a_shipped_spec_and_an_existing_section() -> None:
    found = citations()
    assert len(found) > 100  # the networks cite their spec throughout
    wrong = [
        f"{where}: docs/specs/{spec} §{section}"
        for where, spec, section in found
        if not (SPECS / spec).is_file() or not has_section(spec, section)
    ]
    assert not wrong, "citations of a spec file or section that does not exist:\n" + "\n".join(wrong)


def test_every_section_sign_belongs_to_a_full_citation() -> None:
    """A bare "spec §2" or "sparnet.md §5" cannot be followed: each § names its spec file."""
    bare = [
        f"{path.relative_to(REPO_ROOT)}:{number}: {line.strip()}"
        for path in cited_files()
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if "§" in CITATION.sub("", line) and not any(data in line for data in DATA_NOT_CITATIONS)
    ]
    assert not bare, "§ without docs/specs/<spec>.md before it:\n" + "\n".join(bare)
