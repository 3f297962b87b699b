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

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from modelops.errors import ModelEnvironmentError

# What loading a scikit-learn model reads with: a pin of one of these at another version needs its environment.
LOADER_PACKAGES = ("scikit-learn", "skops", "numpy", "scipy")
# What the worker itself imports (tasks/env_worker.py); skops at the platform's version when the model names none,
# since the platform's skops scanned the file.
WORKER_PACKAGES = ("numpy", "pandas", "scikit-learn", "skops")
MARKER = "environment.json"  # written last inside a complete environment
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


def parse_requirements(lines: list[str], source: str) -> list[Requirement]:
    """The requirements of a requirements.txt (comments, blank lines and pip options left out)."""
    parsed = []
    for line in lines:
        text = line.split(" #", 1)[0].strip()
        if not text or text.startswith(("#", "-")):
            continue
        try:
            parsed.append(Requirement(text))
        except InvalidRequirement as exc:
            raise ModelEnvironmentError(f"{source}: requirement {text!r} cannot be read ({exc})",
                                    "write it as 'name==version' (pip's requirement syntax)") from exc
    return parsed


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


def _uv_env(home: Path) -> dict[str, str]:
    return {**os.environ, "UV_CACHE_DIR": str(environments_dir(home) / ".uv-cache"), "UV_PYTHON_DOWNLOADS": "never",
            "UV_NO_PROGRESS": "1", "UV_NO_CONFIG": "1"}


def ensure_environment(home: Path, lines: list[str], label: str) -> Environment:
    """The environment for these (normalised) requirement lines: from the cache, else built now."""
    key = environment_key(lines)
    folder = environments_dir(home)
    final = folder / key[:32]
    cached = _read_marker(final)
    if cached is not None:
        return cached
    with (folder / f".{key[:32]}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one build per key at a time; a second waits and finds it built
        cached = _read_marker(final)
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


def _read_marker(folder: Path) -> Environment | None:
    try:
        recorded = json.loads((folder / MARKER).read_text())
    except (OSError, ValueError):
        return None
    return Environment(recorded["key"], folder, tuple(recorded["requirements"]), recorded["versions"], built=False)


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
                              capture_output=True, text=True, timeout=120)
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
    return Path(__file__).with_name("env_worker.py")
