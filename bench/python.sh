#!/usr/bin/env bash
# python.sh - Python WSGI apps under narwhal against uWSGI and gunicorn: every
# backend behind the same nginx (1 worker, access_log off), loaded by the
# same wrk, on loopback only, in one run (issue #14, "Speed and memory").
#
#   bench/python.sh                        every backend, both apps, both variants
#   bench/python.sh narwhal-fcgi uwsgi     a subset, by name
#   bench/python.sh --list                 the backend names
#   bench/python.sh --app wsgi --variant hello --duration 3
#
# Options:
#   --list               list the backends and exit
#   --duration SECS      measured wrk run per row [5]
#   --warmup SECS        wrk warm-up before each measured run, discarded [1]
#   --connections N      wrk connections [64]
#   --threads N          wrk threads [2]
#   --rounds N           run every row N times, round-robin (so that a load
#                        burst from elsewhere hits all rows alike), and report
#                        each row's best run by req/s (the one other work on
#                        the machine disturbed least), with the spread [1]
#   --app A              wsgi, flask or both [both] (sleep50 rows: wsgi only)
#   --variant V          hello, sleep50 or both [both]
#   --narwhal PATH       narwhal binary [$NARWHAL or <repo>/_build/narwhal];
#                        its Python host (src/python/python.so) is found next
#                        to it, as narwhal finds it
#   --perf DIR           record `perf record -g` of the narwhal rows' workers
#                        during each measured run into DIR/<row>-r<round>.data, and
#                        write DIR/<row>-r<round>.txt (perf report --no-children)
#   --no-install         do not apt-get anything (fail if something is missing)
#
# Apps (bench/wsgi_hello.py, bench/flask_hello.py, copied to a temp dir):
# "wsgi" is a plain WSGI callable, "flask" a one-route Flask app; both
# answer "Hello, World!\n" as text/plain. The sleep50 variant runs the plain
# app's handler that waits 50 ms first: time.sleep under narwhal sync and
# threads, uWSGI, gunicorn sync and gthread; gevent.sleep under gunicorn
# gevent (its worker monkey-patches time.sleep); narwhal.sleep under narwhal
# async, whose coroutines yield only through narwhal.
#
# Each row starts its backend (2 worker processes, except narwhal async:
# one, as the issue asks) and its own nginx on free 127.0.0.1 ports,
# checks the answer with curl (status, Content-Type, body; a row that fails
# says why and has no numbers), runs wrk once to warm up and once to
# measure, samples the backend's processes, and stops everything it started
# by PID. Progress goes to stderr; the machine, the table and the issue's
# goals (met or not, from this run) go to stdout.
#
# Columns: req/s; for sleep50, the ideal (what the backend's slots allow:
# min(connections, workers x threads or coroutines) / 50 ms) and req/s as a
# share of it; p50 and p99 latency (wrk --latency); errors (non-2xx/3xx
# plus socket errors); the backend's CPU (utime + stime + cutime + cstime of
# its process tree from /proc, after minus before the measured run) per
# 1,000 requests, and the front nginx's; RSS and PSS of master + workers
# after the run (RSS counts pages the processes share once per process;
# PSS divides them among the sharers); process count.
#
# The helpers below (processes, ports, /proc sampling, nginx) are copied from
# bench/compare.sh, which is one self-contained script; keep them in step.
set -Eeuo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
top=$(dirname "$here")

DURATION=5
WARMUP=1
CONNECTIONS=64
WRK_THREADS=2
ROUNDS=1
APPS=(wsgi flask)
VARIANTS=(hello sleep50)
INSTALL=1
WORKERS=2          # backend processes for every backend but narwhal async
THREADS=8          # threads per worker for narwhal threads and gunicorn gthread
BACKLOG=1024       # listen backlog for every backend
WRK_TIMEOUT=10s    # above the sync sleep50 rows' queueing delay
PYTHON=/usr/bin/python3   # Debian's: Flask, gevent, gunicorn and uWSGI's plugin use it
NARWHAL=${NARWHAL:-}
PERF_DIR=""

BACKENDS=(narwhal-fcgi narwhal-uwsgi narwhal-threads narwhal-async
          uwsgi gunicorn-sync gunicorn-gthread gunicorn-gevent)
