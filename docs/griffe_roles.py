"""A Griffe extension for the API reference: the core's docstrings use Sphinx roles
(``:class:`~transferlab.api.Backbone```), which Markdown would print literally; this turns each
into a code span (``Backbone`` for a ``~`` target, the full path otherwise).

Loaded by mkdocstrings (``extensions`` in mkdocs.yml); not part of the package.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:class|func|meth|attr|mod|exc|data|obj|const):`(~?)([^`]+)`")


def _plain(match: re.Match[str]) -> str:
    tilde, target = match.groups()
    return f"`{target.rsplit('.', 1)[-1] if tilde else target}`"


class SphinxRoles(griffe.Extension):
    """Rewrite Sphinx cross-reference roles in every docstring as code spans."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = ROLE.sub(_plain, obj.docstring.value)
