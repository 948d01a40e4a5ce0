# shellcheck shell=bash
# Shared setup for scripts/demo and scripts/test: Debian packages, a virtual
# environment, the package itself. Sourced, not run. Works as root or through
# sudo on Debian 12 and Raspberry Pi OS bookworm.

EV_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
EV_VENV=${EDGEVOICE_VENV:-$EV_ROOT/.venv}
export EV_ROOT EV_VENV

ev_log() { printf '[edgevoice] %s\n' "$*" >&2; }
ev_die() { printf '[edgevoice] error: %s\n' "$*" >&2; exit 1; }

ev_check_python() {
	command -v python3 >/dev/null || ev_die "python3 not found; install it: apt-get install python3"
	python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
		ev_die "Python >= 3.11 needed, found $(python3 --version 2>&1) (Raspberry Pi OS bookworm has 3.11)"
}

# ev_apt_install PKG...: install the Debian packages that are not installed yet.
ev_apt_install() {
	local missing=() pkg sudo=""
	for pkg in "$@"; do
		dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" ||
			missing+=("$pkg")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	command -v apt-get >/dev/null ||
		ev_die "missing packages (${missing[*]}) and no apt-get: install them by hand"
	if [ "$(id -u)" -ne 0 ]; then
		command -v sudo >/dev/null || ev_die "run as root or install sudo to install: ${missing[*]}"
		sudo="sudo"
	fi
	ev_log "installing Debian packages: ${missing[*]}"
	$sudo apt-get update -qq || ev_die "apt-get update failed"
	$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
		"${missing[@]}" >/dev/null || ev_die "apt-get install ${missing[*]} failed"
}

# ev_silero_model: the Silero VAD model file, from the silero-vad wheel without its
# torch dependency (the daemon loads the ONNX file with onnxruntime).
ev_silero_model() {
	"$EV_VENV/bin/python" -c 'import importlib.util, sys; sys.exit(importlib.util.find_spec("silero_vad") is None)' &&
		return 0
	ev_log "installing the Silero VAD model (silero-vad, without torch)"
	"$EV_VENV/bin/python" -m pip install -q --disable-pip-version-check --no-deps "silero-vad==6.2.3" ||
		ev_die "pip install silero-vad failed"
}

# ev_venv [EXTRAS]: a venv with the package installed in editable mode; re-installs
# only when pyproject.toml or the extras change.
ev_venv() {
	local extras=${1:-} target=$EV_ROOT stamp want
	[ -n "$extras" ] && target="${EV_ROOT}[${extras}]"
	stamp="$EV_VENV/.edgevoice-installed-${extras:-base}"
	if [ ! -x "$EV_VENV/bin/python" ]; then
		ev_log "creating virtual environment $EV_VENV"
		python3 -m venv "$EV_VENV" || ev_die "python3 -m venv failed (apt-get install python3-venv)"
	fi
	want=$(sha256sum "$EV_ROOT/pyproject.toml" | cut -d' ' -f1)
	if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
		return 0
	fi
	ev_log "installing edgevoice${extras:+ [$extras]} into $EV_VENV"
	"$EV_VENV/bin/python" -m pip install -q --disable-pip-version-check -e "$target" ||
		ev_die "pip install failed"
	printf '%s\n' "$want" >"$stamp"
}
