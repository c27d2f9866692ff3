#!/usr/bin/env python3
"""Writes the seed corpus in fuzz/corpus/ (run from anywhere; idempotent).

The seeds are hand-made, small and readable: what nginx sends over FastCGI
and uwsgi, gunicorn-style config files, and access log formats, plus a few
edge cases for each. The codec targets read one leading byte that picks the
chunk split; the accesslog target reads the format, then NUL-separated values.
"""
import os
import shutil
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "corpus")

# ---- FastCGI -----------------------------------------------------------------


def record(rtype, rid, content=b"", pad=True):
    padding = (8 - len(content) % 8) % 8 if pad else 0
    return struct.pack(">BBHHBB", 1, rtype, rid, len(content), padding, 0) + content + b"\0" * padding


def pair(name, value):
    def length(n):
        return bytes([n]) if n < 0x80 else struct.pack(">I", n | 0x80000000)
    return length(len(name)) + length(len(value)) + name + value


def nginx_params(method=b"GET", uri=b"/hello?name=world", body=b""):
    path, _, query = uri.partition(b"?")
    p = [
        (b"QUERY_STRING", query), (b"REQUEST_METHOD", method),
        (b"CONTENT_TYPE", b"application/x-www-form-urlencoded" if body else b""),
        (b"CONTENT_LENGTH", str(len(body)).encode() if body else b""),
        (b"SCRIPT_NAME", path), (b"REQUEST_URI", uri), (b"DOCUMENT_URI", path),
        (b"DOCUMENT_ROOT", b"/var/www/html"), (b"SERVER_PROTOCOL", b"HTTP/1.1"),
        (b"REQUEST_SCHEME", b"http"), (b"GATEWAY_INTERFACE", b"CGI/1.1"),
        (b"SERVER_SOFTWARE", b"nginx/1.22.1"), (b"REMOTE_ADDR", b"127.0.0.1"),
        (b"REMOTE_PORT", b"51234"), (b"REMOTE_USER", b""), (b"SERVER_ADDR", b"127.0.0.1"),
        (b"SERVER_PORT", b"80"), (b"SERVER_NAME", b"localhost"),
        (b"HTTP_HOST", b"localhost"), (b"HTTP_USER_AGENT", b"curl/7.88.1"),
        (b"HTTP_ACCEPT", b"*/*"),
    ]
    return b"".join(pair(k, v) for k, v in p)


def begin(rid, role=1, keep=0):
    return record(1, rid, struct.pack(">HB5x", role, keep))


def fcgi_request(rid=1, keep=1, method=b"GET", uri=b"/hello?name=world", body=b"", chunk=4096):
    out = begin(rid, 1, keep)
    out += record(4, rid, nginx_params(method, uri, body)) + record(4, rid)
    for i in range(0, len(body), chunk):
        out += record(5, rid, body[i:i + chunk])
    return out + record(5, rid)


def fcgi_seeds():
    body = b"a=1&b=" + b"x" * 300
    big = b"x" * 200  # needs a 4-byte length
    yield "get_keepalive", 0, fcgi_request()
    yield "get_close", 5, fcgi_request(keep=0)
    yield "post_body_two_records", 1, fcgi_request(method=b"POST", body=body, chunk=100)
    yield "two_requests_keepalive", 2, fcgi_request(1) + fcgi_request(1, uri=b"/second")
    yield "get_values", 3, record(9, 0, pair(b"FCGI_MAX_CONNS", b"") + pair(b"FCGI_MAX_REQS", b"") +
                                  pair(b"FCGI_MPXS_CONNS", b"") + pair(b"OTHER", b""))
    yield "unknown_mgmt_type", 4, record(42, 0, b"abc")
    yield "abort_during_stdin", 6, (begin(1) + record(4, 1, nginx_params(b"POST")) + record(4, 1) +
                                    record(5, 1, b"partial") + record(2, 1) + fcgi_request(2))
    yield "second_begin_mpx", 7, (begin(1, keep=1) + begin(2, keep=1) + record(4, 1, nginx_params()) +
                                  record(4, 2, b"ignored") + record(4, 1) + record(5, 1))
    yield "other_roles", 0, begin(1, role=2) + begin(3, role=3) + fcgi_request(4)
    yield "long_param_split_params", 1, (begin(1) + record(4, 1, pair(b"HTTP_COOKIE", big)[:50]) +
                                         record(4, 1, pair(b"HTTP_COOKIE", big)[50:], pad=False) +
                                         record(4, 1) + record(5, 1))
    yield "data_and_unexpected_ids", 2, (begin(1) + record(8, 1, b"filter data") + record(9, 1, b"x") +
                                         record(4, 1) + record(5, 1))
    yield "error_bad_version", 3, b"\x02" + fcgi_request()[1:]
    yield "error_stdout_from_server", 4, begin(1) + record(6, 1, b"no")
    yield "error_params_after_end", 5, begin(1) + record(4, 1) + record(4, 1, b"\x01\x01ab")
    yield "bad_params_encoding", 6, begin(1) + record(4, 1, b"\x85\x00\x00\x00\x01ab") + record(4, 1)


