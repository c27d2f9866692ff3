#!/usr/bin/env bash
# tests/deb-check.sh - builds the Debian packages and checks them: what
# each holds (dpkg-deb -c), lintian (no errors), maintainer scripts that
# start or enable nothing, and the installed files at work: narwhal from a
# scratch root (dpkg -x) says its version and serves examples/hello, built
# against the installed header and pkg-config file, through nginx with the
# installed snippet. Not part of make check (a package build takes a few
# minutes): `make deb-check`, or run it from the source tree.
#
#   tests/deb-check.sh [OUTDIR]      # the .debs are left in OUTDIR (default: a temp dir)
#
# Needs (Debian): dpkg-dev debhelper fakeroot lintian nginx curl and the
# build dependencies in debian/control. Exit 0 when all pass.
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-}
work=$(mktemp -d "${TMPDIR:-/tmp}/narwhal-deb.XXXXXX")
ngpid=
nwpid=
cleanup() {
    [[ -n $nwpid ]] && kill -TERM "$nwpid" 2>/dev/null
    [[ -n $ngpid ]] && kill -TERM "$ngpid" 2>/dev/null
    sleep 0.3
    rm -rf "$work"
}
trap cleanup EXIT
n=0
fail=0
ok() { n=$((n + 1)); echo "ok $n - $*"; }
notok() { n=$((n + 1)); fail=1; echo "not ok $n - $*"; }
check() { # description command...
    local d=$1
    shift
    if "$@"; then ok "$d"; else notok "$d"; fi
}

# ---- build, from a copy of the tree (the files git knows, as they are now) ----
ver=$(sed -n '1s/^narwhal (\([^)]*\)).*/\1/p' "$src/debian/changelog")
tree=$work/narwhal-$ver
mkdir -p "$tree"
if git -C "$src" rev-parse --git-dir >/dev/null 2>&1; then
    (cd "$src" && git ls-files -z --cached --others --exclude-standard |
        while IFS= read -r -d '' f; do [[ -e $f ]] && printf '%s\0' "$f"; done |
        tar --null -T - -cf - | tar -xf - -C "$tree")
else
    cp -a "$src/." "$tree"
fi
t0=$(date +%s)
if (cd "$tree" && dpkg-buildpackage -us -uc -b -j"$(nproc)") >"$work/build.log" 2>&1; then
    ok "dpkg-buildpackage -us -uc -b ($(($(date +%s) - t0)) s)"
else
    notok "dpkg-buildpackage -us -uc -b"
    tail -40 "$work/build.log" | sed 's/^/# /'
    echo "1..$n"
    exit 1
fi
arch=$(dpkg --print-architecture)
deb=$work/narwhal_${ver}_$arch.deb
dev=$work/narwhal-dev_${ver}_$arch.deb
py=$work/narwhal-python_${ver}_$arch.deb
[[ -n $out ]] && mkdir -p "$out" && cp "$deb" "$dev" "$py" "$out/"

# ---- contents ----
has() { # deb path...
    local list
    list=$(dpkg-deb -c "$1" | awk '{print $6}')
    shift
    for p in "$@"; do
        grep -qx "\./${p#/}" <<<"$list" || { echo "# missing: $p"; return 1; }
    done
}
multi=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
check "narwhal holds the binary, man pages, snippets, units, init script, logrotate, config" \
    has "$deb" /usr/bin/narwhal /usr/share/man/man1/narwhal.1.gz /usr/share/man/man5/narwhal.conf.5.gz \
    /usr/share/narwhal/narwhal-fastcgi.conf /usr/share/narwhal/narwhal-fastcgi-unix.conf \
    /usr/share/narwhal/narwhal-uwsgi.conf /lib/systemd/system/narwhal.service \
    /lib/systemd/system/narwhal.socket /etc/init.d/narwhal /etc/logrotate.d/narwhal \
    /etc/narwhal/narwhal.conf
check "narwhal-dev holds the header, the pkg-config file, narwhal-app(3) and examples" \
    has "$dev" /usr/include/narwhal.h "/usr/lib/$multi/pkgconfig/narwhal.pc" \
    /usr/share/man/man3/narwhal-app.3.gz /usr/share/doc/narwhal-dev/examples/hello.c
check "narwhal-python holds the Python host, where narwhal looks for it" \
    has "$py" "/usr/lib/$multi/narwhal/python.so"
check "narwhal looks for it there" bash -c \
    "dpkg-deb --fsys-tarfile '$deb' | tar -xOf - ./usr/bin/narwhal | grep -a -q '/usr/lib/$multi/narwhal'"
