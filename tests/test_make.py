"""`make demo` and `make test` as a newcomer meets them: the demo installs only what it runs, and
`make test` names every missing Debian package in one command before any test starts."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

CHECK = "scripts/check-debian-packages"
PROGRAMS = {  # program the tests run -> the Debian package that has it
    "mosquitto": "mosquitto",
    "mosquitto_sub": "mosquitto-clients",
    "docker-compose": "docker-compose",
    "chromium": "chromium",
    "mbpoll": "mbpoll",
    "socat": "socat",
    "victoria-metrics": "victoria-metrics",
    "influxd": "influxdb",
    "promtool": "prometheus",
}


def _check(repo_root: Path, path: Path) -> subprocess.CompletedProcess[str]:
    """The check with nothing but `path` on PATH, told not to install (the suite may run as root)."""
    bash = shutil.which("bash")
    assert bash is not None
    env = {"PATH": str(path), "FACILITY_NO_APT": "1", "HOME": os.environ.get("HOME", "/")}
    return subprocess.run([bash, CHECK], cwd=repo_root, env=env, capture_output=True, text=True, timeout=30)


def _path_with(tmp_path: Path, programs: list[str]) -> Path:
    """A PATH folder holding links to these programs of this machine, and no others."""
    folder = tmp_path / "bin"
    folder.mkdir()
    for program in programs:
        found = shutil.which(program) or f"/usr/sbin/{program}"
        assert Path(found).exists(), f"{program} is not installed here"
        (folder / program).symlink_to(found)
    return folder


def test_the_check_names_exactly_the_missing_packages_in_one_apt_get_line(tmp_path: Path, repo_root: Path) -> None:
    kept = ["mosquitto", "socat", "mbpoll"]  # mosquitto kept: Debian's /usr/sbin copy is found off PATH too
    result = _check(repo_root, _path_with(tmp_path, kept))
    assert result.returncode != 0
    commands = [line.strip() for line in (result.stdout + result.stderr).splitlines() if "apt-get install" in line]
    assert len(commands) == 1, result.stderr
    words = commands[0].removeprefix("sudo ").split()
    assert words[:3] == ["apt-get", "install", "-y"]
    assert sorted(words[3:]) == sorted(package for program, package in PROGRAMS.items() if program not in kept)


def test_the_check_passes_quietly_when_everything_is_there(tmp_path: Path, repo_root: Path) -> None:
    result = _check(repo_root, _path_with(tmp_path, list(PROGRAMS)))
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def _planned(repo_root: Path, target: str, venv: Path) -> str:
    """The commands `make TARGET` would run for a fresh checkout (`make -n`, a venv not made yet)."""
    result = subprocess.run(
        ["make", "-n", f"VENV={venv}", target], cwd=repo_root, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_make_demo_installs_only_the_demo_and_make_test_checks_then_adds_the_test_tools(
    tmp_path: Path, repo_root: Path
) -> None:
    demo = _planned(repo_root, "demo", tmp_path / "venv")
    assert "pip install --quiet -e .\n" in demo and "[test" not in demo and CHECK not in demo

    test = _planned(repo_root, "test", tmp_path / "venv").splitlines()
    installs = [i for i, line in enumerate(test) if "pip install --quiet -e '.[test,dev]'" in line]
    assert installs and test.index(CHECK) < installs[0] < next(
        i for i, line in enumerate(test) if "/bin/pytest" in line
    )