# ---- uwsgi ---------------------------------------------------------------------


def uvars(pairs):
    return b"".join(struct.pack("<H", len(k)) + k + struct.pack("<H", len(v)) + v for k, v in pairs)


def uwsgi_request(pairs, body=b"", m1=0, m2=0):
    v = uvars(pairs)
    return struct.pack("<BHB", m1, len(v), m2) + v + body


def uwsgi_nginx_vars(method=b"GET", body=b"", extra=()):
    return [
        (b"QUERY_STRING", b"name=world"), (b"REQUEST_METHOD", method),
        (b"CONTENT_TYPE", b"text/plain" if body else b""),
        (b"CONTENT_LENGTH", str(len(body)).encode() if body else b""),
        (b"REQUEST_URI", b"/hello?name=world"), (b"PATH_INFO", b"/hello"),
        (b"DOCUMENT_ROOT", b"/var/www/html"), (b"SERVER_PROTOCOL", b"HTTP/1.1"),
        (b"REQUEST_SCHEME", b"http"), (b"REMOTE_ADDR", b"127.0.0.1"), (b"REMOTE_PORT", b"51234"),
        (b"SERVER_PORT", b"80"), (b"SERVER_NAME", b"localhost"), (b"HTTP_HOST", b"localhost"),
        (b"HTTP_USER_AGENT", b"curl/7.88.1"), *extra,
    ]


def uwsgi_seeds():
    body = b"hello world, this is the body"
    yield "get", 0, uwsgi_request(uwsgi_nginx_vars())
    yield "post_body", 1, uwsgi_request(uwsgi_nginx_vars(b"POST", body), body)
    yield "post_body_small_chunks", 8, uwsgi_request(uwsgi_nginx_vars(b"POST", body), body)
    yield "empty_vars", 2, uwsgi_request([])
    yield "data_after_body", 3, uwsgi_request(uwsgi_nginx_vars(b"POST", b"abc"), b"abcEXTRA")
    yield "modifier1_5", 4, uwsgi_request(uwsgi_nginx_vars(), m1=5)
    # nginx's uwsgi_modifier1 30: PATH_INFO loses SCRIPT_NAME (the session)
    yield "modifier1_30", 5, uwsgi_request(uwsgi_nginx_vars(extra=[(b"SCRIPT_NAME", b"/hel")]),
                                           m1=30)
    yield "duplicate_content_length", 5, uwsgi_request([(b"CONTENT_LENGTH", b"1"),
                                                        (b"CONTENT_LENGTH", b"2")], b"ab")
    yield "bad_content_length", 6, uwsgi_request([(b"CONTENT_LENGTH", b"+12")], b"x" * 12)
    yield "huge_content_length", 7, uwsgi_request([(b"CONTENT_LENGTH", b"1099511627776")], b"xx")
    yield "truncated_var", 0, struct.pack("<BHB", 0, 5, 0) + b"\x03\x00ab\x00"
    yield "empty_key", 1, uwsgi_request([(b"", b"v")])


# ---- settings -------------------------------------------------------------------

