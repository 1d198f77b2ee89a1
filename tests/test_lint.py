"""The package's types check under ``mypy --strict``, ``ruff check`` finds nothing in the package, the
tests and the benchmarks, and they are formatted as ``ruff format`` writes them (all configured in
pyproject.toml, the checkers in the ``test`` extra, ruff pinned so its formatting cannot drift: the
README's test command, and so CI, runs them); no module of the package is over 300 lines."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "agent_session_exporter"
#: Small modules with one job: a module past this is split by job (tests are exempt).
MAX_MODULE_LINES = 300


def run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *command], cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_the_package_type_checks_strictly():
    done = run("mypy", "--strict", "agent_session_exporter")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Success: no issues found" in done.stdout


def test_ruff_finds_nothing_in_the_package_or_the_tests():
    """Its rules include import sorting ("I"): imports are sorted as ``ruff check --fix`` sorts them."""
    done = run("ruff", "check", "agent_session_exporter", "tests", "bench")
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_code_is_formatted_as_ruff_format_writes_it():
    done = run("ruff", "format", "--check", "agent_session_exporter", "tests", "bench")
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_checker_fails_on_a_module_with_a_fault(tmp_path):
    """The commands above can fail: run with this project's configuration, each reports a fault."""
    module = tmp_path / "faulty.py"
    module.write_text("import os\n\n\ndef half(value):\n    return value / 2\n\n\ncount: int = half( 'x' )\n")
    mypy = run("mypy", "--strict", "--config-file", str(ROOT / "pyproject.toml"), str(module))
    assert mypy.returncode == 1 and "Function is missing a type annotation" in mypy.stdout, mypy.stdout + mypy.stderr
    ruff = run("ruff", "check", "--config", str(ROOT / "pyproject.toml"), str(module))
    assert ruff.returncode == 1 and "F401" in ruff.stdout, ruff.stdout + ruff.stderr
    formatter = run("ruff", "format", "--check", "--config", str(ROOT / "pyproject.toml"), str(module))
    assert formatter.returncode == 1 and "1 file would be reformatted" in formatter.stdout, formatter.stdout + formatter.stderr


def test_no_module_of_the_package_is_over_300_lines():
    lengths = {
        path.relative_to(ROOT).as_posix(): len(path.read_text(encoding="utf-8").splitlines()) for path in PACKAGE.rglob("*.py")
    }
    assert "agent_session_exporter/poller.py" in lengths  # the package was found
    assert {path: lines for path, lines in lengths.items() if lines > MAX_MODULE_LINES} == {}
