#!/usr/bin/env bash
# Install edgevoice on a Raspberry Pi (Raspberry Pi OS bookworm, arm64 or armhf) or on
# Debian bookworm, from the checkout this script lives in. Safe to run again: a second
# run changes nothing and says so. `scripts/install.sh --help` lists the options.
#
# For tests: --root DIR (or $EDGEVOICE_ROOT) puts DIR in front of every path read or
# written on the target system, and every command that acts on the live system goes
# through run(), so stubs first on PATH can stand in for apt-get, systemctl and friends.
set -euo pipefail
umask 022

SCRIPT_PATH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")
REPO=$(cd "$(dirname "$SCRIPT_PATH")/.." && pwd)
ORIG_ARGS=("$@")

UNIT=edgevoice.service
CRED_NAME=openai-api-key
OPT_DIR=/opt/edgevoice
VENV=$OPT_DIR/venv
ETC_DIR=/etc/edgevoice
CONFIG=$ETC_DIR/edgevoice.toml
CRED_DIR=/etc/credstore.encrypted
CRED=$CRED_DIR/$CRED_NAME
UNIT_DIR=/etc/systemd/system
UDEV_RULE=/etc/udev/rules.d/60-edgevoice.rules
STATE_DIRS=(/var/lib/edgevoice /var/lib/private/edgevoice)
EXTRAS=hw,pi
APT_PACKAGES=(python3 python3-venv python3-dev gcc libc6-dev pkg-config portaudio19-dev
	libsystemd-dev libasound2-plugins alsa-utils i2c-tools)
KEY_SHAPE='^(sk-|ek_)[A-Za-z0-9_-]+$'
export DEBIAN_FRONTEND=noninteractive

# Options and what the run found out.
ROOT=${EDGEVOICE_ROOT:-}
RASPI_CONFIG=${EDGEVOICE_RASPI_CONFIG-raspi-config} # empty: edit config.txt directly
DRY_RUN=0 MODE=install NO_SELFTEST=0 BOARD="" BOARD_FROM="" KEY_FILE=""
CHANGES=0 SERVICE_DIRTY=0 SERVICE_ACTIVE=0 REBOOT_NEEDED="" BOOT_CONFIG="" PI_MODEL=""
STAGE="" CRED_TMP="" CREDS_TMP=""

# ---------------------------------------------------------------- output

say() { printf '%s\n' "$*"; }
step() { printf '==> %s\n' "$*"; }
detail() { printf '    %s\n' "$*"; }
warn() { printf 'warning: %s\n' "$*" >&2; }
die() {
	printf 'error: %s\n' "$*" >&2
	exit 1
}
changed() { CHANGES=$((CHANGES + 1)); }
dry() { printf '[dry-run] would %s\n' "$*"; }

usage() {
	cat <<EOF
Usage: scripts/install.sh [OPTION]...
Install edgevoice from this checkout: Debian packages, I2C/SPI and the HAT's overlay in
config.txt, a venv in $VENV, $CONFIG, the API key as the encrypted
systemd credential $CRED_NAME, and $UNIT. Runs as root (re-runs itself with sudo).

  --board NAME      use this board profile (hw/boards/NAME.toml) instead of detecting
                    the HAT by its I2C address; needed for the AIY Voice HAT and the
                    4-mic linear kit, which cannot be detected
  --key-file PATH   read the OpenAI API key from PATH (one line); without it the key is
                    asked for when stdin is a terminal, and skipped otherwise
  --no-selftest     do not run 'edgevoice selftest' at the end
  --dry-run         print every action without doing any, then exit
  --uninstall       stop, disable and remove the unit and $OPT_DIR; keep
                    $ETC_DIR and the credential
  --purge           --uninstall, and also remove $ETC_DIR, $CRED
                    and the state in ${STATE_DIRS[*]}
  --root DIR        prefix every target path with DIR (for tests; \$EDGEVOICE_ROOT too).
                    Commands such as apt-get and systemctl still act on this machine:
                    put stubs first on PATH. \$EDGEVOICE_RASPI_CONFIG names the
                    raspi-config command to use; set it empty to edit config.txt directly.
  -h, --help        show this help

Boards: $(board_names | tr '\n' ' ')
EOF
}

# ---------------------------------------------------------------- helpers

# run [--query] CMD ARG...: the one way to commands that act on the live system.
# --query marks a command that only reads, so it also runs in a dry run.
run() {
	local query=0
	if [ "${1:-}" = --query ]; then
		query=1
		shift
	fi
	if [ "$DRY_RUN" = 1 ] && [ "$query" = 0 ]; then
		local cmd
		cmd=$(printf '%q ' "$@")
		dry "run: ${cmd% }"
		return 0
	fi
	"$@"
}

# t PATH: the path on the target system.
t() { printf '%s%s' "$ROOT" "$1"; }

cleanup() {
	if [ -n "$STAGE" ]; then rm -rf -- "$STAGE"; fi
	if [ -n "$CRED_TMP" ]; then rm -f -- "$CRED_TMP"; fi
	if [ -n "$CREDS_TMP" ]; then rm -rf -- "$CREDS_TMP"; fi
}
trap cleanup EXIT

file_mode() { stat -c '%a' "$1"; }

