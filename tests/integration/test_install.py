"""scripts/install.sh against a fake root, with stubs for every command that would act on
the live system (apt-get, systemctl, raspi-config, systemd-creds, i2cdetect, the venv).

The fake root looks like a Raspberry Pi running Raspberry Pi OS bookworm: os-release,
/boot/firmware/config.txt, and a WM8960 2-mic HAT bound at /sys/bus/i2c/devices/1-001a.
Each stub appends its arguments to a log, so the tests see every command the installer
ran; the API key must appear in no log, no output and no file but the credential.
"""

from __future__ import annotations

import hashlib
import os
import pty
import shutil
import stat
import subprocess
import sys
import termios
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).parents[2]
SCRIPT = REPO / "scripts" / "install.sh"
KEY = "sk-proj-TestKey_0123456789abcdefNotReal"
REQUIRE_SHELLCHECK = "EDGEVOICE_REQUIRE_SHELLCHECK"

# Raspberry Pi OS bookworm's default config.txt, shortened.
CONFIG_TXT = """\
# For more options and information see
# http://rptl.io/configtxt

# Uncomment some or all of these to enable the optional hardware interfaces
#dtparam=i2c_arm=on
#dtparam=i2s=on
#dtparam=spi=on

# Enable audio (loads snd_bcm2835)
dtparam=audio=on

[cm4]
otg_mode=1

[all]
"""

OS_RELEASE = """\
PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION_CODENAME=bookworm
ID=debian
"""

_LOG = 'printf "%s" "${0##*/}" >>"$STUB_LOG"; printf " %s" "$@" >>"$STUB_LOG"; echo >>"$STUB_LOG"'

STUBS = {
    "apt-get": """
        if [ "$1" = install ]; then touch "$STUB_STATE/apt-installed"; fi
    """,
    # Answers "installed" for every package once apt-get install has run.
    "dpkg-query": """
        [ -e "$STUB_STATE/apt-installed" ] || exit 1
        for a in "$@"; do case $a in -*) ;; *) echo "$a install ok installed" ;; esac; done
    """,
    "dpkg": 'echo "${STUB_ARCH:-arm64}"',
    "systemctl": """
        case $1 in
        enable) touch "$STUB_STATE/enabled" ;;
        disable) rm -f "$STUB_STATE/enabled" ;;
        is-enabled)
            if [ -e "$STUB_STATE/enabled" ]; then echo enabled; else echo disabled; exit 1; fi ;;
        is-active) [ -e "$STUB_STATE/active" ] || exit 3 ;;
        stop) rm -f "$STUB_STATE/active" ;;
        esac
    """,
    # Does what the real one does to config.txt.
    "raspi-config": """
        case "$1 $2" in
        "nonint do_i2c") echo dtparam=i2c_arm=on >>"$EDGEVOICE_ROOT/boot/firmware/config.txt" ;;
        "nonint do_spi") echo dtparam=spi=on >>"$EDGEVOICE_ROOT/boot/firmware/config.txt" ;;
        esac
    """,
    # "Encrypts" by copying stdin to the output path, so the test can read the key back.
    "systemd-creds": """
        case $1 in
        encrypt) cat >"${@: -1}" ;;
        decrypt) for a in "${@:2}"; do case $a in -*) ;; *) cat "$a"; exit ;; esac; done ;;
        esac
    """,
    "i2cdetect": '[ ! -e "$STUB_STATE/i2cdetect.txt" ] || cat "$STUB_STATE/i2cdetect.txt"',
    "groupadd": "",
    # `python3 -m venv DIR` makes a fake venv whose pip only logs and whose edgevoice
    # runs the real `config check` from this checkout; anything else is real Python.
    "python3": r"""
        if [ "$1 $2" = "-m venv" ]; then
            venv=${@: -1}
            mkdir -p "$venv/bin"
            printf '#!/bin/bash\n%s\n' "$STUB_LOG_LINE" >"$venv/bin/python"
            printf '#!/bin/bash\n%s\n%s\n' "$STUB_LOG_LINE" "$STUB_EDGEVOICE" >"$venv/bin/edgevoice"
            chmod +x "$venv/bin/python" "$venv/bin/edgevoice"
            exit 0
        fi
        exec "$REAL_PYTHON" "$@"
    """,
}

