"""Griffe extension for the API reference: dicsr's docstring conventions, as mkdocstrings reads them.

**Sphinx roles become links.**

dicsr's docstrings name other objects the way Python docstrings usually do, with Sphinx roles
(``:func:`load_image```, ``:class:`~dicsr.families.Family```), because those read well in
``help()``. mkdocstrings links with Markdown references (``[`load_image`][dicsr.image.load_image]``)
instead, so this extension rewrites each role once the package is loaded:

* the target is resolved where the docstring is, as Sphinx does: the object's own members, then
  its module's names (imports included), then the enclosing scopes; dotted targets resolve their
  first part that way; targets starting with ``dicsr.`` are taken as written;
* ``~`` shows only the last component of the target, as in Sphinx;
* names of other libraries (torch, numpy, PIL, ...) stay plain code: the site has no inventory of
  their documentation (the build runs offline);
* a dicsr name that resolves to nothing is kept as a reference to itself, so that autorefs reports
  it and the strict build fails: a docstring never points at something that does not exist.

**Doctest examples become code.** A paragraph of ``>>>`` lines (with their output lines) is
fenced as a ``pycon`` block, as Sphinx shows doctest blocks; Markdown would otherwise read
``[a, b]`` output as a link.

**Spec citations become links.** ``docs/specs/dic.md §2.1`` links to that section of the
specification page (the section's heading; a numbered item such as ``§6.7`` links to its section).

**Documented attributes become members.** dicsr's dataclasses describe their fields in the class
docstring's ``Attributes:`` section; each description is given to the field itself (when it has no
docstring of its own), so a field is rendered once, as a member with its type, and
``:attr:`Origin.kind``` has a target. The sections themselves are then not shown
(``show_docstring_attributes: false`` in mkdocs.yml).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import griffe
from markdown.extensions.toc import slugify

DOCS = Path(__file__).resolve().parent

#: ``:role:`target``` with an optional ``~`` and an optional trailing ``()``.
ROLE = re.compile(r":(?:py:)?(?:func|class|meth|mod|data|attr|exc|obj|const):`(~?)([\w.]+?)(\(\))?`")

#: A doctest block: a ``>>>`` line and the lines after it at the same indentation, up to a blank line.
DOCTEST = re.compile(r"^([ \t]*)>>> .*(?:\n\1\S.*)*", re.M)

#: A spec citation, as tests/test_spec_citations.py defines it: the spec's path, then its sections.
CITATION = re.compile(r"docs/specs/([\w-]+)\.md (§(\d+)(?:\.(\d+))?(?:(?:, | and |–)§\d+(?:\.\d+)?)*)")

#: Targets in this package are linked; anything else is another library's name.
PACKAGE = "dicsr"


def _objects(obj: griffe.Object) -> Iterator[griffe.Object]:
    """``obj`` and every object defined inside it (aliases are documented where they point)."""
    yield obj
    for member in obj.members.values():
        if not member.is_alias:
            yield from _objects(member)  # type: ignore[arg-type]


def _resolve(scope: griffe.Object, target: str) -> str | None:
    """The full path ``target`` names when written in ``scope``'s docstring, or None."""
    if target == PACKAGE or target.startswith(PACKAGE + "."):
        return target
    head, _, rest = target.partition(".")
    for candidate in (scope, *_parents(scope)):
        try:
            path = candidate.resolve(head)
        except (griffe.NameResolutionError, KeyError, ValueError):
            continue
        return f"{path}.{rest}" if rest else path
    return None


@cache
def _section_anchors(spec: str) -> dict[str, str]:
    """Section number -> heading anchor of ``docs/specs/<spec>.md`` (as the toc extension makes them)."""
    text = (DOCS / "specs" / f"{spec}.md").read_text(encoding="utf-8")
    headings = re.findall(r"^#{2,3} ((\d+(?:\.\d+)?)\.?\s.*)$", text, re.M)
    return {number: slugify(title, "-") for title, number in headings}


def _cite(match: re.Match[str]) -> str:
    """A spec citation as a link from an API page (docs/reference/*.md) to the section it names."""
    spec, major, minor = match.group(1), match.group(3), match.group(4)
    anchors = _section_anchors(spec)
    anchor = anchors.get(f"{major}.{minor}") or anchors.get(major, "")
    return f"[{match.group(0)}](../specs/{spec}.md#{anchor})"


def _parents(obj: griffe.Object) -> Iterator[griffe.Object]:
    parent = obj.parent
    while parent is not None:
        yield parent  # type: ignore[misc]
        parent = parent.parent


class DocstringConventions(griffe.Extension):
    """Rewrites Sphinx roles into autorefs links and gives documented attributes their docstrings."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        objects = list(_objects(pkg))
        for obj in objects:
            if obj.docstring is not None:
                text = ROLE.sub(lambda match, obj=obj: self._link(obj, match), obj.docstring.value)
                text = CITATION.sub(_cite, text)
                obj.docstring.value = DOCTEST.sub(self._fence, text)
        for obj in objects:
            if obj.is_class and obj.docstring is not None:
                self._attributes_to_members(obj)

    @staticmethod
    def _attributes_to_members(cls: griffe.Object) -> None:
        assert cls.docstring is not None
        for section in cls.docstring.parse("google"):
            if section.kind is not griffe.DocstringSectionKind.attributes:
                continue
            for attribute in section.value:
                member = cls.members.get(attribute.name)
                if member is not None and not member.is_alias and member.docstring is None:
                    member.docstring = griffe.Docstring(attribute.description, parent=member)

    @staticmethod
    def _fence(match: re.Match[str]) -> str:
        indent = match.group(1)
        return f"{indent}```pycon\n{match.group(0)}\n{indent}```"

    @staticmethod
    def _link(obj: griffe.Object, match: re.Match[str]) -> str:
        short, target, call = match.group(1), match.group(2), match.group(3) or ""
        title = (target.rsplit(".", 1)[-1] if short else target) + call
        path = _resolve(obj, target)
        if path is None and "." in target and not target.startswith(PACKAGE + "."):
            return f"`{title}`"  # another library's name (torch.Tensor, numpy.uint8, ...)
        if path is not None and not path.startswith(PACKAGE):
            return f"`{title}`"  # resolved through an import of another library
        return f"[`{title}`][{path or target}]"
