"""Fixtures and helpers shared by every system test (tests/system).

System tests run the built programs (tldctl, tldnode) as a user would. Run
them with Debian's interpreter, which has dnspython and pytest:

    TLD_BUILD_DIR=build /usr/bin/python3 -m pytest -q tests/system

TLD_BUILD_DIR is the CMake build directory holding the binaries (default
<repo>/build; a relative path is taken from the current directory).

Helpers are plain functions so that test modules can import them
(`from conftest import run, store_snapshot`); the same things are also offered
as fixtures.
"""

import hashlib
import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TESTS = REPO / "tests"
BROKEN_ZONES = TESTS / "zones" / "broken"
SHARED_ZONES = REPO.parent / "shared" / "zones"
SAMPLE_ZONE = REPO / "deploy" / "sample" / "sample.zone"
GEN_ZONE = TESTS / "bench" / "gen-zone.py"
PYTHON = "/usr/bin/python3"  # Debian's, with dnspython

# Generous: a whole root zone imports in well under a second.
DEFAULT_TIMEOUT = 120


def build_dir():
    """The CMake build directory (TLD_BUILD_DIR, default <repo>/build)."""
    return Path(os.environ.get("TLD_BUILD_DIR", REPO / "build")).resolve()


def binary(name):
    """Path of a built program, or skip the test with a clear message."""
    path = build_dir() / name
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.skip(f"{name} is not built: {path} missing (build it, or set TLD_BUILD_DIR "
                    f"to the build directory)")
    return path


def run(*cmd, input=None, timeout=DEFAULT_TIMEOUT, cwd=None, env=None):
    """Runs cmd (any mix of str/Path; lists are flattened) and returns the
    CompletedProcess with text stdout/stderr. Never raises on a non-zero exit."""
    args = []
    for c in cmd:
        if isinstance(c, (list, tuple)):
            args.extend(str(x) for x in c)
        else:
            args.append(str(c))
    return subprocess.run(args, input=input, capture_output=True, text=True, timeout=timeout,
                          cwd=cwd, env=env, errors="surrogateescape")


def describe(proc):
    """A failure message for a CompletedProcess."""
    return (f"$ {' '.join(map(str, proc.args))}\nexit {proc.returncode}\n"
            f"--- stdout ---\n{proc.stdout[-4000:]}\n--- stderr ---\n{proc.stderr[-4000:]}")


def check(proc, rc=0):
    """Asserts proc exited with rc and returns it."""
    assert proc.returncode == rc, describe(proc)
    return proc


def import_zone(tldctl, store, zonefile, *extra):
    """`tldctl import`, which must succeed; returns the CompletedProcess."""
    return check(run(tldctl, "import", "--store", store, *extra, zonefile))


def dump_zone(tldctl, store, apex):
    """`tldctl dump` of one zone, which must succeed; returns its text."""
    return check(run(tldctl, "dump", "--store", store, apex)).stdout


def list_zones(tldctl, store):
    """Apexes of the zones in the store (`tldctl zones`), in its order."""
    out = check(run(tldctl, "zones", "--store", store)).stdout
    return [line.split("\t")[0] for line in out.splitlines() if line.strip()]


def store_snapshot(tldctl, store):
    """What the store holds, as text: the zone list, then every zone's dump.
    Two snapshots are equal exactly when the stores serve the same data."""
    zones = check(run(tldctl, "zones", "--store", store)).stdout
    parts = [zones]
    for apex in list_zones(tldctl, store):
        parts.append(dump_zone(tldctl, store, apex))
    return "\0".join(parts)


def store_digest(tldctl, store):
    """SHA-256 of store_snapshot()."""
    return hashlib.sha256(store_snapshot(tldctl, store).encode("utf-8", "surrogateescape")
                          ).hexdigest()


def write_zone(path, text):
    """Writes a master file (dedenting nothing: pass the text as it should be)."""
    path = Path(path)
    path.write_text(text)
    return path


# ---- fixtures ----

@pytest.fixture(scope="session")
def build():
    """The build directory (may not exist: the binary fixtures skip then)."""
    return build_dir()


@pytest.fixture(scope="session")
def tldctl():
    return binary("tldctl")


@pytest.fixture(scope="session")
def tldnode():
    return binary("tldnode")


@pytest.fixture(name="run")
def run_fixture():
    """The run() helper, for tests that prefer a fixture to an import."""
    return run


@pytest.fixture
def tmp_store(tmp_path):
    """A fresh, empty directory for a store (`tldctl import` fills it)."""
    d = tmp_path / "store"
    d.mkdir()
    return d


@pytest.fixture
def tmp_store2(tmp_path):
    """A second fresh store directory."""
    d = tmp_path / "store2"
    d.mkdir()
    return d


@pytest.fixture(scope="session")
def shared_zones():
    """<repo>/../shared/zones: real root zone copies (README.md there)."""
    if not SHARED_ZONES.is_dir():
        pytest.skip(f"../shared/zones absent: {SHARED_ZONES} holds the real root zones")
    return SHARED_ZONES


@pytest.fixture(scope="session")
def sample_zone():
    """deploy/sample/sample.zone: the signed sample TLD `sample.`."""
    if not SAMPLE_ZONE.is_file():
        pytest.skip(f"sample zone absent: {SAMPLE_ZONE} (made by deploy/sample/make-sample)")
    return SAMPLE_ZONE


@pytest.fixture(scope="session")
def gen_zone():
    """tests/bench/gen-zone.py, the synthetic TLD generator."""
    if not GEN_ZONE.is_file():
        pytest.skip(f"zone generator absent: {GEN_ZONE}")
    return GEN_ZONE


@pytest.fixture
def sample_store(tldctl, sample_zone, tmp_store):
    """A store holding the sample zone."""
    import_zone(tldctl, tmp_store, sample_zone)
    return tmp_store