# The fake selftest notes what it was given: the config path, the credentials directory
# and a digest of the key it found there (never the key).
FAKE_EDGEVOICE = """\
case $1 in
selftest)
    { echo "$EDGEVOICE_CONFIG"; echo "$CREDENTIALS_DIRECTORY"
      sha256sum <"$CREDENTIALS_DIRECTORY/openai-api-key" | cut -d' ' -f1; } >"$STUB_STATE/selftest"
    exit "${STUB_SELFTEST_RC:-0}" ;;
config) exec "$REAL_PYTHON" -m device "$@" ;;
esac"""


def i2cdetect_grid(addresses: set[int]) -> str:
    """What `i2cdetect -y 1` prints with these chips answering."""
    lines = ["     0  1  2  3  4  5  6  7  8  9  a  b  c  d  e  f"]
    for row in range(0, 0x80, 0x10):
        cells = []
        for addr in range(row, row + 0x10):
            if addr < 0x03 or addr > 0x77:
                cells.append("   ")
            else:
                cells.append(f" {addr:02x}" if addr in addresses else " --")
        lines.append(f"{row:02x}:" + "".join(cells).rstrip())
    return "\n".join(lines) + "\n"


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str
    calls: list[str]

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def called(self, prefix: str) -> list[str]:
        return [c for c in self.calls if c.startswith(prefix)]