# ensure_dir MODE DIR: create DIR with MODE; an existing one is left as it is.
ensure_dir() {
	if [ -d "$2" ]; then return 0; fi
	if [ "$DRY_RUN" = 1 ]; then
		dry "create directory $2 (mode $1)"
	else
		mkdir -p "$2" || die "cannot create $2"
		chmod "$1" "$2" || die "cannot chmod $2"
	fi
	changed
}

# ensure_mode MODE PATH
ensure_mode() {
	if [ ! -e "$2" ] || [ "$(file_mode "$2")" = "${1#0}" ]; then return 0; fi
	if [ "$DRY_RUN" = 1 ]; then dry "chmod $1 $2"; else chmod "$1" "$2" || die "cannot chmod $2"; fi
	changed
}

# copy_file MODE SRC DEST: copy when different; succeeds only when it changed something.
copy_file() {
	if [ -f "$3" ] && cmp -s "$2" "$3" && [ "$(file_mode "$3")" = "${1#0}" ]; then
		return 1
	fi
	if [ "$DRY_RUN" = 1 ]; then
		dry "write $3 (from $2, mode $1)"
	else
		install -m "$1" "$2" "$3" || die "cannot write $3"
	fi
	changed
}

# write_file MODE DEST < CONTENT: write when different; succeeds only when it changed.
write_file() {
	local content
	content=$(cat)
	if [ -f "$2" ] && [ "$(cat "$2")" = "$content" ] && [ "$(file_mode "$2")" = "${1#0}" ]; then
		return 1
	fi
	if [ "$DRY_RUN" = 1 ]; then
		dry "write $2 (mode $1)"
	else
		if ! { printf '%s\n' "$content" >"$2.tmp" && chmod "$1" "$2.tmp" && mv -f "$2.tmp" "$2"; }; then
			die "cannot write $2"
		fi
	fi
	changed
}

# remove PATH...: remove what exists; succeeds only when something was there.
remove() {
	local path found=1
	for path in "$@"; do
		if [ -z "$path" ] || [ "$path" = / ]; then die "refusing to remove '$path'"; fi
		if [ -e "$path" ] || [ -L "$path" ]; then
			found=0
			if [ "$DRY_RUN" = 1 ]; then
				dry "remove $path"
			else
				rm -rf -- "$path" || die "cannot remove $path"
			fi
			changed
			detail "removed $path"
		fi
	done
	return "$found"
}

board_names() {
	local f
	for f in "$REPO"/hw/boards/*.toml; do basename "$f" .toml; done
}

# board_title NAME: the title line of a board profile.
board_title() {
	sed -n 's/^title = "\(.*\)".*/\1/p' "$REPO/hw/boards/$1.toml" | head -n 1
}

# ---------------------------------------------------------------- arguments

parse_args() {
	while [ $# -gt 0 ]; do
		case $1 in
		--board) BOARD=${2:?--board needs a NAME}; BOARD_FROM="--board"; shift ;;
		--board=*) BOARD=${1#*=}; BOARD_FROM="--board" ;;
		--key-file) KEY_FILE=${2:?--key-file needs a PATH}; shift ;;
		--key-file=*) KEY_FILE=${1#*=} ;;
		--root) ROOT=${2:?--root needs a DIR}; shift ;;
		--root=*) ROOT=${1#*=} ;;
		--no-selftest) NO_SELFTEST=1 ;;
		--dry-run) DRY_RUN=1 ;;
		--uninstall) [ "$MODE" = purge ] || MODE=uninstall ;;
		--purge) MODE=purge ;;
		-h | --help) usage; exit 0 ;;
		*) usage >&2; die "unknown option: $1" ;;
		esac
		shift
	done
	if [ -n "$BOARD" ] && [ ! -f "$REPO/hw/boards/$BOARD.toml" ]; then
		die "unknown board '$BOARD'; known: $(board_names | tr '\n' ' ')"
	fi
	if [ -n "$KEY_FILE" ] && [ ! -r "$KEY_FILE" ]; then
		die "cannot read the key file $KEY_FILE"
	fi
	if [ -n "$ROOT" ]; then
		[ -d "$ROOT" ] || die "--root $ROOT is not a directory"
		ROOT=$(cd "$ROOT" && pwd)
		[ "$ROOT" != / ] || ROOT=""
	fi
}

# ---------------------------------------------------------------- checks

check_root() {
	if [ -n "$ROOT" ] || [ "$(id -u)" -eq 0 ]; then return 0; fi
	if [ "$DRY_RUN" = 1 ]; then
		warn "not root: a dry run still works, but a real one needs root"
		return 0
	fi
	command -v sudo >/dev/null || die "run this as root (sudo is not installed)"
	say "root needed: running again through sudo"
	exec sudo -- "$BASH" "$SCRIPT_PATH" "${ORIG_ARGS[@]}"
}

