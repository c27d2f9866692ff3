# bench/lib.sh - what bench/compare.sh and bench/python.sh share: the
# processes a run started (STARTED, each script's own array) and how they
# are stopped, CPU ticks, wrk's durations, the params nginx passes the
# backends (fastcgi_params and uwsgi_params without an include). Sourced,
# not run.
# shellcheck shell=bash

alive() { # PID: running and not a zombie
    local st
    { read -r st <"/proc/$1/stat"; } 2>/dev/null || return 1
    st=${st##*) }
    [[ ${st:0:1} != Z ]]
}

tree() { # PID... -> the PIDs and all their live descendants, one per line
    local -A kids=()
    local f line rest pid ppid
    for f in /proc/[0-9]*/stat; do
        { read -r line <"$f"; } 2>/dev/null || continue
        pid=${f#/proc/}; pid=${pid%/stat}
        rest=${line##*) }
        read -r _ ppid _ <<<"$rest"
        kids[$ppid]+=" $pid"
    done
    local queue=("$@") out=() p
    while ((${#queue[@]})); do
        p=${queue[0]}; queue=("${queue[@]:1}")
        alive "$p" || continue
        out+=("$p")
        # shellcheck disable=SC2206
        [[ -n ${kids[$p]:-} ]] && queue+=(${kids[$p]})
    done
    ((${#out[@]})) && printf '%s\n' "${out[@]}"
    return 0
}

stop_pids() { # PID... : TERM them (and what they forked), KILL after 5 s
    local all p i
    mapfile -t all < <(tree "$@")
    for p in "$@"; do alive "$p" && { kill -TERM "$p" 2>/dev/null || true; }; done
    for ((i = 0; i < 50; i++)); do
        local left=0
        for p in "${all[@]}"; do alive "$p" && left=1; done
        ((left)) || break
        sleep 0.1
    done
    for p in "${all[@]}"; do alive "$p" && { kill -KILL "$p" 2>/dev/null || true; }; done
    for p in "$@"; do { wait "$p"; } 2>/dev/null || true; done
    return 0
}

forget() { # PID... : drop from STARTED after stopping them
    local keep=() p q drop
    for p in "${STARTED[@]}"; do
        drop=0
        for q in "$@"; do [[ $p == "$q" ]] && drop=1; done
        ((drop)) || keep+=("$p")
    done
    STARTED=("${keep[@]}")
}

bg_wait() { # CMD... : runs CMD in the background and waits for it, so that
    # a TERM/INT to this script runs the trap at once instead of after CMD
    local pid rc=0
    "$@" &
    pid=$!
    STARTED+=("$pid")
    wait "$pid" || rc=$?
    forget "$pid"
    return "$rc"
}

cpu_ticks() { # PID... -> utime+stime+cutime+cstime summed
    local p line rest total=0 f
    for p in "$@"; do
        { read -r line <"/proc/$p/stat"; } 2>/dev/null || continue
        rest=${line##*) }
        read -r -a f <<<"$rest"
        total=$((total + f[11] + f[12] + f[13] + f[14]))
    done
    echo "$total"
}

ms() { # wrk duration (12.3us, 4.56ms, 1.2s, 1.5m) -> milliseconds
    awk -v t="$1" 'BEGIN {
        if (t == "") { print "-"; exit }
        v = t + 0; u = t; sub(/^[0-9.]+/, "", u)
        if (u == "us") v /= 1000; else if (u == "s") v *= 1000;
        else if (u == "m") v *= 60000; else if (u == "h") v *= 3600000;
        printf (v < 10 ? "%.2f" : (v < 100 ? "%.1f" : "%.0f")), v }'
}

# The params every FastCGI and uwsgi location of a bench passes.
FASTCGI_PARAMS='
        fastcgi_param QUERY_STRING      $query_string;
        fastcgi_param REQUEST_METHOD    $request_method;
        fastcgi_param CONTENT_TYPE      $content_type;
        fastcgi_param CONTENT_LENGTH    $content_length;
        fastcgi_param SCRIPT_NAME       $fastcgi_script_name;
        fastcgi_param REQUEST_URI       $request_uri;
        fastcgi_param DOCUMENT_URI      $document_uri;
        fastcgi_param DOCUMENT_ROOT     $document_root;
        fastcgi_param SERVER_PROTOCOL   $server_protocol;
        fastcgi_param REQUEST_SCHEME    $scheme;
        fastcgi_param GATEWAY_INTERFACE CGI/1.1;
        fastcgi_param SERVER_SOFTWARE   nginx/$nginx_version;
        fastcgi_param REMOTE_ADDR       $remote_addr;
        fastcgi_param REMOTE_PORT       $remote_port;
        fastcgi_param SERVER_ADDR       $server_addr;
        fastcgi_param SERVER_PORT       $server_port;
        fastcgi_param SERVER_NAME       $server_name;
        fastcgi_param HTTP_PROXY        "";'
UWSGI_PARAMS='
        uwsgi_param QUERY_STRING    $query_string;
        uwsgi_param REQUEST_METHOD  $request_method;
        uwsgi_param CONTENT_TYPE    $content_type;
        uwsgi_param CONTENT_LENGTH  $content_length;
        uwsgi_param REQUEST_URI     $request_uri;
        uwsgi_param PATH_INFO       $document_uri;
        uwsgi_param DOCUMENT_ROOT   $document_root;
        uwsgi_param SERVER_PROTOCOL $server_protocol;
        uwsgi_param REQUEST_SCHEME  $scheme;
        uwsgi_param REMOTE_ADDR     $remote_addr;
        uwsgi_param REMOTE_PORT     $remote_port;
        uwsgi_param SERVER_PORT     $server_port;
        uwsgi_param SERVER_NAME     $server_name;
        uwsgi_param HTTP_PROXY      "";'