class Rig:
    """A fake Pi root, stubs on PATH and a way to run the installer against them."""

    def __init__(self, tmp_path: Path) -> None:
        self.root = tmp_path / "root"
        self.bin = tmp_path / "bin"
        self.state = tmp_path / "state"
        self.log = tmp_path / "calls.log"
        self.key_file = tmp_path / "key.txt"
        self.outputs: list[str] = []
        for d in (self.root, self.bin, self.state):
            d.mkdir()
        self.log.touch()
        self.key_file.write_text(KEY + "\n")
        self.key_file.chmod(0o600)
        for name, body in STUBS.items():
            stub = self.bin / name
            stub.write_text(f"#!/bin/bash\n{_LOG}\n{body}\n")
            stub.chmod(0o755)
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("EDGEVOICE_")},
            "PATH": f"{self.bin}:{os.environ['PATH']}",
            "EDGEVOICE_ROOT": str(self.root),
            "EDGEVOICE_RASPI_CONFIG": "",  # edit config.txt directly unless a test says so
            "STUB_LOG": str(self.log),
            "STUB_STATE": str(self.state),
            "STUB_LOG_LINE": _LOG,
            "STUB_EDGEVOICE": FAKE_EDGEVOICE,
            "REAL_PYTHON": sys.executable,
            "PYTHONPATH": str(REPO),
        }

    def pi(
        self,
        *,
        i2c: tuple[int, ...] = (0x1A,),
        model: str = "Raspberry Pi 4 Model B Rev 1.4",
        groups: bool = True,
    ) -> Rig:
        """Make the root a Raspberry Pi OS bookworm system with these I2C chips bound."""
        etc = self.root / "etc"
        etc.mkdir(exist_ok=True)
        (etc / "os-release").write_text(OS_RELEASE)
        names = "audio:x:29:\n" + ("gpio:x:997:\nspi:x:999:\n" if groups else "")
        (etc / "group").write_text("root:x:0:\n" + names)
        if groups:  # Raspberry Pi OS ships the GPIO/SPI udev rules with the groups
            rules = self.root / "usr/lib/udev/rules.d"
            rules.mkdir(parents=True)
            (rules / "99-com.rules").write_text("# raspberrypi-sys-mods\n")
        boot = self.root / "boot/firmware"
        (boot / "overlays").mkdir(parents=True)
        (boot / "overlays/wm8960-soundcard.dtbo").write_bytes(b"\xd0\x0d\xfe\xed")
        (boot / "overlays/googlevoicehat-soundcard.dtbo").write_bytes(b"\xd0\x0d\xfe\xed")
        (boot / "config.txt").write_text(CONFIG_TXT)
        for addr in i2c:
            (self.root / f"sys/bus/i2c/devices/1-{addr:04x}/driver").mkdir(parents=True)
        dt = self.root / "sys/firmware/devicetree/base"
        dt.mkdir(parents=True)
        (dt / "model").write_bytes(model.encode() + b"\0")
        return self

    @property
    def config_txt(self) -> str:
        return (self.root / "boot/firmware/config.txt").read_text()

    def run(self, *args: str, stdin: int | None = subprocess.DEVNULL, **env: str) -> Result:
        before = len(self.log.read_text().splitlines())
        proc = subprocess.run(
            ["bash", str(SCRIPT), *args],
            env={**self.env, **env},
            stdin=stdin,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        self.outputs += [proc.stdout, proc.stderr]
        calls = self.log.read_text().splitlines()[before:]
        return Result(proc.returncode, proc.stdout, proc.stderr, calls)

    def assert_key_kept_secret(self) -> None:
        """The key is in no output, no command line, no file but the credential."""
        for text in [*self.outputs, self.log.read_text()]:
            assert KEY not in text
        credential = self.root / "etc/credstore.encrypted/openai-api-key"
        for path in self.root.rglob("*"):
            if path.is_file() and not path.is_symlink() and path != credential:
                assert KEY.encode() not in path.read_bytes(), path


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    r = Rig(tmp_path)
    yield r
    r.assert_key_kept_secret()


def snapshot(root: Path) -> dict[str, tuple[object, ...]]:
    """Every path under root with its type, mode and content."""
    tree: dict[str, tuple[object, ...]] = {}
    for path in sorted(root.rglob("*")):
        mode = stat.S_IMODE(path.lstat().st_mode)
        rel = str(path.relative_to(root))
        if path.is_symlink():
            tree[rel] = ("link", os.readlink(path))
        elif path.is_dir():
            tree[rel] = ("dir", mode)
        else:
            tree[rel] = ("file", mode, path.read_bytes())
    return tree


# ---------------------------------------------------------------- lint


def test_shellcheck_is_clean() -> None:
    if shutil.which("shellcheck") is None:
        if os.environ.get(REQUIRE_SHELLCHECK) == "1":
            pytest.fail(f"shellcheck is not installed and {REQUIRE_SHELLCHECK}=1", pytrace=False)
        pytest.skip("shellcheck is not installed (apt-get install shellcheck)")
    proc = subprocess.run(
        ["shellcheck", "-x", str(SCRIPT)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.stdout + proc.stderr == ""
    assert proc.returncode == 0


def test_help_lists_the_options(rig: Rig) -> None:
    res = rig.run("--help")
    assert res.returncode == 0
    for option in (
        "--board",
        "--key-file",
        "--no-selftest",
        "--dry-run",
        "--uninstall",
        "--purge",
        "--root",
    ):
        assert option in res.stdout
    assert "respeaker-2mic" in res.stdout
    assert res.calls == []


# ---------------------------------------------------------------- install


def test_install_on_a_2mic_pi_then_again_changes_nothing(rig: Rig) -> None:
    rig.pi(i2c=(0x1A,))
    first = rig.run("--key-file", str(rig.key_file))
    assert first.returncode == 0, first.output

    # apt, the venv from this checkout with the hw and pi extras, non-editable
    assert first.called("apt-get install")
    install = first.called("python -m pip install")
    assert len(install) == 1 and install[0].endswith("[hw,pi]") and " -e " not in install[0]
    assert first.called("python3 -m venv") == [f"python3 -m venv {rig.root}/opt/edgevoice/venv"]

    # I2C, SPI and the in-kernel WM8960 overlay, once each, in the [all] section
    cfg = rig.config_txt
    assert cfg.count("\ndtoverlay=wm8960-soundcard\n") == 1
    assert cfg.count("\ndtparam=i2c_arm=on\n") == 1 and cfg.count("\ndtparam=spi=on\n") == 1
    assert cfg.startswith(CONFIG_TXT) and cfg.rindex("[all]") < cfg.index("dtoverlay=wm8960")
    assert "respeaker-2mic" in first.stdout and "reboot" in first.stdout

    # the config, with the detected board, checked by the real `config check`
    config = rig.root / "etc/edgevoice/edgevoice.toml"
    assert 'board = "respeaker-2mic"' in config.read_text()
    assert stat.S_IMODE(config.stat().st_mode) == 0o644
    assert first.called("edgevoice config check") == [f"edgevoice config check {config}"]

    # the key, encrypted from stdin into a 0600 file in a 0700 directory
    cred = rig.root / "etc/credstore.encrypted/openai-api-key"
    assert cred.read_text() == KEY
    assert stat.S_IMODE(cred.stat().st_mode) == 0o600
    assert stat.S_IMODE(cred.parent.stat().st_mode) == 0o700
    assert first.called("systemd-creds encrypt") == [
        f"systemd-creds encrypt --name=openai-api-key - {cred}.tmp"
    ]

    # the unit, copied as it is, enabled, then the selftest
    unit = rig.root / "etc/systemd/system/edgevoice.service"
    assert unit.read_bytes() == (REPO / "systemd/edgevoice.service").read_bytes()
    assert "systemctl daemon-reload" in first.calls
    assert "systemctl enable edgevoice.service" in first.calls
    assert not first.called("systemctl restart")  # it was not running
    assert first.calls[-1] == "edgevoice selftest"

    before = snapshot(rig.root)
    second = rig.run("--key-file", str(rig.key_file))
    assert second.returncode == 0, second.output
    assert snapshot(rig.root) == before
    assert "nothing changed" in second.stdout
    assert "keeping the existing" in second.stdout and "already in" in second.stdout
    for mutating in (
        "apt-get",
        "python3 -m venv",
        "python -m pip",
        "systemd-creds encrypt",
        "systemctl enable",
        "systemctl daemon-reload",
        "systemctl restart",
    ):
        assert not second.called(mutating), mutating


def test_existing_config_is_kept(rig: Rig) -> None:
    rig.pi()
    mine = rig.root / "etc/edgevoice/edgevoice.toml"
    mine.parent.mkdir(parents=True)
    mine.write_text("[audio]\nvolume_percent = 40\n")
    res = rig.run("--no-selftest")
    assert res.returncode == 0, res.output
    assert mine.read_text() == "[audio]\nvolume_percent = 40\n"
    assert f"keeping the existing {mine}" in res.stdout


def test_restart_only_when_running_and_something_changed(rig: Rig) -> None:
    rig.pi()
    (rig.state / "active").touch()
    first = rig.run("--no-selftest")
    assert "systemctl restart edgevoice.service" in first.calls
    second = rig.run("--no-selftest")
    assert not second.called("systemctl restart")
    assert "not restarted" in second.stdout


def test_raspi_config_enables_the_buses_when_present(rig: Rig) -> None:
    rig.pi()
    env = {"EDGEVOICE_RASPI_CONFIG": "raspi-config"}
    first = rig.run("--no-selftest", **env)
    assert first.returncode == 0, first.output
    assert first.called("raspi-config") == [
        "raspi-config nonint do_i2c 0",
        "raspi-config nonint do_spi 0",
    ]
    second = rig.run("--no-selftest", **env)
    assert not second.called("raspi-config")
    assert "I2C: already enabled" in second.stdout


def test_an_all_section_is_opened_before_the_added_lines(rig: Rig) -> None:
    rig.pi()
    (rig.root / "boot/firmware/config.txt").write_text("dtparam=audio=on\n[pi4]\narm_boost=1")
    assert rig.run("--no-selftest").returncode == 0
    assert rig.config_txt.startswith("dtparam=audio=on\n[pi4]\narm_boost=1\n[all]\n")


# ---------------------------------------------------------------- boards


def test_4mic_gets_the_vendor_driver_message_and_no_overlay(rig: Rig) -> None:
    rig.pi(i2c=(0x3B,))
    res = rig.run("--no-selftest")
    assert res.returncode == 0, res.output
    assert "respeaker-4mic" in res.stdout
    assert "HinTak/seeed-voicecard" in res.stdout and "uname -r" in res.stdout
    assert "dtoverlay" not in rig.config_txt
    assert 'board = "respeaker-4mic"' in (rig.root / "etc/edgevoice/edgevoice.toml").read_text()
    assert not res.called("git") and not res.called("dkms")


def test_6mic_on_a_pi5_is_warned_about(rig: Rig) -> None:
    rig.pi(i2c=(0x3B, 0x35), model="Raspberry Pi 5 Model B Rev 1.0")
    res = rig.run("--no-selftest")
    assert res.returncode == 0, res.output
    assert "respeaker-6mic" in res.stdout and "HinTak/seeed-voicecard" in res.stdout
    assert "TDM" in res.stderr


def test_2mic_v2_found_by_i2cdetect_needs_seeds_overlay(rig: Rig) -> None:
    rig.pi(i2c=())
    (rig.state / "i2cdetect.txt").write_text(i2cdetect_grid({0x18}))
    res = rig.run("--no-selftest")
    assert res.returncode == 0, res.output
    assert "i2cdetect -y 1" in res.calls
    assert "respeaker-2mic-v2" in res.stdout
    assert "Seeed-Studio/seeed-linux-dtoverlays" in res.stdout
    assert "dtoverlay" not in rig.config_txt  # not there until the .dtbo is

    (rig.root / "boot/firmware/overlays/respeaker-2mic-v2_0.dtbo").write_bytes(b"\xd0\x0d")
    again = rig.run("--no-selftest")
    assert rig.config_txt.count("\ndtoverlay=respeaker-2mic-v2_0\n") == 1, again.output


def test_board_option_overrides_detection(rig: Rig) -> None:
    rig.pi(i2c=())
    res = rig.run("--board", "aiy-voice-hat", "--no-selftest")
    assert res.returncode == 0, res.output
    assert rig.config_txt.count("\ndtoverlay=googlevoicehat-soundcard\n") == 1
    assert 'board = "aiy-voice-hat"' in (rig.root / "etc/edgevoice/edgevoice.toml").read_text()


def test_unknown_board_is_refused_with_the_list(rig: Rig) -> None:
    rig.pi()
    res = rig.run("--board", "respeaker-9mic")
    assert res.returncode != 0
    assert "respeaker-9mic" in res.stderr and "respeaker-2mic" in res.stderr
    assert res.calls == []


def test_no_hat_leaves_board_auto(rig: Rig) -> None:
    rig.pi(i2c=())
    res = rig.run("--no-selftest")
    assert res.returncode == 0, res.output
    assert "none detected" in res.stdout and "--board" in res.stdout
    assert 'board = "auto"' in (rig.root / "etc/edgevoice/edgevoice.toml").read_text()
    assert "dtoverlay" not in rig.config_txt


def test_plain_debian_gets_the_groups_and_udev_rules(rig: Rig) -> None:
    rig.pi(groups=False)
    res = rig.run("--no-selftest")
    assert res.returncode == 0, res.output
    prefix = f"--prefix {rig.root}"
    assert res.called("groupadd") == [
        f"groupadd --system {prefix} gpio",
        f"groupadd --system {prefix} spi",
    ]
    rules = (rig.root / "etc/udev/rules.d/60-edgevoice.rules").read_text()
    assert 'GROUP="gpio"' in rules and 'GROUP="spi"' in rules


# ---------------------------------------------------------------- the key


def test_without_terminal_or_key_file_the_key_is_skipped_with_a_hint(rig: Rig) -> None:
    rig.pi()
    res = rig.run("--no-selftest")
    assert res.returncode == 0, res.output
    assert "not asked" in res.stdout and "--key-file" in res.stdout
    assert "systemd-creds encrypt --name=openai-api-key" in res.stdout
    assert not (rig.root / "etc/credstore.encrypted/openai-api-key").exists()


def test_key_is_read_hidden_from_the_terminal(rig: Rig) -> None:
    rig.pi()
    master, slave = pty.openpty()
    try:
        attrs = termios.tcgetattr(slave)
        attrs[3] &= ~termios.ECHO  # nothing typed shows up, even before the script's read -s
        termios.tcsetattr(slave, termios.TCSANOW, attrs)
        os.write(master, f"not-a-key\n{KEY}\n".encode())
        res = rig.run("--no-selftest", stdin=slave)
    finally:
        os.close(slave)
        os.close(master)
    assert res.returncode == 0, res.output
    assert "OpenAI API key" in res.stderr and "not an OpenAI API key" in res.stderr
    assert (rig.root / "etc/credstore.encrypted/openai-api-key").read_text() == KEY


def test_a_key_file_holding_something_else_is_refused_without_showing_it(rig: Rig) -> None:
    rig.pi()
    bad = rig.key_file.parent / "bad.txt"
    bad.write_text("OPENAI_API_KEY=secret-value-123\n")
    res = rig.run("--key-file", str(bad))
    assert res.returncode != 0
    assert "secret-value-123" not in res.output
    assert str(bad) in res.stderr


# ---------------------------------------------------------------- selftest


def test_selftest_failure_is_reported_not_fatal(rig: Rig) -> None:
    rig.pi()
    res = rig.run(STUB_SELFTEST_RC="3")
    assert res.returncode == 0
    assert "selftest failed (exit 3)" in res.stderr and "reboot" in res.stderr


def test_selftest_finds_the_key_where_the_service_does(rig: Rig) -> None:
    rig.pi()
    assert rig.run("--key-file", str(rig.key_file)).returncode == 0
    config, creds, digest = (rig.state / "selftest").read_text().splitlines()
    assert config == str(rig.root / "etc/edgevoice/edgevoice.toml")
    assert digest == hashlib.sha256(KEY.encode()).hexdigest()
    assert creds and not Path(creds).exists()  # removed right after


def test_a_running_service_is_stopped_for_the_selftest_and_started_again(rig: Rig) -> None:
    rig.pi()
    (rig.state / "active").touch()
    res = rig.run()
    assert res.returncode == 0, res.output
    i = res.calls.index("edgevoice selftest")
    assert res.calls[i - 1] == "systemctl stop edgevoice.service"
    assert res.calls[i + 1] == "systemctl start edgevoice.service"


def test_no_selftest_skips_it(rig: Rig) -> None:
    rig.pi()
    res = rig.run("--no-selftest")
    assert not res.called("edgevoice selftest")
    assert "skipped" in res.stdout


# ---------------------------------------------------------------- dry run


def test_dry_run_prints_every_action_and_changes_nothing(rig: Rig) -> None:
    rig.pi()
    before = snapshot(rig.root)
    res = rig.run("--dry-run", "--key-file", str(rig.key_file))
    assert res.returncode == 0, res.output
    assert snapshot(rig.root) == before
    out = res.stdout
    for action in (
        "apt-get install",
        "append to",
        "dtoverlay=wm8960-soundcard",
        "python3 -m venv",
        "pip install",
        "edgevoice.toml",
        "systemd-creds encrypt",
        "edgevoice.service",
        "systemctl daemon-reload",
        "systemctl enable",
        "edgevoice selftest",
    ):
        assert action in out, action
    assert "nothing was changed" in out
    # only commands that read ran
    for call in res.calls:
        assert call.split()[0] in (
            "dpkg-query",
            "dpkg",
            "python3",
            "i2cdetect",
            "systemctl",
            "systemd-creds",
        ), call
        assert call.split()[1] in (
            "-W",
            "--print-architecture",
            "-c",
            "-y",
            "is-enabled",
            "is-active",
            "decrypt",
        ), call


def test_dry_run_uninstall_changes_nothing(rig: Rig) -> None:
    rig.pi()
    assert rig.run("--key-file", str(rig.key_file)).returncode == 0
    before = snapshot(rig.root)
    res = rig.run("--purge", "--dry-run")
    assert res.returncode == 0, res.output
    assert snapshot(rig.root) == before
    assert "systemctl disable" in res.stdout and "remove" in res.stdout
    assert not res.called("systemctl disable")


# ---------------------------------------------------------------- uninstall


def test_uninstall_keeps_config_and_key_and_purge_removes_them(rig: Rig) -> None:
    rig.pi()
    assert rig.run("--key-file", str(rig.key_file)).returncode == 0
    state = rig.root / "var/lib/private/edgevoice"
    state.mkdir(parents=True)
    (rig.root / "var/lib/edgevoice").symlink_to("private/edgevoice")
    (rig.state / "active").touch()

    res = rig.run("--uninstall")
    assert res.returncode == 0, res.output
    assert "systemctl stop edgevoice.service" in res.calls
    assert "systemctl disable edgevoice.service" in res.calls
    assert not (rig.root / "etc/systemd/system/edgevoice.service").exists()
    assert not (rig.root / "opt/edgevoice").exists()
    assert (rig.root / "etc/edgevoice/edgevoice.toml").exists()
    assert (rig.root / "etc/credstore.encrypted/openai-api-key").exists()
    assert state.exists()

    again = rig.run("--uninstall")
    assert again.returncode == 0 and "nothing changed" in again.stdout

    res = rig.run("--purge")
    assert res.returncode == 0, res.output
    assert not (rig.root / "etc/edgevoice").exists()
    assert not (rig.root / "etc/credstore.encrypted/openai-api-key").exists()
    assert not (rig.root / "var/lib/edgevoice").exists()
    assert not (rig.root / "var/lib/edgevoice").is_symlink()
    assert not state.exists()
