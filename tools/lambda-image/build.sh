#!/usr/bin/env bash
# Build the local Lambda base image for xpi's python3.13 functions, for machines that cannot pull
# AWS's public.ecr.aws/lambda/python image. `make lambda-image` runs this.
#
#   tools/lambda-image/build.sh           build (or confirm, in about a second, that it is current)
#   tools/lambda-image/build.sh --force   rebuild everything, Debian base included
#   tools/lambda-image/build.sh --print-image   print the image name and exit
#
# Use it with:  sam local invoke FN -e EVENT --invoke-image "$(tools/lambda-image/build.sh --print-image)" --skip-pull-image
#
# The image: a Debian (bookworm, minbase) root file system from Debian's packages, this machine's
# pyenv CPython 3.13 copied to /var/lang (as in AWS's images: /var/lang/bin/python3.13), the packages of
# runtime-requirements.txt (awslambdaric, boto3) in /var/runtime, and /var/runtime/bootstrap, which the
# Runtime Interface Emulator that SAM adds on top (/var/rapid/aws-lambda-rie) starts with _HANDLER set.
# When the function's environment sets XPI_LOOPBACK_FORWARDS="PORT=/var/task/X.sock,...", bootstrap
# first starts loopback_forward.py (copied to /var/runtime/xpi-loopback-forward.py), which relays
# 127.0.0.1:PORT in the container to unix sockets served from the host (see local_invoke.py).
#
# Caching, all under .xpi/lambda-image/ (git-ignored):
#   base/        the Debian root file system, rebuilt only when the suite, mirror, architecture or
#                package list changes (its key is in base/.xpi-base-key)
#   debs/        debootstrap's package cache;  pip-cache/  pip's wheel cache
#   The image carries the label xpi.lambda-image.inputs: a hash of this script, the requirements file,
#   the Python build and the architecture. When it matches, nothing is rebuilt.
#
# Environment:
#   XPI_LAMBDA_IMAGE        image name (default xpi-lambda-python:3.13-<arch>)
#   XPI_LAMBDA_PYTHON       the CPython 3.13 executable to copy (default: newest pyenv 3.13.x, else python3.13)
#   XPI_LAMBDA_IMAGE_DIR    work directory (default <repo>/.xpi/lambda-image)
#   XPI_DEBIAN_MIRROR       Debian mirror for debootstrap (default: read from this machine's apt sources)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
SCRIPT="$HERE/$(basename "${BASH_SOURCE[0]}")"
REQUIREMENTS="$HERE/runtime-requirements.txt"
FORWARDER="$HERE/loopback_forward.py"

PY_MINOR=3.13
SUITE=bookworm
# Shared libraries the copied CPython and its extension modules link to (checked with ldd below);
# ca-certificates for TLS, tzdata for zoneinfo.
DEB_PACKAGES=(ca-certificates tzdata libssl3 libffi8 libsqlite3-0 libexpat1 libbz2-1.0 liblzma5 zlib1g
    libuuid1 libncursesw6 libtinfo6 libreadline8)
LABEL_KEY=xpi.lambda-image.inputs

case "$(uname -m)" in
    x86_64 | amd64) LAMBDA_ARCH=x86_64 DEB_ARCH=amd64 PIP_ARCH=x86_64 ;;
    aarch64 | arm64) LAMBDA_ARCH=arm64 DEB_ARCH=arm64 PIP_ARCH=aarch64 ;;
    *) echo "lambda-image: unsupported machine $(uname -m)" >&2; exit 1 ;;
esac
IMAGE="${XPI_LAMBDA_IMAGE:-xpi-lambda-python:${PY_MINOR}-${LAMBDA_ARCH}}"
# SAM builds its RIE layer on top as <repository>:rapid-<arch> and reuses it while it exists.
RAPID_IMAGE="${IMAGE%:*}:rapid-${LAMBDA_ARCH}"
WORK="${XPI_LAMBDA_IMAGE_DIR:-$REPO/.xpi/lambda-image}"

