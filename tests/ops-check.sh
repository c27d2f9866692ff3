#!/bin/sh
# ops-check.sh - a short check of the master under operator signals, not part
# of `make check` (it takes ~20 s): 200 HUPs in a few seconds under a bounded
# curl loop through nginx (no failed request, master fd count and RSS
# stable), USR2 sent twice (one new master), and TERM right after HUP (a
# clean exit).
#
#     tests/ops-check.sh BUILDDIR [SRCDIR]
#
# Use a normal build: a sanitizer build's quarantine makes the RSS grow.
#
# Binds 127.0.0.1 only; stops every process it started, by pid.
set -u
B=$(cd "${1:?usage: ops-check.sh BUILDDIR [SRCDIR]}" && pwd)
S=$(cd "${2:-$(dirname "$0")/..}" && pwd)
NGINX=${NGINX:-/usr/sbin/nginx}
T=$(mktemp -d /tmp/nw-ops-check-XXXXXX)
NW=$((20000 + $$ % 5000))
NG=$((NW + 5000))
fail=0
pids=""

cleanup() {
    for p in $pids; do kill -KILL "$p" 2>/dev/null; done
    [ -f "$T/ng/nginx.pid" ] && kill "$(cat "$T/ng/nginx.pid")" 2>/dev/null
    [ -f "$T/nw.pid" ] && kill -KILL "$(cat "$T/nw.pid")" 2>/dev/null
    [ -f "$T/nw.pid.2" ] && kill -KILL "$(cat "$T/nw.pid.2")" 2>/dev/null
    sleep 0.5
    rm -rf "$T"
}
trap cleanup EXIT

say() { echo "ops-check: $*"; }
bad() { say "FAIL: $*"; fail=1; }
fds() { ls "/proc/$1/fd" 2>/dev/null | wc -l; }
rss() { awk '/^VmRSS/ { print $2 }' "/proc/$1/status" 2>/dev/null; }
# waits (at most $3 tenths of a second) until file $1 has $2 lines matching
wait_count() {
    i=0
    while [ "$(grep -c -- "$2" "$1" 2>/dev/null)" -lt "${4:-1}" ] && [ $i -lt "$3" ]; do
        sleep 0.1; i=$((i + 1))
    done
    [ "$(grep -c -- "$2" "$1" 2>/dev/null)" -ge "${4:-1}" ]
}

# ---- nginx in front --------------------------------------------------------------
mkdir -p "$T/ng/logs"
cp "$S/nginx/narwhal-fastcgi.conf" "$T/ng/nw.conf"
sed -i "s/127.0.0.1:5000/127.0.0.1:$NW/" "$T/ng/nw.conf"
cp /etc/nginx/fastcgi_params "$T/ng/fastcgi_params"
cat > "$T/ng/nginx.conf" <<EOF
$( [ "$(id -u)" = 0 ] && echo "user root;" )
worker_processes 1;
pid $T/ng/nginx.pid;
error_log $T/ng/error.log;
events { worker_connections 256; }
http {
    access_log off;
    server {
        listen 127.0.0.1:$NG;
        location / { include $T/ng/nw.conf; }
    }
}
EOF
"$NGINX" -p "$T/ng" -c "$T/ng/nginx.conf" || { say "nginx does not start"; exit 2; }

start_narwhal() { # log
    # shellcheck disable=SC2046 # as root, the workers run as root on purpose
    "$B/narwhal" $( [ "$(id -u)" = 0 ] && echo --allow-root ) -b "127.0.0.1:$NW" -w 2 -p "$T/nw.pid" "$B/examples/hello.so" >>"$1" 2>&1 &
    pids="$pids $!"
    M=$!
    i=0
    while ! curl -s -o /dev/null "http://127.0.0.1:$NG/" && [ $i -lt 100 ]; do
        sleep 0.1; i=$((i + 1))
    done
}