check_system() {
	local os_release id="" like="" codename="" pretty="" arch model
	os_release=$(t /etc/os-release)
	[ -r "$os_release" ] || die "$os_release not found: not a Debian-family system"
	id=$(sed -n 's/^ID=//p' "$os_release" | tr -d '"')
	like=$(sed -n 's/^ID_LIKE=//p' "$os_release" | tr -d '"')
	codename=$(sed -n 's/^VERSION_CODENAME=//p' "$os_release" | tr -d '"')
	pretty=$(sed -n 's/^PRETTY_NAME=//p' "$os_release" | tr -d '"')
	case " $id $like " in
	*" debian "* | *" raspbian "*) ;;
	*) die "${pretty:-$id} is not Debian or Raspberry Pi OS; install by hand (see docs/install.md)" ;;
	esac
	if arch=$(run --query dpkg --print-architecture 2>/dev/null); then :; else arch=$(uname -m); fi
	model=$(t /sys/firmware/devicetree/base/model)
	if [ -r "$model" ]; then PI_MODEL=$(tr -d '\0' <"$model"); fi
	step "system: ${pretty:-$id}, $arch${PI_MODEL:+, $PI_MODEL}"
	if [ "$codename" != bookworm ]; then
		warn "made for bookworm, this is '${codename:-unknown}': continuing, but untested"
	fi
	case $arch in
	arm64 | armhf | aarch64 | armv7l | armv6l) ;;
	*) detail "not a Raspberry Pi architecture: fine for a test install, no HAT will be found" ;;
	esac
}

# ---------------------------------------------------------------- install steps

install_packages() {
	local pkg missing=() installed
	# shellcheck disable=SC2016 # dpkg-query's own ${field} syntax
	installed=$(run --query dpkg-query -W -f='${Package} ${Status}\n' "${APT_PACKAGES[@]}" \
		2>/dev/null || true)
	for pkg in "${APT_PACKAGES[@]}"; do
		grep -qx "$pkg install ok installed" <<<"$installed" || missing+=("$pkg")
	done
	if [ ${#missing[@]} -eq 0 ]; then
		step "packages: all ${#APT_PACKAGES[@]} Debian packages already installed"
		return 0
	fi
	step "packages: installing ${missing[*]}"
	run apt-get update -q || die "apt-get update failed"
	run apt-get install -y -q --no-install-recommends "${missing[@]}" ||
		die "apt-get install ${missing[*]} failed"
	changed
}

find_boot_config() {
	local f
	for f in /boot/firmware/config.txt /boot/config.txt; do
		if [ -f "$(t "$f")" ]; then
			BOOT_CONFIG=$(t "$f")
			return 0
		fi
	done
	return 1
}

# boot_has REGEX: an active (uncommented) config.txt line matches.
boot_has() { grep -Eq "^[[:space:]]*$1[[:space:]]*$" "$BOOT_CONFIG"; }

# boot_append LINE...: add lines at the end of config.txt, in an [all] section.
boot_append() {
	local last add=()
	last=$(grep -E '^[[:space:]]*\[[^]]*\]' "$BOOT_CONFIG" | tail -n 1 | tr -d '[:space:]') || true
	if [ -n "$last" ] && [ "$last" != "[all]" ]; then add+=("[all]"); fi
	add+=("$@")
	if [ "$DRY_RUN" = 1 ]; then
		dry "append to $BOOT_CONFIG: $(printf '%s; ' "${add[@]}")"
	else
		[ -e "$BOOT_CONFIG.edgevoice.bak" ] || cp -- "$BOOT_CONFIG" "$BOOT_CONFIG.edgevoice.bak"
		if [ -s "$BOOT_CONFIG" ] && [ -n "$(tail -c 1 "$BOOT_CONFIG")" ]; then
			printf '\n' >>"$BOOT_CONFIG"
		fi
		printf '%s\n' "${add[@]}" >>"$BOOT_CONFIG"
	fi
	REBOOT_NEEDED="config.txt changed"
	changed
}

# enable_bus NAME DTPARAM RASPI_CONFIG_ACTION
enable_bus() {
	# The pattern raspi-config's get_i2c/get_spi use.
	if boot_has "(device_tree_param|dtparam)=([^,]*,)*$2(=(on|true|yes|1))?(,.*)?"; then
		step "$1: already enabled"
		return 0
	fi
	if [ -n "$RASPI_CONFIG" ] && command -v "$RASPI_CONFIG" >/dev/null; then
		step "$1: enabling with raspi-config"
		run "$RASPI_CONFIG" nonint "$3" 0 || die "$RASPI_CONFIG nonint $3 0 failed"
		REBOOT_NEEDED="config.txt changed"
		changed
	else
		step "$1: enabling in $BOOT_CONFIG"
		boot_append "# edgevoice: $1 for the HAT" "dtparam=$2=on"
	fi
}

enable_buses() {
	if ! find_boot_config; then
		step "I2C/SPI: no config.txt under $(t /boot): not a Raspberry Pi, skipping"
		return 0
	fi
	if [ -e "$(t /etc/default/raspi-firmware)" ]; then
		warn "Debian's raspi-firmware may rewrite $BOOT_CONFIG on kernel upgrades;" \
			"copy the lines this installer adds into /etc/default/raspi-firmware-custom"
	fi
	enable_bus I2C i2c_arm do_i2c
	enable_bus SPI spi do_spi
}

# i2c_addresses: bound I2C devices on bus 1 from sysfs, and what i2cdetect -y 1 answers
# (hex, lower case, one per line). sysfs only knows chips an overlay declared; i2cdetect
# finds a HAT before its overlay is there.
i2c_addresses() {
	local dev out
	for dev in "$(t /sys/bus/i2c/devices)"/1-00[0-7][0-9a-fA-F]; do
		if [ -e "$dev/driver" ]; then
			printf '%s\n' "${dev##*-00}" | tr 'A-F' 'a-f'
		fi
	done
	if command -v i2cdetect >/dev/null; then
		out=$(run --query i2cdetect -y 1 2>/dev/null) || out=""
		# Row "10:" then 16 cells of 3 characters: " --", " UU" (driver bound) or " 1a".
		awk '/^[0-7]0:/ { for (c = 0; c < 16; c++) { v = substr($0, 5 + 3 * c, 2)
			if (v ~ /^[0-9a-f][0-9a-f]$/ || v == "UU") printf "%s%x\n", substr($0, 1, 1), c } }' \
			<<<"$out"
	fi
}

