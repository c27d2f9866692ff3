#!/usr/bin/env bash
# compare.sh - narwhal against the field: every backend behind the same nginx
# (1 worker, access_log off), loaded by the same wrk, on loopback only.
#
#   bench/compare.sh                       every scenario, both variants
#   bench/compare.sh nginx narwhal-tcp uwsgi   a subset, by name (with the
#                                          null rows the narwhal rows need)
#   bench/compare.sh null                  the null backend's rows only
#   bench/compare.sh --list                the scenario names
#   bench/compare.sh --duration 10 --connections 128
#
# Options:
#   --list               list the scenarios and exit
#   --duration SECS      measured wrk run per row [5]
#   --warmup SECS        wrk warm-up before each measured run, discarded [1]
#   --connections N      wrk connections [64]
#   --threads N          wrk threads [2]
#   --variant V          hello, sleep50 or both [both]
#   --narwhal PATH       narwhal binary [$NARWHAL or <repo>/_build/narwhal]
#   --app PATH           narwhal hello app [$NARWHAL_APP or examples/hello.so
#                        next to the binary]
#   --no-null            do not add the null rows that the selected narwhal
#                        rows compare to (a selection by name adds them)
#   --no-install         do not apt-get anything (fail if something is missing)
#
# Every scenario answers "Hello, World!\n" as text/plain; the sleep50 variant
# waits 50 ms before answering (nginx's ceiling has no sleep50 row). Each row
# starts its backend and its own nginx on free 127.0.0.1 ports, checks the
# answer with curl, runs wrk once to warm up and once to measure, samples the
# backend's processes, and stops everything it started by PID. Progress goes
# to stderr; the machine description and the Markdown table go to stdout.
#
# Columns: req/s, p50 and p99 latency (wrk --latency), errors (wrk's non-2xx/3xx
# responses plus its socket errors: connect, read, write, timeout), the
# backend's total RSS (VmRSS summed over its processes at the end of the run)
# and process count, and the backend's CPU time per 1,000 requests (utime +
# stime + cutime + cstime from /proc/PID/stat summed over its processes,
# after the run minus before it, in CLK_TCK ticks), and the same for the
# front nginx (what bounds req/s here). A row whose nginx logged errors
# during the measured run says so in its notes.
#
# The null rows run bench/null_backend.c, the least work a FastCGI or uwsgi
# server can do (no params decoded, one canned answer, narwhal's hello byte
# for byte), in each shape the narwhal rows use: the ceiling nginx leaves for
# a backend here. The "× null" column is a narwhal hello row's req/s over
# its shape's null row's req/s, from the same run (threads and async rows:
# null-tcp). Null rows have no sleep50 variant.
set -Eeuo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
top=$(dirname "$here")

DURATION=5
WARMUP=1
CONNECTIONS=64
WRK_THREADS=2
VARIANTS=(hello sleep50)
INSTALL=1
WORKERS=2          # backend processes/children for every backend
BACKLOG=1024       # listen backlog for every backend that takes one
WRK_TIMEOUT=10s    # wrk's per-request timeout (its default, 2 s, is below
                   # the sync sleep50 rows' queueing delay)
NARWHAL=${NARWHAL:-}
NARWHAL_APP=${NARWHAL_APP:-}
NARWHAL_INCLUDE=${NARWHAL_INCLUDE:-$top/include}

SCENARIOS=(nginx null-tcp null-tcp-fin null-unix null-keepconn null-uwsgi
           narwhal-tcp narwhal-tcp-fin narwhal-unix narwhal-keepconn narwhal-uwsgi
           narwhal-threads narwhal-async narwhal-async-w1 spawn-fcgi php-fpm uwsgi
           narwhal-cgi narwhal-cgi-async fcgiwrap)
