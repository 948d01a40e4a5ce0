"""The unit file stays valid and hardened, and agrees with the daemon it starts.

``systemd-analyze`` runs here without systemd as PID 1: ``verify`` against a
staged root (the stock units plus stubs of the unit's executables, so the
executable checks mean something) and ``security --offline=true`` for the
exposure score. Without ``systemd-analyze`` these tests skip, unless
``EDGEVOICE_REQUIRE_SYSTEMD_ANALYZE=1`` (``scripts/test`` sets it): then they
fail, so CI cannot pass by quietly not checking the unit.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from device.config import DEFAULT_CONFIG_PATH, load_config
from device.credentials import CREDENTIAL_NAME
from device.errors import EXIT_CONFIG

SYSTEMD_DIR = Path(__file__).parents[2] / "systemd"
UNIT = SYSTEMD_DIR / "edgevoice.service"
UNIT_NAME = UNIT.name
DROP_IN_EXAMPLES = sorted(SYSTEMD_DIR.glob("*.conf.example"))
REQUIRE_ENV = "EDGEVOICE_REQUIRE_SYSTEMD_ANALYZE"
MAX_EXPOSURE = 2.0
STOCK_UNIT_DIRS = (Path("/usr/lib/systemd/system"), Path("/lib/systemd/system"))
_EXPOSURE = re.compile(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)")


# -- the unit as data -------------------------------------------------------------------
@dataclass(frozen=True)
class UnitFile:
    """Directives in file order; a key may repeat (DeviceAllow=, Environment=, ...)."""

    entries: tuple[tuple[str, str, str], ...]  # (section, key, value)

    def values(self, section: str, key: str) -> list[str]:
        return [v for s, k, v in self.entries if s == section and k == key]

    def value(self, section: str, key: str) -> str:
        found = self.values(section, key)
        assert found, f"[{section}] {key}= is not set"
        return found[-1]  # the last assignment wins, as in systemd

    def words(self, section: str, key: str) -> list[str]:
        return [word for value in self.values(section, key) for word in value.split()]


def parse_unit(text: str) -> UnitFile:
    entries: list[tuple[str, str, str]] = []
    section = ""
    pending = ""
    for raw in text.splitlines():
        line = pending + raw.strip()
        pending = ""
        if line.endswith("\\"):  # a continued line
            pending = line[:-1].rstrip() + " "
            continue
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        key, sep, value = line.partition("=")
        assert sep, f"not a directive: {line!r}"
        entries.append((section, key.strip(), value.strip()))
    return UnitFile(tuple(entries))


@pytest.fixture(scope="module")
def unit() -> UnitFile:
    return parse_unit(UNIT.read_text(encoding="utf-8"))


def _seconds(timespan: str) -> float:
    """A systemd time span such as "30", "30s", "1min 30s" or "10min", in seconds."""
    units = {"": 1.0, "s": 1.0, "sec": 1.0, "min": 60.0, "m": 60.0, "h": 3600.0, "ms": 0.001}
    total = 0.0
    for number, unit_name in re.findall(r"(\d+(?:\.\d+)?)\s*([a-z]*)", timespan):
        total += float(number) * units[unit_name]
    return total


def _executables(unit_file: UnitFile) -> list[str]:
    """The absolute programs of every Exec*= line, with systemd's prefixes stripped."""
    programs = []
    for section, key, value in unit_file.entries:
        if section == "Service" and key.startswith("Exec") and value:
            programs.append(value.split()[0].lstrip("-@:+!"))
    return programs


# -- what the daemon relies on ----------------------------------------------------------
def test_type_notify_with_a_watchdog(unit: UnitFile) -> None:
    assert unit.value("Service", "Type") == "notify"
    assert unit.value("Service", "NotifyAccess") == "main"
    watchdog_s = _seconds(unit.value("Service", "WatchdogSec"))
    # The daemon pets at half the interval; under a few seconds a loaded Pi misses pets.
    assert watchdog_s >= 10