# contains WORD WORD...: the first word is among the others.
contains() {
	local want=$1 word
	shift
	for word in "$@"; do
		if [ "$word" = "$want" ]; then return 0; fi
	done
	return 1
}

# match_board ADDR...: the profile whose I2C addresses (from hw/boards/*.toml) are all
# present, the one with most addresses first; ties broken as hw/boards.py breaks them
# (the 6-mic over the 4-mic linear kit, the 2-mic v1 over v2).
match_board() {
	local f name list want hits all tie
	for f in "$REPO"/hw/boards/*.toml; do
		name=$(basename "$f" .toml)
		list=$(sed -n 's/^i2c_addresses = \[\([^]]*\)\].*/\1/p' "$f" | tr ',' ' ')
		hits=0 all=1
		for want in $list; do
			want=$(printf '%s' "${want#0x}" | tr 'A-F' 'a-f')
			if contains "$want" "$@"; then hits=$((hits + 1)); else all=0; fi
		done
		if [ "$hits" -gt 0 ] && [ "$all" = 1 ]; then
			case $name in respeaker-6mic) tie=0 ;; respeaker-2mic) tie=1 ;; *) tie=2 ;; esac
			printf '%s %s %s\n' "$hits" "$tie" "$name"
		fi
	done | sort -k1,1nr -k2,2n -k3,3 | head -n 1 | cut -d' ' -f3
}

detect_board() {
	local addrs
	if [ -n "$BOARD" ]; then
		step "board: $BOARD ($(board_title "$BOARD")), from --board"
		return 0
	fi
	mapfile -t addrs < <(i2c_addresses | sort -u)
	BOARD=$(match_board "${addrs[@]}")
	if [ -n "$BOARD" ]; then
		BOARD_FROM="I2C ${addrs[*]/#/0x}"
		step "board: $BOARD ($(board_title "$BOARD")), detected by $BOARD_FROM"
	else
		step "board: none detected on I2C bus 1${addrs[*]:+ (found ${addrs[*]/#/0x})}"
		detail "if the HAT is on and I2C was only just enabled, reboot and run this again;"
		detail "or name it: --board NAME (the AIY Voice HAT cannot be detected)"
	fi
}

# add_overlay NAME WHY: dtoverlay=NAME in config.txt, once.
add_overlay() {
	if boot_has "dtoverlay=$1([,:].*)?"; then
		step "overlay: dtoverlay=$1 already in $BOOT_CONFIG"
		return 0
	fi
	step "overlay: adding dtoverlay=$1 to $BOOT_CONFIG ($2)"
	boot_append "# edgevoice: $(board_title "$BOARD")" "dtoverlay=$1"
}

# overlay_file NAME: the .dtbo next to config.txt, or nothing when there is none.
overlay_file() {
	local f
	f=$(dirname "$BOOT_CONFIG")/overlays/$1.dtbo
	if [ -e "$f" ]; then printf '%s' "$f"; fi
}

# kernel_branch: HinTak/seeed-voicecard's branch for the running kernel, e.g. v6.12.
kernel_branch() {
	local release minor
	release=$(uname -r)
	minor=${release#*.}
	printf 'v%s.%s' "${release%%.*}" "${minor%%.*}"
}

# headers_package: the kernel headers DKMS builds against: linux-headers-rpi-v8 for
# Raspberry Pi OS's 6.12.47+rpt-rpi-v8, linux-headers-<release> elsewhere.
headers_package() {
	local release
	release=$(uname -r)
	case $release in
	*+rpt-rpi-*) printf 'linux-headers-%s' "${release##*+rpt-}" ;;
	*) printf 'linux-headers-%s' "$release" ;;
	esac
}