FORCE=0
case "${1:-}" in
    "") ;;
    --force) FORCE=1 ;;
    --print-image) echo "$IMAGE"; exit 0 ;;
    -h | --help) sed -n '2,30p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "lambda-image: unknown option $1" >&2; exit 2 ;;
esac

T0=$SECONDS
log() { printf 'lambda-image [%3ss] %s\n' "$((SECONDS - T0))" "$*" >&2; }
die() { printf 'lambda-image: %s\n' "$*" >&2; exit 1; }

[[ "$(id -u)" == 0 ]] || die "needs root (debootstrap, chroot, dockerd)"

# Delete a root file system tree; an interrupted debootstrap can leave /proc or /sys mounted in it.
remove_tree() {
    local dir mnt
    for dir in "$@"; do
        [[ -e "$dir" ]] || continue
        dir="$(realpath "$dir")"
        { findmnt -rn -o TARGET | grep -F "$dir/" || true; } | sort -r | while read -r mnt; do umount -l "$mnt" || true; done
        rm -rf --one-file-system "$dir"
    done
}

"$HERE/ensure-docker.sh"

# --- the Python to copy -------------------------------------------------------------------------
find_python() {
    if [[ -n "${XPI_LAMBDA_PYTHON:-}" ]]; then echo "$XPI_LAMBDA_PYTHON"; return; fi
    local root="${PYENV_ROOT:-$HOME/.pyenv}" newest
    newest="$(printf '%s\n' "$root/versions/$PY_MINOR".* | grep -E "/$PY_MINOR\.[0-9]+$" | sort -V | tail -n 1 || true)"
    if [[ -n "$newest" ]]; then echo "$newest/bin/python$PY_MINOR"; return; fi
    command -v "python$PY_MINOR" || die "no CPython $PY_MINOR found (pyenv install $PY_MINOR, or set XPI_LAMBDA_PYTHON)"
}
PY="$(find_python)"
PY_HOME="$("$PY" -c 'import sys; print(sys.base_prefix)')"
PY_IDENTITY="$("$PY" -c 'import sys, platform; print(sys.version.replace(chr(10), " "), platform.machine())')"
PY_FULL="$("$PY" -c 'import platform; print(platform.python_version())')"
[[ "$PY_FULL" == "$PY_MINOR".* ]] || die "$PY is Python $PY_FULL, not $PY_MINOR"
[[ "$PY_HOME" != /usr && -f "$PY_HOME/lib/python$PY_MINOR/os.py" && -x "$PY_HOME/bin/python$PY_MINOR" ]] \
    || die "$PY (prefix $PY_HOME) is not a self-contained installation (a pyenv build is); set XPI_LAMBDA_PYTHON"

INPUTS_HASH="$( { sha256sum "$SCRIPT" "$REQUIREMENTS" "$FORWARDER" | cut -d' ' -f1; echo "$PY_IDENTITY"; echo "$LAMBDA_ARCH"; } \
    | sha256sum | cut -c1-32)"

current_hash() { docker image inspect -f "{{ index .Config.Labels \"$LABEL_KEY\" }}" "$IMAGE" 2>/dev/null || true; }

if [[ $FORCE == 0 && "$(current_hash)" == "$INPUTS_HASH" ]]; then
    log "$IMAGE is current (inputs $INPUTS_HASH); nothing to do"
    exit 0
fi

mkdir -p "$WORK"
exec 9>"$WORK/.lock"
flock 9
# Another build may have finished while we waited for the lock.
if [[ $FORCE == 0 && "$(current_hash)" == "$INPUTS_HASH" ]]; then
    log "$IMAGE was built meanwhile (inputs $INPUTS_HASH)"
    exit 0
fi
log "building $IMAGE from $PY (Python $PY_FULL), inputs $INPUTS_HASH"

