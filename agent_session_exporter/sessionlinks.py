"""Links from a session id to the provider's own page of that session (``session_url``).

A template such as ``https://app.example/workflows/{workflow}/executions/{session_id}`` names its
placeholders; each value is percent-encoded as one path segment, so an id can never reach another
path or host. The exporter's ``GET /sessions/{source}/{session_id}`` redirects there, which lets one
Grafana link serve every source.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from urllib.parse import quote

#: The placeholders a template may use; ``project`` is HoneyHive's and empty for the others.
PLACEHOLDERS = ("session_id", "workflow", "source", "project")


class MissingValue(LookupError):
    """The template needs a value (the session's workflow) that is not known."""


def template_fields(template: str) -> list[str]:
    """The placeholders ``template`` uses; ValueError for any other, or for a malformed template."""
    names = []
    for _, name, spec, conversion in string.Formatter().parse(template):
        if name is None:
            continue
        if name not in PLACEHOLDERS or spec or conversion:
            raise ValueError(f"unknown placeholder {{{name}}}: use {', '.join('{' + p + '}' for p in PLACEHOLDERS)}")
        names.append(name)
    if "session_id" not in names:
        raise ValueError("must contain {session_id}")
    return names


@dataclass(frozen=True)
class SessionLink:
    template: str
    source: str
    project: str = ""

    def url(self, session_id: str, workflow: str | None) -> str:
        """The provider's URL of one session; MissingValue when the template needs an unknown workflow."""
        values = {"session_id": session_id, "workflow": workflow, "source": self.source, "project": self.project}
        if "workflow" in template_fields(self.template) and not workflow:
            raise MissingValue("workflow")
        return self.template.format(**{k: quote(v or "", safe="") for k, v in values.items()})