vendor_driver_advice() {
	local branch
	branch=$(kernel_branch)
	step "driver: the $(board_title "$BOARD") needs the vendor driver seeed-voicecard (not built here)"
	detail "It is a DKMS kernel module, not in the kernel. Install it from HinTak's fork, which"
	detail "keeps one branch per kernel: use the branch named after 'uname -r' ($(uname -r)"
	detail "here, so $branch; if there is none, take the nearest older one and expect to patch):"
	detail "  sudo apt-get install -y git dkms $(headers_package)"
	detail "  git clone -b $branch https://github.com/HinTak/seeed-voicecard"
	detail "  cd seeed-voicecard && sudo ./install.sh && sudo reboot"
	detail "A kernel upgrade can break it: see 'Audio driver gone after a kernel upgrade'"
	detail "in docs/install.md."
	case $PI_MODEL in
	*"Raspberry Pi 5"*)
		case $BOARD in
		respeaker-4mic)
			warn "Pi 5: the 4-mic HAT was reported to enumerate but not record" \
				"(HinTak/seeed-voicecard #19), and a Pi 5 has no headphone jack for the speaker:" \
				"set audio.output_device to HDMI or a USB card" ;;
		*)
			warn "Pi 5: its I2S block cannot do TDM, so the 8-channel HAT does not work with the" \
				"stock driver (community driver: HinTak/seeed-voicecard #50)" ;;
		esac ;;
	*"Zero"*)
		if [ "$BOARD" = respeaker-4mic ]; then
			warn "Pi Zero: switching on the LED ring (GPIO5) has browned out and reset Pi Zeros" \
				"(seeed-voicecard #22, #163, #169): use a strong supply"
		fi ;;
	esac
}

setup_overlay() {
	local f
	if [ -z "$BOARD" ]; then return 0; fi
	if [ -z "$BOOT_CONFIG" ] && ! find_boot_config; then
		case $BOARD in generic-usb | respeaker-usb-v2) ;; *)
			step "overlay: no config.txt under $(t /boot): skipping the HAT driver setup"
			return 0 ;;
		esac
	fi
	case $BOARD in
	respeaker-2mic)
		if boot_has "dtoverlay=seeed-2mic-voicecard([,:].*)?"; then
			step "overlay: keeping the vendor driver's dtoverlay=seeed-2mic-voicecard"
			detail "it breaks on kernel upgrades; the in-kernel wm8960-soundcard overlay does"
			detail "not (docs/install.md); to switch, uninstall seeed-voicecard and run this again"
			return 0
		fi
		if [ -d "$(dirname "$BOOT_CONFIG")/overlays" ] && [ -z "$(overlay_file wm8960-soundcard)" ]; then
			warn "wm8960-soundcard.dtbo is missing: the kernel is older than 2021, upgrade it"
		fi
		add_overlay wm8960-soundcard "in-kernel WM8960 driver, no DKMS" ;;
	respeaker-2mic-v2)
		if boot_has "dtoverlay=respeaker-2mic-v2_0(-overlay)?([,:].*)?"; then
			step "overlay: respeaker-2mic-v2_0 already in $BOOT_CONFIG"
		elif [ -n "$(overlay_file respeaker-2mic-v2_0)" ]; then
			add_overlay respeaker-2mic-v2_0 "Seeed overlay, mainline codec driver"
		elif [ -n "$(overlay_file respeaker-2mic-v2_0-overlay)" ]; then
			add_overlay respeaker-2mic-v2_0-overlay "Seeed overlay, mainline codec driver"
		else
			f=$(dirname "$BOOT_CONFIG")/overlays/respeaker-2mic-v2_0.dtbo
			step "overlay: respeaker-2mic-v2_0 is not installed, so config.txt is left alone"
			detail "It comes from Seeed-Studio/seeed-linux-dtoverlays (the codec driver itself is"
			detail "in the kernel, no DKMS). Build and install it, then run this script again:"
			detail "  sudo apt-get install -y git device-tree-compiler"
			detail "  git clone https://github.com/Seeed-Studio/seeed-linux-dtoverlays"
			detail "  cd seeed-linux-dtoverlays"
			detail "  dtc -@ -I dts -O dtb -o respeaker-2mic-v2_0.dtbo overlays/rpi/respeaker-2mic-v2_0-overlay.dts"
			detail "  sudo cp respeaker-2mic-v2_0.dtbo ${f#"$ROOT"}"
		fi ;;
	aiy-voice-hat)
		add_overlay googlevoicehat-soundcard "in-kernel driver" ;;
	respeaker-4mic | respeaker-6mic | respeaker-4mic-linear)
		vendor_driver_advice ;;
	aiy-voice-bonnet)
		step "driver: the AIY Voice Bonnet needs Google's DKMS drivers (google/aiyprojects-raspbian);"
		detail "not installed here; they break on kernel upgrades (aiyprojects-raspbian #527, #697)" ;;
	mycroft-sj201)
		step "driver: the SJ201 needs the sj201 overlay (sj201-pi5 on a Pi 5), XVF3510 firmware"
		detail "at every boot and the TAS5806 set up: raspOVOS's ovos-i2csound does all three" ;;
	*)
		step "driver: $BOARD needs no overlay" ;;
	esac
}

# source_digest: what the venv was installed from (files and extras).
source_digest() {
	(
		cd "$REPO"
		find pyproject.toml README.md device hw -type f ! -path '*/__pycache__/*' \
			! -name '*.pyc' -print0 2>/dev/null | sort -z | xargs -0 sha256sum
		printf 'extras %s\n' "$EXTRAS"
	) | sha256sum | cut -d' ' -f1
}

