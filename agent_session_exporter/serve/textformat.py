"""The two exposition formats written fast, family by family, byte for byte as prometheus_client
writes them (``tests/test_textformat.py`` holds them equal, hostile label values included).

prometheus_client escapes every sample name character by character and checks every label name on
every render: most of the cost of rendering a source. Here a name or label name is checked once, a
label value escaped with three replaces, and each family's lines come out already split from its
headers, as ``Exposition`` caches them. Anything this writer does not know how
to write as prometheus_client would (a name outside the legacy character set, native histograms)
is written by prometheus_client itself and split, as before.
"""

from __future__ import annotations

import io
import re
from typing import Any, Callable, Iterable

from prometheus_client.exposition import generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.utils import floatToGoString

_EOF = b"# EOF\n"
_LEGACY_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")
#: How the classic format renames an OpenMetrics type (and the family's name suffix it adds).
_CLASSIC_TYPE = {
    "counter": ("_total", "counter"),
    "info": ("_info", "gauge"),
    "stateset": ("", "gauge"),
    "gaugehistogram": ("", "histogram"),
    "unknown": ("", "untyped"),
}
#: Samples the classic format moves to a gauge family of their own, after their family.
_CLASSIC_MOVED = ("_created", "_gsum", "_gcount")

Blocks = tuple[dict[str, bytes], dict[str, bytes]]


class _Unusual(Exception):
    """Something only prometheus_client's own writer writes as it should."""


def _escape_value(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


class _Names:
    """Names checked once: a sample or label name is written as it is only when it is a legacy name."""

    def __init__(self) -> None:
        self.ok: set[str] = set()

    def check(self, name: str) -> str:
        if name not in self.ok:
            if not _LEGACY_NAME.match(name):
                raise _Unusual(name)
            self.ok.add(name)
        return name


_NAMES = _Names()


#: The start of each sample line written lately ("name{labels}"), by sample name and labels: the same
#: series come back at every render. Forgotten whole past ``_PREFIXES_KEPT``.
_prefixes: dict[tuple[str, tuple[tuple[str, str], ...]], str] = {}
_PREFIXES_KEPT = 200_000


def _prefix(name: str, labels: dict[str, str]) -> str:
    key = (name, tuple(labels.items()))
    prefix = _prefixes.get(key)
    if prefix is None:
        check = _NAMES.check
        check(name)
        if labels:
            prefix = name + "{" + ",".join([f'{check(k)}="{_escape_value(v)}"' for k, v in sorted(labels.items())]) + "}"
        else:
            prefix = name
        if len(_prefixes) >= _PREFIXES_KEPT:
            _prefixes.clear()
        _prefixes[key] = prefix
    return prefix


def _exemplar(metric: Any, sample: Any) -> str:
    exemplar = sample.exemplar
    name = sample.name
    if not (
        (metric.type == "counter" and name.endswith("_total"))
        or (metric.type == "histogram" and (name.endswith("_bucket") or name == metric.name))
        or (metric.type == "gaugehistogram" and name.endswith("_bucket"))
    ):
        raise _Unusual(name)  # prometheus_client raises its own error for it
    labels = ",".join([f'{k}="{_escape_value(v)}"' for k, v in sorted(exemplar.labels.items())])
    if exemplar.timestamp is not None:
        return f" # {{{labels}}} {floatToGoString(exemplar.value)} {exemplar.timestamp}"
    return f" # {{{labels}}} {floatToGoString(exemplar.value)}"


def _openmetrics_family(metric: Any) -> list[tuple[str, str, str]]:
    name = _NAMES.check(metric.name)
    doc = metric.documentation.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")
    header = f"# HELP {name} {doc}\n# TYPE {name} {metric.type}\n"
    if metric.unit:
        header += f"# UNIT {name} {metric.unit}\n"
    lines: list[str] = []
    for sample in metric.samples:
        if sample.native_histogram:
            raise _Unusual(metric.name)
        value = floatToGoString(sample.value) if sample.value is not None else ""
        timestamp = f" {sample.timestamp}" if sample.timestamp is not None else ""
        exemplar = _exemplar(metric, sample) if sample.exemplar else ""
        lines.append(f"{_prefix(sample.name, sample.labels)} {value}{timestamp}{exemplar}\n")
    return [(name, header, "".join(lines))]


def _classic_family(metric: Any) -> list[tuple[str, str, str]]:
    suffix, kind = _CLASSIC_TYPE.get(metric.type, ("", metric.type))
    name = _NAMES.check(metric.name + suffix)
    doc = metric.documentation.replace("\\", r"\\").replace("\n", r"\n")
    moved = {metric.name + end: end for end in _CLASSIC_MOVED}
    lines: list[str] = []
    moved_lines: dict[str, list[str]] = {}
    for sample in metric.samples:
        if sample.native_histogram:
            raise _Unusual(sample.name)
        timestamp = f" {int(float(sample.timestamp) * 1000):d}" if sample.timestamp is not None else ""
        line = f"{_prefix(sample.name, sample.labels)} {floatToGoString(sample.value)}{timestamp}\n"
        end = moved.get(sample.name)
        (lines if end is None else moved_lines.setdefault(end, [])).append(line)
    families = [(name, f"# HELP {name} {doc}\n# TYPE {name} {kind}\n", "".join(lines))]
    for end, more in sorted(moved_lines.items()):
        extra = metric.name + end
        families.append((extra, f"# HELP {extra} {doc}\n# TYPE {extra} gauge\n", "".join(more)))
    return families


def render_families(collector: Any, openmetrics: bool) -> Blocks:
    """The header lines and the sample lines of each family ``collector`` collects, in order, in the
    OpenMetrics or the classic text format: ``split_families`` of prometheus_client's own render."""
    write: Callable[[Any], list[tuple[str, str, str]]] = _openmetrics_family if openmetrics else _classic_family
    metrics: Iterable[Any] = collector.collect()
    headers: dict[str, bytes] = {}
    blocks: dict[str, bytes] = {}
    try:
        for metric in metrics:
            for name, header, lines in write(metric):
                headers[name] = header.encode()
                blocks[name] = lines.encode()
    except _Unusual:
        return split_families((generate_openmetrics if openmetrics else generate_latest)(collector))
    return headers, blocks


def split_families(text: bytes) -> Blocks:
    """The header lines (``# HELP``, ``# TYPE``, ``# UNIT``) and the sample lines of each family of
    an exposition, in order.

    Lines end at ``\\n`` alone, as both formats define them: a ``\\r`` is part of a line (a label
    value may hold one, unescaped), so ``splitlines`` would cut a sample in two."""
    headers: dict[str, bytes] = {}
    samples: dict[str, list[bytes]] = {}
    name = ""
    for line in io.BytesIO(text.removesuffix(_EOF)):  # a binary stream's lines end at \n only
        if line.startswith(b"# "):
            kind, _, rest = line[2:].partition(b" ")
            if kind == b"HELP":
                name = rest.partition(b" ")[0].decode()
                headers[name] = line
                samples[name] = []
            elif name:
                headers[name] += line
        elif name:
            samples[name].append(line)
    return headers, {family: b"".join(lines) for family, lines in samples.items()}