declare -A DESC=(
    [narwhal-fcgi]="narwhal -w $WORKERS (sync), FastCGI, fastcgi_pass"
    [narwhal-uwsgi]="narwhal -w $WORKERS (sync) --protocol uwsgi, uwsgi_pass"
    [narwhal-threads]="narwhal -w $WORKERS -k threads --threads $THREADS, FastCGI"
    [narwhal-async]="narwhal -w 1 -k async, FastCGI (sleep50: narwhal.sleep)"
    [uwsgi]="uWSGI --plugin python3 --master --processes $WORKERS, uwsgi_pass"
    [gunicorn-sync]="gunicorn -w $WORKERS -k sync, proxy_pass"
    [gunicorn-gthread]="gunicorn -w $WORKERS -k gthread --threads $THREADS, proxy_pass"
    [gunicorn-gevent]="gunicorn -w $WORKERS -k gevent (time.sleep monkey-patched), proxy_pass"
)
# Requests a backend can have in its handlers at once (for the ideal sleep50
# throughput); 0: as many as the connections (coroutines, greenlets).
declare -A SLOTS=(
    [narwhal-fcgi]=$WORKERS [narwhal-uwsgi]=$WORKERS [narwhal-threads]=$((WORKERS * THREADS))
    [narwhal-async]=0 [uwsgi]=$WORKERS [gunicorn-sync]=$WORKERS
    [gunicorn-gthread]=$((WORKERS * THREADS)) [gunicorn-gevent]=0
)

log() { printf 'python.sh: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

usage() { sed -n '2,/^set -E/{/^set -E/d;s/^# \{0,1\}//;p}' "$0"; }

# --- options -----------------------------------------------------------------
num() { [[ $2 =~ ^[0-9]+$ ]] || die "$1: not a whole number: $2"; }
selected=()
while (($#)); do
    opt=$1 val=""
    case $opt in
        --*=*) val=${opt#*=}; opt=${opt%%=*} ;;
        --duration|--warmup|--connections|--threads|--rounds|--app|--variant|--narwhal|--perf)
            (($# > 1)) || die "$opt needs a value"
            val=$2; shift ;;
    esac
    case $opt in
        --list)
            for b in "${BACKENDS[@]}"; do printf '%-17s %s\n' "$b" "${DESC[$b]}"; done
            exit 0 ;;
        --duration) DURATION=${val%s} ;;
        --warmup) WARMUP=${val%s} ;;
        --connections) CONNECTIONS=$val ;;
        --threads) WRK_THREADS=$val ;;
        --rounds) ROUNDS=$val ;;
        --app)
            case $val in
                wsgi|flask) APPS=("$val") ;;
                both|all) APPS=(wsgi flask) ;;
                *) die "--app: wsgi, flask or both" ;;
            esac ;;
        --variant)
            case $val in
                hello|sleep50) VARIANTS=("$val") ;;
                both|all) VARIANTS=(hello sleep50) ;;
                *) die "--variant: hello, sleep50 or both" ;;
            esac ;;
        --narwhal) NARWHAL=$val ;;
        --perf) PERF_DIR=$val ;;
        --no-install) INSTALL=0 ;;
        -h|--help) usage; exit 0 ;;
        -*) die "unknown option $opt (see --help)" ;;
        all) selected+=("${BACKENDS[@]}") ;;
        *)
            [[ -n ${DESC[$opt]+x} ]] || die "unknown backend '$opt'; --list shows them"
            selected+=("$opt") ;;
    esac
    shift
done
num --duration "$DURATION"; num --warmup "$WARMUP"
num --connections "$CONNECTIONS"; num --threads "$WRK_THREADS"; num --rounds "$ROUNDS"
((DURATION > 0 && CONNECTIONS > 0 && WRK_THREADS > 0 && ROUNDS > 0)) ||
    die "duration, connections, threads and rounds must be > 0"