def test_config_errors_do_not_restart(unit: UnitFile) -> None:
    assert unit.value("Service", "Restart") == "on-failure"
    assert str(EXIT_CONFIG) in unit.words("Service", "RestartPreventExitStatus")
    assert _seconds(unit.value("Service", "RestartSec")) > 0


def test_stop_and_reload(unit: UnitFile) -> None:
    assert unit.value("Service", "KillSignal") == "SIGTERM"
    assert 0 < _seconds(unit.value("Service", "TimeoutStopSec")) <= 10
    assert unit.value("Service", "ExecReload") == "/bin/kill -HUP $MAINPID"
    assert unit.value("Service", "ExecStart") == "/opt/edgevoice/venv/bin/edgevoice run"


def test_never_root(unit: UnitFile) -> None:
    users = unit.values("Service", "User")
    assert "root" not in users and "0" not in users
    dynamic = unit.values("Service", "DynamicUser")
    assert (dynamic and dynamic[-1] == "yes") or users, "no service user is set"
    assert {"audio", "gpio", "spi"} <= set(unit.words("Service", "SupplementaryGroups"))


def test_the_key_is_a_credential_not_the_environment(unit: UnitFile) -> None:
    credentials = [
        value.split(":", 1)[0]
        for key in ("LoadCredentialEncrypted", "LoadCredential")
        for value in unit.values("Service", key)
    ]
    assert CREDENTIAL_NAME in credentials
    for assignment in unit.values("Service", "Environment"):
        name = assignment.split("=", 1)[0].upper()
        assert not any(word in name for word in ("KEY", "SECRET", "TOKEN")), assignment


def test_devices_are_fenced(unit: UnitFile) -> None:
    assert unit.value("Service", "DevicePolicy") == "closed"
    allowed = unit.values("Service", "DeviceAllow")
    assert "char-alsa rw" in allowed
    assert {"/dev/spidev0.0 rw", "/dev/spidev0.1 rw"} <= set(allowed)
    assert {f"/dev/gpiochip{n} rw" for n in range(5)} <= set(allowed)


def test_proc_asound_stays_visible(unit: UnitFile) -> None:
    # ProcSubset=pid hides /proc/asound, which ALSA and board detection read.
    assert "pid" not in unit.values("Service", "ProcSubset")


def test_directories_match_the_config_defaults(unit: UnitFile) -> None:
    defaults = load_config(None)
    state = unit.value("Service", "StateDirectory")
    assert Path("/var/lib") / state == defaults.device.state_dir
    configuration = unit.value("Service", "ConfigurationDirectory")
    assert Path("/etc") / configuration == DEFAULT_CONFIG_PATH.parent


def test_ordered_after_the_network_and_sound(unit: UnitFile) -> None:
    assert "network-online.target" in unit.words("Unit", "Wants")
    after = unit.words("Unit", "After")
    assert "network-online.target" in after and "sound.target" in after
    assert unit.value("Install", "WantedBy") == "multi-user.target"


def test_parser_reads_repeated_keys_and_continuations() -> None:
    parsed = parse_unit("[Service]\n# note\nDeviceAllow=a rw\nDeviceAllow=b \\\n  rw\n")
    assert parsed.values("Service", "DeviceAllow") == ["a rw", "b rw"]


# -- systemd-analyze --------------------------------------------------------------------
@pytest.fixture(scope="module")
def systemd_analyze() -> str:
    path = shutil.which("systemd-analyze")
    if path is None:
        why = "systemd-analyze is not installed (apt-get install systemd)"
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(f"{why}; {REQUIRE_ENV}=1 requires it", pytrace=False)
        pytest.skip(why)
    return path


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)


