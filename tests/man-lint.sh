#!/bin/sh
# tests/man-lint.sh - make check: the man pages render without a warning.
# narwhal(1) and narwhal.conf(5) are generated (man/mkman.c), narwhal-app(3)
# is written by hand. groff -ww turns on every warning; mandoc -T lint, when
# installed, adds its style checks. Any message fails. It also checks that
# every option --help lists is in narwhal(1).
#
# Usage (make check sets them): NARWHAL_BUILDDIR=... NARWHAL_SRCDIR=... sh tests/man-lint.sh
B=${NARWHAL_BUILDDIR:-.}
S=${NARWHAL_SRCDIR:-.}
pages="$B/man/narwhal.1 $B/man/narwhal.conf.5 $S/man/narwhal-app.3"
if ! command -v groff >/dev/null 2>&1; then
    echo "1..0 # SKIP groff is not installed (Debian: groff-base)"
    exit 0
fi
n=0
fail=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
notok() { n=$((n + 1)); fail=1; echo "not ok $n - $1"; }
for p in $pages; do
    if [ ! -s "$p" ]; then
        notok "$p: missing or empty"
        continue
    fi
    out=$(LC_ALL=C.UTF-8 groff -man -Tutf8 -ww -z "$p" 2>&1)
    if [ -z "$out" ]; then ok "groff -ww: $p"; else notok "groff -ww: $p"; echo "$out" | sed 's/^/# /'; fi
    if command -v mandoc >/dev/null 2>&1; then
        out=$(mandoc -T lint -W warning "$p" 2>&1)
        if [ -z "$out" ]; then ok "mandoc -T lint: $p"; else notok "mandoc -T lint: $p"; echo "$out" | sed 's/^/# /'; fi
    fi
done
# every long option of --help is in narwhal(1) (as \-\-name)
missing=$("$B/narwhal" --help | grep -o -- '--[a-z][a-z-]*' | sort -u | while read -r o; do
    esc=$(printf '%s' "$o" | sed 's/-/\\\\-/g')
    grep -q -- "$esc" "$B/man/narwhal.1" || echo "$o"
done)
if [ -z "$missing" ]; then ok "every --help option is in narwhal(1)"; else notok "not in narwhal(1): $missing"; fi
echo "1..$n"
exit $fail