declare -A DESC=(
    [nginx]="ceiling: nginx 'return 200', no backend"
    [null-tcp]="null backend (bench/null_backend.c) -w $WORKERS, FastCGI over TCP: the ceiling for narwhal-tcp, -threads, -async, -async-w1"
    [null-tcp-fin]="null backend -w $WORKERS --close-mode fin, FastCGI over TCP: the ceiling for narwhal-tcp-fin"
    [null-unix]="null backend -w $WORKERS, FastCGI over a unix socket: the ceiling for narwhal-unix"
    [null-keepconn]="null backend -w $WORKERS, FastCGI over TCP, fastcgi_keep_conn on + upstream keepalive: the ceiling for narwhal-keepconn"
    [null-uwsgi]="null backend -w $WORKERS -p uwsgi, uwsgi_pass over TCP: the ceiling for narwhal-uwsgi"
    [narwhal-tcp]="narwhal -w $WORKERS (sync), FastCGI over TCP"
    [narwhal-tcp-fin]="narwhal -w $WORKERS (sync) --close-mode fin: the plain close instead of FIN + reset, FastCGI over TCP"
    [narwhal-unix]="narwhal -w $WORKERS (sync), FastCGI over a unix socket"
    [narwhal-keepconn]="narwhal -w $WORKERS (sync), FastCGI over TCP, fastcgi_keep_conn on + upstream keepalive"
    [narwhal-uwsgi]="narwhal -w $WORKERS --protocol uwsgi, nginx uwsgi_pass over TCP"
    [narwhal-threads]="narwhal -w $WORKERS -k threads --threads 8, FastCGI over TCP"
    [narwhal-async]="narwhal -w $WORKERS -k async, FastCGI over TCP"
    [narwhal-async-w1]="narwhal -w 1 -k async (one worker, as the issue's target), FastCGI over TCP"
    [spawn-fcgi]="spawn-fcgi -F $WORKERS running a libfcgi C program (bench/fcgi_hello.c), FastCGI over TCP"
    [php-fpm]="php-fpm pm=static, $WORKERS children (bench/hello.php), FastCGI over TCP"
    [uwsgi]="uWSGI --master --processes $WORKERS, symcall plugin calling a C function (bench/symcall_hello.c), uwsgi_pass over TCP"
    [narwhal-cgi]="narwhal -w $WORKERS (sync) --cgi-root: a CGI program (bench/cgi_hello.c) forked per request, FastCGI over TCP"
    [narwhal-cgi-async]="narwhal -w $WORKERS -k async --cgi-root: the same CGI program, many at once per worker"
    [fcgiwrap]="fcgiwrap -c $WORKERS running the same CGI program, FastCGI over TCP"
)
# The null row each narwhal row is compared to (same transport, protocol and
# connection ending; the worker class does not change what nginx does).
declare -A NULL_FOR=(
    [narwhal-tcp]=null-tcp [narwhal-tcp-fin]=null-tcp-fin [narwhal-unix]=null-unix
    [narwhal-keepconn]=null-keepconn [narwhal-uwsgi]=null-uwsgi [narwhal-threads]=null-tcp
    [narwhal-async]=null-tcp [narwhal-async-w1]=null-tcp
)
declare -A NULL_RPS=()   # null row -> its hello req/s in this run

log() { printf 'compare: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

usage() { sed -n '2,/^set -E/{/^set -E/d;s/^# \{0,1\}//;p}' "$0"; }

# --- options -----------------------------------------------------------------
selected=()
ADD_NULL=1
while (($#)); do
    case $1 in
        --list)
            for s in "${SCENARIOS[@]}"; do printf '%-18s %s\n' "$s" "${DESC[$s]}"; done
            exit 0 ;;
        --duration) DURATION=${2%s}; shift ;;
        --duration=*) DURATION=${1#*=}; DURATION=${DURATION%s} ;;
        --warmup) WARMUP=${2%s}; shift ;;
        --warmup=*) WARMUP=${1#*=}; WARMUP=${WARMUP%s} ;;
        --connections) CONNECTIONS=$2; shift ;;
        --connections=*) CONNECTIONS=${1#*=} ;;
        --threads) WRK_THREADS=$2; shift ;;
        --threads=*) WRK_THREADS=${1#*=} ;;
        --variant|--variant=*)
            if [[ $1 == *=* ]]; then v=${1#*=}; else v=${2:-}; shift; fi
            case $v in
                hello|sleep50) VARIANTS=("$v") ;;
                both|all) VARIANTS=(hello sleep50) ;;
                *) die "--variant: hello, sleep50 or both" ;;
            esac ;;
        --narwhal) NARWHAL=$2; shift ;;
        --narwhal=*) NARWHAL=${1#*=} ;;
        --app) NARWHAL_APP=$2; shift ;;
        --app=*) NARWHAL_APP=${1#*=} ;;
        --no-install) INSTALL=0 ;;
        --no-null) ADD_NULL=0 ;;
        -h|--help) usage; exit 0 ;;
        -*) die "unknown option $1 (see --help)" ;;
        all) selected+=("${SCENARIOS[@]}") ;;
        null) selected+=(null-tcp null-tcp-fin null-unix null-keepconn null-uwsgi) ;;
        *)
            [[ -n ${DESC[$1]+x} ]] || die "unknown scenario '$1'; --list shows them"
            selected+=("$1") ;;
    esac
    shift
done
for n in "$DURATION" "$WARMUP" "$CONNECTIONS" "$WRK_THREADS"; do
    [[ $n =~ ^[0-9]+$ ]] || die "not a whole number: $n"
