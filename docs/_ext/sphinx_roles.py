"""Griffe extension for the docs build: Sphinx roles in pivotlens docstrings become links.

The docstrings name other objects the Sphinx way (``:func:`judge```, ``:mod:`probes.lens```,
``:class:`~probes.backend.base.Encoded```). Here each role is resolved from the object whose
docstring holds it (its own scope, imports included, then the package) and rewritten as an
mkdocs-autorefs link to the rendered object. A role naming an object of pivotlens that does not
exist is a broken reference: it is logged as a warning, which ``mkdocs build --strict`` turns
into a failure. Roles naming other libraries' objects, or private members (not rendered), stay
plain code, and so do undocumented constants and methods (the reference shows objects
with a docstring only).
"""

from __future__ import annotations

import re

import griffe

ROLE = re.compile(r":(?:func|class|mod|meth|attr|data|obj|exc):`(~?)([\w.]+)`")
OWN_PACKAGES = ("probes", "analyses")
logger = griffe.get_logger("pivotlens.docs")


class SphinxRoles(griffe.Extension):
    """Rewrite ``:role:`target``` into ``[`target`][full.path]`` once a package is loaded."""

    def on_package(self, *, pkg: griffe.Module, loader: griffe.GriffeLoader, **kwargs: object) -> None:
        for name in OWN_PACKAGES:  # a docstring of one package may name an object of the other
            if name not in loader.modules_collection:
                loader.load(name)
        for obj in _walk(pkg):
            if obj.docstring is not None and ROLE.search(obj.docstring.value):
                obj.docstring.value = ROLE.sub(lambda m: _link(obj, m.group(1) == "~", m.group(2)), obj.docstring.value)


def _walk(obj: griffe.Object):
    yield obj
    for member in obj.members.values():
        if not member.is_alias:
            yield from _walk(member)


def _link(obj: griffe.Object, short: bool, target: str) -> str:
    shown = target.rsplit(".", 1)[-1] if short else target
    path = _resolve(obj, target)
    if path is None:
        if target.split(".")[0] in OWN_PACKAGES or "." not in target:
            logger.warning("%s: broken reference %r in its docstring", obj.path, target)
        return f"`{shown}`"
    if _rendered(obj.modules_collection, path):
        return f"[`{shown}`][{path}]"
    return f"`{shown}`"


def _rendered(collection: griffe.ModulesCollection, path: str) -> bool:
    """Whether the reference shows ``path``: public, ours, and a module or a documented object."""
    if path.split(".")[0] not in OWN_PACKAGES or any(part.startswith("_") for part in path.split(".")):
        return False
    member = collection.get_member(path)
    return member.is_module or member.docstring is not None


def _resolve(obj: griffe.Object, target: str) -> str | None:
    """The full path of ``target`` seen from ``obj``, or None when nothing of that name exists."""
    collection = obj.modules_collection
    for scope in (obj, *_parents(obj)):
        head, _, rest = target.partition(".")
        try:
            path = scope.resolve(head)
        except griffe.NameResolutionError:
            continue
        full = f"{path}.{rest}" if rest else path
        return _existing(collection, full)
    return _existing(collection, target)


def _parents(obj: griffe.Object):
    while obj.parent is not None:
        obj = obj.parent
        yield obj


def _existing(collection: griffe.ModulesCollection, path: str) -> str | None:
    if path.split(".")[0] not in OWN_PACKAGES:
        return path if path.split(".")[0] not in ("",) else None
    try:
        member = collection.get_member(path)
    except (KeyError, ValueError):
        return None
    try:
        return member.final_target.path if member.is_alias else member.path
    except griffe.AliasResolutionError:
        return member.path
