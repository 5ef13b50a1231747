"""Griffe extension for the docs build: Sphinx roles in pivotlens docstrings become links.

The docstrings name other objects the Sphinx way (``:func:`judge```, ``:mod:`probes.lens```,
``:class:`~probes.backend.base.Encoded```). Here each role is resolved from the object whose
docstring holds it (its own scope, imports included, then its parents) and rewritten as an
mkdocs-autorefs link to the rendered object. A role naming an object of our packages that does
not exist is a broken reference: it is logged as a warning, which ``mkdocs build --strict`` turns
into a failure. Roles naming other libraries' objects, private members, undocumented constants
and methods (the reference shows objects with a docstring only) stay plain code.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence

import griffe

ROLE = re.compile(r":(?:func|class|mod|meth|attr|data|obj|exc):`(~?)([\w.]+)`")
logger = griffe.get_logger("pivotlens.docs")


class SphinxRoles(griffe.Extension):
    """Rewrite ``:role:`target``` into ``[`target`][full.path]`` once a package is loaded.

    ``packages``: the packages whose objects the reference renders (a docstring of one may name
    an object of another, so all of them are loaded).
    """

    def __init__(self, packages: Sequence[str] = ("probes", "analyses")) -> None:
        super().__init__()
        self.packages = tuple(packages)

    def on_package(self, *, pkg: griffe.Module, loader: griffe.GriffeLoader, **kwargs: object) -> None:
        for name in self.packages:
            if name not in loader.modules_collection:
                loader.load(name)
        for obj in _walk(pkg):
            if obj.docstring is not None:
                obj.docstring.value = ROLE.sub(
                    lambda m, obj=obj: self._link(obj, m.group(1) == "~", m.group(2)), obj.docstring.value
                )

    def _link(self, obj: griffe.Object, short: bool, target: str) -> str:
        shown = target.rsplit(".", 1)[-1] if short else target
        path = _resolve(obj, target)
        ours = (path or target).split(".")[0] in self.packages
        if path is None or (ours and not _exists(obj.modules_collection, path)):
            if ours or "." not in target:
                logger.warning("%s: broken reference %r in its docstring", obj.path, target)
            return f"`{shown}`"
        if ours and _rendered(obj.modules_collection, path):
            return f"[`{shown}`][{_final(obj.modules_collection, path)}]"
        return f"`{shown}`"


def _walk(obj: griffe.Object) -> Iterator[griffe.Object]:
    yield obj
    for member in obj.members.values():
        if not member.is_alias:
            yield from _walk(member)


def _resolve(obj: griffe.Object, target: str) -> str | None:
    """The full path ``target`` names, seen from ``obj`` (its scope, then its parents'); a dotted
    target that no scope knows is taken as a full path."""
    head, _, rest = target.partition(".")
    scope: griffe.Object | None = obj
    while scope is not None:
        try:
            path = scope.resolve(head)
        except griffe.NameResolutionError:
            scope = scope.parent
            continue
        return f"{path}.{rest}" if rest else path
    return target if rest else None


def _exists(collection: griffe.ModulesCollection, path: str) -> bool:
    try:
        collection.get_member(path)
    except (KeyError, ValueError):
        return False
    return True


def _final(collection: griffe.ModulesCollection, path: str) -> str:
    """Where an imported name is defined (the rendered object's id)."""
    member = collection.get_member(path)
    try:
        return member.final_target.path if member.is_alias else member.path
    except griffe.AliasResolutionError:
        return member.path


def _rendered(collection: griffe.ModulesCollection, path: str) -> bool:
    """Whether the reference shows ``path``: public, and a module or a documented object."""
    if any(part.startswith("_") for part in _final(collection, path).split(".")):
        return False
    member = collection.get_member(_final(collection, path))
    return member.is_module or member.docstring is not None