@pytest.fixture
def staged_root(tmp_path: Path, unit: UnitFile) -> Iterator[Path]:
    """A root with the stock units, the unit, and stubs of the programs it runs."""
    stock = next((d for d in STOCK_UNIT_DIRS if (d / "sysinit.target").exists()), None)
    if stock is None:
        pytest.fail(f"no stock systemd units in {', '.join(map(str, STOCK_UNIT_DIRS))}")
    root = tmp_path / "root"
    # Without the stock units verify fails on "Unit sysinit.target not found".
    shutil.copytree(stock, root / "usr/lib/systemd/system", symlinks=True)
    for program in _executables(unit):
        stub = root / program.lstrip("/")
        stub.parent.mkdir(parents=True, exist_ok=True)
        stub.write_text("#!/bin/sh\nexit 0\n")
        stub.chmod(0o755)
    (root / "etc/systemd/system").mkdir(parents=True)
    shutil.copy(UNIT, root / "etc/systemd/system" / UNIT_NAME)
    yield root


def _verify(systemd_analyze: str, root: Path) -> subprocess.CompletedProcess[str]:
    return _run(systemd_analyze, "verify", "--man=no", f"--root={root}", UNIT_NAME)


def test_verify_prints_nothing(systemd_analyze: str, staged_root: Path) -> None:
    # Soft problems (an unknown key, a bad value) exit 0 and only print: any output fails.
    result = _verify(systemd_analyze, staged_root)
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_verify_sees_a_missing_program(systemd_analyze: str, staged_root: Path) -> None:
    """The staged check is live: without the daemon's program, verify fails."""
    (staged_root / "opt/edgevoice/venv/bin/edgevoice").unlink()
    result = _verify(systemd_analyze, staged_root)
    assert result.returncode != 0
    assert "/opt/edgevoice/venv/bin/edgevoice" in result.stdout + result.stderr


def test_verify_reports_a_bad_directive(systemd_analyze: str, staged_root: Path) -> None:
    """The "prints nothing" rule catches what exits 0: a typo in a value."""
    staged = staged_root / "etc/systemd/system" / UNIT_NAME
    text = staged.read_text(encoding="utf-8")
    staged.write_text(text.replace("WatchdogSec=30", "WatchdogSec=thirty"), encoding="utf-8")
    result = _verify(systemd_analyze, staged_root)
    assert "thirty" in result.stdout + result.stderr


@pytest.mark.parametrize("example", DROP_IN_EXAMPLES, ids=lambda p: p.name)
def test_drop_in_example_verifies_clean(
    systemd_analyze: str, staged_root: Path, example: Path
) -> None:
    drop_ins = staged_root / "etc/systemd/system" / f"{UNIT_NAME}.d"
    drop_ins.mkdir()
    shutil.copy(example, drop_ins / example.name.removesuffix(".example"))
    result = _verify(systemd_analyze, staged_root)
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_drop_in_examples_are_documented() -> None:
    readme = (SYSTEMD_DIR / "README.md").read_text(encoding="utf-8")
    assert DROP_IN_EXAMPLES, "the README promises drop-in examples"
    for example in DROP_IN_EXAMPLES:
        assert example.name in readme


def _security(systemd_analyze: str, unit_path: Path) -> tuple[int, float | None, str]:
    result = _run(systemd_analyze, "security", "--offline=true", "--threshold=20", str(unit_path))
    output = result.stdout + result.stderr
    match = _EXPOSURE.search(output)
    return result.returncode, float(match.group(1)) if match else None, output


def test_exposure_is_at_most_two(systemd_analyze: str) -> None:
    returncode, exposure, table = _security(systemd_analyze, UNIT)
    assert exposure is not None, table
    assert returncode == 0 and exposure <= MAX_EXPOSURE, table


def test_an_unhardened_unit_fails_the_gate(systemd_analyze: str, tmp_path: Path) -> None:
    """The threshold and the score parser can fail: a bare unit scores far above 2."""
    bare = tmp_path / UNIT_NAME
    bare.write_text("[Service]\nType=notify\nExecStart=/opt/edgevoice/venv/bin/edgevoice run\n")
    returncode, exposure, table = _security(systemd_analyze, bare)
    assert exposure is not None, table
    assert returncode != 0 and exposure > MAX_EXPOSURE, table