# ---- 200 HUPs under a curl loop ------------------------------------------------------
L=$T/nw.log
start_narwhal "$L"
sleep 1
fd0=$(fds "$M"); rss0=$(rss "$M")
(
    n=0
    while [ ! -f "$T/stop" ] && [ $n -lt 20000 ]; do
        curl -s -o /dev/null -m 10 -w '%{http_code}\n' "http://127.0.0.1:$NG/"
        n=$((n + 1))
    done
) >"$T/codes" &
CURL=$!
pids="$pids $CURL"
# paced from one process: a sleep(1) per HUP takes longer than the pace
secs=$(python3 -c 'import os, signal, sys, time
t0 = time.monotonic()
for i in range(200):
    os.kill(int(sys.argv[1]), signal.SIGHUP)
    time.sleep(0.015)
print("%.1f" % (time.monotonic() - t0))' "$M")
# the reloads asked for during others are queued into one: wait for quiet
sleep 4
touch "$T/stop"; wait "$CURL"
fd1=$(fds "$M"); rss1=$(rss "$M")
total=$(wc -l <"$T/codes"); ok=$(grep -c '^200$' "$T/codes")
say "200 HUPs in $secs s: $(grep -c 'reload done' "$L") reloads done," \
    "$ok/$total requests 200; master fds $fd0 -> $fd1, RSS $rss0 -> $rss1 KiB"
[ "$ok" = "$total" ] && [ "$total" -gt 0 ] || bad "failed requests: $(grep -v '^200$' "$T/codes" | sort | uniq -c | tr '\n' ' ')"
[ "$fd0" = "$fd1" ] || bad "master fd count changed: $fd0 -> $fd1"
[ "$rss1" -le $((rss0 + 512)) ] || bad "master RSS grew: $rss0 -> $rss1 KiB"
kill -0 "$M" 2>/dev/null || bad "the master died"
grep -E '\[(ERROR|CRITICAL)\]' "$L" | head -5 | sed 's/^/ops-check:   /'
[ "$(grep -cE '\[(ERROR|CRITICAL)\]' "$L")" = 0 ] || bad "errors logged during HUPs"

# ---- USR2 twice ----------------------------------------------------------------------
kill -USR2 "$M"; sleep 0.3; kill -USR2 "$M"
wait_count "$L" "SIGUSR2: started new master" 50 || bad "no new master"
i=0; while [ ! -s "$T/nw.pid.2" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
N=$(cat "$T/nw.pid.2" 2>/dev/null)
sleep 1
say "USR2 twice: $(grep -c 'SIGUSR2: started new master' "$L") new master(s) (pid ${N:-none});" \
    "$(grep -c 'new master .* is already running; ignoring' "$L") ignored"
[ "$(grep -c 'SIGUSR2: started new master' "$L")" = 1 ] || bad "USR2 twice did not start exactly one new master"
[ -n "$N" ] && kill -0 "$N" 2>/dev/null || bad "the new master is not running"
kill -WINCH "$M"; sleep 1; kill -TERM "$M"
i=0; while kill -0 "$M" 2>/dev/null && [ $i -lt 150 ]; do sleep 0.1; i=$((i + 1)); done
kill -0 "$M" 2>/dev/null && bad "the old master still runs after WINCH + TERM"
wait_count "$L" "pidfile is now" 50 || bad "the new master did not take the pidfile"
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$NG/")
[ "$code" = 200 ] || bad "the new master does not serve ($code)"
say "after WINCH + TERM: pidfile names $(cat "$T/nw.pid" 2>/dev/null), a request got $code"
kill -TERM "$N"
i=0; while kill -0 "$N" 2>/dev/null && [ $i -lt 150 ]; do sleep 0.1; i=$((i + 1)); done
rm -f "$T/nw.pid" "$T/nw.pid.2"

# ---- TERM right after HUP --------------------------------------------------------------
L2=$T/nw2.log
start_narwhal "$L2"
sleep 0.5
kids=$(pgrep -P "$M") # its workers, before the master is reaped and they lose it
kill -HUP "$M"; kill -TERM "$M"
wait "$M"; st=$?
left=0
for k in $kids; do kill -0 "$k" 2>/dev/null && left=$((left + 1)); done
say "TERM right after HUP: master exited with status $st, $left of its workers left"
[ "$st" = 0 ] || bad "TERM after HUP: exit status $st"
[ "$left" = 0 ] || bad "TERM after HUP: $left workers outlived the master"
ss -Hltn "sport = :$NW" 2>/dev/null | grep -q . && bad "something still listens on port $NW"
if grep -qE '\[(ERROR|CRITICAL)\]' "$L2"; then
    grep -E '\[(ERROR|CRITICAL)\]' "$L2" | head -5 | sed 's/^/ops-check:   /'
    bad "TERM after HUP logged errors"
fi

[ $fail = 0 ] && say "all passed" || say "FAILED"
exit $fail
