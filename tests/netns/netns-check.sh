#!/bin/bash
# netns-check.sh - narwhal as several remote upstreams of one nginx, on a
# test bed of Linux network namespaces (README "Scaling out"): balancing,
# a host killed mid-load, TERM, rolling HUP and rolling USR2 under load with
# GETs and POSTs, and 1 % packet loss under both close modes, through real
# nginx under wrk. Prints req/s and the failed-request count of each
# scenario; exits 1 on any failure, 77 (skip) without root, `ip netns`,
# nginx, wrk or curl.
#
#     tests/netns/netns-check.sh BUILDDIR [SRCDIR]       (make check-netns)
#
# The bed: a "switch" namespace holding a bridge, one namespace for nginx
# (10.77.0.1) and one per narwhal host (10.77.0.11-13), each joined to the
# bridge by a veth pair made inside the switch namespace. Every link and
# address exists only inside namespaces this script made (named nw<pid>...,
# so parallel runs never collide); the host's own interfaces are never
# touched. On exit, whatever happened, every process in those namespaces is
# killed (by pid, from `ip netns pids`) and the namespaces deleted, which
# removes their links. Loss: an nftables rule in each namespace drops 1 % of
# the packets coming in on its link (skipped without nft); latency: netem
# 10 ms each way on every link where the kernel has netem (skipped where not).
#
# Every load runs for a fixed time (wrk -d), every wait is bounded.
set -u
B=$(cd "${1:?usage: netns-check.sh BUILDDIR [SRCDIR]}" && pwd)
S=$(cd "${2:-$(dirname "$0")/../..}" && pwd)
NARWHAL=$B/narwhal
EX=$B/examples
NGINX=${NGINX:-/usr/sbin/nginx}
# seconds of load per scenario (the whole run takes about 9 times this plus
# some 20 s of starting and stopping)
DUR=${NETNS_DURATION:-4}

skip() { echo "netns-check: SKIP: $*"; exit 77; }
[ "$(id -u)" = 0 ] || skip "needs root (network namespaces); run it as root: sudo make check-netns"
ip netns list >/dev/null 2>&1 || skip "no 'ip netns' (iproute2 with namespace support)"
for c in wrk curl sha256sum; do
    command -v $c >/dev/null || skip "no $c (Debian: apt-get install wrk curl)"
done
[ -x "$NGINX" ] || skip "no nginx at $NGINX"
[ -x "$NARWHAL" ] && [ -f "$EX/echo.so" ] || skip "build $B first (narwhal, examples/echo.so)"

P=nw$$
SW=${P}sw
NG=${P}ng
HOSTS="1 2 3"
T=$(mktemp -d /tmp/nw-netns-XXXXXX)
made=""
fail=0