((CONNECTIONS >= WRK_THREADS)) || die "wrk needs --connections >= --threads"
((${#selected[@]})) || selected=("${BACKENDS[@]}")
run=()   # the selected backends in the canonical order, once each
for b in "${BACKENDS[@]}"; do
    for s in "${selected[@]}"; do [[ $s == "$b" ]] && { run+=("$b"); break; }; done
done
wants() { local b; for b in "${run[@]}"; do [[ $b == "$1"* ]] && return 0; done; return 1; }

# The rows, in the order they run and print: every backend with each app's
# hello, then the plain app's sleep50.
ROW_KEYS=()
for v in "${VARIANTS[@]}"; do
    for a in "${APPS[@]}"; do
        [[ $v == sleep50 && $a != wsgi ]] && continue
        for b in "${run[@]}"; do ROW_KEYS+=("$b/$a/$v"); done
    done
done
((${#ROW_KEYS[@]})) || die "no rows: sleep50 rows are for --app wsgi only"

# --- packages ----------------------------------------------------------------
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

install_deps() {
    local pkgs=(wrk curl python3) missing=() p
    command -v nginx >/dev/null 2>&1 || [[ -x /usr/sbin/nginx ]] || pkgs+=(nginx-light)
    [[ " ${APPS[*]} " == *" flask "* ]] && pkgs+=(python3-flask)
    wants uwsgi && pkgs+=(uwsgi-core uwsgi-plugin-python3)
    wants gunicorn && pkgs+=(gunicorn)
    wants gunicorn-gevent && pkgs+=(python3-gevent)
    [[ -n $PERF_DIR ]] && pkgs+=(linux-perf)
    for p in "${pkgs[@]}"; do installed "$p" || missing+=("$p"); done
    ((${#missing[@]})) || return 0
    ((INSTALL)) || die "missing packages: ${missing[*]} (drop --no-install, or install them)"
    ((EUID == 0)) || die "missing packages: ${missing[*]}; run as root to apt-get them"
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# --- processes (from compare.sh) ---------------------------------------------
STARTED=()   # every PID this script started (roots), stopped on exit
WORK=""

# alive, tree, stop_pids, forget, bg_wait, cpu_ticks, ms: bench/lib.sh
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

stop_forget() { stop_pids "$@"; forget "$@"; }

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

# Ports below the kernel's ephemeral range (see compare.sh).
PORT_HI=$(awk '{print $1 - 1; exit}' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32767)
((PORT_HI > 21000)) || PORT_HI=32767
NEXT_PORT=$((20000 + RANDOM % (PORT_HI - 20000)))
free_port() { # VAR -> sets VAR to a TCP port on 127.0.0.1 that nobody listens on
    local p
    while :; do
        p=$NEXT_PORT
        NEXT_PORT=$((NEXT_PORT >= PORT_HI ? 20000 : NEXT_PORT + 1))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            printf -v "$1" '%s' "$p"
            return
        fi
    done
}

wait_listen() { # PID PORT -> 0 when it accepts, 1 if PID died, 2 after 15 s
    local pid=$1 port=$2 i
    for ((i = 0; i < 150; i++)); do
        alive "$pid" || return 1
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
        sleep 0.1
    done
    return 2
}

mem_kb() { # FIELD FILE PID... -> FIELD (VmRSS in status, Pss in smaps_rollup) summed, in kB
    local field=$1 file=$2 p total=0 v
    shift 2
    for p in "$@"; do
        v=$(awk -v f="$field:" '$1 == f {print $2; exit}' "/proc/$p/$file" 2>/dev/null || true)
        total=$((total + ${v:-0}))
    done
    echo "$total"
}

last_line() { # FILE... -> the last non-empty line of the first that has one
    local f l
    for f in "$@"; do
        [[ -f $f ]] || continue
        l=$(grep -v '^[[:space:]]*$' "$f" | tail -n 1 | tr -d '\r|' | cut -c1-200 || true)
        [[ -n $l ]] && { printf '%s' "$l"; return 0; }
    done
    return 0
}

in_use() { grep -qs -i 'address already in use' "$@"; }

# --- configuration -----------------------------------------------------------
if wants narwhal; then
    if [[ -z $NARWHAL ]]; then
        NARWHAL=$top/_build/narwhal
        [[ -x $NARWHAL ]] || die "no narwhal at $NARWHAL: build it (./quickstart.sh does, into _build/) or set NARWHAL=/path/to/narwhal (or --narwhal)"
    fi
    [[ -x $NARWHAL ]] || die "NARWHAL=$NARWHAL is not an executable"
    NARWHAL=$(cd "$(dirname "$NARWHAL")" && pwd)/$(basename "$NARWHAL")
fi
install_deps
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
[[ -x $NGINX ]] || die "no nginx"
command -v wrk >/dev/null || die "no wrk"
command -v curl >/dev/null || die "no curl"
if wants uwsgi; then
    UWSGI=$(command -v uwsgi || echo /usr/bin/uwsgi)
    [[ -x $UWSGI ]] || die "no uwsgi"
    UWSGI_LISTEN=$BACKLOG
    somax=$(cat /proc/sys/net/core/somaxconn 2>/dev/null || echo 128)
    ((UWSGI_LISTEN <= somax)) || UWSGI_LISTEN=$somax
fi
if wants gunicorn; then
    GUNICORN=$(command -v gunicorn || echo /usr/bin/gunicorn)
    [[ -x $GUNICORN ]] || die "no gunicorn"
fi
if [[ -n $PERF_DIR ]]; then
    command -v perf >/dev/null || die "--perf: no perf"
    mkdir -p "$PERF_DIR"
    PERF_DIR=$(cd "$PERF_DIR" && pwd)
fi
CLK_TCK=$(getconf CLK_TCK)

WORK=$(mktemp -d "${TMPDIR:-/tmp}/narwhal-pybench.XXXXXX")
chmod 755 "$WORK"
APPDIR=$WORK/app
mkdir -p "$APPDIR"
cp "$here/wsgi_hello.py" "$here/flask_hello.py" "$APPDIR/"
chmod 644 "$APPDIR"/*.py

# --- nginx -------------------------------------------------------------------
# FASTCGI_PARAMS, UWSGI_PARAMS: bench/lib.sh

write_nginx_conf() { # DIR PORT LOCATION_BODY
    local dir=$1 port=$2 location=$3 user=""
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

# --- one backend ---------------------------------------------------------------
app_spec() { # app variant backend -> module:callable
    case $1/$2 in
        flask/*) echo flask_hello:app ;;
        wsgi/hello) echo wsgi_hello:application ;;
        wsgi/sleep50) [[ $3 == narwhal-async ]] && echo wsgi_hello:sleep50_narwhal || echo wsgi_hello:sleep50 ;;
    esac
}

backend() { # backend spec dir bport -> sets CMD (the backend's command) and LOCATION (nginx's)
    local b=$1 spec=$2 dir=$3 bport=$4
    case $b in
        narwhal-*)
            CMD=("$NARWHAL" -w "$WORKERS" -b "127.0.0.1:$bport" --backlog "$BACKLOG"
                 --chdir "$APPDIR" --error-logfile "$dir/backend.log")
            case $b in
                narwhal-uwsgi) CMD+=(--protocol uwsgi) ;;
                narwhal-threads) CMD+=(-k threads --threads "$THREADS") ;;
                narwhal-async) CMD+=(-w 1 -k async) ;;
            esac
            ((EUID == 0)) && CMD+=(--allow-root) # as the others run here: root
            CMD+=("$spec")
            if [[ $b == narwhal-uwsgi ]]; then
                LOCATION="$UWSGI_PARAMS
            uwsgi_pass 127.0.0.1:$bport;"
            else
                LOCATION="$FASTCGI_PARAMS
            fastcgi_pass 127.0.0.1:$bport;"
            fi ;;
        uwsgi)
            # uWSGI's defaults otherwise: the app loaded in the master before
            # the fork, no Python threads; --need-app: exit if it fails to load.
            CMD=("$UWSGI" --plugin python3 --master --processes "$WORKERS"
                 --socket "127.0.0.1:$bport" --listen "$UWSGI_LISTEN"
                 --chdir "$APPDIR" --module "$spec" --need-app
                 --disable-logging --die-on-term)
            LOCATION="$UWSGI_PARAMS
            uwsgi_pass 127.0.0.1:$bport;" ;;
        gunicorn-*)
            CMD=("$GUNICORN" -w "$WORKERS" -k "${b#gunicorn-}" -b "127.0.0.1:$bport"
                 --backlog "$BACKLOG" --chdir "$APPDIR" --error-logfile "$dir/backend.log"
                 --log-level warning)
            [[ $b == gunicorn-gthread ]] && CMD+=(--threads "$THREADS")
            CMD+=("$spec")
            LOCATION="            proxy_pass http://127.0.0.1:$bport;" ;;
    esac
}

# --- one row -----------------------------------------------------------------
drain_secs() { # what WORKERS sync workers need to finish CONNECTIONS 50 ms requests, + 0.5 s
    awk -v c="$CONNECTIONS" -v w="$WORKERS" 'BEGIN {printf "%.1f", c * 0.05 / w + 0.5}'
}

ideal() { # backend -> req/s its slots allow with 50 ms handlers
    local s=${SLOTS[$1]}
    ((s == 0 || s > CONNECTIONS)) && s=$CONNECTIONS
    echo $((s * 20))
}

per_1k() { # ticks requests -> CPU ms per 1,000 requests
    awk -v d="$1" -v hz="$CLK_TCK" -v n="$2" 'BEGIN {if (n > 0) printf "%.1f", d / hz * 1e6 / n; else print "-"}'
}

mib() { awk -v k="$1" 'BEGIN {printf "%.1f", k / 1024}'; }

ROWS=()   # every run of every row: "key|req/s|...|note", see add_row
RAW_RSS=0 # the last measured run's RSS in kB, kept beside its row for the goals
add_row() { # key req/s ideal %ideal p50 p99 errors cpu nginx-cpu rss pss procs note
    local IFS='|'
    ROWS+=("$*|$RAW_RSS")
}
skip_row() { add_row "$1" - - - - - - - - - - - "$2"; }

# Start the backend: 0 up, 1 failed (row skipped), 2 port taken (try again).
start_backend() { # key dir bport -> sets PID
    local key=$1 dir=$2 bport=$3 rc=0 status=0 msg
    "${CMD[@]}" >"$dir/backend.out" 2>&1 </dev/null &
    PID=$!
    STARTED+=("$PID")
    wait_listen "$PID" "$bport" || rc=$?
    # What answered may be another program on that port, with ours failing
    # to bind: make sure ours is still up.
    if ((rc == 0)); then sleep 0.3; alive "$PID" || rc=1; fi
    ((rc)) || return 0
    msg=$(last_line "$dir/backend.log" "$dir/backend.out")
    if ((rc == 1)); then
        wait "$PID" 2>/dev/null || status=$?
        forget "$PID"
        in_use "$dir/backend.out" "$dir/backend.log" && return 2
        skip_row "$key" "failed to start (exit $status): $msg"
    else
        stop_forget "$PID"
        skip_row "$key" "did not listen within 15 s: $msg"
    fi
    return 1
}

check_answer() { # dir nport pid -> 0 when "Hello, World!\n" as text/plain; else WHY is set
    local dir=$1 nport=$2 pid=$3 i check code="" ctype=""
    for ((i = 0; i < 25; i++)); do   # the backend may still be forking its workers
        check=$(curl -s -o "$dir/body" -w '%{http_code} %{content_type}' --max-time 2 \
            "http://127.0.0.1:$nport/" 2>/dev/null || true)
        code=${check%% *}; ctype=${check#* }
        if [[ $code == 200 && $ctype == text/plain* ]] &&
            cmp -s "$dir/body" <(printf 'Hello, World!\n'); then
            return 0
        fi
        alive "$pid" || break
        sleep 0.2
    done
    WHY="HTTP $code, Content-Type '$ctype', body '$(head -c 60 "$dir/body" 2>/dev/null | tr -d '\n|' || true)'"
    local bl
    bl=$(last_line "$dir/backend.log" "$dir/backend.out")
    [[ -n $bl ]] && WHY+="; backend: $bl"
    return 1
}

perf_start() { # row-name PID... (the workers) -> sets PERF_PID
    PERF_PID=""
    [[ -n $PERF_DIR && $1 == narwhal-* ]] || return 0
    local name=$1 ids
    shift
    ids=$(IFS=,; echo "$*")
    perf record -q -g -F 999 -o "$PERF_DIR/$name.data" -p "$ids" -- sleep "$DURATION" \
        >"$PERF_DIR/$name.log" 2>&1 &
    PERF_PID=$!
    STARTED+=("$PERF_PID")
}

perf_finish() { # row-name
    [[ -n $PERF_PID ]] || return 0
    { wait "$PERF_PID"; } 2>/dev/null || true
    forget "$PERF_PID"
    perf report -i "$PERF_DIR/$1.data" --no-children --stdio --percent-limit 0.5 \
        >"$PERF_DIR/$1.txt" 2>/dev/null || true
    log "$1: perf profile in $PERF_DIR/$1.txt"
}

run_row() { # key [attempt]
    local key=$1 attempt=${2:-1} b a v dir nport bport rc npid
    IFS=/ read -r b a v <<<"$key"
    dir=$WORK/${key//\//-}
    rm -rf "$dir"; mkdir -p "$dir"
    free_port nport
    free_port bport
    backend "$b" "$(app_spec "$a" "$v" "$b")" "$dir" "$bport"

    rc=0
    start_backend "$key" "$dir" "$bport" || rc=$?
    if ((rc == 2 && attempt < 3)); then log "$key: port taken, retrying"; run_row "$key" $((attempt + 1)); return 0; fi
    ((rc == 0)) || return 0
    local roots=("$PID")

    write_nginx_conf "$dir" "$nport" "$LOCATION"
    "$NGINX" -e "$dir/error.log" -p "$dir" -c "$dir/nginx.conf" >"$dir/nginx.out" 2>&1 </dev/null &
    npid=$!
    STARTED+=("$npid")
    if ! wait_listen "$npid" "$nport"; then
        stop_forget "$npid" "${roots[@]}"
        if in_use "$dir/error.log" "$dir/nginx.out" && ((attempt < 3)); then
            log "$key: port taken, retrying"; run_row "$key" $((attempt + 1)); return 0
        fi
        skip_row "$key" "nginx did not start: $(last_line "$dir/error.log" "$dir/nginx.out")"
        return 0
    fi

    WHY=""
    if ! check_answer "$dir" "$nport" "${roots[0]}"; then
        stop_forget "$npid" "${roots[@]}"
        skip_row "$key" "check failed: $WHY"
        return 0
    fi

    # Warm up, then measure.
    local wrk=(wrk -t"$WRK_THREADS" -c"$CONNECTIONS" --timeout "$WRK_TIMEOUT" --latency)
    if ((WARMUP > 0)); then
        bg_wait "${wrk[@]}" -d"${WARMUP}s" "http://127.0.0.1:$nport/" >/dev/null 2>&1 || true
    fi
    # A sync backend still has up to CONNECTIONS warm-up requests of 50 ms
    # queued when wrk stops; let them drain so the measured run starts clean.
    [[ $v == sleep50 ]] && bg_wait sleep "$(drain_secs)"
    local pids ngx t0 t1 n0 n1 e0 e1
    mapfile -t pids < <(tree "${roots[@]}")
    mapfile -t ngx < <(tree "$npid")
    perf_start "${key//\//-}-r$round" "${pids[@]:1}"
    e0=$(grep -c '\[error\]' "$dir/error.log" || true)
    t0=$(cpu_ticks "${pids[@]}")
    n0=$(cpu_ticks "${ngx[@]}")
    bg_wait "${wrk[@]}" -d"${DURATION}s" "http://127.0.0.1:$nport/" >"$dir/wrk.out" 2>&1 || true
    n1=$(cpu_ticks "${ngx[@]}")
    mapfile -t pids < <(tree "${roots[@]}")
    t1=$(cpu_ticks "${pids[@]}")
    e1=$(grep -c '\[error\]' "$dir/error.log" || true)
    local rss pss nprocs=${#pids[@]}
    rss=$(mem_kb VmRSS status "${pids[@]}")
    pss=$(mem_kb Pss smaps_rollup "${pids[@]}")
    perf_finish "${key//\//-}-r$round"
    stop_forget "$npid" "${roots[@]}"

    # Parse wrk.
    local reqs rps p50 p99 non2xx serr note="" errors ticks id="-" pct="-"
    reqs=$(awk '/requests in/ {print $1; exit}' "$dir/wrk.out")
    rps=$(awk '/^Requests\/sec:/ {printf "%.0f", $2; exit}' "$dir/wrk.out")
    p50=$(awk '$1 == "50%" {print $2; exit}' "$dir/wrk.out")
    p99=$(awk '$1 == "99%" {print $2; exit}' "$dir/wrk.out")
    non2xx=$(awk '/Non-2xx or 3xx responses:/ {print $NF; exit}' "$dir/wrk.out")
    serr=$(awk -F'[ ,]+' '/Socket errors:/ {
        for (i = 1; i <= NF; i++) if ($i ~ /^[0-9]+$/) { s += $i; d = d sep $(i-1) " " $i; sep = ", " }
        print s "|" d; exit }' "$dir/wrk.out")
    if [[ -z $reqs || -z $rps ]]; then
        skip_row "$key" "wrk failed: $(last_line "$dir/wrk.out")"
        return 0
    fi
    [[ -n $serr ]] || serr="0|"
    errors=$(( ${non2xx:-0} + ${serr%%|*} ))
    [[ -n ${non2xx:-} ]] && note="non-2xx/3xx $non2xx"
    if [[ -n ${serr#*|} && ${serr%%|*} != 0 ]]; then
        note+="${note:+; }socket errors: ${serr#*|}"
    fi
    if (( ${e1:-0} > ${e0:-0} )); then
        note+="${note:+; }nginx logged $((e1 - e0)) errors: $(grep '\[error\]' "$dir/error.log" | tail -n 1 | sed 's/.*\[error\] [0-9#]*: //' | cut -c1-100 | tr -d '|')"
    fi
    ticks=$((t1 - t0))
    ((ticks < 20)) && note+="${note:+; }CPU from $ticks ticks of 1/$CLK_TCK s"
    if [[ $v == sleep50 ]]; then
        id=$(ideal "$b")
        pct=$(awk -v r="$rps" -v i="$id" 'BEGIN {printf "%.0f %%", 100 * r / i}')
    fi
    RAW_RSS=$rss
    add_row "$key" "$rps" "$id" "$pct" "$(ms "$p50")" "$(ms "$p99")" "$errors" \
        "$(per_1k "$ticks" "$reqs")" "$(per_1k $((n1 - n0)) "$reqs")" \
        "$(mib "$rss")" "$(mib "$pss")" "$nprocs" "$note"
    log "$key: $rps req/s, p50 $(ms "$p50") ms, p99 $(ms "$p99") ms, errors $errors, RSS $(mib "$rss") MiB"
}

# --- main --------------------------------------------------------------------
log "${#ROW_KEYS[@]} rows of ~$((WARMUP + DURATION + 3)) s each, sleep50 rows $(drain_secs) s more; work dir $WORK"
started_at=$(date -u '+%Y-%m-%d %H:%M UTC')
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
for ((round = 1; round <= ROUNDS; round++)); do
    for key in "${ROW_KEYS[@]}"; do
        if ((ROUNDS > 1)); then log "running $key (round $round of $ROUNDS)"; else log "running $key"; fi
        RAW_RSS=0
        run_row "$key"
    done
done

# Each row's best run by req/s, with the spread: on a shared machine other
# work only ever takes from a run, so the best one is the least disturbed
# (a median of a few runs still carries the bursts). A row no run of which
# measured keeps its last failure.
pick() { # key -> the chosen line on stdout
    local r runs=() fails=()
    for r in "${ROWS[@]}"; do
        [[ ${r%%|*} == "$1" ]] || continue
        if [[ $r =~ ^[^|]*\|[0-9]+\| ]]; then runs+=("$r"); else fails+=("$r"); fi
    done
    if ((${#runs[@]} == 0)); then
        printf '%s\n' "${fails[-1]}"
        return
    fi
    mapfile -t runs < <(printf '%s\n' "${runs[@]}" | sort -t'|' -k2,2n)
    local mid=${runs[-1]}
    if ((ROUNDS > 1)); then
        local lo=${runs[0]#*|} hi=${runs[-1]#*|} spread
        spread="best of ${#runs[@]}: ${lo%%|*}..${hi%%|*} req/s"
        ((${#fails[@]})) && spread+=", ${#fails[@]} runs failed"
        IFS='|' read -r -a c <<<"$mid"
        c[12]="$spread${c[12]:+; }${c[12]}"
        mid=$(IFS='|'; printf '%s' "${c[*]}")
    fi
    printf '%s\n' "$mid"
}
declare -A RPS=() RSS=() CPU=()   # key -> the chosen run's req/s, RSS kB and
                                  # backend + nginx CPU ms per 1k requests, for the goals
CHOSEN=()
for key in "${ROW_KEYS[@]}"; do
    line=$(pick "$key")
    CHOSEN+=("$line")
    IFS='|' read -r -a c <<<"$line"
    if [[ ${c[1]} =~ ^[0-9]+$ ]]; then
        RPS[$key]=${c[1]}
        # shellcheck disable=SC2034  # read through a nameref in ratio()
        RSS[$key]=${c[13]}
        # shellcheck disable=SC2034
        CPU[$key]=$(awk -v a="${c[7]}" -v b="${c[8]}" 'BEGIN {printf "%.1f", a + b}')
    fi
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
    v+=("$(first_line "$PYTHON" -V)")
    [[ " ${APPS[*]} " == *" flask "* ]] &&
        v+=("Flask $(first_line dpkg-query -W -f='${Version}' python3-flask)")
    wants narwhal && v+=("$(first_line "$NARWHAL" -v)")
    wants uwsgi && v+=("uWSGI $(first_line "$UWSGI" --version)")
    wants gunicorn && v+=("$(first_line "$GUNICORN" --version)")
    wants gunicorn-gevent && v+=("gevent $(first_line dpkg-query -W -f='${Version}' python3-gevent)")
    for x in "${v[@]}"; do printf '%s%s' "$sep" "$x"; sep=", "; done
}

echo "## Python apps: narwhal, uWSGI and gunicorn"
echo
echo "- machine: $(nproc) CPUs, $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo), $(awk '/^MemTotal:/ {printf "%.0f GiB RAM", $2 / 1048576}' /proc/meminfo)"
echo "- kernel: $(uname -srm); $( . /etc/os-release 2>/dev/null && echo "$PRETTY_NAME")"
echo "- date: $started_at; load average before / after the run: $load_before / $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine skews the numbers)"
echo "- software: $(versions)"
echo "- rounds: $ROUNDS (every row ran once per round, round-robin; each row shows its best run by req/s, the one other work disturbed least, and the range in its notes)"
echo "- load: wrk -t$WRK_THREADS -c$CONNECTIONS -d${DURATION}s --timeout $WRK_TIMEOUT --latency (after a ${WARMUP} s warm-up; sleep50 rows then wait $(drain_secs) s for the warm-up's queued requests to drain), through nginx (1 worker, access_log off) on 127.0.0.1; $WORKERS worker processes per backend (narwhal async: 1)"
echo
echo "| backend | app | variant | req/s | ideal | of ideal | p50 ms | p99 ms | errors | CPU ms / 1k req | nginx CPU ms / 1k req | RSS MiB | PSS MiB | procs | notes |"
echo "|---|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|"
for r in "${CHOSEN[@]}"; do
    IFS='|' read -r -a c <<<"$r"
    IFS=/ read -r b a v <<<"${c[0]}"
    printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' \
        "$b" "$a" "$v" "${c[1]}" "${c[2]}" "${c[3]}" "${c[4]}" "${c[5]}" "${c[6]}" \
        "${c[7]}" "${c[8]}" "${c[9]}" "${c[10]}" "${c[11]}" "${c[12]:-}"
done
echo
echo "ideal (sleep50): min(connections, the backend's slots) / 50 ms; slots: workers for sync, workers × $THREADS threads for narwhal threads and gunicorn gthread, unbounded for narwhal async and gunicorn gevent."
echo "CPU: utime+stime of the backend's process tree over the measured run, per 1,000 requests; nginx CPU: the same for the front nginx. RSS: VmRSS summed over master + workers after the run (shared pages once per process); PSS: the same with shared pages divided among their sharers."
echo

# The issue's goals, from this run.
ratio() { # key-a key-b MAP -> MAP[a] / MAP[b], or empty when a row is missing
    local -n m=$3
    [[ ${m[$1]:-} =~ ^[0-9.]+$ && ${m[$2]:-} =~ ^[0-9.]+$ ]] || return 0
    awk -v a="${m[$1]}" -v b="${m[$2]}" 'BEGIN {if (b > 0) printf "%.2f", a / b}'
}
goal() { # text value op bound [key-a key-b]: with the keys, also the ratio by CPU
    local text=$1 val=$2 op=$3 bound=$4 verdict by_cpu=""
    if (($# > 4)); then
        # What the two rows' requests cost the machine (backend + nginx CPU
        # per request), b over a: the ratio req/s would have where CPU bounds
        # them, much less swayed by other work than req/s is.
        by_cpu=$(ratio "$6" "$5" CPU)
        [[ -n $by_cpu ]] && by_cpu="; by backend + nginx CPU per request: $by_cpu"
    fi
    if [[ -z $val ]]; then
        echo "- $text: not measured (a row is missing)"
        return
    fi
    if awk -v v="$val" -v b="$bound" -v op="$op" 'BEGIN {exit !(op == ">=" ? v >= b : v <= b)}'; then
        verdict="met"
    else
        verdict="NOT met"
    fi
    echo "- $text: $val ($op $bound): $verdict$by_cpu"
}
echo "Goals (issue #14), from this run (req/s on a loaded machine swings; the ratio by CPU per request beside it is steadier):"
echo
for n in narwhal-fcgi narwhal-uwsgi; do
    goal "plain WSGI hello, $n / uwsgi" "$(ratio "$n/wsgi/hello" uwsgi/wsgi/hello RPS)" ">=" 1.15 \
        "$n/wsgi/hello" uwsgi/wsgi/hello
done
for n in narwhal-fcgi narwhal-uwsgi; do
    goal "Flask hello, $n / uwsgi" "$(ratio "$n/flask/hello" uwsgi/flask/hello RPS)" ">=" 1.05 \
        "$n/flask/hello" uwsgi/flask/hello
    goal "Flask hello, $n / gunicorn-sync" "$(ratio "$n/flask/hello" gunicorn-sync/flask/hello RPS)" ">=" 1.3 \
        "$n/flask/hello" gunicorn-sync/flask/hello
done
id=$(ideal narwhal-threads)
val=""
[[ ${RPS[narwhal-threads/wsgi/sleep50]:-} =~ ^[0-9]+$ ]] &&
    val=$(awk -v r="${RPS[narwhal-threads/wsgi/sleep50]}" -v i="$id" 'BEGIN {printf "%.2f", r / i}')
goal "sleep50 under narwhal threads, share of the ideal $id req/s" "$val" ">=" 0.90
for n in narwhal-fcgi narwhal-uwsgi; do
    goal "RSS of master + 2 Flask workers, $n / uwsgi" "$(ratio "$n/flask/hello" uwsgi/flask/hello RSS)" "<=" 1.00
done
