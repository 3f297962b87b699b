"""Environments of their own for models whose libraries differ from the platform's.

A scikit-learn model logged with requirements that pin scikit-learn, skops, numpy or scipy at another version than
the platform runs would load wrongly (or not at all) in the platform's process, so it runs in an environment built
from those requirements, by a scoring worker (tasks.worker_client). Whether a model needs one is the spec's
`deploy.environment` (auto: only when a pin differs). Environments are built with uv from binary wheels only (no
package's build script ever runs), under the state directory, keyed by the sha256 of the normalised requirements
and the Python version: equal requirements share one environment, built once. A build happens in a temporary
folder renamed into place when complete, under a lock, so a failed or killed build leaves nothing that could be
taken for an environment; uv's download cache is shared between builds.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from modelops.errors import ModelEnvironmentError

# What loading a scikit-learn model reads with: a pin of one of these at another version needs its environment.
LOADER_PACKAGES = ("scikit-learn", "skops", "numpy", "scipy")
# What the worker itself imports (tasks/env_worker.py); skops at the platform's version when the model names none,
# since the platform's skops scanned the file.
WORKER_PACKAGES = ("numpy", "pandas", "scikit-learn", "skops")
MARKER = "environment.json"  # written last inside a complete environment
# What processes of a model environment inherit from the platform's environment, and nothing else: the platform's
# variables hold secrets (Prefect API keys, database URLs, MODELOPS_* tokens) that a model's libraries have no
# business reading. Builds also get what uv needs to reach the index (proxies, UV_* settings); workers and checks
# never use the network, so they get neither.
PASSED_VARIABLES = (
    "PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE",
    "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)
BUILD_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "no_proxy",
                   "all_proxy")
BUILD_TIMEOUT_SECONDS = 900


@dataclass(frozen=True)
class Environment:
    key: str
    path: Path
    requirements: tuple[str, ...]
    versions: dict[str, str]  # what the environment's Python reports installed
    built: bool  # built by this call (False: found in the cache)

    @property
    def python(self) -> Path:
        return self.path / "bin" / "python"

    @property
    def summary(self) -> str:
        """What the scan's evidence says about it: its key and the versions it runs."""
        return f"{self.key[:12]}: " + ", ".join(f"{k}=={v}" for k, v in sorted(self.versions.items()))


# What a model environment may install, by top-level name: what loading and scoring a scikit-learn model saved with
# skops needs. Requirements come from the spec or from the requirements.txt logged with a version (an outside
# builder's, through `register --model-uri`), and installing a package runs its code: a wheel may ship a .pth file
# that every interpreter start executes, `-I` or not. So only exact releases of these names are installed; uv picks
# their own dependencies from the same index.
ALLOWED_PACKAGES = ("scikit-learn", "skops", "numpy", "scipy", "pandas", "joblib", "threadpoolctl")
# MLflow writes itself (and cloudpickle for pickled models) into every requirements.txt; the worker needs neither
# (it loads skops bytes with skops and talks over a pipe), so those lines are left out rather than refused.
SKIPPED_PACKAGES = ("mlflow", "mlflow-skinny", "cloudpickle")
_NAME = re.compile(r"^\s*([A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)")
_PIN = re.compile(r"^([A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)\s*==\s*([0-9][0-9A-Za-z.!-]*)$")


def _significant(lines: list[str]) -> list[str]:
    """The lines that say something: comments and blank lines left out."""
    texts = (re.split(r"(^|\s)#", line, maxsplit=1)[0].strip() for line in lines)
    return [text for text in texts if text]


def _exact_pin(text: str) -> tuple[str, str] | None:
    """(canonical name, version) of a line that is exactly `name==version` with a public release version."""
    match = _PIN.match(text)
    if match is None:
        return None
    try:
        version = Version(match.group(2))
    except InvalidVersion:
        return None
    if version.local is not None:
        return None
    return canonicalize_name(match.group(1)), match.group(2)


def _skipped(text: str) -> bool:
    """A line about MLflow's own packages, whatever its form (it is not installed, so its form does not matter)."""
    name = _NAME.match(text)
    return name is not None and canonicalize_name(name.group(1)) in SKIPPED_PACKAGES


def parse_requirements(lines: list[str], source: str) -> list[Requirement]:
    """The requirements an environment is built from, refusing all but `<allowed name>==<exact version>` lines:
    no URL or file (direct references), no option (-r, --index-url, ...), no marker, no extras, no range; names
    only from ALLOWED_PACKAGES (MLflow's own lines are left out), and skops no older than the platform's."""
    allowed = ", ".join(ALLOWED_PACKAGES)
    parsed = []
    for text in _significant(lines):
        if _skipped(text):
            continue
        pin = _exact_pin(text)
        if pin is None:
            raise ModelEnvironmentError(
                f"{source}: requirement {text!r} is not of the form 'name==version' (an exact release, with no URL, "
                f"file, option, marker or extras), and a model environment installs nothing else",
                f"pin an exact release of one of {allowed}, e.g. 'scikit-learn==1.5.2', and register a new version")
        name, version = pin
        if name not in ALLOWED_PACKAGES:
            raise ModelEnvironmentError(
                f"{source}: requirement {text!r} names {name}, which a model environment does not install "
                f"(allowed: {allowed}; mlflow, mlflow-skinny and cloudpickle lines are ignored)",
                "remove it: a scikit-learn model saved with skops needs only those packages; installing any other "
                "runs its code")
        parsed.append(Requirement(f"{name}=={version}"))
    _check_skops(parsed, source)
    return parsed


