#!/usr/bin/env bash
# Make sure a Docker daemon answers, starting one when none does.
#
#   ensure-docker.sh          idempotent: exit 0 as soon as `docker info` answers; otherwise install
#                             docker.io (Debian) when dockerd is missing, start dockerd in the
#                             background and wait for it.
#   ensure-docker.sh --stop   stop the dockerd that this script started (and nothing else).
#   ensure-docker.sh --status say whether Docker answers and whether this script started it.
#
# When Docker cannot run at all, the last line on stderr starts with "docker unavailable:" and the
# exit code is 1, so a test can skip with that line as its reason.
#
# Environment:
#   XPI_DOCKERD_WAIT   seconds to wait for a started dockerd to answer (default 60)
#   XPI_DOCKERD_PID    pidfile of the dockerd started here (default /run/xpi-dockerd.pid)
#   XPI_DOCKERD_LOG    its log (default /var/log/xpi-dockerd.log)
set -euo pipefail

WAIT_SECONDS="${XPI_DOCKERD_WAIT:-60}"
PIDFILE="${XPI_DOCKERD_PID:-/run/xpi-dockerd.pid}"
LOGFILE="${XPI_DOCKERD_LOG:-/var/log/xpi-dockerd.log}"

say() { printf 'ensure-docker: %s\n' "$*" >&2; }
unavailable() { printf 'docker unavailable: %s\n' "$*" >&2; exit 1; }

docker_answers() { command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; }

# The pid in our pidfile, if that process is still a dockerd.
started_pid() {
    local pid
    [[ -s "$PIDFILE" ]] || return 1
    pid="$(cat "$PIDFILE")"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" == dockerd ]] || return 1
    printf '%s\n' "$pid"
}

stop() {
    local pid
    if ! pid="$(started_pid)"; then
        say "no dockerd started by this script is running (pidfile $PIDFILE)"
        rm -f "$PIDFILE"
        return 0
    fi
    say "stopping dockerd pid $pid"
    kill -TERM "$pid"
    for _ in $(seq 1 30); do
        kill -0 "$pid" 2>/dev/null || { rm -f "$PIDFILE"; say "stopped"; return 0; }
        sleep 1
    done
    say "dockerd pid $pid did not stop within 30 s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    rm -f "$PIDFILE"
}

status() {
    if docker_answers; then
        say "docker answers ($(docker version --format 'server {{.Server.Version}}' 2>/dev/null || echo '?'))"
    else
        say "docker does not answer"
    fi
    if pid="$(started_pid)"; then say "dockerd pid $pid was started by this script (log $LOGFILE)"; fi
}

install_docker() {
    [[ "$(id -u)" == 0 ]] || unavailable "dockerd is not installed and installing it needs root (apt-get install docker.io)"
    command -v apt-get >/dev/null 2>&1 || unavailable "dockerd is not installed and there is no apt-get to install it"
    say "installing docker.io with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2 || unavailable "apt-get update failed"
    apt-get install -y -qq --no-install-recommends docker.io >&2 \
        || unavailable "apt-get install docker.io failed"
}

start() {
    if docker_answers; then
        say "docker already answers"
        return 0
    fi
    # Two callers at once (parallel test workers) must not start two daemons.
    exec 8>"$PIDFILE.lock"
    flock 8
    if docker_answers; then
        say "docker answers (started meanwhile)"
        return 0
    fi
    if pid="$(started_pid)"; then
        say "dockerd pid $pid (started earlier) is not answering yet; waiting"
    else
        command -v dockerd >/dev/null 2>&1 || install_docker
        command -v dockerd >/dev/null 2>&1 || unavailable "dockerd still missing after installing docker.io"
        command -v docker >/dev/null 2>&1 || unavailable "the docker client is missing"
        [[ "$(id -u)" == 0 ]] || unavailable "no Docker daemon answers and starting dockerd needs root"
        mkdir -p "$(dirname "$PIDFILE")" "$(dirname "$LOGFILE")"
        say "starting dockerd (log $LOGFILE, pidfile $PIDFILE)"
        # setsid: the daemon must outlive this script and the job or process group that ran it.
        # dockerd keeps its own pidfile (/var/run/docker.pid); ours records that this script started it.
        # 8>&-: the daemon must not inherit (and so hold forever) the lock taken above.
        setsid dockerd </dev/null >>"$LOGFILE" 2>&1 8>&- &
        pid=$!
        echo "$pid" >"$PIDFILE"
    fi
    local deadline=$((SECONDS + WAIT_SECONDS))
    while ((SECONDS < deadline)); do
        if docker_answers; then
            say "docker answers after $((SECONDS))s (dockerd pid $pid)"
            return 0
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            rm -f "$PIDFILE"
            say "dockerd exited; last lines of $LOGFILE:"
            tail -n 15 "$LOGFILE" >&2 || true
            unavailable "dockerd exited at start: $(tail -n 1 "$LOGFILE" 2>/dev/null | cut -c1-200) (log $LOGFILE)"
        fi
        sleep 1
    done
    tail -n 15 "$LOGFILE" >&2 || true
    unavailable "dockerd (pid $pid) did not answer within ${WAIT_SECONDS}s (see $LOGFILE)"
}

case "${1:-}" in
    "") start ;;
    --stop) stop ;;
    --status) status ;;
    -h | --help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//' ;;
    *) say "unknown option: $1 (use --stop, --status or nothing)"; exit 2 ;;
esac