install_venv() {
	local venv stamp want
	venv=$(t "$VENV")
	stamp=$venv/.edgevoice-source
	run --query python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
		die "edgevoice needs Python >= 3.11 (bookworm has 3.11)"
	if [ ! -x "$venv/bin/python" ]; then
		step "venv: creating $venv"
		ensure_dir 0755 "$(t "$OPT_DIR")"
		run python3 -m venv "$venv" || die "python3 -m venv failed (apt-get install python3-venv)"
		changed
	fi
	want=$(source_digest)
	if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
		step "venv: edgevoice already installed from this checkout"
		return 0
	fi
	step "venv: installing edgevoice[$EXTRAS] from $REPO (takes a few minutes on a Pi)"
	if [ "$DRY_RUN" = 1 ]; then
		dry "copy pyproject.toml README.md device hw from $REPO to a temporary directory"
		dry "run: $venv/bin/python -m pip install --disable-pip-version-check -q <that copy>[$EXTRAS]"
	else
		# Built from a copy: an in-tree build would leave root-owned build files in the checkout.
		STAGE=$(mktemp -d)
		tar -C "$REPO" --exclude=__pycache__ -cf - pyproject.toml README.md device hw |
			tar -C "$STAGE" -xf -
		run "$venv/bin/python" -m pip install --disable-pip-version-check -q "${STAGE}[$EXTRAS]" ||
			die "pip install failed; the messages above name the package (docs/install.md)"
		rm -rf -- "$STAGE"
		STAGE=""
		printf '%s\n' "$want" >"$stamp"
	fi
	SERVICE_DIRTY=1
	changed
}

install_config() {
	local dest
	dest=$(t "$CONFIG")
	if [ -e "$dest" ]; then
		step "config: keeping the existing $dest"
		if [ -n "$BOARD" ] && ! grep -Eq "^board = \"($BOARD|auto)\"" "$dest"; then
			detail "it names another board than $BOARD; check [device] board in it"
		fi
	else
		step "config: installing $dest${BOARD:+ (board = \"$BOARD\")}"
		ensure_dir 0755 "$(t "$ETC_DIR")"
		if [ "$DRY_RUN" = 1 ]; then
			dry "write $dest (from device/data/edgevoice.sample.toml, mode 0644)"
		else
			sed "s/^board = \"auto\"/board = \"${BOARD:-auto}\"/" \
				"$REPO/device/data/edgevoice.sample.toml" >"$dest.tmp"
			chmod 0644 "$dest.tmp"
			mv -f "$dest.tmp" "$dest"
		fi
		SERVICE_DIRTY=1
		changed
	fi
	check_config "$dest"
}

# check_config FILE: `edgevoice config check`; it only reads, so a dry run runs it too
# when there is a file and a venv to check it with.
check_config() {
	local edgevoice out
	edgevoice=$(t "$VENV")/bin/edgevoice
	if [ "$DRY_RUN" = 1 ] && { [ ! -e "$1" ] || [ ! -x "$edgevoice" ]; }; then
		dry "run: $edgevoice config check $1"
		return 0
	fi
	if out=$(run --query "$edgevoice" config check "$1" 2>&1); then
		detail "config check: ok"
		grep '^warning:' <<<"$out" | sed 's/^/    /' || true
	else
		printf '%s\n' "$out" >&2
		die "config check failed for $1: fix it and run this script again"
	fi
}

# ---------------------------------------------------------------- the API key

# The key lives in variables only: never on a command line (printf is a builtin), never
# printed, never in a file other than the encrypted credential.

