"""The lock files agree with pyproject.toml, and the image and CI install from them with hashes checked.

requirements.lock pins the closure of [project.dependencies], requirements-build.lock the build
backend ([build-system] requires); both are written by pip-compile (README, "Build and run the
image"). .ci/run installs them in fresh venvs with --require-hashes and runs the exporter from them.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
RUNTIME, BUILD = ROOT / "requirements.lock", ROOT / "requirements-build.lock"
INSTALL = "--require-hashes --no-deps --only-binary :all:"
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+?)(?: \\)?$")
_HASH = re.compile(r"^--hash=sha256:[0-9a-f]{64}(?: \\)?$")


@dataclass
class Locked:
    version: str
    hashes: int = 0
    via: set[str] = field(default_factory=set)


def parse_lock(text: str) -> dict[str, Locked]:
    """pip-compile's output: ``name==version``, its ``--hash`` lines and its ``# via`` annotation."""
    entries: dict[str, Locked] = {}
    current: Locked | None = None
    in_via = False
    for raw in text.splitlines():
        line = raw.strip()
        if match := _PIN.match(raw):
            current = entries[canonicalize_name(match[1])] = Locked(match[2])
            in_via = False
        elif current is not None and _HASH.match(line):
            current.hashes += 1
        elif current is not None and line.startswith("# via"):
            named = line.removeprefix("# via").strip()
            current.via |= {named} if named else set()
            in_via = not named
        elif current is not None and in_via and line.startswith("#   "):
            current.via.add(line.removeprefix("#   ").strip())
        elif line and not line.startswith("#"):
            raise AssertionError(f"unexpected line in a lock file: {raw!r}")
    return entries


def lock_problems(text: str, requirements: list[str], marker: str) -> list[str]:
    """What keeps a lock from being exactly the closure of ``requirements``, each pinned and hashed.
    ``marker`` is how pip-compile names the source of the top-level requirements in ``# via``."""
    entries = parse_lock(text)
    problems = []
    wanted = {canonicalize_name(Requirement(r).name): Requirement(r) for r in requirements}
    for name, requirement in wanted.items():
        if name not in entries:
            problems.append(f"{name}: in pyproject.toml, not in the lock")
        elif not requirement.specifier.contains(Version(entries[name].version), prereleases=True):
            problems.append(f"{name}: locked {entries[name].version}, pyproject.toml asks {requirement.specifier}")
    top = {name for name, entry in entries.items() if marker in entry.via}
    for name in sorted(top - set(wanted)):
        problems.append(f"{name}: locked as a requirement of pyproject.toml, which no longer has it")
    for name, entry in entries.items():
        if not entry.hashes:
            problems.append(f"{name}: no hash")
        parents = {canonicalize_name(v) for v in entry.via if v != marker}
        if not entry.via or parents - set(entries):
            problems.append(f"{name}: required by nothing in the lock ({sorted(entry.via)})")
    return problems


def test_the_runtime_lock_is_exactly_the_closure_of_the_dependencies():
    text = RUNTIME.read_text()
    assert lock_problems(text, PYPROJECT["project"]["dependencies"], "agent-session-exporter (pyproject.toml)") == []
    assert len(parse_lock(text)) > len(PYPROJECT["project"]["dependencies"])  # the closure, not only the top


def test_the_build_lock_pins_the_build_backend():
    text = BUILD.read_text()
    marker = "agent-session-exporter (pyproject.toml::build-system.requires)"
    assert lock_problems(text, PYPROJECT["build-system"]["requires"], marker) == []


def test_a_lock_that_disagrees_with_pyproject_is_caught():
    text = RUNTIME.read_text()
    deps = PYPROJECT["project"]["dependencies"]
    marker = "agent-session-exporter (pyproject.toml)"
    assert "pyyaml: in pyproject.toml, not in the lock" in lock_problems(
        re.sub(r"(?ms)^pyyaml==.*?(?=^\S)", "", text), deps, marker
    )
    assert any(
        p.startswith("msgspec: locked 0.23.0, pyproject.toml asks") for p in lock_problems(text, [*deps, "msgspec>=9"], marker)
    )
    assert "orjson: locked as a requirement of pyproject.toml, which no longer has it" in lock_problems(
        text, [d for d in deps if not d.startswith("orjson")], marker
    )
    assert "idna: no hash" in lock_problems(
        re.sub(r"(?m)^(idna==\S+) \\\n(    --hash=\S+ \\\n)*    --hash=\S+$", r"\1", text), deps, marker
    )


def test_the_locks_are_for_the_python_of_the_image():
    python = re.search(r"^ARG PYTHON_IMAGE=python:(\d+\.\d+)-", (ROOT / "Dockerfile").read_text(), re.M)
    assert python, "the Dockerfile's PYTHON_IMAGE names no python:X.Y image"
    for lock in (RUNTIME, BUILD):
        assert f"autogenerated by pip-compile with Python {python[1]}\n" in lock.read_text(), lock.name
    assert Version(python[1]) in SpecifierSet(PYPROJECT["project"]["requires-python"])


def test_the_image_and_ci_install_from_the_locks_with_hashes_checked():
    dockerfile = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    ci = (ROOT / ".ci" / "run").read_text().replace("\\\n", " ")
    for text in (dockerfile, ci):
        for lock in ("requirements.lock", "requirements-build.lock"):
            assert re.search(rf"install (-q )?{re.escape(INSTALL)} +-r {re.escape(lock)}", text), lock
        assert "--no-build-isolation" in text  # the package is built by the locked backend only
    assert '--python "$locked/venv/bin/python" check' in ci
    assert "pip --python /opt/agent-session-exporter/bin/python check" in dockerfile
    assert '"$locked/venv/bin/agent-session-exporter" --demo --once' in ci