done
((DURATION > 0 && CONNECTIONS > 0 && WRK_THREADS > 0)) || die "duration, connections and threads must be > 0"
((CONNECTIONS >= WRK_THREADS)) || die "wrk needs --connections >= --threads"
((${#selected[@]})) || selected=("${SCENARIOS[@]}")
# A narwhal row's "× null" needs its null row in the same run (hello only).
if ((ADD_NULL)) && [[ " ${VARIANTS[*]} " == *" hello "* ]]; then
    for t in "${selected[@]}"; do
        if [[ -n ${NULL_FOR[$t]:-} ]]; then selected+=("${NULL_FOR[$t]}"); fi
    done
fi
# Keep the canonical order, drop duplicates.
run=()
for s in "${SCENARIOS[@]}"; do
    for t in "${selected[@]}"; do [[ $t == "$s" ]] && { run+=("$s"); break; }; done
done
wants() { local s; for s in "${run[@]}"; do [[ $s == "$1" ]] && return 0; done; return 1; }
wants_narwhal() { local s; for s in "${run[@]}"; do [[ $s == narwhal-* ]] && return 0; done; return 1; }
wants_null() { local s; for s in "${run[@]}"; do [[ $s == null-* ]] && return 0; done; return 1; }
has_variant() { # scenario variant: nginx's ceiling and the null rows are hello only
    [[ $2 == hello || ( $1 != nginx && $1 != null-* ) ]]
}

# --- packages ----------------------------------------------------------------
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

install_deps() {
    local pkgs=(wrk curl gcc libc6-dev) missing=() p
    command -v nginx >/dev/null 2>&1 || [[ -x /usr/sbin/nginx ]] || pkgs+=(nginx-light)
    wants spawn-fcgi && pkgs+=(spawn-fcgi libfcgi-dev)
    wants fcgiwrap && pkgs+=(fcgiwrap)
    wants php-fpm && pkgs+=(php-fpm)
    if wants uwsgi; then
        # Debian 12 ships the symcall plugin inside uwsgi-core
        # (/usr/lib/uwsgi/plugins/symcall_plugin.so); there is no separate
        # uwsgi-plugin-symcall package, but take it if a release has one.
        pkgs+=(uwsgi-core)
        local cand
        cand=$(apt-cache policy uwsgi-plugin-symcall 2>/dev/null | awk '/Candidate:/ {print $2}')
        if [[ -n $cand && $cand != "(none)" ]]; then
            pkgs+=(uwsgi-plugin-symcall)
        fi
        # Headers that `uwsgi --dot-h` includes under Debian's build flags
        # (UWSGI_CAP, UWSGI_UUID, UWSGI_SSL, UWSGI_PCRE, UWSGI_ZLIB).
        pkgs+=(libcap-dev uuid-dev libssl-dev libpcre3-dev zlib1g-dev)
    fi
    for p in "${pkgs[@]}"; do installed "$p" || missing+=("$p"); done
    ((${#missing[@]})) || return 0
    ((INSTALL)) || die "missing packages: ${missing[*]} (drop --no-install, or install them)"
    ((EUID == 0)) || die "missing packages: ${missing[*]}; run as root to apt-get them"
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    # Debian starts nginx / php-fpm services on install; we run our own
    # instances on free loopback ports and leave those alone.
}

# --- processes ---------------------------------------------------------------
STARTED=()   # every PID this script started (roots), stopped on exit
WORK=""

# alive, tree, stop_pids, forget, bg_wait, cpu_ticks, ms: bench/lib.sh
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    ((${#STARTED[@]})) && stop_pids "${STARTED[@]}"
    [[ -n $WORK && -d $WORK ]] && rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'log "internal error: line $LINENO: $BASH_COMMAND failed"' ERR
trap 'exit 130' INT
trap 'exit 143' TERM

# Ports below the kernel's ephemeral range: a port in it can be the local end
# of some outgoing connection (wrk's, nginx's to a backend), and then nginx
# or the backend cannot bind it.
PORT_HI=$(awk '{print $1 - 1; exit}' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32767)
((PORT_HI > 21000)) || PORT_HI=32767
NEXT_PORT=$((20000 + RANDOM % (PORT_HI - 20000)))
free_port() { # VAR -> sets VAR to a TCP port on 127.0.0.1 that nobody listens on
    local p    # (no $(...): the counter must advance in this shell)
    while :; do
        p=$NEXT_PORT
        NEXT_PORT=$((NEXT_PORT >= PORT_HI ? 20000 : NEXT_PORT + 1))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            printf -v "$1" '%s' "$p"
            return
        fi
    done
}

wait_listen() { # PID ADDR(port|unix path) -> 0 when it accepts, 1 if PID died, 2 on time-out
    local pid=$1 addr=$2 i
    for ((i = 0; i < 150; i++)); do
        alive "$pid" || return 1
        if [[ $addr == /* ]]; then
            [[ -S $addr ]] && return 0
        elif (exec 3<>"/dev/tcp/127.0.0.1/$addr") 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    return 2
}

rss_kb() { # PID... -> VmRSS summed, in kB
    local p total=0 v
    for p in "$@"; do
        v=$(awk '/^VmRSS:/ {print $2}' "/proc/$p/status" 2>/dev/null || true)
        total=$((total + ${v:-0}))
    done
    echo "$total"
}

last_line() { # FILE -> its last non-empty line, for a row's note
    [[ -f $1 ]] || return 0
    grep -v '^[[:space:]]*$' "$1" | tail -n 1 | tr -d '\r|' | cut -c1-200 || true
}

# --- configuration -----------------------------------------------------------
if wants_narwhal; then
    if [[ -z $NARWHAL ]]; then
        NARWHAL=$top/_build/narwhal
        [[ -x $NARWHAL ]] || die "no narwhal at $NARWHAL: build it (./quickstart.sh does, into _build/) or set NARWHAL=/path/to/narwhal (or --narwhal)"
    fi
    [[ -x $NARWHAL ]] || die "NARWHAL=$NARWHAL is not an executable"
    NARWHAL=$(cd "$(dirname "$NARWHAL")" && pwd)/$(basename "$NARWHAL")
    [[ -n $NARWHAL_APP ]] || NARWHAL_APP=$(dirname "$NARWHAL")/examples/hello.so
    [[ -f $NARWHAL_APP ]] || die "no narwhal app at $NARWHAL_APP (set NARWHAL_APP= or --app)"
    [[ -f $NARWHAL_INCLUDE/narwhal.h ]] || die "no narwhal.h in $NARWHAL_INCLUDE (set NARWHAL_INCLUDE=)"
fi

install_deps
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
[[ -x $NGINX ]] || die "no nginx"
command -v wrk >/dev/null || die "no wrk"
command -v curl >/dev/null || die "no curl"
CLK_TCK=$(getconf CLK_TCK)

WORK=$(mktemp -d "${TMPDIR:-/tmp}/narwhal-bench.XXXXXX")
chmod 755 "$WORK"   # nginx's worker reaches the unix socket in here

# --- building the bench apps -------------------------------------------------
if wants_narwhal; then
    cc -O2 -shared -fPIC -I "$NARWHAL_INCLUDE" -o "$WORK/sleep50.so" "$here/sleep50.c"
fi
if wants_null; then
    cc -O2 -o "$WORK/null_backend" "$here/null_backend.c"
fi
if wants spawn-fcgi; then
    cc -O2 -o "$WORK/fcgi_hello" "$here/fcgi_hello.c" -lfcgi
fi
if wants narwhal-cgi || wants narwhal-cgi-async || wants fcgiwrap; then
    mkdir -p "$WORK/cgi"
    cc -O2 -o "$WORK/cgi/hello" "$here/cgi_hello.c"
    cc -O2 -DSLEEP_MS=50 -o "$WORK/cgi/sleep50" "$here/cgi_hello.c"
fi
if wants php-fpm; then
    PHP_FPM=$(compgen -c php-fpm | sort -V | tail -n 1 || true)
    [[ -n $PHP_FPM ]] && PHP_FPM=$(command -v "$PHP_FPM" || true)
    [[ -z $PHP_FPM ]] && PHP_FPM=$(ls /usr/sbin/php-fpm* 2>/dev/null | sort -V | tail -n 1 || true)
    [[ -n $PHP_FPM ]] || die "no php-fpm binary"
    mkdir -p "$WORK/php"
    cp "$here/hello.php" "$here/sleep50.php" "$WORK/php/"
    chmod 644 "$WORK/php/"*.php
fi
if wants uwsgi; then
    UWSGI=$(command -v uwsgi || echo /usr/bin/uwsgi)
    [[ -x $UWSGI ]] || die "no uwsgi"
    "$UWSGI" --dot-h >"$WORK/uwsgi.h"
    # uwsgi --cflags is meant to be word-split unquoted (the uWSGI docs'
    # `gcc ... $(uwsgi --cflags)`): the same flags as the core, so the same
    # struct layouts.
    # shellcheck disable=SC2046
    cc -fPIC -shared -I "$WORK" $("$UWSGI" --cflags) -O2 -o "$WORK/symcall_hello.so" \
        "$here/symcall_hello.c"
    UWSGI_PLUGIN=()
    uwsgi_help=$("$UWSGI" --help 2>/dev/null || true)
    [[ $uwsgi_help == *--symcall* ]] || UWSGI_PLUGIN=(--plugin symcall)
    UWSGI_LISTEN=$BACKLOG
    somax=$(cat /proc/sys/net/core/somaxconn 2>/dev/null || echo 128)
    ((UWSGI_LISTEN <= somax)) || UWSGI_LISTEN=$somax
fi

# --- nginx -------------------------------------------------------------------
# FASTCGI_PARAMS, UWSGI_PARAMS: bench/lib.sh

write_nginx_conf() { # DIR PORT UPSTREAM_BLOCK LOCATION_BODY
    local dir=$1 port=$2 upstream=$3 location=$4 user=""
    mkdir -p "$dir/tmp"
    ((EUID == 0)) && user="user root root;"
    cat >"$dir/nginx.conf" <<EOF
$user
worker_processes 1;
daemon off;
master_process on;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 1000000;
    client_body_temp_path $dir/tmp/body;
    fastcgi_temp_path $dir/tmp/fastcgi;
    uwsgi_temp_path $dir/tmp/uwsgi;
    proxy_temp_path $dir/tmp/proxy;
    scgi_temp_path $dir/tmp/scgi;
$upstream
    server {
        listen 127.0.0.1:$port;
        server_name localhost;
        root $WORK;
        location / {
$location
        }
    }
}
EOF
}

# --- one row -----------------------------------------------------------------
drain_secs() { # what WORKERS sync workers need to finish CONNECTIONS 50 ms requests, + 0.5 s
    awk -v c="$CONNECTIONS" -v w="$WORKERS" 'BEGIN {printf "%.1f", c * 0.05 / w + 0.5}'
}

ROWS=()
add_row() { # scenario variant req/s p50 p99 errors rss procs cpu nginx-cpu note
    local IFS='|'
    ROWS+=("$*")
}

skip_row() { # scenario variant note
    add_row "$1" "$2" - - - - - - - - "$3"
}

in_use() { # FILE... : does any of them say a port was taken?
    grep -qs -i 'address already in use' "$@"
}

run_row() { # scenario variant [attempt]
    local sc=$1 var=$2 attempt=${3:-1} dir="$WORK/$1-$2" nport bport upstream="" location="" note=""
    local cmd=() roots=() kind=tcp addr pid rc check
    rm -rf "$dir"
    mkdir -p "$dir"
    free_port nport
    free_port bport
    addr=$bport
    local sleep_ms=0
    [[ $var == sleep50 ]] && sleep_ms=50
    local napp=$NARWHAL_APP
    [[ $var == sleep50 ]] && napp=$WORK/sleep50.so

    case $sc in
        nginx)
            kind=none
            location="            default_type text/plain;
            return 200 \"Hello, World!\\n\";" ;;
        narwhal-*|null-*)
            if [[ $sc == null-* ]]; then
                cmd=("$WORK/null_backend" -w "$WORKERS" -l "$BACKLOG")
            else
                cmd=("$NARWHAL" -w "$WORKERS" --backlog "$BACKLOG" --error-logfile "$dir/backend.log")
                ((EUID == 0)) && cmd+=(--allow-root) # nginx runs as root here too
            fi
            case $sc in
                *-unix)
                    addr=$dir/${sc%%-*}.sock
                    cmd+=(-b "unix:$addr") ;;
                *) cmd+=(-b "127.0.0.1:$bport") ;;
            esac
            case $sc in
                narwhal-tcp-fin) cmd+=(--close-mode fin) ;;
                narwhal-uwsgi) cmd+=(--protocol uwsgi) ;;
                narwhal-threads) cmd+=(-k threads --threads 8) ;;
                narwhal-async) cmd+=(-k async) ;;
                narwhal-async-w1) cmd+=(-w 1 -k async) ;;
                narwhal-cgi) cmd+=(--cgi-root "$WORK/cgi") ;;
                narwhal-cgi-async) cmd+=(-k async --cgi-root "$WORK/cgi") ;;
                narwhal-*) ;;
                null-tcp-fin) cmd+=(-p fastcgi --close-mode fin) ;;
                null-uwsgi) cmd+=(-p uwsgi) ;;
                *) cmd+=(-p fastcgi) ;;
            esac
            [[ $sc == narwhal-* && $sc != narwhal-cgi* ]] && cmd+=("$napp")
            # The same nginx side for a narwhal row and its null row.
            case ${sc#*-} in
                unix)
                    location="$FASTCGI_PARAMS
            fastcgi_pass unix:$addr;" ;;
                keepconn)
                    upstream="    upstream backend {
        server 127.0.0.1:$bport;
        keepalive $CONNECTIONS;
    }"
                    location="$FASTCGI_PARAMS
            fastcgi_keep_conn on;
            fastcgi_pass backend;" ;;
                uwsgi)
                    location="$UWSGI_PARAMS
            uwsgi_pass 127.0.0.1:$bport;" ;;
                cgi|cgi-async)
                    location="$FASTCGI_PARAMS
            fastcgi_param SCRIPT_FILENAME $WORK/cgi/$var;
            fastcgi_pass 127.0.0.1:$bport;" ;;
                *)
                    location="$FASTCGI_PARAMS
            fastcgi_pass 127.0.0.1:$bport;" ;;
            esac ;;
        fcgiwrap)
            cmd=(fcgiwrap -c "$WORKERS" -s "tcp:127.0.0.1:$bport")
            location="$FASTCGI_PARAMS
            fastcgi_param SCRIPT_FILENAME $WORK/cgi/$var;
            fastcgi_pass 127.0.0.1:$bport;" ;;
        spawn-fcgi)
            kind=spawn
            location="$FASTCGI_PARAMS
            fastcgi_pass 127.0.0.1:$bport;" ;;
        php-fpm)
            cat >"$dir/php-fpm.conf" <<EOF
[global]
pid = $dir/php-fpm.pid
error_log = $dir/backend.log
daemonize = no
[bench]
listen = 127.0.0.1:$bport
listen.backlog = $BACKLOG
pm = static
pm.max_children = $WORKERS
EOF
            cmd=("$PHP_FPM" -F -y "$dir/php-fpm.conf" -p "$dir")
            ((EUID == 0)) && cmd+=(-R)
            location="$FASTCGI_PARAMS
            fastcgi_param SCRIPT_FILENAME $WORK/php/$var.php;
            fastcgi_pass 127.0.0.1:$bport;" ;;
        uwsgi)
            local fn=bench_hello
            [[ $var == sleep50 ]] && fn=bench_sleep50
            cmd=("$UWSGI" "${UWSGI_PLUGIN[@]}" --dlopen "$WORK/symcall_hello.so" --symcall "$fn"
                 --master --processes "$WORKERS" --socket "127.0.0.1:$bport"
                 --listen "$UWSGI_LISTEN" --disable-logging --die-on-term)
            location="$UWSGI_PARAMS
            uwsgi_modifier1 18;
            uwsgi_pass 127.0.0.1:$bport;" ;;
    esac

    # Start the backend.
    case $kind in
        tcp)
            "${cmd[@]}" >"$dir/backend.out" 2>&1 </dev/null &
            pid=$!
            STARTED+=("$pid")
            roots=("$pid")
            rc=0
            wait_listen "$pid" "$addr" || rc=$?
            # What answered may be another program on that port, with ours
            # failing to bind: make sure ours is still up.
            if ((rc == 0)); then sleep 0.3; alive "$pid" || rc=1; fi
            if ((rc)); then
                local msg
                msg=$(last_line "$dir/backend.out")
                [[ -n $msg ]] || msg=$(last_line "$dir/backend.log")
                if ((rc == 1)); then
                    local status=0
                    wait "$pid" 2>/dev/null || status=$?
                    forget "$pid"
                    # Another program took the port between our check and
                    # the bind: try again on other ports.
                    if in_use "$dir/backend.out" "$dir/backend.log" && ((attempt < 3)); then
                        log "$sc/$var: port taken, retrying"
                        run_row "$sc" "$var" $((attempt + 1))
                        return 0
                    fi
                    if [[ $sc == narwhal-* && $status == 1 ]]; then
                        skip_row "$sc" "$var" "not available: $msg"
                    else
                        skip_row "$sc" "$var" "failed to start (exit $status): $msg"
                    fi
                else
                    stop_pids "$pid"; forget "$pid"
                    skip_row "$sc" "$var" "did not listen within 15 s: $msg"
                fi
                return 0
            fi ;;
        spawn)
            local args=()
            ((sleep_ms)) && args=("$sleep_ms")
            # spawn-fcgi forks the children, writes their PIDs and exits.
            if ! spawn-fcgi -a 127.0.0.1 -p "$bport" -F "$WORKERS" -b "$BACKLOG" \
                    -P "$dir/spawn.pid" -- "$WORK/fcgi_hello" "${args[@]}" \
                    >"$dir/backend.out" 2>&1 </dev/null; then
                if in_use "$dir/backend.out" && ((attempt < 3)); then
                    log "$sc/$var: port taken, retrying"
                    run_row "$sc" "$var" $((attempt + 1))
                    return 0
                fi
                skip_row "$sc" "$var" "failed to start: $(last_line "$dir/backend.out")"
                return 0
            fi
            mapfile -t roots < <(grep -E '^[0-9]+$' "$dir/spawn.pid")
            STARTED+=("${roots[@]}")
            wait_listen "${roots[0]}" "$addr" || true ;;
    esac

    # Start nginx.
    write_nginx_conf "$dir" "$nport" "$upstream" "$location"
    "$NGINX" -e "$dir/error.log" -p "$dir" -c "$dir/nginx.conf" >"$dir/nginx.out" 2>&1 </dev/null &
    local npid=$!
    STARTED+=("$npid")
    if ! wait_listen "$npid" "$nport"; then
        if in_use "$dir/error.log" "$dir/nginx.out" && ((attempt < 3)); then
            stop_pids "$npid" "${roots[@]}"; forget "$npid" "${roots[@]}"
            log "$sc/$var: port taken, retrying"
            run_row "$sc" "$var" $((attempt + 1))
            return 0
        fi
        skip_row "$sc" "$var" "nginx did not start: $(last_line "$dir/error.log")"
        stop_pids "$npid" "${roots[@]}"; forget "$npid" "${roots[@]}"
        return 0
    fi

    # Check the answer (the backend may still be forking its workers).
    local i code ctype ok=0
    for ((i = 0; i < 25; i++)); do
        check=$(curl -s -o "$dir/body" -w '%{http_code} %{content_type}' --max-time 2 \
            "http://127.0.0.1:$nport/" 2>/dev/null || true)
        code=${check%% *}; ctype=${check#* }
        if [[ $code == 200 && $ctype == text/plain* ]] &&
            cmp -s "$dir/body" <(printf 'Hello, World!\n'); then
            ok=1; break
        fi
        [[ $kind == tcp ]] && ! alive "${roots[0]}" && break
        sleep 0.2
    done
    if ((!ok)) && in_use "$dir/backend.out" "$dir/backend.log" && ((attempt < 3)); then
        stop_pids "$npid" "${roots[@]}"; forget "$npid" "${roots[@]}"
        log "$sc/$var: port taken, retrying"
        run_row "$sc" "$var" $((attempt + 1))
        return 0
    fi
    if ((!ok)); then
        local why bl
        why="HTTP $code, Content-Type '$ctype', body '$(head -c 60 "$dir/body" 2>/dev/null | tr -d '\n|' || true)'"
        bl=$(last_line "$dir/backend.log"); [[ -n $bl ]] || bl=$(last_line "$dir/backend.out")
        [[ -n $bl ]] && why+="; backend: $bl"
        skip_row "$sc" "$var" "check failed: $why"
        stop_pids "$npid" "${roots[@]}"; forget "$npid" "${roots[@]}"
        return 0
    fi

    # Warm up, then measure.
    local wrk=(wrk -t"$WRK_THREADS" -c"$CONNECTIONS" --timeout "$WRK_TIMEOUT" --latency)
    if ((WARMUP > 0)); then
        bg_wait "${wrk[@]}" -d"${WARMUP}s" "http://127.0.0.1:$nport/" >/dev/null 2>&1 || true
    fi
    # A sync backend still has up to CONNECTIONS warm-up requests of 50 ms
    # queued when wrk stops; let them drain so the measured run starts clean.
    [[ $var == sleep50 ]] && bg_wait sleep "$(drain_secs)"
    local pids t0 t1 rss nprocs ngx n0 n1 e0 e1
    mapfile -t pids < <(tree "${roots[@]}")
    mapfile -t ngx < <(tree "$npid")
    e0=$(grep -c '\[error\]' "$dir/error.log" || true)
    t0=$(cpu_ticks "${pids[@]}")
    n0=$(cpu_ticks "${ngx[@]}")
    bg_wait "${wrk[@]}" -d"${DURATION}s" "http://127.0.0.1:$nport/" >"$dir/wrk.out" 2>&1 || true
    n1=$(cpu_ticks "${ngx[@]}")
    mapfile -t pids < <(tree "${roots[@]}")
    t1=$(cpu_ticks "${pids[@]}")
    e1=$(grep -c '\[error\]' "$dir/error.log" || true)
    rss=$(rss_kb "${pids[@]}")
    nprocs=${#pids[@]}
    stop_pids "$npid" "${roots[@]}"; forget "$npid" "${roots[@]}"

    # Parse wrk.
    local reqs rps p50 p99 non2xx serr
    reqs=$(awk '/requests in/ {print $1; exit}' "$dir/wrk.out")
    rps=$(awk '/^Requests\/sec:/ {printf "%.0f", $2; exit}' "$dir/wrk.out")
    p50=$(awk '$1 == "50%" {print $2; exit}' "$dir/wrk.out")
    p99=$(awk '$1 == "99%" {print $2; exit}' "$dir/wrk.out")
    non2xx=$(awk '/Non-2xx or 3xx responses:/ {print $NF; exit}' "$dir/wrk.out")
    serr=$(awk -F'[ ,]+' '/Socket errors:/ {
        for (i = 1; i <= NF; i++) if ($i ~ /^[0-9]+$/) { s += $i; d = d sep $(i-1) " " $i; sep = ", " }
        print s "|" d; exit }' "$dir/wrk.out")
    if [[ -z $reqs || -z $rps ]]; then
        skip_row "$sc" "$var" "wrk failed: $(last_line "$dir/wrk.out")"
        return 0
    fi
    [[ -n $serr ]] || serr="0|"
    local errors=$(( ${non2xx:-0} + ${serr%%|*} ))
    if [[ -n ${non2xx:-} ]]; then note="non-2xx/3xx $non2xx"; fi
    if [[ -n ${serr#*|} && ${serr%%|*} != 0 ]]; then
        note+="${note:+; }socket errors: ${serr#*|}"
    fi
    if (( ${e1:-0} > ${e0:-0} )); then
        note+="${note:+; }nginx logged $((e1 - e0)) errors: $(grep '\[error\]' "$dir/error.log" | tail -n 1 | sed 's/.*\[error\] [0-9#]*: //' | cut -c1-100 | tr -d '|')"
    fi
    local ticks=$((t1 - t0))
    if [[ $kind != none ]] && ((ticks < 20)); then
        note+="${note:+; }CPU from $ticks ticks of 1/$CLK_TCK s"
    fi
    local rss_col=- procs_col=- cpu_col=- ncpu_col
    ncpu_col=$(awk -v d="$((n1 - n0))" -v hz="$CLK_TCK" -v n="$reqs" \
        'BEGIN {if (n > 0) printf "%.1f", d / hz * 1000 / n * 1000; else print "-"}')
    if [[ $kind != none ]]; then
        rss_col=$(awk -v k="$rss" 'BEGIN {printf "%.1f", k / 1024}')
        procs_col=$nprocs
        cpu_col=$(awk -v d="$ticks" -v hz="$CLK_TCK" -v n="$reqs" \
            'BEGIN {if (n > 0) printf "%.1f", d / hz * 1000 / n * 1000; else print "-"}')
    else
        note+="${note:+; }no backend"
    fi
    [[ $sc == null-* ]] && NULL_RPS[$sc]=$rps
    add_row "$sc" "$var" "$rps" "$(ms "$p50")" "$(ms "$p99")" "$errors" "$rss_col" "$procs_col" "$cpu_col" "$ncpu_col" "$note"
    log "$sc/$var: $rps req/s, p50 $(ms "$p50") ms, p99 $(ms "$p99") ms, errors $errors"
}

# --- main --------------------------------------------------------------------
nrows=0
for var in "${VARIANTS[@]}"; do
    for sc in "${run[@]}"; do
        has_variant "$sc" "$var" || continue
        nrows=$((nrows + 1))
    done
done
log "$nrows rows of ~$((WARMUP + DURATION + 2)) s each, sleep50 rows $(drain_secs) s more; work dir $WORK"

started_at=$(date -u '+%Y-%m-%d %H:%M UTC')
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
for var in "${VARIANTS[@]}"; do
    for sc in "${run[@]}"; do
        has_variant "$sc" "$var" || continue
        log "running $sc/$var"
        run_row "$sc" "$var"
    done
done

# --- report ------------------------------------------------------------------
first_line() { # CMD... -> the first line CMD prints (stdout or stderr), whatever its exit code
    local out
    out=$("$@" 2>&1 || true)
    printf '%s' "${out%%$'\n'*}"
}

versions() {
    local v=() x sep=""
    x=$(first_line "$NGINX" -v); v+=("${x##*version: }")
    x=$(first_line wrk -v); x=${x#wrk }; v+=("wrk ${x%% *}")
    wants_narwhal && v+=("$(first_line "$NARWHAL" -v)")
    if wants spawn-fcgi; then
        x=$(first_line spawn-fcgi -v); x=${x%%,*}; v+=("${x% (*}")
        v+=("libfcgi $(first_line dpkg-query -W -f='${Version}' libfcgi-dev)")
    fi
    if wants php-fpm; then
        x=$(first_line "$PHP_FPM" -v); x=${x#PHP }; v+=("PHP ${x%% *}")
    fi
    wants uwsgi && v+=("uWSGI $(first_line "$UWSGI" --version)")
    wants fcgiwrap && v+=("fcgiwrap $(first_line dpkg-query -W -f='${Version}' fcgiwrap)")
    for x in "${v[@]}"; do printf '%s%s' "$sep" "$x"; sep=", "; done
}

echo "## narwhal vs the field"
echo
echo "- machine: $(nproc) CPUs, $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo), $(awk '/^MemTotal:/ {printf "%.0f GiB RAM", $2 / 1048576}' /proc/meminfo)"
echo "- kernel: $(uname -srm); $( . /etc/os-release 2>/dev/null && echo "$PRETTY_NAME")"
echo "- date: $started_at; load average before / after the run: $load_before / $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine skews the numbers)"
echo "- software: $(versions)"
echo "- load: wrk -t$WRK_THREADS -c$CONNECTIONS -d${DURATION}s --timeout $WRK_TIMEOUT --latency (after a ${WARMUP} s warm-up; sleep50 rows then wait $(drain_secs) s for the warm-up's queued requests to drain), through nginx (1 worker, access_log off) on 127.0.0.1; every backend runs $WORKERS worker processes"
echo
x_null() { # scenario variant req/s -> that req/s over its null row's, or -
    local n=${NULL_FOR[$1]:-}
    if [[ $2 == hello && -n $n && -n ${NULL_RPS[$n]:-} && $3 =~ ^[0-9]+$ ]] && ((NULL_RPS[$n] > 0)); then
        awk -v a="$3" -v b="${NULL_RPS[$n]}" 'BEGIN {printf "%.2f", a / b}'
    else
        echo -
    fi
}
echo "| scenario | variant | req/s | × null | p50 ms | p99 ms | errors | backend RSS MiB | procs | CPU ms / 1k req | nginx CPU ms / 1k req | notes |"
echo "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|"
for r in "${ROWS[@]}"; do
    IFS='|' read -r -a c <<<"$r"
    printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' \
        "${c[0]}" "${c[1]}" "${c[2]}" "$(x_null "${c[0]}" "${c[1]}" "${c[2]}")" "${c[3]}" "${c[4]}" \
        "${c[5]}" "${c[6]}" "${c[7]}" "${c[8]}" "${c[9]}" "${c[10]:-}"
done
echo
echo "sleep50: the handler waits 50 ms before answering (nginx's ceiling and the null rows have no such row)."
echo "× null: a narwhal hello row's req/s over the req/s of the null backend (bench/null_backend.c: no params decoded, one canned answer) in the same shape, in this run: null-tcp for narwhal-tcp, -threads, -async and -async-w1; null-tcp-fin, null-unix, null-keepconn and null-uwsgi for the narwhal rows of those names. 1.00 means narwhal leaves nginx as much room as a backend that does nothing."
echo "CPU: the backend's utime+stime (children included once reaped) over the measured run, per 1,000 requests; nginx CPU: the same for the front nginx (master + worker), which is what bounds req/s on a small machine (what a backend does on close is paid partly by nginx); RSS: VmRSS summed over the backend's processes at the end of the run."