trim() {
	local s=$1
	s=${s#"${s%%[![:space:]]*}"}
	printf '%s' "${s%"${s##*[![:space:]]}"}"
}

# store_key KEY: encrypt it from stdin into the credential, atomically, 0600 in a 0700 dir.
store_key() {
	local cred
	cred=$(t "$CRED")
	ensure_dir 0700 "$(t "$CRED_DIR")"
	ensure_mode 0700 "$(t "$CRED_DIR")"
	if [ "$DRY_RUN" = 1 ]; then
		dry "run: systemd-creds encrypt --name=$CRED_NAME - $cred (key on stdin, mode 0600)"
		changed
		return 0
	fi
	command -v systemd-creds >/dev/null ||
		die "systemd-creds not found (systemd >= 250 needed); or set realtime.api_key_file"
	CRED_TMP=$cred.tmp
	(
		umask 077
		printf '%s' "$1" | run systemd-creds encrypt --name="$CRED_NAME" - "$CRED_TMP"
	) || die "systemd-creds encrypt failed"
	chmod 0600 "$CRED_TMP"
	mv -f "$CRED_TMP" "$cred"
	CRED_TMP=""
	step "API key: stored as the encrypted credential $cred"
	SERVICE_DIRTY=1
	changed
}

key_is_stored() {
	local stored
	[ -e "$(t "$CRED")" ] || return 1
	stored=$(run --query systemd-creds decrypt --name="$CRED_NAME" "$(t "$CRED")" - 2>/dev/null) ||
		return 1
	[ "$stored" = "$1" ]
}

check_key_shape() {
	if [[ ! $1 =~ $KEY_SHAPE ]]; then return 1; fi
	if [[ $1 == ek_* ]]; then
		warn "this is an ephemeral client secret (ek_...), which expires within minutes: use sk-..."
	fi
}

key_from_file() {
	local key
	key=$(trim "$(<"$KEY_FILE")")
	check_key_shape "$key" ||
		die "$KEY_FILE does not hold an OpenAI API key alone (one line starting with sk- or ek_)"
	if key_is_stored "$key"; then
		step "API key: the credential already holds the key from $KEY_FILE"
		return 0
	fi
	step "API key: from $KEY_FILE"
	store_key "$key"
	if [ "$DRY_RUN" = 0 ] && [ -n "$(find "$KEY_FILE" -perm /044 2>/dev/null)" ]; then
		detail "$KEY_FILE is readable by others: delete it now (shred -u $KEY_FILE)"
	fi
}

key_from_terminal() {
	local key tries
	for tries in 1 2 3; do
		printf 'OpenAI API key (typing is hidden; empty to skip): ' >&2
		IFS= read -rs key || key=""
		printf '\n' >&2
		key=$(trim "$key")
		if [ -z "$key" ]; then break; fi
		if check_key_shape "$key"; then
			store_key "$key"
			return 0
		fi
		warn "that is not an OpenAI API key (sk-... or ek_...), try again ($tries of 3)"
	done
	key_later "skipped"
}

key_later() {
	step "API key: $1; the service cannot connect without it. Add it later with:"
	detail "sudo scripts/install.sh --key-file FILE   (FILE holds the key alone; delete it after)"
	detail "or: sudo systemd-creds encrypt --name=$CRED_NAME FILE $CRED"
	detail "    sudo systemctl restart edgevoice"
}

install_key() {
	local had_xtrace=0
	# A `bash -x` run would print the key: switch tracing off while it is handled.
	if [[ $- == *x* ]]; then
		had_xtrace=1
		set +x
	fi
	if [ -n "$KEY_FILE" ]; then
		key_from_file
	elif [ -e "$(t "$CRED")" ]; then
		step "API key: keeping the existing credential $(t "$CRED") (replace it with --key-file)"
	elif [ "$DRY_RUN" = 1 ]; then
		if [ -t 0 ]; then
			step "API key: would ask for it on the terminal"
		else
			key_later "no --key-file and no terminal"
		fi
	elif [ -t 0 ]; then
		key_from_terminal
	else
		key_later "not asked (stdin is not a terminal and there is no --key-file)"
	fi
	if [ "$had_xtrace" = 1 ]; then set -x; fi
}

# ---------------------------------------------------------------- the service

# ensure_groups: the unit's SupplementaryGroups= must exist or it fails to start.
# Raspberry Pi OS has them, and udev rules giving them the GPIO and SPI devices; plain
# Debian has neither.
ensure_groups() {
	local group missing=() prefix=() rules
	for group in audio gpio spi; do
		grep -q "^$group:" "$(t /etc/group)" 2>/dev/null || missing+=("$group")
	done
	if [ ${#missing[@]} -eq 0 ]; then
		step "groups: audio, gpio and spi exist"
	else
		step "groups: creating ${missing[*]} (the unit's SupplementaryGroups=)"
		if [ -n "$ROOT" ]; then prefix=(--prefix "$ROOT"); fi
		for group in "${missing[@]}"; do
			run groupadd --system "${prefix[@]}" "$group" || die "groupadd $group failed"
		done
		changed
	fi
	for rules in /usr/lib/udev/rules.d/99-com.rules /etc/udev/rules.d/99-com.rules; do
		if [ -e "$(t "$rules")" ]; then return 0; fi
	done
	ensure_dir 0755 "$(t "$(dirname "$UDEV_RULE")")"
	if write_file 0644 "$(t "$UDEV_RULE")" <<-'EOF'
		# edgevoice: the GPIO chips and SPI buses for the gpio and spi groups, as
		# Raspberry Pi OS's 99-com.rules does; the service reaches them through these groups.
		SUBSYSTEM=="gpio", KERNEL=="gpiochip*", GROUP="gpio", MODE="0660"
		SUBSYSTEM=="spidev", GROUP="spi", MODE="0660"
	EOF
	then
		detail "wrote $(t "$UDEV_RULE"): GPIO and SPI devices for the gpio and spi groups"
		REBOOT_NEEDED=${REBOOT_NEEDED:-"new udev rules"}
	fi
}

install_unit() {
	local src dest state
	src=$REPO/systemd/$UNIT
	dest=$(t "$UNIT_DIR/$UNIT")
	[ -f "$src" ] || die "$src is missing from this checkout"
	ensure_dir 0755 "$(t "$UNIT_DIR")"
	if copy_file 0644 "$src" "$dest"; then
		step "unit: installed $dest"
		run systemctl daemon-reload || warn "systemctl daemon-reload failed"
		SERVICE_DIRTY=1
	else
		step "unit: $dest is up to date"
	fi
	state=$(run --query systemctl is-enabled "$UNIT" 2>/dev/null) || true
	if [ "$state" = enabled ]; then
		detail "$UNIT is enabled"
	else
		run systemctl enable "$UNIT" || die "systemctl enable $UNIT failed"
		detail "enabled $UNIT: it starts at boot"
		changed
	fi
	if run --query systemctl is-active --quiet "$UNIT"; then
		SERVICE_ACTIVE=1
		if [ "$SERVICE_DIRTY" = 1 ]; then
			run systemctl restart "$UNIT" || warn "systemctl restart $UNIT failed: journalctl -u edgevoice"
			detail "restarted $UNIT"
		else
			detail "$UNIT is running and nothing it uses changed: not restarted"
		fi
	fi
}

# selftest_credentials: decrypt the key into CREDS_TMP, a 0700 directory on /run (memory,
# never the SD card; removed after the selftest or by the EXIT trap), so the selftest
# finds the key where the service does: $CREDENTIALS_DIRECTORY/openai-api-key.
selftest_credentials() {
	local base
	CREDS_TMP=""
	if [ "$DRY_RUN" = 1 ] || [ ! -e "$(t "$CRED")" ]; then return 0; fi
	base=$(t /run)
	[ -d "$base" ] || base=${TMPDIR:-/tmp}
	CREDS_TMP=$(mktemp -d -p "$base" edgevoice-selftest.XXXXXX) || return 0
	if ! (umask 077 && run --query systemd-creds decrypt --name="$CRED_NAME" "$(t "$CRED")" - \
		>"$CREDS_TMP/$CRED_NAME") 2>/dev/null; then
		warn "could not decrypt $(t "$CRED") for the selftest: its key check will fail"
	fi
}

run_selftest() {
	local rc=0 was_active=0
	if [ "$NO_SELFTEST" = 1 ]; then
		step "selftest: skipped (--no-selftest)"
		return 0
	fi
	step "selftest: edgevoice selftest"
	if run --query systemctl is-active --quiet "$UNIT"; then
		detail "stopping $UNIT for it: the selftest needs the audio device to itself"
		run systemctl stop "$UNIT" && was_active=1
	fi
	selftest_credentials
	EDGEVOICE_CONFIG=$(t "$CONFIG") CREDENTIALS_DIRECTORY=$CREDS_TMP \
		run "$(t "$VENV")/bin/edgevoice" selftest || rc=$?
	if [ -n "$CREDS_TMP" ]; then rm -rf -- "$CREDS_TMP"; fi
	CREDS_TMP=""
	if [ "$was_active" = 1 ]; then
		run systemctl start "$UNIT" || warn "systemctl start $UNIT failed: journalctl -u edgevoice"
		detail "started $UNIT again"
	fi
	if [ "$DRY_RUN" = 1 ] || [ "$rc" = 0 ]; then return 0; fi
	warn "selftest failed (exit $rc); the install itself is complete."
	if [ -n "$REBOOT_NEEDED" ]; then
		warn "$REBOOT_NEEDED: a failure is expected until you reboot."
	else
		warn "see 'Troubleshooting' in docs/install.md."
	fi
	warn "To test again, run this script again: it changes nothing else, and gives the" \
		"selftest the stored key and the audio device."
}

# ---------------------------------------------------------------- uninstall

uninstall() {
	local unit state
	unit=$(t "$UNIT_DIR/$UNIT")
	step "uninstall: the unit and $(t "$OPT_DIR")"
	if [ -e "$unit" ]; then
		if run --query systemctl is-active --quiet "$UNIT"; then run systemctl stop "$UNIT" || true; fi
		state=$(run --query systemctl is-enabled "$UNIT" 2>/dev/null) || true
		if [ "$state" = enabled ]; then run systemctl disable "$UNIT" || true; fi
		remove "$unit"
		run systemctl daemon-reload || warn "systemctl daemon-reload failed"
	fi
	remove "$(t "$OPT_DIR")" "$(t "$UDEV_RULE")" || true
	if [ "$MODE" = purge ]; then
		step "purge: configuration, credential and state"
		remove "$(t "$ETC_DIR")" "$(t "$CRED")" "$(t "$UNIT_DIR/$UNIT.d")" || true
		for state in "${STATE_DIRS[@]}"; do remove "$(t "$state")" || true; done
	else
		detail "kept $(t "$ETC_DIR") and $(t "$CRED"): --purge removes them"
	fi
	detail "left in place: the Debian packages, the groups, and the dtparam/dtoverlay lines"
	detail "in config.txt"
}

# ---------------------------------------------------------------- main

summary() {
	if [ "$DRY_RUN" = 1 ]; then
		say "dry run: $CHANGES change(s) would be made; nothing was changed"
		return 0
	fi
	if [ "$CHANGES" = 0 ]; then
		case $MODE in
		install) say "nothing changed: edgevoice is already installed and up to date" ;;
		*) say "nothing changed: there was nothing left to remove" ;;
		esac
		return 0
	fi
	say "done: $CHANGES change(s)"
	if [ "$MODE" != install ]; then return 0; fi
	if [ -n "$REBOOT_NEEDED" ]; then
		say "reboot needed: $REBOOT_NEEDED (sudo reboot); edgevoice starts after it"
	elif [ "$SERVICE_ACTIVE" = 0 ]; then
		say "start it now with: sudo systemctl start edgevoice   (logs: journalctl -u edgevoice -f)"
	fi
}

main() {
	parse_args "$@"
	check_root
	say "edgevoice installer ($MODE): checkout $REPO${ROOT:+, target root $ROOT}"
	if [ "$DRY_RUN" = 0 ] && [ -n "$ROOT" ]; then
		detail "--root only redirects files; commands still act on this machine"
	fi
	if [ "$MODE" != install ]; then
		uninstall
		summary
		return 0
	fi
	check_system
	install_packages
	enable_buses
	detect_board
	setup_overlay
	install_venv
	install_config
	install_key
	ensure_groups
	install_unit
	run_selftest
	summary
}

main "$@"
