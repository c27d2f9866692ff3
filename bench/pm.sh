#!/usr/bin/env bash
# bench/pm.sh - what right-sizing costs and saves, through nginx:
#
#   NARWHAL=/tmp/b/narwhal bench/pm.sh [--idle-seconds N] [--cold N]
#
#   memory   the resident memory (PSS, summed over the master and its
#            workers) of an idle server: `static -w 8` against `ondemand
#            -w 8 --worker-idle-timeout 1`, sampled every second for
#            --idle-seconds (default 20) after the first request; the
#            table gives the mean and MiB x seconds, scaled to 1,000 s
#   cold     time to first byte (curl's time_starttransfer) of a request
#            that finds no worker under ondemand (it waits for a fork and
#            a boot), --cold times (default 10), against a warm request
#
# Everything binds 127.0.0.1; every process it starts is stopped by pid.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
NARWHAL=${NARWHAL:-$top/_build/narwhal}
APP=${NARWHAL_APP:-$(dirname "$NARWHAL")/examples/hello.so}
idle=20
cold=10
while (($#)); do
    case $1 in
    --idle-seconds) idle=$2; shift 2 ;;
    --cold) cold=$2; shift 2 ;;
    *) echo "usage: $0 [--idle-seconds N] [--cold N]" >&2; exit 2 ;;
    esac
done
nginx=$(command -v nginx || echo /usr/sbin/nginx)
[[ -x $nginx ]] || { echo "$0: nginx not found" >&2; exit 2; }

work=$(mktemp -d /tmp/nw-pm-XXXXXX)
cleanup() {
    [[ -f $work/nginx.pid ]] && kill -QUIT "$(cat "$work/nginx.pid")" 2>/dev/null
    [[ -f $work/narwhal.pid ]] && kill -TERM "$(cat "$work/narwhal.pid")" 2>/dev/null
    sleep 0.5
    rm -rf "$work"
}
trap cleanup EXIT

port() {
    local p
    for _ in $(seq 50); do
        p=$((20000 + RANDOM % 10000))
        ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && { echo "$p"; return; }
    done
    echo 29999
}
np=$(port)
gp=$(port)
cat >"$work/nginx.conf" <<CONF
worker_processes 1;
pid $work/nginx.pid;
error_log $work/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    server {
        listen 127.0.0.1:$gp;
        location / {
            include /etc/nginx/fastcgi_params;
            fastcgi_pass 127.0.0.1:$np;
        }
    }
}
CONF
"$nginx" -p "$work" -c "$work/nginx.conf" -e "$work/error.log" || exit 1

# PSS in KiB of the master and its children.
pss() {
    local m=$1 total=0 p k
    for p in $m $(cat /proc/"$m"/task/*/children 2>/dev/null); do
        k=$(awk '/^Pss:/ {print $2}' /proc/"$p"/smaps_rollup 2>/dev/null)
        total=$((total + ${k:-0}))
    done
    echo "$total"
}

start() {
    rm -f "$work/narwhal.pid"
    "$NARWHAL" -D -b "127.0.0.1:$np" -p "$work/narwhal.pid" --error-logfile "$work/narwhal.log" \
        "$@" "$APP" || { echo "$0: narwhal did not start" >&2; exit 1; }
    for _ in $(seq 50); do [[ -s $work/narwhal.pid ]] && break; sleep 0.1; done
}
stop() {
    local m
    m=$(cat "$work/narwhal.pid")
    kill -TERM "$m"
    for _ in $(seq 100); do kill -0 "$m" 2>/dev/null || break; sleep 0.1; done
}

memory() { # label, settings...
    local label=$1 sum=0 n=0 m k
    shift
    start "$@"
    m=$(cat "$work/narwhal.pid")
    curl -sf "http://127.0.0.1:$gp/" >/dev/null || echo "$0: $label: no answer" >&2
    sleep 2
    for _ in $(seq "$idle"); do
        k=$(pss "$m")
        sum=$((sum + k))
        n=$((n + 1))
        sleep 1
    done
    stop
    awk -v l="$label" -v s="$sum" -v n="$n" \
        'BEGIN { printf "| %s | %.1f | %.0f |\n", l, s / n / 1024, s / n / 1024 * 1000 }'
}

echo "## idle memory ($idle s sampled; PSS of master + workers)"
echo
echo '| settings | mean MiB | MiB x s over 1,000 s |'
echo '|---|---|---|'
memory 'static -w 8' -w 8
memory 'ondemand -w 8, worker_idle_timeout 1' -w 8 --process-manager ondemand --worker-idle-timeout 1

echo
echo "## time to first byte, ondemand ($cold cold requests)"
echo
start -w 8 --process-manager ondemand --worker-idle-timeout 1
m=$(cat "$work/narwhal.pid")
colds=()
warms=()
for _ in $(seq "$cold"); do
    for _ in $(seq 60); do [[ -z $(cat /proc/"$m"/task/*/children 2>/dev/null) ]] && break; sleep 0.1; done
    colds+=("$(curl -s -o /dev/null -w '%{time_starttransfer}' "http://127.0.0.1:$gp/")")
    warms+=("$(curl -s -o /dev/null -w '%{time_starttransfer}' "http://127.0.0.1:$gp/")")
done
stop
stats() { printf '%s\n' "$@" | sort -n | awk '{v[NR]=$1*1000} END {printf "%.2f | %.2f | %.2f", v[1], v[int((NR+1)/2)], v[NR]}'; }
echo '| request | min ms | median ms | max ms |'
echo '|---|---|---|---|'
echo "| cold (no worker: fork + boot) | $(stats "${colds[@]}") |"
echo "| warm (right after) | $(stats "${warms[@]}") |"
