# shellcheck shell=sh
# pulse-null.sh - a real PulseAudio server with a null sink, for a machine without a sound card.
#
# Source it (do not execute it): `. scripts/pulse-null.sh || exit 1`.
# The integration tests open the ALSA "pulse" PCM through PortAudio; whatever they play
# into the null sink comes back on its monitor source, which is a real duplex audio
# path with real buffering and real timing, without /dev/snd.
#
# Sourcing starts the server (works as root), sets the default sink and source, and
# exports PULSE_SINK and PULSE_SOURCE. If a server already answers `pactl info`, it is
# reused: only the null sink is loaded when missing and the defaults are set. It returns
# non-zero with a message on stderr when no server can be reached.
#
# `pulse_null_stop` stops the server again, but only if this script started it.

_edgevoice_pulse_say() {
    echo "pulse-null: $*" >&2
}

_edgevoice_pulse_answers() {
    pactl info >/dev/null 2>&1
}

_edgevoice_pulse_wait() {
    # Poll up to 5 s: the server usually answers within 0.05 s, a loaded CI box needs longer.
    _edgevoice_pulse_tries=50
    while [ "$_edgevoice_pulse_tries" -gt 0 ]; do
        _edgevoice_pulse_answers && return 0
        _edgevoice_pulse_tries=$((_edgevoice_pulse_tries - 1))
        sleep 0.1
    done
    return 1
}

pulse_null_start() {
    for _edgevoice_pulse_tool in pulseaudio pactl; do
        if ! command -v "$_edgevoice_pulse_tool" >/dev/null 2>&1; then
            _edgevoice_pulse_say "'$_edgevoice_pulse_tool' not found;" \
                "install it: apt-get install pulseaudio pulseaudio-utils libasound2-plugins"
            return 1
        fi
    done

    # PulseAudio keeps its socket and pid file under XDG_RUNTIME_DIR; root and CI
    # shells usually have none.
    if [ -z "${XDG_RUNTIME_DIR:-}" ]; then
        if ! XDG_RUNTIME_DIR=$(mktemp -d /tmp/edgevoice-xdg.XXXXXX); then
            _edgevoice_pulse_say "cannot create a runtime directory under /tmp"
            return 1
        fi
        _EDGEVOICE_PULSE_XDG_CREATED=$XDG_RUNTIME_DIR
        export XDG_RUNTIME_DIR
    fi
    chmod 700 "$XDG_RUNTIME_DIR" 2>/dev/null || true

    if ! _edgevoice_pulse_answers; then
        _edgevoice_pulse_log="$XDG_RUNTIME_DIR/pulse-null.log"
        # -n: no default.pa (no card probing); exit-idle-time=-1: stay up between tests.
        # The warnings about root, the cookie and D-Bus are expected and harmless.
        if ! pulseaudio -n --daemonize=yes --exit-idle-time=-1 --log-target=stderr \
            --load="module-native-protocol-unix" \
            --load="module-null-sink sink_name=nullsink rate=48000 sink_properties=device.description=NullSink" \
            2>"$_edgevoice_pulse_log"; then
            _edgevoice_pulse_say "pulseaudio failed to start (log: $_edgevoice_pulse_log):"
            tail -n 5 "$_edgevoice_pulse_log" >&2
            return 1
        fi
        if ! _edgevoice_pulse_wait; then
            _edgevoice_pulse_say "pulseaudio started but 'pactl info' gets no answer after 5 s" \
                "(log: $_edgevoice_pulse_log)"
            return 1
        fi
        _EDGEVOICE_PULSE_STARTED=1
    fi

    # No pipe into grep -q: under pipefail an early exit of grep would fail pactl with SIGPIPE.
    _edgevoice_pulse_sinks=$(pactl list short sinks 2>/dev/null) || _edgevoice_pulse_sinks=
    if ! printf '%s\n' "$_edgevoice_pulse_sinks" | grep -q '[[:space:]]nullsink[[:space:]]'; then
        if ! pactl load-module module-null-sink sink_name=nullsink rate=48000 \
            sink_properties=device.description=NullSink >/dev/null; then
            _edgevoice_pulse_say "cannot load module-null-sink into the running server"
            return 1
        fi
    fi
    if ! pactl set-default-sink nullsink || ! pactl set-default-source nullsink.monitor; then
        _edgevoice_pulse_say "cannot make nullsink the default sink and source"
        return 1
    fi
    PULSE_SINK=nullsink
    PULSE_SOURCE=nullsink.monitor
    export PULSE_SINK PULSE_SOURCE
    return 0
}

pulse_null_stop() {
    if [ "${_EDGEVOICE_PULSE_STARTED:-}" = 1 ]; then
        _edgevoice_pulse_pidfile="$XDG_RUNTIME_DIR/pulse/pid"
        if [ -r "$_edgevoice_pulse_pidfile" ]; then
            kill "$(cat "$_edgevoice_pulse_pidfile")" 2>/dev/null || true
        fi
        # Wait (bounded) until the server is gone, so a following start gets a fresh one.
        _edgevoice_pulse_tries=50
        while [ "$_edgevoice_pulse_tries" -gt 0 ] && _edgevoice_pulse_answers; do
            _edgevoice_pulse_tries=$((_edgevoice_pulse_tries - 1))
            sleep 0.1
        done
        unset _EDGEVOICE_PULSE_STARTED
    fi
    if [ -n "${_EDGEVOICE_PULSE_XDG_CREATED:-}" ]; then
        rm -rf "$_EDGEVOICE_PULSE_XDG_CREATED"
        unset XDG_RUNTIME_DIR _EDGEVOICE_PULSE_XDG_CREATED
    fi
    unset PULSE_SINK PULSE_SOURCE
    return 0
}

pulse_null_start
