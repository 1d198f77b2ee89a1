"""A spec's list pages decoded typed: msgspec structs generated from the paths the spec reads (its
fields, its outcome rules, the record selector and the paginator's paths), so a page's undeclared
fields cost no Python object.

Every declared leaf is ``Any`` (decoded as the plain decoder decodes it) and a struct reads as the
object it was decoded from (``Fields.get``), so the mapper and the pagers read a struct as they read
the plain page; a key read both whole and by its members is decoded whole. A page that does not fit
(an object where a list is declared) is decoded plain by the HTTP client, as every page was.
"""

from __future__ import annotations

import keyword
from typing import Any

import msgspec

from agent_session_exporter.read.spec.mapping import FieldSpec
from agent_session_exporter.read.spec.model import Cursor, PageIncrement, Spec, as_paths
from agent_session_exporter.read.typed import Fields

#: A path tree: key -> its subtree (its members read), or None (read whole).
Tree = dict[str, "Tree | None"]
_LIST = "[list]"


def _add(tree: Tree, path: str) -> None:
    keys = path.split(".")
    for position, key in enumerate(keys):
        last = position == len(keys) - 1
        if key in tree and tree[key] is None:
            return  # read whole already
        if last:
            tree[key] = None
            return
        tree = tree.setdefault(key, {})  # type: ignore[assignment]


def _struct(name: str, tree: Tree, items: type[Fields] | None = None) -> type[Fields]:
    """A struct of ``tree``'s keys (a subtree a struct of its own; ``_LIST`` marks the items' list)."""
    fields: list[tuple[str, Any, Any]] = []
    names: dict[str, str] = {}
    for position, (key, subtree) in enumerate(sorted(tree.items())):
        attr = key if key.isidentifier() and not keyword.iskeyword(key) and not key.startswith("_") else f"f{position}"
        names[key] = attr
        if subtree is not None and _LIST in subtree and items is not None:
            kind: Any = list[items]  # type: ignore[valid-type]
        elif subtree:
            kind = _struct(f"{name}_{attr}", subtree, items) | None
        else:
            kind = Any
        fields.append((attr, kind, msgspec.field(default=None, name=key)))

    def get(self: Fields, key: str, default: Any = None) -> Any:
        attr = names.get(key)
        return default if attr is None else getattr(self, attr)

    made = msgspec.defstruct(name, fields, bases=(Fields,), namespace={"get": get}, gc=False)
    assert issubclass(made, Fields)
    return made


def item_paths(spec: Spec) -> list[str]:
    """Every path the spec's mapper reads of an item."""
    declared = spec.fields
    specs: list[FieldSpec | None] = [
        declared.id,
        declared.status,
        declared.started_at,
        declared.finished_at,
        declared.duration,
        declared.error_text,
        declared.warnings,
        declared.cost,
        declared.model,
        declared.workflow_id,
        declared.workflow_name,
        *declared.tokens.values(),
    ]
    if not isinstance(declared.key_time, str):
        specs.append(declared.key_time)
    paths = [path for field in specs if field is not None for path in as_paths(field.path)]
    for final in spec.statuses.final.values():
        for rule in getattr(final, "rules", None) or ():
            paths.extend(as_paths(rule.field))
    return paths


def page_decoder(spec: Spec) -> msgspec.json.Decoder[Any] | None:
    """The decoder of the spec's list pages, or None where it has no list of objects to type."""
    item_tree: Tree = {}
    for path in item_paths(spec):
        if path:
            _add(item_tree, path)
        else:
            return None  # an item read whole: nothing to leave out
    items = _struct(f"{spec.name}_item", item_tree)
    selector = spec.record_selector.path
    if not selector:
        return msgspec.json.Decoder(list[items])  # type: ignore[valid-type]
    envelope: Tree = {}
    paginator = spec.paginator
    extra: list[str | None] = []
    if isinstance(paginator, PageIncrement):
        extra = [paginator.last_flag, paginator.more_flag, paginator.total_pages, "number"]
    elif isinstance(paginator, Cursor):
        extra = [paginator.token_path, paginator.next_url_path, paginator.next_path]
    for step in extra:
        if step:
            _add(envelope, step.split(".")[0])  # a paginator's object is read whole (a key's presence counts)
    _add(envelope, selector + "." + _LIST)
    return msgspec.json.Decoder(_struct(f"{spec.name}_page", envelope, items))


_decoders: dict[int, tuple[Spec, msgspec.json.Decoder[Any] | None]] = {}


def page_decoder_of(spec: Spec) -> msgspec.json.Decoder[Any] | None:
    """``page_decoder`` of a spec, made once per spec."""
    made = _decoders.get(id(spec))
    if made is None or made[0] is not spec:
        made = _decoders[id(spec)] = (spec, page_decoder(spec))
    return made[1]
