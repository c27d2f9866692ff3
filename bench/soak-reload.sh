#!/usr/bin/env bash
# bench/soak-reload.sh - reloads and recycling under load, through nginx with
# upstream keep-alive: does anything reach a client, or nginx's error log?
#
#   NARWHAL=/tmp/b/narwhal bench/soak-reload.sh [--seconds N] [--mode reloads|recycle]
#
#   reloads  wrk through nginx (a FastCGI keep-conn location and a uwsgi
#            one), HUP every few seconds, TTIN and TTOU, one USR2 upgrade
#   recycle  the same load with --max-requests (recycling at a high rate)
#
# Prints one table row: requests, non-2xx, socket errors, nginx [error]
# lines (and the first few of them). Everything binds 127.0.0.1; every
# process it starts is stopped by pid; the load is bounded by --seconds.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
NARWHAL=${NARWHAL:-$top/_build/narwhal}
APP=${NARWHAL_APP:-$(dirname "$NARWHAL")/examples/hello.so}
seconds=30
mode=reloads
hup_every=3
max_requests=3000
while (($#)); do
    case $1 in
    --seconds) seconds=$2; shift 2 ;;
    --mode) mode=$2; shift 2 ;;
    --hup-every) hup_every=$2; shift 2 ;;
    --max-requests) max_requests=$2; shift 2 ;;
    *) echo "usage: $0 [--seconds N] [--mode reloads|recycle] [--hup-every S] [--max-requests N]" >&2; exit 2 ;;
    esac
done
for t in nginx wrk; do
    command -v $t >/dev/null 2>&1 || [[ -x /usr/sbin/$t ]] || { echo "$0: $t not found" >&2; exit 2; }
done
nginx=$(command -v nginx || echo /usr/sbin/nginx)

work=$(mktemp -d /tmp/nw-soak-XXXXXX)
pids=()
masters=() # every narwhal master this run started (USR2 makes a second)
cleanup() {
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
    [[ -f $work/nginx.pid ]] && kill -QUIT "$(cat "$work/nginx.pid")" 2>/dev/null
    for f in "$work/narwhal.pid" "$work/narwhal.pid.2"; do
        [[ -f $f ]] && masters+=("$(cat "$f")")
    done
    for p in "${masters[@]}"; do kill -TERM "$p" 2>/dev/null; done
    for _ in $(seq 50); do
        alive=0
        for p in "${masters[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
        ((alive)) || break
        sleep 0.1
    done
    rm -rf "$work"
}
trap cleanup EXIT

port() { # a free port below the ephemeral range
    local p
    for _ in $(seq 50); do
        p=$((20000 + RANDOM % 10000))
        ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && { echo "$p"; return; }
    done
    echo 29999
}
np=$(port)
gp=$(port)

extra=()
[[ $mode == recycle ]] && extra=(--max-requests "$max_requests" --max-requests-jitter 100)
((EUID == 0)) && extra+=(--allow-root)
"$NARWHAL" -D -w 2 -b "127.0.0.1:$np" -p "$work/narwhal.pid" --error-logfile "$work/narwhal.log" \
    "${extra[@]}" "$APP" || { echo "$0: narwhal did not start" >&2; exit 1; }
masters+=("$(cat "$work/narwhal.pid")")

cat >"$work/nginx.conf" <<CONF
worker_processes 1;
pid $work/nginx.pid;
error_log $work/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    upstream narwhal {
        server 127.0.0.1:$np;
        keepalive 32;
        keepalive_requests 1000000;
    }
    server {
        listen 127.0.0.1:$gp;
        location /u/ {
            include /etc/nginx/uwsgi_params;
            uwsgi_pass 127.0.0.1:$np;
        }
        location / {
            include /etc/nginx/fastcgi_params;
            fastcgi_keep_conn on;
            fastcgi_pass narwhal;
        }
    }
}
CONF
"$nginx" -p "$work" -c "$work/nginx.conf" -e "$work/error.log" || exit 1
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$gp/" >/dev/null && break; sleep 0.1; done

# Half the load on the kept FastCGI connections, a quarter each through uwsgi.
cat >"$work/mix.lua" <<'LUA'
local n = 0
request = function()
    n = n + 1
    if n % 4 == 0 then return wrk.format("GET", "/u/x") end
    return wrk.format("GET", "/")
end
LUA
wrk -t2 -c64 -d"${seconds}s" --timeout 10s -s "$work/mix.lua" "http://127.0.0.1:$gp/" \
    >"$work/wrk.out" 2>&1 &
wrk_pid=$!
pids+=("$wrk_pid")

master() { cat "$work/narwhal.pid" 2>/dev/null; }
start=$SECONDS
signals=0
upgraded=0
while kill -0 "$wrk_pid" 2>/dev/null && ((SECONDS - start < seconds)); do
    sleep "$hup_every"
    m=$(master)
    [[ -n $m ]] || continue
    if [[ $mode == reloads ]]; then
        case $((signals % 4)) in
        0 | 2) kill -HUP "$m" ;;
        1) kill -TTIN "$m" ;;
        3) kill -TTOU "$m" ;;
        esac
        signals=$((signals + 1))
        if ((!upgraded && SECONDS - start >= seconds / 2)); then
            # USR2: a new master (its pidfile is narwhal.pid.2 until the old
            # one exits); TERM the old once the new one is up
            kill -USR2 "$m"
            for _ in $(seq 100); do
                [[ -s $work/narwhal.pid.2 ]] && break
                sleep 0.1
            done
            [[ -s $work/narwhal.pid.2 ]] && masters+=("$(cat "$work/narwhal.pid.2")")
            sleep 1
            kill -TERM "$m"
            upgraded=1
        fi
    fi
done
wait "$wrk_pid" 2>/dev/null

requests=$(awk '/requests in/ {print $1}' "$work/wrk.out")
non2xx=$(awk '/Non-2xx/ {print $NF}' "$work/wrk.out")
# "  Socket errors: connect 0, read 4538, write 2, timeout 7": the numbers
sockerr=$(awk '/Socket errors/ {n = 0; for (i = 1; i <= NF; i++) if ($i ~ /^[0-9]+,?$/) n += $i; print n}' "$work/wrk.out")
errors=$(grep -c '\[error\]' "$work/error.log" 2>/dev/null)
printf '| mode | seconds | signals | requests | non-2xx | socket errors | nginx [error] lines |\n'
printf '|---|--:|--:|--:|--:|--:|--:|\n'
printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$mode" "$seconds" \
    "$([[ $mode == reloads ]] && echo "$signals + USR2" || echo "-")" "${requests:-?}" \
    "${non2xx:-0}" "${sockerr:-0}" "${errors:-0}"
if [[ ${errors:-0} != 0 ]]; then
    echo
    echo "first nginx errors:"
    grep '\[error\]' "$work/error.log" | sed -E 's/^[0-9/: ]+\[error\] [0-9#]+: \*[0-9]+ //' |
        sed -E 's/, client:.*//' | sort | uniq -c | sort -rn | head -5
fi
# The goal: nothing reaches a client, nothing reaches nginx's error log.
if [[ ${non2xx:-0} != 0 || ${sockerr:-0} != 0 || ${errors:-0} != 0 || -z $requests ]]; then
    exit 1
fi