def _check_skops(requirements: list[Requirement], source: str) -> None:
    """skops older than the platform's has published code-on-load flaws, and the platform's skops scanned the file."""
    ours = platform_version("skops")
    for requirement in requirements:
        pin = pinned_version(requirement)
        if requirement.name == "skops" and ours is not None and pin is not None and Version(pin) < Version(ours):
            raise ModelEnvironmentError(
                f"{source}: skops=={pin} is older than the platform's skops {ours}; older skops releases load some "
                "files by running code they name", f"pin skops=={ours} (or newer), or leave skops out to get the "
                "platform's version, and register a new version")


def loader_pins(lines: list[str]) -> list[Requirement]:
    """The exact `name==version` pins among requirement lines, whatever else the lines hold: what decides whether a
    model needs an environment at all (`auto`). Nothing here is installed: an environment is built only from
    parse_requirements' answer, which refuses what this one passes over."""
    pins = (_exact_pin(text) for text in _significant(lines))
    return [Requirement(f"{name}=={version}") for name, version in filter(None, pins) if name in LOADER_PACKAGES]


def platform_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def pinned_version(requirement: Requirement) -> str | None:
    exact = [spec.version for spec in requirement.specifier if spec.operator in ("==", "===")]
    return exact[0] if len(exact) == 1 and "*" not in exact[0] else None


def platform_differences(requirements: list[Requirement]) -> list[str]:
    """The loader's packages the requirements pin at another version than the platform has installed."""
    found = []
    for requirement in requirements:
        name, pin = canonicalize_name(requirement.name), pinned_version(requirement)
        if name in LOADER_PACKAGES and pin is not None and pin != platform_version(name):
            found.append(f"{name}=={pin} (platform: {platform_version(name) or 'not installed'})")
    return found


def needs_environment(mode: str, requirements: list[Requirement], kind: str, serialization: str = "skops") -> bool:
    """Whether a model runs in its own environment: `deploy.environment` says, `auto` when a loader pin differs.
    Only scikit-learn models saved with skops run in workers (the other kinds' libraries are the platform's)."""
    if mode == "platform" or kind != "sklearn":
        return False
    if serialization != "skops":
        return False
    return mode == "isolated" or bool(platform_differences(requirements))


def environment_requirements(requirements: list[Requirement]) -> list[str]:
    """What is installed: the model's requirements, normalised (lower-case names, sorted), plus what the worker
    imports when they leave it out."""
    named = {canonicalize_name(r.name) for r in requirements}
    lines = {str(r).replace(r.name, canonicalize_name(r.name), 1) for r in requirements}
    for name in WORKER_PACKAGES:
        if name not in named:
            lines.add(f"skops=={platform_version('skops')}" if name == "skops" and platform_version("skops")
                      else name)
    return sorted(lines)


def environment_key(lines: list[str]) -> str:
    python = f"python{sys.version_info.major}.{sys.version_info.minor}"
    return hashlib.sha256("\n".join([python, *lines]).encode()).hexdigest()


def environments_dir(home: Path) -> Path:
    folder = home / "environments"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def uv_binary() -> str:
    """uv from the platform's own installation (requirements.txt pins it), else from PATH."""
    try:
        from uv import find_uv_bin

        return str(find_uv_bin())
    except (ImportError, FileNotFoundError):
        found = shutil.which("uv")
        if found is None:
            raise ModelEnvironmentError("uv is not installed, so no model environment can be built",
                                    "install the platform's requirements (`make install`; requirements.txt pins uv)")
        return found


def child_environment(build: bool = False) -> dict[str, str]:
    """The variables a process of a model environment starts with (PASSED_VARIABLES; for a build, BUILD_VARIABLES
    and uv's UV_* settings too)."""
    return {name: value for name, value in os.environ.items()
            if name in PASSED_VARIABLES or (build and (name in BUILD_VARIABLES or name.startswith("UV_")))}


def _uv_env(home: Path) -> dict[str, str]:
    return {**child_environment(build=True), "UV_CACHE_DIR": str(environments_dir(home) / ".uv-cache"), "UV_PYTHON_DOWNLOADS": "never",
            "UV_NO_PROGRESS": "1", "UV_NO_CONFIG": "1"}


