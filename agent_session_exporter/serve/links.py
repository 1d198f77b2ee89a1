"""Links from a session id to the provider's own page of that session (``session_url``).

A template such as ``https://app.example/workflows/{workflow}/executions/{session_id}`` names its
placeholders; each value is percent-encoded as one path segment, so an id can never reach another
path or host: a value made only of dots (``.``, ``..``) has its dots encoded too, and the template's
``scheme://host[:port]`` is fixed text. The exporter's ``GET /sessions/{source}/{session_id}``
redirects there, which lets one Grafana link serve every source. The templates (placeholders, fixed
host) are checked where the config is (``read/source.py``: ``template_fields``, ``check_fixed_origin``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote

from agent_session_exporter.read.source import SourceBase, template_fields


class MissingValue(LookupError):
    """The template needs a value (the session's workflow) that is not known."""


def _segment(value: str) -> str:
    """``value`` percent-encoded as one path segment. ``quote`` keeps dots, and ``.`` or ``..`` would
    be resolved away; ``%2E`` would not do, since yarl (aiohttp's redirect) and browsers (the WHATWG
    URL rules) read it as a dot: the dots become ``%252E``, whose percent sign no parser decodes."""
    if value and value.strip(".") == "":
        return "%252E" * len(value)
    return quote(value, safe="")


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
        return self.template.format(**{k: _segment(v or "") for k, v in values.items()})


def link_of(source: SourceBase) -> SessionLink | None:
    """How a source's sessions are linked to: its ``session_url``, else the vendor's app where its
    ``base_url`` is the vendor's cloud API; None when neither applies (or ``session_url`` is empty)."""
    template = source.session_url
    project = getattr(source, "project", None) or ""
    if template is None and source.SESSION_URL_DEFAULT:
        host, default = source.SESSION_URL_DEFAULT
        vendor = re.match(rf"^https://([a-z0-9.-]+\.)?{re.escape(host)}(/|$)", source.base_url)
        # The vendor's page needs the project where its path has one (HoneyHive's, whose search needs none).
        template = default if vendor and (project or "project" not in template_fields(default)) else None
    return SessionLink(template, source.name, project) if template else None
