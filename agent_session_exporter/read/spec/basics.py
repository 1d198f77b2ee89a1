"""What every part of the spec language shares: strict frozen models, paths into items, templates."""

from __future__ import annotations

import re
import string
from typing import Annotated, Union

from pydantic import BaseModel, ConfigDict, Field

#: A path into an item: dotted keys (``workflow.id``); ``""`` is the item (or the body) itself.
_PATH = re.compile(r"^$|^[A-Za-z0-9_$@-]+(\.[A-Za-z0-9_$@-]+)*$")


class SpecModel(BaseModel):
    """Unknown keys are errors; a spec is read once and never changes."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def check_path(value: str) -> str:
    if not _PATH.match(value):
        raise ValueError("must be dotted keys such as data or workflow.id")
    return value


def template_names(template: str) -> list[str]:
    """The ``{placeholders}`` of a template (ValueError for a malformed one)."""
    try:
        return [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    except ValueError as exc:
        raise ValueError(f"malformed template: {exc}") from None


Path = Annotated[str, Field(description="dotted keys into the item, such as workflow.id")]
#: One path, or alternatives tried in order (the first present wins).
Paths = Union[Path, list[Path]]


def as_paths(value: Paths) -> tuple[str, ...]:
    return (value,) if isinstance(value, str) else tuple(value)
