#!/bin/bash
# bench/cgi-timeout.sh - what a stuck CGI program does to narwhal and to
# fcgiwrap, behind the same nginx: prints a Markdown table.
#
#   NARWHAL=/path/to/narwhal bench/cgi-timeout.sh
#
# The program (a shell) starts a sleep in the background and one in the
# foreground, 60 s each. Four requests go at once
# to a backend with 2 processes: narwhal -w 2 -t 2 (sync), and fcgiwrap
# -c 2 (which has no timeout: nginx's fastcgi_read_timeout 3s is the only
# one). Then, for each: the statuses the four got and when, how many of the
# program's processes are still running 2 s and 10 s later, and whether
# the backend answers a fifth request (a hello program) within 5 s.
# Runs as root or not, on 127.0.0.1 only; needs nginx, curl, cc and
# fcgiwrap (apt-get install fcgiwrap).
set -Eeuo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
NARWHAL=${NARWHAL:-$top/_build/narwhal}
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
[[ -x $NARWHAL ]] || { echo "cgi-timeout: no narwhal at $NARWHAL (set NARWHAL=)" >&2; exit 1; }
command -v fcgiwrap >/dev/null || { echo "cgi-timeout: no fcgiwrap (apt-get install fcgiwrap)" >&2; exit 1; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/narwhal-cgi-timeout.XXXXXX")
chmod 755 "$WORK"
mkdir -p "$WORK/cgi" "$WORK/tmp"
PIDS=()
NROWS=0
cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill -KILL -- "-$p" 2>/dev/null || kill -KILL "$p" 2>/dev/null || true; done
    pkill -KILL -f "$WORK/cgi/(stuck|napper)" 2>/dev/null || true # what fcgiwrap left
    [[ -n ${KEEP:-} ]] || rm -rf "$WORK"
}
trap cleanup EXIT

cc -O2 -o "$WORK/cgi/hello" "$here/cgi_hello.c"
cp "$(command -v sleep)" "$WORK/cgi/napper" # a name nothing else on the machine has
cat >"$WORK/cgi/stuck" <<EOF
#!/bin/sh
$WORK/cgi/napper 60 &
$WORK/cgi/napper 60
EOF
chmod 755 "$WORK/cgi/stuck"

free_port() {
    local p
    while :; do
        p=$((20000 + RANDOM % 20000))
        (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
    done
}

# processes running the stuck program: itself and its child
count_stuck() { pgrep -fc "$WORK/cgi/(stuck|napper)" || true; }

row() { # name cmd... (the backend's command; BPORT is where it listens)
    local name=$1
    shift
    local nport dir=$WORK/row$((++NROWS))
    nport=$(free_port)
    mkdir -p "$dir"
    setsid "$@" >"$dir/backend.log" 2>&1 </dev/null &
    local bpid=$!
    PIDS+=("$bpid")
    cat >"$dir/nginx.conf" <<EOF
daemon off;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $WORK/tmp;
    fastcgi_temp_path $WORK/tmp;
    server {
        listen 127.0.0.1:$nport;
        location / {
            include fastcgi_params;
            fastcgi_param SCRIPT_FILENAME $WORK/cgi\$fastcgi_script_name;
            fastcgi_read_timeout 3s;
            fastcgi_pass 127.0.0.1:$BPORT;
        }
    }
}
EOF
    cp /etc/nginx/fastcgi_params "$dir/" 2>/dev/null || true
    setsid "$NGINX" -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log" >/dev/null 2>&1 </dev/null &
    PIDS+=("$!")
    local i
    for ((i = 0; i < 50; i++)); do
        curl -sf -o /dev/null --max-time 1 "http://127.0.0.1:$nport/hello" && break
        sleep 0.2
    done
    if ((i == 50)); then
        echo "| $name | did not answer: $(tail -n 1 "$dir/error.log" "$dir/backend.log" | tr '\n|' '  ') | | | |"
        return 0
    fi
    local statuses="" tmp=$dir/statuses
    local curls=()
    for i in 1 2 3 4; do
        curl -s -o /dev/null -w '%{http_code} %{time_total}\n' --max-time 30 \
            "http://127.0.0.1:$nport/stuck" >"$tmp.$i" &
        curls+=("$!")
    done
    wait "${curls[@]}"
    for i in 1 2 3 4; do
        read -r code secs <"$tmp.$i"
        statuses+="${statuses:+, }$code (${secs%.*} s)"
    done
    sleep 2
    local after2 after10 fifth
    after2=$(count_stuck)
    fifth=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "http://127.0.0.1:$nport/hello" || true)
    sleep 8
    after10=$(count_stuck)
    echo "| $name | $statuses | $after2 | $after10 | ${fifth:-none} |"
    kill -KILL -- "-$bpid" 2>/dev/null || true
    pkill -KILL -f "$WORK/cgi/(stuck|napper)" 2>/dev/null || true
    sleep 0.5
}

echo "## A stuck CGI program: narwhal and fcgiwrap"
echo
echo "- $(nproc) CPUs; $("$NARWHAL" -v 2>&1 | head -n 1); fcgiwrap $(dpkg-query -W -f='${Version}' fcgiwrap 2>/dev/null || echo '?'); $("$NGINX" -v 2>&1 | sed 's/.*version: //')"
echo "- the program is a shell that runs two sleeps of 60 s, one in the background; 4 requests at once to 2 backend processes; nginx fastcgi_read_timeout 3s"
echo
echo "| backend | the 4 requests: status (time) | program processes 2 s later | 10 s later | a 5th request (hello) |"
echo "|---|---|--:|--:|---|"
BPORT=$(free_port)
row "narwhal -w 2 -t 2 --cgi-root" "$NARWHAL" -w 2 -t 2 -b "127.0.0.1:$BPORT" --cgi-root "$WORK/cgi"
BPORT=$(free_port)
row "fcgiwrap -c 2" fcgiwrap -c 2 -s "tcp:127.0.0.1:$BPORT"