def ensure_environment(home: Path, lines: list[str], label: str) -> Environment:
    """The environment for these (normalised) requirement lines: from the cache, else built now."""
    _check_lines(lines, label)
    key = environment_key(lines)
    folder = environments_dir(home)
    final = folder / key[:32]
    cached = _read_marker(final, key)
    if cached is not None:
        return cached
    with (folder / f".{key[:32]}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one build per key at a time; a second waits and finds it built
        cached = _read_marker(final, key)
        if cached is not None:
            return cached
        if final.exists():  # no marker: not one of ours, or left by a crash between rename and marker (never)
            shutil.rmtree(final)
        building = Path(tempfile.mkdtemp(prefix=f".building-{key[:12]}-", dir=folder))
        try:
            versions = _build(home, building, lines, label)
            (building / MARKER).write_text(json.dumps({"key": key, "requirements": lines, "versions": versions}))
            os.rename(building, final)
        finally:
            shutil.rmtree(building, ignore_errors=True)
    return Environment(key, final, tuple(lines), versions, built=True)


def _check_lines(lines: list[str], label: str) -> None:
    """The last word before uv runs: every line an allowed name, exactly pinned or bare (environment_requirements
    adds the worker's own packages bare when a model names none)."""
    for line in lines:
        pin = _exact_pin(line)
        name = pin[0] if pin is not None else (line if _NAME.fullmatch(line) else None)
        if name not in ALLOWED_PACKAGES:
            raise ModelEnvironmentError(f"{label}: refusing to build an environment with {line!r}: only "
                                        f"{', '.join(ALLOWED_PACKAGES)} are installed, each 'name==version'",
                                        "give the requirements through parse_requirements (spec or logged "
                                        "requirements.txt); nothing was built")


def _read_marker(folder: Path, key: str) -> Environment | None:
    """The complete environment in this folder, None when there is none yet; an error when its marker is malformed
    or records another key than the one the folder is named for (a folder that is not what it claims to be)."""
    path = folder / MARKER
    if not path.is_file():
        return None
    fix = f"remove the folder {folder}; the next use builds the environment again"
    try:
        recorded = json.loads(path.read_text())
        found = Environment(str(recorded["key"]), folder, tuple(map(str, recorded["requirements"])),
                            {str(k): str(v) for k, v in recorded["versions"].items()}, built=False)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ModelEnvironmentError(f"the model environment {folder} has a malformed {MARKER} "
                                    f"({type(exc).__name__}: {exc})", fix) from exc
    if found.key != key:
        raise ModelEnvironmentError(f"the model environment {folder} records key {found.key[:16]} in its {MARKER}, "
                                    f"not {key[:16]}, the key of the requirements it is used for", fix)
    return found


def _build(home: Path, folder: Path, lines: list[str], label: str) -> dict[str, str]:
    uv, env = uv_binary(), _uv_env(home)
    (folder / "requirements.txt").write_text("".join(f"{line}\n" for line in lines))
    steps = [
        [uv, "venv", "--quiet", "--allow-existing", "--relocatable", "--python", sys.executable, str(folder)],
        [uv, "pip", "install", "--quiet", "--only-binary", ":all:", "--python", str(folder / "bin" / "python"),
         "-r", str(folder / "requirements.txt")],
    ]
    for step in steps:
        try:
            done = subprocess.run(step, capture_output=True, text=True, env=env, timeout=BUILD_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired as exc:
            raise ModelEnvironmentError(f"{label}: building its environment took over {BUILD_TIMEOUT_SECONDS} s",
                                    "check that the package registry is reachable, then try again") from exc
        if done.returncode != 0:
            raise _build_error(label, lines, done.stderr or done.stdout)
    versions = subprocess.run([str(folder / "bin" / "python"), "-I", str(worker_script()), "--versions"],
                              capture_output=True, text=True, timeout=120, env=child_environment())
    if versions.returncode != 0:
        raise ModelEnvironmentError(f"{label}: the environment was installed but its worker cannot start: "
                                f"{versions.stderr.strip()[-800:]}", "pin versions of numpy, pandas, scikit-learn "
                                "and skops that work together in training.pip_requirements")
    return json.loads(versions.stdout)


def _build_error(label: str, lines: list[str], output: str) -> ModelEnvironmentError:
    """Name the requirement uv could not install, with uv's own reason."""
    text = output.lower()
    named = [line for line in lines if re.search(rf"\b{re.escape(_name_of(line))}\b", text.replace("_", "-"))]
    reason = " ".join(part.strip(" ×╰─▶") for part in output.strip().splitlines() if part.strip())[-900:]
    which = ", ".join(named) if named else "the requirements"
    return ModelEnvironmentError(
        f"{label}: its environment cannot be built: uv cannot install {which} for Python "
        f"{sys.version_info.major}.{sys.version_info.minor} from binary wheels ({reason})",
        f"pin a version of {', '.join(_name_of(n) for n in named) or 'each package'} that has a wheel for this Python "
        "in training.pip_requirements and register a new version, or set deploy.environment: platform to run the "
        "model on the platform's libraries; nothing was built")


def _name_of(line: str) -> str:
    return canonicalize_name(re.split(r"[<>=!~;\[ @]", line, maxsplit=1)[0])


def worker_script() -> Path:
    """The worker's source (tasks/env_worker.py, a module of this package), run by the environment's Python."""
    spec = importlib.util.find_spec("tasks.env_worker")
    assert spec is not None and spec.origin is not None
    return Path(spec.origin)
