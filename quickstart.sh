#!/usr/bin/env bash
# narwhal quick start, for a fresh Debian 12 machine (run as root).
#
#   ./quickstart.sh          install what is missing, build, and serve the
#                            example app: nginx on 127.0.0.1:8080 -> narwhal
#                            on 127.0.0.1:5000
#   ./quickstart.sh stop     stop what the first command started
#   ./quickstart.sh test     install what is missing, build, run the whole
#                            test suite (make check), then again under
#                            AddressSanitizer + UBSan
set -euo pipefail

top=$(cd "$(dirname "$0")" && pwd)
run="$top/_quickstart"
pkgs=(build-essential autoconf automake pkg-config libconfuse-dev libcriterion-dev libev-dev
      nginx-light libfcgi-dev libfcgi-bin curl wrk clang libclang-rt-14-dev
      python3-prometheus-client chromium prometheus python3-dev python3-flask python3-django git
      groff-base mandoc logrotate nftables iproute2 libdw-dev)

install_deps() {
    local missing=()
    for p in "${pkgs[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
            missing+=("$p")
    done
    # Any nginx flavour will do.
    if [[ " ${missing[*]} " == *" nginx-light "* ]] && command -v nginx >/dev/null 2>&1; then
        missing=("${missing[@]/nginx-light}")
    fi
    missing=($(printf '%s\n' "${missing[@]}" | grep -v '^$' || true))
    if ((${#missing[@]})); then
        echo "quickstart: installing ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        # No service starts while we install (Debian would start nginx on
        # port 80 and prometheus on every address): the tests run their own,
        # on loopback ports.
        local policy=/usr/sbin/policy-rc.d own=0
        if [[ ! -e $policy ]]; then
            printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && own=1
        fi
        local rc=0
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null || rc=$?
        ((own)) && rm -f "$policy"
        ((rc == 0)) || exit "$rc"
    fi
}

build() { # build DIR [configure args...]
    local dir=$1
    shift
    [[ -x "$top/configure" ]] || (cd "$top" && autoreconf -fi >/dev/null 2>&1)
    mkdir -p "$dir"
    if [[ ! -f "$dir/Makefile" ]]; then
        (cd "$dir" && "$top/configure" -q "$@")
    fi
    make -C "$dir" -s -j"$(nproc)" >/dev/null
}

stop() {
    for f in "$run/nginx.pid" "$run/narwhal.pid"; do
        if [[ -f "$f" ]]; then
            pid=$(cat "$f")
            kill -TERM "$pid" 2>/dev/null || true
            for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        fi
    done
    rm -f "$run/nginx.pid" "$run/narwhal.pid"
}

serve() {
    install_deps
    build "$top/_build"
    stop
    mkdir -p "$run"
    nginx=$(command -v nginx || echo /usr/sbin/nginx)
    sed -e "s|@RUN@|$run|g" -e "s|@SNIPPET@|$top/nginx/narwhal-fastcgi.conf|g" \
        "$top/nginx/quickstart.conf" >"$run/nginx.conf"
    cp /etc/nginx/fastcgi_params "$run/fastcgi_params"
    # The workers never run as root unless told so: as nobody, when nobody
    # can read the app where this tree is; else say root is meant.
    local who=(--allow-root)
    if ((EUID != 0)); then
        who=()
    elif runuser -u nobody -- test -r "$top/_build/examples/hello.so" 2>/dev/null; then
        who=(--user nobody --group nogroup)
    fi
    "$top/_build/narwhal" -D -w 2 -b 127.0.0.1:5000 -p "$run/narwhal.pid" "${who[@]}" \
        --error-logfile "$run/narwhal.log" --access-logfile "$run/access.log" \
        "$top/_build/examples/hello.so"
    "$nginx" -p "$run" -c "$run/nginx.conf"
    for _ in $(seq 50); do curl -sf http://127.0.0.1:8080/ >/dev/null && break; sleep 0.1; done
    curl -s http://127.0.0.1:8080/
    cat <<MSG

narwhal is serving examples/hello.so behind nginx:
    browser/curl:  http://127.0.0.1:8080/
    nginx  -> 127.0.0.1:8080 (config $run/nginx.conf)
    narwhal-> 127.0.0.1:5000 (pid $(cat "$run/narwhal.pid"), log $run/narwhal.log)
stop both with: $0 stop
MSG
}

# make check in build directory $1; on a failure, show what failed (the
# failing tests' own logs, from test-suite.log) before giving up.
check() {
    make -C "$1" check && return 0
    echo "== what failed in $1 (from test-suite.log, at most 400 lines):"
    grep -E -A25 '^(FAIL|ERROR):|Assertion Failed|\[FAIL\]|CRASH|ERROR: AddressSanitizer|runtime error' \
        "$1/test-suite.log" | head -n 400
    return 1
}

run_tests() {
    install_deps
    build "$top/_build"
    echo "== make check"
    check "$top/_build"
    echo "== make check under AddressSanitizer + UndefinedBehaviorSanitizer"
    build "$top/_build-san" --enable-sanitizers
    check "$top/_build-san"
}

case "${1:-serve}" in
    serve) serve ;;
    stop) stop ;;
    test) run_tests ;;
    *) echo "usage: $0 [serve|stop|test]" >&2; exit 2 ;;
esac
