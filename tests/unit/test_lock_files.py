"""The lock files name an exact, hashed version of everything pyproject.toml asks for.

``make setup`` installs requirements/*.lock with ``--require-hashes --no-deps``:
a dependency added to pyproject.toml without ``make lock`` would be missing
from a fresh clone, and one whose range moved past the locked version would
install a version pyproject.toml refuses.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
BUILD = [
    Requirement(line)
    for line in (ROOT / "requirements/build.in").read_text().splitlines()
    if line.strip() and not line.startswith("#")
]
# One entry: "name==version [; marker] \" then its "--hash=sha256:..." lines.
ENTRY = re.compile(
    r"^([A-Za-z0-9._-]+)==(\S+)(?: ; ([^\\\n]+?))? \\\n"
    r"((?:    --hash=sha256:[0-9a-f]{64}(?: \\)?\n)+)",
    re.M,
)
LOCKS = {
    "run.lock": [],
    "dev.lock": ["dev"],
    "bench.lock": ["dev", "bench"],
}


def locked(name: str) -> dict[str, list[str]]:
    """Each package's locked versions (one per marker), by canonical name."""
    text = (ROOT / "requirements" / name).read_text()
    versions: dict[str, list[str]] = {}
    for package, version, _marker, hashes in ENTRY.findall(text):
        assert hashes.count("--hash=sha256:") >= 1
        versions.setdefault(canonicalize_name(package), []).append(version)
    named = {canonicalize_name(line.split("==")[0]) for line in text.splitlines() if "==" in line}
    assert named == set(versions), f"{name}: an entry without hashes: {named - set(versions)}"
    return versions


def wanted(extras: list[str]) -> list[Requirement]:
    lines = list(PROJECT["dependencies"])
    for extra in extras:
        lines += PROJECT["optional-dependencies"][extra]
    return [Requirement(line) for line in lines] + BUILD


@pytest.mark.parametrize("name", sorted(LOCKS))
def test_every_requirement_is_locked_within_its_range(name: str) -> None:
    versions = locked(name)
    for requirement in wanted(LOCKS[name]):
        key = canonicalize_name(requirement.name)
        assert key in versions, f"{requirement.name} is not in requirements/{name}: run make lock"
        for version in versions[key]:
            assert requirement.specifier.contains(version, prereleases=True), (
                f"requirements/{name} has {requirement.name}=={version}, outside "
                f"{requirement.specifier}: run make lock"
            )


def test_the_lock_files_agree_on_every_version() -> None:
    bench = locked("bench.lock")
    for name in ("run.lock", "dev.lock"):
        for package, versions in locked(name).items():
            assert versions == bench[package], (name, package)