check "the Python host is narwhal-python's alone" bash -c "! dpkg-deb -c '$deb' | grep -q python.so"
check "nothing under /usr/local" bash -c \
    "! (dpkg-deb -c '$deb'; dpkg-deb -c '$dev'; dpkg-deb -c '$py') | grep -q '\./usr/local'"
check "the units run /usr/bin/narwhal" bash -c \
    "dpkg-deb --fsys-tarfile '$deb' | tar -xOf - ./lib/systemd/system/narwhal.service | grep -q '^ExecStart=/usr/bin/narwhal '"
dpkg-deb -e "$deb" "$work/ctrl"
check "maintainer scripts start and enable nothing" bash -c \
    "! cat '$work'/ctrl/post* '$work'/ctrl/pre* 2>/dev/null | grep -E 'invoke-rc.d .*start|deb-systemd-invoke .*start|systemctl .*(start|enable)|update-rc.d [^ ]+ (defaults|enable)([^-]|\$)'"

# ---- lintian ----
if command -v lintian >/dev/null 2>&1; then
    # The maintainer's address is a placeholder until the project has one.
    lintian --tag-display-limit 0 --suppress-tags bogus-mail-host,bogus-mail-host-in-debian-changelog \
        "$work"/narwhal*_"$ver"_"$arch".changes >"$work/lintian.txt" 2>&1 || true
    sed 's/^/# /' "$work/lintian.txt"
    check "lintian: no errors" bash -c "! grep -q '^E:' '$work/lintian.txt'"
else
    echo "# lintian is not installed: not run"
fi

# ---- the installed files at work, from a scratch root ----
root=$work/root
dpkg -x "$deb" "$root"
dpkg -x "$dev" "$root"
dpkg -x "$py" "$root"
check "narwhal --version from the scratch root" bash -c \
    "'$root/usr/bin/narwhal' --version | grep -qx 'narwhal $ver'"
pc="$root/usr/lib/$multi/pkgconfig/narwhal.pc"
cflags=$(PKG_CONFIG_SYSROOT_DIR=$root PKG_CONFIG_LIBDIR=$(dirname "$pc") pkg-config --cflags narwhal)
check "hello builds against the installed header and narwhal.pc" \
    cc -shared -fPIC $cflags -o "$work/hello.so" "$root/usr/share/doc/narwhal-dev/examples/hello.c"
nginx=$(command -v nginx || echo /usr/sbin/nginx)
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
np=$(port)
hp=$(port)
if [[ -x $nginx ]]; then
    mkdir -p "$work/ng"
    sed "s|127.0.0.1:5000|127.0.0.1:$np|" "$root/usr/share/narwhal/narwhal-fastcgi.conf" >"$work/ng/narwhal.conf"
    cp /etc/nginx/fastcgi_params "$work/ng/"
    cat >"$work/ng/nginx.conf" <<CONF
$( ((EUID == 0)) && echo "user root;" )
daemon off;
worker_processes 1;
pid $work/ng/nginx.pid;
error_log $work/ng/error.log;
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path $work/ng/tmp;
    fastcgi_temp_path $work/ng/tmp;
    server {
        listen 127.0.0.1:$hp;
        location / { include $work/ng/narwhal.conf; }
    }
}
CONF
    # the installed snippet names the installed fastcgi_params path: use ours
    sed -i "s|include *[^;]*fastcgi_params;|include $work/ng/fastcgi_params;|" "$work/ng/narwhal.conf"
    who=(--allow-root)
    ((EUID == 0)) && runuser -u nobody -- test -r "$work/hello.so" 2>/dev/null &&
        chmod 755 "$work" && who=(--user nobody --group nogroup)
    ((EUID != 0)) && who=()
    "$root/usr/bin/narwhal" -w 1 -b "127.0.0.1:$np" "${who[@]}" "$work/hello.so" >"$work/nw.log" 2>&1 &
    nwpid=$!
    "$nginx" -p "$work/ng" -c "$work/ng/nginx.conf" >"$work/ng/out" 2>&1 &
    ngpid=$!
    body=
    for _ in $(seq 100); do
        body=$(curl -s "http://127.0.0.1:$hp/" || true)
        [[ $body == Hello* ]] && break
        sleep 0.1
    done
    if [[ $body == Hello* ]]; then
        ok "the installed narwhal serves hello through nginx and the installed snippet"
    else
        notok "the installed narwhal serves hello through nginx and the installed snippet"
        sed 's/^/# /' "$work/nw.log" "$work/ng/error.log" 2>/dev/null | tail -20
    fi
else
    echo "# nginx is not installed: the serving check is not run"
fi
echo "1..$n"
echo "$((n - fail)) passed, $fail failed"
exit $fail