SETTINGS = {
    "all_keys.conf": """# every file key
bind = {'127.0.0.1:8000', '[::1]:8000', 'unix:/run/narwhal.sock'}
workers = 4
worker_class = 'threads'
threads = 8
worker_connections = 1000
coroutine_stack_size = 256
backlog = 2048
protocol = 'fastcgi'
pidfile = '/run/narwhal.pid'
accesslog = '-'
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(D)s %({x-request-id}i)s'
errorlog = '/var/log/narwhal/error.log'
loglevel = 'debug'
timeout = 30
graceful_timeout = 30
keepalive = 75
daemon = False
chdir = '/srv/app'
raw_env = {'FOO=bar', 'EMPTY='}
user = 'www-data'
group = 'www-data'
umask = 0o22
limit_request_line = 4094
limit_request_fields = 100
limit_request_field_size = 8190
max_requests = 1000
max_requests_jitter = 50
reload = false
spew = false
preload_app = false
wsgi_app = 'examples/hello.so:app'
""",
    "quoting.conf": """/* C comment
   over lines */
accesslog = "/var/log/a \\"quoted\\" \\\\ $HOME ${HOME}.log"  // trailing
errorlog = "tab\\there"
raw_env = {"A=1", 'B=two words'}
app = "x.so"
umask = '022'
""",
    "bad_values.conf": """workers = 'abc'
timeout = -5
umask = 0o999
bind = 'nohost'
loglevel = 'loud'
unknown_key = 1
""",
    "empty_lists.conf": "bind = {}\nraw_env = {}\n",
    "cmd_args.txt": "-w 3 --bind 0.0.0.0:8000 -b 'unix:/tmp/n.sock' -e \"K=v w\" "
                    "--access-logfile - --worker-class gthread --umask 0o77 -k async app.so:main",
    "cmd_args_bad.txt": "--workers --timeout=-1 -D --daemon=1 --nope 'unterminated",
    "help.txt": "--help",
}


def main():
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    for target, seeds in (("fastcgi", fcgi_seeds()), ("uwsgi", uwsgi_seeds())):
        os.makedirs(os.path.join(OUT, target))
        for name, split, data in seeds:
            with open(os.path.join(OUT, target, name), "wb") as f:
                f.write(bytes([split]) + data)
    # the sessions: the same wire bytes, behind a byte for the protocol
    # setting (0 = auto, which the first byte then settles)
    os.makedirs(os.path.join(OUT, "session"))
    for proto, seeds in (("fastcgi", fcgi_seeds()), ("uwsgi", uwsgi_seeds())):
        for name, split, data in seeds:
            with open(os.path.join(OUT, "session", proto + "_" + name), "wb") as f:
                f.write(bytes([split, 0]) + data)
    os.makedirs(os.path.join(OUT, "settings"))
    # the gunicorn.conf the settings tests use (a real-world one, comments in Chinese)
    shutil.copy(os.path.join(HERE, "..", "tests", "unit", "core", "data", "gunicorn.conf"),
                os.path.join(OUT, "settings", "gunicorn.conf"))
    for name, text in SETTINGS.items():
        with open(os.path.join(OUT, "settings", name), "w") as f:
            f.write(text)
    os.makedirs(os.path.join(OUT, "accesslog"))
    values = b"\0".join([b"127.0.0.1", b"GET", b"/a?b=c", b"HTTP/1.1", b"curl/8",
                         b"line\nbreak \"q\" \\ \x7f", b"\xc3\xa9t\xc3\xa9", b""])
    formats = {
        "gunicorn_default": b'%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"',
        "every_atom": b"%(h)s %(l)s %(u)s %(t)s %(r)s %(m)s %(U)s %(q)s %(H)s %(s)s %(B)s %(b)s "
                      b"%(f)s %(a)s %(T)s %(M)s %(D)s %(L)s %(p)s",
        "headers_env": b"%({x-forwarded-for}i)s %({content-type}i)s %({Content-Length}i)s "
                       b"%({content-type}o)s %({HOME}e)s %({}i)s",
        "percent_literals": b"100%% %% done %(s)s%%",
        "err_unknown_atom": b"%(z)s",
        "err_unterminated": b"%(h",
        "err_stray_percent": b"trailing %",
        "err_not_s": b"%(h)d %(h)",
        "err_braces": b"%({a{b}i)s",
    }
    for name, fmt in formats.items():
        with open(os.path.join(OUT, "accesslog", name), "wb") as f:
            f.write(fmt + b"\0" + values)


if __name__ == "__main__":
    main()