# --- Debian mirror, from this machine's apt configuration -----------------------------------------
# `apt-cache policy` lists every configured source as "500 URI SUITE/main ARCH Packages", whatever
# the format of the files in /etc/apt (sources.list or deb822 .sources).
mirror_for() {
    apt-cache policy 2>/dev/null | awk -v s="$1/main" -v a="$DEB_ARCH" '$3 == s && $4 == a { print $2; exit }'
}
MIRROR="${XPI_DEBIAN_MIRROR:-$(mirror_for "$SUITE")}"
if [[ -z "$MIRROR" ]]; then
    apt-get update -qq >&2 || true
    MIRROR="$(mirror_for "$SUITE")"
fi
[[ -n "$MIRROR" ]] || die "no Debian $SUITE mirror in this machine's apt sources; set XPI_DEBIAN_MIRROR"
SECURITY_MIRROR="$(mirror_for "$SUITE-security")"

# --- stage 1: Debian base root file system (cached) ----------------------------------------------
BASE="$WORK/base"
BASE_KEY="$SUITE $DEB_ARCH $MIRROR ${SECURITY_MIRROR:-none} ${DEB_PACKAGES[*]}"
if [[ $FORCE == 1 || ! -f "$BASE/.xpi-base-key" || "$(cat "$BASE/.xpi-base-key")" != "$BASE_KEY" ]]; then
    command -v debootstrap >/dev/null 2>&1 || {
        log "installing debootstrap"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null \
            || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null; } \
            || die "cannot install debootstrap"
    }
    log "debootstrap $SUITE ($DEB_ARCH, minbase) from $MIRROR"
    remove_tree "$BASE" "$BASE.tmp"
    mkdir -p "$WORK/debs"
    include_pkgs="$(IFS=,; echo "${DEB_PACKAGES[*]}")"
    debootstrap --variant=minbase --arch="$DEB_ARCH" --include="$include_pkgs" --cache-dir="$WORK/debs" \
        "$SUITE" "$BASE.tmp" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 \
        || { tail -n 20 "$WORK/debootstrap.log" >&2; die "debootstrap failed (log $WORK/debootstrap.log)"; }
    {
        echo "deb $MIRROR $SUITE main"
        echo "deb $MIRROR $SUITE-updates main"
        [[ -n "$SECURITY_MIRROR" ]] && echo "deb $SECURITY_MIRROR $SUITE-security main"
    } >"$BASE.tmp/etc/apt/sources.list"
    cp /etc/resolv.conf "$BASE.tmp/etc/resolv.conf"
    log "apt-get upgrade inside the root file system ($SUITE-updates, $SUITE-security)"
    chroot "$BASE.tmp" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive \
        sh -c 'apt-get update -qq && apt-get -y -qq -o Dpkg::Options::=--force-confold upgrade && apt-get clean' \
        >>"$WORK/debootstrap.log" 2>&1 \
        || { tail -n 20 "$WORK/debootstrap.log" >&2; die "apt-get upgrade in the chroot failed (log $WORK/debootstrap.log)"; }
    # Not needed at run time: package lists, docs, man pages, translations.
    rm -rf "$BASE.tmp"/var/lib/apt/lists/* "$BASE.tmp"/var/cache/apt/*.bin \
        "$BASE.tmp"/usr/share/doc/* "$BASE.tmp"/usr/share/man/* "$BASE.tmp"/usr/share/info/* \
        "$BASE.tmp"/usr/share/locale/*
    : >"$BASE.tmp/etc/resolv.conf"
    echo "$BASE_KEY" >"$BASE.tmp/.xpi-base-key"
    mv "$BASE.tmp" "$BASE"
else
    log "reusing the Debian base in $BASE"
fi

# --- stage 2: root file system = base + Python + runtime ------------------------------------------
ROOTFS="$WORK/rootfs"
remove_tree "$ROOTFS"
log "copying the base"
cp -a "$BASE" "$ROOTFS"
rm -f "$ROOTFS/.xpi-base-key"

log "copying CPython $PY_FULL from $PY_HOME to /var/lang"
LANG_DIR="$ROOTFS/var/lang"
mkdir -p "$LANG_DIR/bin" "$LANG_DIR/lib"
cp -a "$PY_HOME/bin/python$PY_MINOR" "$LANG_DIR/bin/"
ln -s "python$PY_MINOR" "$LANG_DIR/bin/python3"
ln -s "python$PY_MINOR" "$LANG_DIR/bin/python"
cp -a "$PY_HOME"/lib/libpython3*.so* "$LANG_DIR/lib/"
# The standard library without its tests, IDLE, Tk, the static library, pyenv's site-packages (pip
# and a machine-specific .pth) and the optimised-bytecode variants.
tar -C "$PY_HOME/lib" \
    --exclude="python$PY_MINOR/test" --exclude="python$PY_MINOR/idlelib" \
    --exclude="python$PY_MINOR/tkinter" --exclude="python$PY_MINOR/turtledemo" \
    --exclude="python$PY_MINOR/turtle.py" --exclude="python$PY_MINOR/ensurepip" \
    --exclude="python$PY_MINOR/config-$PY_MINOR-*" --exclude="python$PY_MINOR/site-packages/*" \
    --exclude="python$PY_MINOR/lib-dynload/_tkinter*" --exclude='*.opt-1.pyc' --exclude='*.opt-2.pyc' \
    -cf - "python$PY_MINOR" | tar -C "$LANG_DIR/lib" -xf -
# The binary's RUNPATH names the pyenv prefix; the loader finds libpython in /var/lang/lib instead.
echo /var/lang/lib >"$ROOTFS/etc/ld.so.conf.d/00-var-lang.conf"
chroot "$ROOTFS" /sbin/ldconfig

log "installing $(grep -cE '^[a-zA-Z]' "$REQUIREMENTS") pinned packages into /var/runtime"
mkdir -p "$ROOTFS/var/runtime" "$ROOTFS/var/task" "$ROOTFS/opt"
PIP_CACHE_DIR="$WORK/pip-cache" "$PY" -m pip install -qq --disable-pip-version-check --root-user-action=ignore \
    --no-deps --only-binary=:all: --implementation cp --python-version "$PY_MINOR" \
    --platform "manylinux2014_$PIP_ARCH" --platform "manylinux_2_28_$PIP_ARCH" --platform "manylinux_2_34_$PIP_ARCH" \
    --target "$ROOTFS/var/runtime" -r "$REQUIREMENTS" >&2
rm -rf "$ROOTFS/var/runtime/bin"

cat >"$ROOTFS/var/runtime/bootstrap" <<EOF
#!/bin/sh
# Started by the Lambda Runtime Interface Emulator (/var/rapid/aws-lambda-rie, added by SAM) with
# _HANDLER, AWS_LAMBDA_RUNTIME_API, LAMBDA_TASK_ROOT and the function's environment set.
export AWS_EXECUTION_ENV="\${AWS_EXECUTION_ENV:-AWS_Lambda_python$PY_MINOR}"
# As on Lambda: the function's code first, then layers, then the runtime's boto3 and awslambdaric.
export PYTHONPATH="\${LAMBDA_TASK_ROOT:-/var/task}:/opt/python/lib/python$PY_MINOR/site-packages:/opt/python:\${LAMBDA_RUNTIME_DIR:-/var/runtime}\${PYTHONPATH:+:\$PYTHONPATH}"
handler="\${_HANDLER:-\${AWS_LAMBDA_FUNCTION_HANDLER:-}}"
# Opt-in, for a function that calls servers on the host's loopback (docs/local-testing.md): relay
# 127.0.0.1:PORT in here to unix sockets that the host serves in /var/task. Returns once listening.
# Unset or empty (the default): nothing starts.
if [ -n "\${XPI_LOOPBACK_FORWARDS:-}" ]; then
    /var/lang/bin/python$PY_MINOR -I /var/runtime/xpi-loopback-forward.py tcp-to-unix "\$XPI_LOOPBACK_FORWARDS" --background \
        || { echo "bootstrap: XPI_LOOPBACK_FORWARDS=\$XPI_LOOPBACK_FORWARDS could not start" >&2; exit 1; }
fi
if [ -n "\${AWS_LAMBDA_EXEC_WRAPPER:-}" ]; then
    exec "\$AWS_LAMBDA_EXEC_WRAPPER" /var/lang/bin/python$PY_MINOR -m awslambdaric "\$handler"
fi
exec /var/lang/bin/python$PY_MINOR -m awslambdaric "\$handler"
EOF
chmod 0755 "$ROOTFS/var/runtime/bootstrap"
# Not importable (the hyphens): it must never shadow a module of the function.
install -m 0644 "$FORWARDER" "$ROOTFS/var/runtime/xpi-loopback-forward.py"

# --- check: every shared library resolves, the runtime imports ------------------------------------
log "checking shared libraries and imports inside the root file system"
missing="$(chroot "$ROOTFS" /bin/sh -c \
    "for f in /var/lang/bin/python$PY_MINOR /var/lang/lib/python$PY_MINOR/lib-dynload/*.so \$(find /var/runtime -name '*.so'); do ldd \"\$f\" | sed \"s|^|\$f: |\"; done" \
    | grep 'not found' || true)"
[[ -z "$missing" ]] || die "unresolved shared libraries in the image:"$'\n'"$missing"
chroot "$ROOTFS" /usr/bin/env -i PATH=/var/lang/bin:/usr/bin:/bin PYTHONPATH=/var/task:/var/runtime \
    "/var/lang/bin/python$PY_MINOR" -c '
import sys, ssl, sqlite3, ctypes, lzma, bz2, zlib, pyexpat, decimal, uuid, zoneinfo, json, hashlib
import boto3, awslambdaric.bootstrap
compile(open("/var/runtime/xpi-loopback-forward.py").read(), "xpi-loopback-forward.py", "exec")
assert sys.prefix == "/var/lang", sys.prefix
zoneinfo.ZoneInfo("Europe/Paris")
ssl.create_default_context()
print("python", sys.version.split()[0], "boto3", boto3.__version__, "prefix", sys.prefix)
' >&2 || die "the Python in the root file system failed its import check"

# --- stage 3: import into Docker ----------------------------------------------------------------
log "importing into Docker as $IMAGE"
old_id="$(docker image inspect -f '{{.Id}}' "$IMAGE" 2>/dev/null || true)"
tar --numeric-owner -C "$ROOTFS" --exclude='./dev/*' --exclude='./proc/*' --exclude='./sys/*' -cf - . \
    | docker import \
        -c 'WORKDIR /var/task' \
        -c 'ENV LANG=C.UTF-8' \
        -c 'ENV TZ=:/etc/localtime' \
        -c 'ENV PATH=/var/lang/bin:/usr/local/bin:/usr/bin:/bin:/opt/bin' \
        -c 'ENV LD_LIBRARY_PATH=/var/lang/lib:/lib64:/usr/lib64:/var/runtime:/var/runtime/lib:/var/task:/var/task/lib:/opt/lib' \
        -c 'ENV LAMBDA_TASK_ROOT=/var/task' \
        -c 'ENV LAMBDA_RUNTIME_DIR=/var/runtime' \
        -c "LABEL $LABEL_KEY=$INPUTS_HASH" \
        -c "LABEL xpi.lambda-image.python=$PY_FULL" \
        - "$IMAGE" >/dev/null
new_id="$(docker image inspect -f '{{.Id}}' "$IMAGE")"
# SAM reuses <repository>:rapid-<arch> while it exists, even when the base under it changed.
if docker image inspect "$RAPID_IMAGE" >/dev/null 2>&1; then
    docker image rm -f "$RAPID_IMAGE" >/dev/null && log "removed SAM's stale $RAPID_IMAGE"
fi
if [[ -n "$old_id" && "$old_id" != "$new_id" ]]; then docker image rm "$old_id" >/dev/null 2>&1 || true; fi
remove_tree "$ROOTFS"

size="$(docker image inspect -f '{{.Size}}' "$IMAGE")"
log "built $IMAGE ($((size / 1000000)) MB) in $((SECONDS - T0)) s"