cleanup() {
    for ns in $made; do
        for p in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$p" 2>/dev/null; done
    done
    sleep 0.3
    for ns in $made; do ip netns del "$ns" 2>/dev/null; done
    rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

say() { echo "netns-check: $*"; }
bad() { say "FAIL: $*"; fail=1; }
in_ns() { local ns=$1; shift; ip netns exec "$ns" "$@"; }
hns() { echo "${P}h$1"; }
haddr() { echo "10.77.0.1$1"; }

# ---- the bed ------------------------------------------------------------------
mkns() {
    ip netns add "$1" || { say "cannot create namespace $1"; exit 1; }
    made="$made $1"
    in_ns "$1" ip link set lo up
}
mkns "$SW"
in_ns "$SW" ip link add br0 type bridge
in_ns "$SW" ip link set br0 up
# join NS ADDR: a veth pair, one end on the switch's bridge, the other as
# eth0 in NS with ADDR/24
join() {
    local ns=$1 addr=$2 port=v${1#"$P"}
    mkns "$ns"
    in_ns "$SW" ip link add "$port" type veth peer name eth0 netns "$ns" || exit 1
    in_ns "$SW" ip link set "$port" master br0 up
    in_ns "$ns" ip addr add "$addr/24" dev eth0
    in_ns "$ns" ip link set eth0 up
}
join "$NG" 10.77.0.1
for h in $HOSTS; do join "$(hns $h)" "$(haddr $h)"; done

have_nft=0
command -v nft >/dev/null && in_ns "$NG" nft list tables >/dev/null 2>&1 && have_nft=1
have_netem=0
in_ns "$NG" tc qdisc add dev eth0 root netem delay 0ms 2>/dev/null &&
    in_ns "$NG" tc qdisc del dev eth0 root 2>/dev/null && have_netem=1

# ---- narwhal hosts --------------------------------------------------------------
# start_host H [narwhal options...]: narwhal in host H's namespace on its
# address, 2 workers; waits until it answers (at most 10 s)
start_host() {
    local h=$1 ns d
    shift
    ns=$(hns "$h")
    d=$T/h$h
    mkdir -p "$d"
    rm -f "$d/pid" "$d/pid.2"
    in_ns "$ns" "$NARWHAL" -b "$(haddr $h):5000" -w 2 --pid "$d/pid" --graceful-timeout 10 \
        "$@" "$EX/${APP:-echo.so}" >>"$d/log" 2>&1 &
    for _ in $(seq 100); do
        in_ns "$NG" bash -c "exec 3<>/dev/tcp/$(haddr $h)/5000" 2>/dev/null && [ -s "$d/pid" ] &&
            return 0
        sleep 0.1
    done
    bad "host $h did not start (log: $(tail -n 3 "$d/log"))"
    return 1
}
hpid() { cat "$T/h$1/pid" 2>/dev/null; }
# wait_gone PID [tenths]: until PID is gone (default 15 s)
wait_gone() {
    for _ in $(seq "${2:-150}"); do
        kill -0 "$1" 2>/dev/null || return 0
        sleep 0.1
    done
    return 1
}
stop_host() {
    local p
    p=$(hpid "$1")
    [ -n "$p" ] && kill -TERM "$p" 2>/dev/null && { wait_gone "$p" || bad "host $1 did not stop"; }
    for p in $(ip netns pids "$(hns "$1")"); do kill -KILL "$p" 2>/dev/null; done
}
resets() { in_ns "$1" awk '/^Tcp:/ { if (n++) print $15 }' /proc/net/snmp; }

# ---- nginx ---------------------------------------------------------------------------
# upstreams of the hosts in $UP; 8080 FastCGI (a connection per request),
# 8081 FastCGI with keep-alive, 8082 uwsgi. Retries: see README "Scaling out".
start_nginx() {
    local servers="" h
    for h in $UP; do servers="$servers        server $(haddr $h):5000 max_fails=1 fail_timeout=2s;
"; done
    mkdir -p "$T/ng"
    # the snippets include fastcgi_params: nginx looks for it next to the conf
    for f in fastcgi_params uwsgi_params; do ln -sf "/etc/nginx/$f" "$T/ng/$f"; done
    cat >"$T/ng/nginx.conf" <<EOF
user root;
daemon off;
worker_processes 1;
pid $T/ng/nginx.pid;
error_log $T/ng/error.log warn;
events { worker_connections 4096; }
http {
    log_format up '\$server_port \$request_method \$status \$upstream_addr \$upstream_status';
    access_log $T/ng/access.log up;
    client_body_temp_path $T/ng/cb; fastcgi_temp_path $T/ng/ft; uwsgi_temp_path $T/ng/ut;
    proxy_temp_path $T/ng/pt; scgi_temp_path $T/ng/st;
    client_max_body_size 16m;
    upstream nw {
$servers    }
    upstream nwka {
$servers        keepalive 16;
        keepalive_timeout 60s;
    }
    server {
        listen 127.0.0.1:8080;
        location / {
            include $S/nginx/narwhal-upstream-retry.conf;
            fastcgi_pass nw;
        }
    }
    server {
        listen 127.0.0.1:8081;
        location / {
            include $S/nginx/narwhal-upstream-retry.conf;
            fastcgi_keep_conn on;
            fastcgi_pass nwka;
        }
    }
    server {
        listen 127.0.0.1:8082;
        location / {
            include uwsgi_params;
            uwsgi_next_upstream error timeout non_idempotent;
            uwsgi_next_upstream_tries 3;
            uwsgi_connect_timeout 2s;
            uwsgi_pass nw;
        }
    }
    # the control: a narwhal in nginx's own namespace, on loopback
    server {
        listen 127.0.0.1:8083;
        location / {
            include fastcgi_params;
            fastcgi_pass 127.0.0.1:5000;
        }
    }
}
EOF
    in_ns "$NG" "$NGINX" -p "$T/ng" -c "$T/ng/nginx.conf" >"$T/ng/out" 2>&1 &
    for _ in $(seq 50); do
        in_ns "$NG" curl -s -o /dev/null http://127.0.0.1:8080/ && return 0
        sleep 0.1
    done
    say "nginx did not start: $(cat "$T/ng/error.log" "$T/ng/out" 2>/dev/null | tail -3)"
    exit 1
}
stop_nginx() {
    local p
    p=$(cat "$T/ng/nginx.pid" 2>/dev/null)
    [ -n "$p" ] && kill -QUIT "$p" 2>/dev/null && wait_gone "$p" 50
    rm -f "$T/ng/access.log"
}

# ---- load -------------------------------------------------------------------------------
cat >"$T/post.lua" <<'EOF'
-- POSTs of 2000 bytes to echo.so; a response that is not the same 2000
-- bytes is counted in the file named by NETNS_BAD
wrk.method = "POST"
wrk.headers["Content-Type"] = "text/plain"
wrk.body = string.rep("0123456789", 200)
local badfile = os.getenv("NETNS_BAD")
function response(status, headers, body)
    if status == 200 and body ~= wrk.body then
        local f = io.open(badfile, "a")
        f:write("bad body\n")
        f:close()
    end
end
EOF
# wrk_run NAME PORT[/PATH] [script]: a bounded wrk in nginx's namespace, in the
# background; its output in $T/wrk.NAME
wrk_run() {
    local s=()
    [ -n "${3:-}" ] && s=(-s "$3")
    NETNS_BAD=$T/badbody in_ns "$NG" wrk -t 1 -c "${WRK_C:-4}" -d "${DUR}s" --timeout 10s "${s[@]}" \
        "http://127.0.0.1:$2" >"$T/wrk.$1" 2>&1 &
    wrk_pids="$wrk_pids $!"
}
wrk_pids=""
wait_wrk() {
    local j
    for j in $wrk_pids; do wait "$j"; done
    wrk_pids=""
}
# wrk_failed NAME: non-2xx responses plus socket errors wrk saw
wrk_failed() {
    awk '/Non-2xx/ { n += $NF }
         /Socket errors/ { gsub(",", ""); n += $4 + $6 + $8 + $10 }
         END { print n + 0 }' "$T/wrk.$1"
}
wrk_rps() { awk '/^Requests\/sec/ { printf "%d", $2 }' "$T/wrk.$1"; }
wrk_total() { awk '/requests in/ { print $1 }' "$T/wrk.$1"; }
# the three loads together: GET on the plain FastCGI upstream, POST on the
# keep-alive one (a kept connection closed under a request is the harder
# case for a POST), GET over uwsgi
mixed_load() {
    rm -f "$T/badbody"
    wrk_run get 8080/
    wrk_run post 8081/ "$T/post.lua"
    wrk_run uwsgi 8082/
}
# mixed_wait: waits for the loads; sets n (requests) and f (failed)
mixed_wait() {
    wait_wrk
    local k
    n=0 f=0
    for k in get post uwsgi; do
        f=$((f + $(wrk_failed $k)))
        n=$((n + $(wrk_total $k)))
    done
    [ -f "$T/badbody" ] && f=$((f + $(wc -l <"$T/badbody")))
}
results=""
tput=""
record() { results="$results$(printf '%-50s %8s %8s %6s\n' "$1" "$2" "$3" "$4")
"; }
# check_scenario NAME: after mixed_wait
check_scenario() {
    record "$1" "$n" "$f" "$( ((f == 0 && n > 0)) && echo ok || echo FAIL)"
    ((f == 0 && n > 0)) || bad "$1: $f of $n requests failed (nginx: $(grep -v ' 200 ' "$T/ng/access.log" 2>/dev/null | sort | uniq -c | head -5 | tr '\n' ';'); error log: $(tail -2 "$T/ng/error.log"))"
}
# hits PORT: requests per upstream address in nginx's access log, 200s only
hits() { awk -v p="$1" '$1 == p && $3 == 200 { c[$4]++ } END { for (a in c) print a, c[a] }' "$T/ng/access.log"; }

# ---- 1. throughput with 1, 2, 3 hosts; balancing ------------------------------------
say "bed: namespaces ${P}{sw,ng,h1,h2,h3} on 10.77.0.0/24; nft: $have_nft, netem: $have_netem"
# app bound: hello-sized GETs as fast as the CPUs go (on one machine, more
# hosts share the same cores); worker bound: 2 workers per host, 20 ms each
# (what more hosts add: capacity)
for app in echo.so sleep.so; do
    for h in $HOSTS; do APP=$app start_host "$h" || exit 1; done
    for n in 1 2 3; do
        UP=$(seq -s ' ' 1 $n)
        start_nginx
        if [ $app = echo.so ]; then
            WRK_C=8 wrk_run tp 8080/
        else
            WRK_C=24 wrk_run tp "8080/?ms=20"
        fi
        wait_wrk
        rps[$n]=$(wrk_rps tp)
        f=$(wrk_failed tp)
        [ "$f" = 0 ] || bad "$app, $n hosts: $f failed requests"
        if [ $n = 3 ] && [ $app = echo.so ]; then
            total=$(wrk_total tp)
            share=""
            while read -r addr c; do
                share="$share $addr=$c"
                # within 10 % of a third
                awk -v c="$c" -v t="$total" 'BEGIN { exit !(c * 3 >= t * 0.9 && c * 3 <= t * 1.1) }' ||
                    bad "balancing: $addr got $c of $total requests (not a third within 10 %)"
            done < <(hits 8080)
            [ "$(hits 8080 | wc -l)" = 3 ] || bad "balancing: not all three hosts served:$share"
            say "balancing, 3 hosts, $total requests:$share"
        fi
        stop_nginx
    done
    tput="${tput}req/s, $app: 1 host ${rps[1]}, 2 hosts ${rps[2]}, 3 hosts ${rps[3]}
"
    for h in $HOSTS; do stop_host "$h"; done
done

# ---- 2. the scenarios under GET + POST + uwsgi load ---------------------------------------
for h in $HOSTS; do start_host "$h" || exit 1; done
UP="1 2 3"
start_nginx
half=$(awk -v d="$DUR" 'BEGIN { print d / 2 }')

# A host's whole process tree killed mid-load, then started again. A GET
# that was on it is retried elsewhere; a POST in flight there may have run
# part of its handler, so nginx does not retry it (non_idempotent is not
# set): those are counted apart.
mixed_load
sleep "$half"
for p in $(ip netns pids "$(hns 2)"); do kill -KILL "$p"; done
sleep 0.5
start_host 2
mixed_wait
gf=$(( $(wrk_failed get) + $(wrk_failed uwsgi) ))
record "SIGKILL host 2: GETs (fastcgi, uwsgi)" "$(( $(wrk_total get) + $(wrk_total uwsgi) ))" "$gf" \
    "$( ((gf == 0)) && echo ok || echo FAIL)"
((gf == 0)) || bad "SIGKILL: $gf GETs failed (error log: $(tail -2 "$T/ng/error.log"))"
record "SIGKILL host 2: POSTs (not retried, see README)" "$(wrk_total post)" "$(wrk_failed post)" "-"
grep -q "upstream server temporarily disabled" "$T/ng/error.log" ||
    bad "SIGKILL: nginx never marked host 2 down"
# back: once fail_timeout (2 s) has passed, host 2 serves again
sleep 2
lines=$(wc -l <"$T/ng/access.log")
WRK_C=6 DUR=2 wrk_run back 8080/
wait_wrk
back=$(awk -v from="$lines" 'NR > from && $3 == 200 && $4 == "10.77.0.12:5000"' "$T/ng/access.log" | wc -l)
[ "$back" -gt 0 ] || bad "SIGKILL: host 2 not back in the upstream after its restart"
say "SIGKILL: host 2 marked down, and back after its restart ($back requests in 2 s)"

# graceful stop mid-load, then started again
mixed_load
sleep "$half"
p=$(hpid 2)
kill -TERM "$p"
wait_gone "$p" || bad "TERM: host 2 did not stop"
start_host 2
mixed_wait
check_scenario "TERM host 2 and restart: GET+POST+uwsgi"
# refused at once, never a connection left to time out
! grep -q "timed out" "$T/ng/error.log" ||
    bad "TERM: nginx timed out on a host: $(grep "timed out" "$T/ng/error.log" | head -2)"

# rolling HUP: one host after the other
mixed_load
for h in $HOSTS; do
    sleep "$(awk -v d="$DUR" 'BEGIN { print d / 4 }')"
    kill -HUP "$(hpid $h)"
done
mixed_wait
check_scenario "rolling HUP: GET+POST+uwsgi"

# rolling USR2: new master, WINCH the old one's workers, TERM the old master
DUR=$((DUR + 6)) mixed_load
for h in $HOSTS; do
    sleep 0.5
    old=$(hpid $h)
    kill -USR2 "$old"
    for _ in $(seq 100); do [ -s "$T/h$h/pid.2" ] && break; sleep 0.1; done
    [ -s "$T/h$h/pid.2" ] || { bad "USR2: host $h: no new master"; continue; }
    sleep 0.5
    kill -WINCH "$old"
    sleep 0.5
    kill -TERM "$old"
    wait_gone "$old" || bad "USR2: host $h: old master $old did not exit"
    for _ in $(seq 50); do [ "$(hpid $h)" != "$old" ] && break; sleep 0.1; done
done
mixed_wait
check_scenario "rolling USR2 upgrade: GET+POST+uwsgi"
stop_nginx
for h in $HOSTS; do stop_host "$h"; done

# ---- 3. close_mode = reset: never to a peer in another namespace -------------------------
# the control first: the counter sees resets when nginx and narwhal share a
# namespace (loopback), so its staying at 0 below means something
start_nginx
in_ns "$NG" "$NARWHAL" -b 127.0.0.1:5000 -w 1 --close-mode reset --pid "$T/ctl.pid" "$EX/echo.so" \
    >"$T/ctl.log" 2>&1 &
for _ in $(seq 50); do in_ns "$NG" curl -sf -o /dev/null http://127.0.0.1:8083/ && break; sleep 0.1; done
r0=$(resets "$NG")
for _ in $(seq 20); do in_ns "$NG" curl -sf -o /dev/null http://127.0.0.1:8083/; done
ctl=$(($(resets "$NG") - r0))
[ "$ctl" -gt 0 ] || bad "control: no reset counted on loopback under close_mode = reset"
p=$(cat "$T/ctl.pid" 2>/dev/null)
[ -n "$p" ] && kill -TERM "$p" && wait_gone "$p"
stop_nginx

# ---- 4. 1 % loss on every link (and latency where netem is), both close modes -------------
head -c 1048576 /dev/urandom >"$T/big"
big_sum=$(sha256sum <"$T/big")
if [ $have_nft = 1 ]; then
    for ns in "$NG" $(for h in $HOSTS; do hns $h; done); do
        in_ns "$ns" nft -f - <<NFT
table inet nwloss {
    chain in {
        type filter hook input priority 0;
        iifname "eth0" numgen random mod 100 0 counter drop
    }
}
NFT
        [ $have_netem = 1 ] && in_ns "$ns" tc qdisc add dev eth0 root netem delay 10ms
    done
    for mode in reset fin; do
        for h in $HOSTS; do start_host "$h" --close-mode $mode || exit 1; done
        start_nginx
        r0=0
        for h in $HOSTS; do r0=$((r0 + $(resets "$(hns $h)"))); done
        mixed_load
        # large bodies through each kind of upstream, byte for byte
        sent=0 wrong=0
        end=$((SECONDS + DUR))
        while [ $SECONDS -lt $end ]; do
            for port in 8080 8081 8082; do
                got=$(in_ns "$NG" curl -s --max-time 20 --data-binary @"$T/big" \
                    -H 'Content-Type: application/octet-stream' "http://127.0.0.1:$port/" | sha256sum)
                sent=$((sent + 1))
                [ "$got" = "$big_sum" ] || wrong=$((wrong + 1))
            done
        done
        mixed_wait
        r1=0
        for h in $HOSTS; do r1=$((r1 + $(resets "$(hns $h)"))); done
        check_scenario "1 % loss, close_mode=$mode: GET+POST+uwsgi"
        record "1 % loss, close_mode=$mode: 1 MiB bodies" "$sent" "$wrong" \
            "$( ((wrong == 0 && sent > 0)) && echo ok || echo FAIL)"
        ((wrong == 0 && sent > 0)) || bad "loss, $mode: $wrong of $sent 1 MiB bodies not byte-exact"
        record "1 % loss, close_mode=$mode: resets sent by hosts" "-" "$((r1 - r0))" \
            "$( ((r1 == r0)) && echo ok || echo FAIL)"
        ((r1 == r0)) || bad "loss, $mode: the hosts sent $((r1 - r0)) resets"
        stop_nginx
        for h in $HOSTS; do stop_host "$h"; done
    done
    dropped=0
    for ns in "$NG" $(for h in $HOSTS; do hns $h; done); do
        d=$(in_ns "$ns" nft list table inet nwloss | awk '/counter/ { for (i = 1; i < NF; i++) if ($i == "packets") print $(i + 1) }')
        dropped=$((dropped + d))
    done
    say "loss: nftables dropped $dropped packets; netem latency: $([ $have_netem = 1 ] && echo '10 ms each way' || echo 'no netem in this kernel: skipped')"
    [ "$dropped" -gt 0 ] || bad "loss: the nftables rule dropped nothing"
else
    say "SKIP: 1 % loss (no nft; Debian: apt-get install nftables)"
fi

echo
printf '%-50s %8s %8s %6s\n' "scenario" "requests" "failed" "result"
printf '%s' "$results"
printf '%s' "$tput"
echo "control: $ctl resets counted on loopback for 20 requests"
[ $fail = 0 ] && say "all passed" || say "FAILED"
exit $fail
