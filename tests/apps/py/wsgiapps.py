"""WSGI test apps for tests/e2e/test_python.c, each wrapped in the standard
library's wsgiref.validate.validator: any WSGIWarning is turned into an
error, so a server that breaks PEP 3333 answers 500, and the test fails."""
import hashlib
import os
import sys
import warnings
from wsgiref.validate import validator, WSGIWarning

import narwhal

warnings.simplefilter("error", WSGIWarning)


def _text(start_response, body, status="200 OK", extra=()):
    body = body.encode() if isinstance(body, str) else body
    start_response(status, [("Content-Type", "text/plain"),
                            ("Content-Length", str(len(body)))] + list(extra))
    return [body]


def hello(environ, start_response):
    keys = ["REQUEST_METHOD", "SCRIPT_NAME", "PATH_INFO", "QUERY_STRING",
            "SERVER_PROTOCOL", "wsgi.url_scheme", "HTTP_X_DEMO"]
    lines = ["%s=%s" % (k, environ.get(k)) for k in keys]
    lines.append("multithread=%s multiprocess=%s" % (environ["wsgi.multithread"],
                                                     environ["wsgi.multiprocess"]))
    return _text(start_response, "\n".join(lines) + "\n")


def pieces(environ, start_response):
    """Reads the body with every wsgi.input method, in pieces."""
    inp = environ["wsgi.input"]
    n = int(environ.get("CONTENT_LENGTH") or 0)
    h = hashlib.sha256()
    got = 0
    first = inp.read(1)
    h.update(first)
    got += len(first)
    line = inp.readline()
    h.update(line)
    got += len(line)
    two = inp.readlines(4096)
    for l in two:
        h.update(l)
        got += len(l)
    for l in inp:
        h.update(l)
        got += len(l)
        if got > n // 2:
            break
    while got < n:
        chunk = inp.read(min(65536, n - got))
        if not chunk:
            break
        h.update(chunk)
        got += len(chunk)
    return _text(start_response, "%d %s\n" % (got, h.hexdigest()))


class Closing:
    """A streaming response whose close() says it ran."""
    def __init__(self, n):
        self.n = n

    def __iter__(self):
        for i in range(self.n):
            yield b"chunk %d\n" % i

    def close(self):
        print("close() called on the streaming response")


def stream(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return Closing(5)


def writer(environ, start_response):
    write = start_response("200 OK", [("Content-Type", "text/plain")])
    write(b"written with write()\n")
    return [b"then returned\n"]


def files(environ, start_response):
    path = os.path.abspath(__file__)
    f = open(path, "rb")
    size = os.fstat(f.fileno()).st_size
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(size))])
    return environ["wsgi.file_wrapper"](f, 4096)


def excinfo(environ, start_response):
    """start_response, then an error before the body: start_response again
    with exc_info replaces the head (PEP 3333's error handling)."""
    start_response("200 OK", [("Content-Type", "text/plain")])
    try:
        raise RuntimeError("went wrong before the body")
    except RuntimeError:
        start_response("503 Service Unavailable", [("Content-Type", "text/plain")],
                       sys.exc_info())
    return [b"replaced by exc_info\n"]


def late_excinfo(environ, start_response):
    """After the head went out, exc_info makes start_response re-raise."""
    write = start_response("200 OK", [("Content-Type", "text/plain")])
    write(b"head is out\n")
    try:
        raise KeyError("late")
    except KeyError:
        try:
            start_response("500 Oops", [("Content-Type", "text/plain")], sys.exc_info())
        except KeyError:
            return [b"re-raised as PEP 3333 says\n"]
    return [b"not re-raised\n"]


def errors(environ, start_response):
    environ["wsgi.errors"].write("a line to wsgi.errors\n")
    print("a line printed to stdout")
    sys.stderr.write("a line to stderr\n")
    return _text(start_response, "logged\n")


def readbig(environ, start_response):
    """read(n) with an n far past the body: the body, and memory for the
    body, not for n."""
    import resource
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    data = environ["wsgi.input"].read(1 << 40)
    grew = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    return _text(start_response, "read %d bytes, max RSS grew %s\n" %
                 (len(data), "under 64 MiB" if grew < 65536 else "%d KiB" % grew))


ROUTES = {"/readbig": readbig, "/hello": hello, "/pieces": pieces, "/stream": stream, "/writer": writer,
          "/files": files, "/excinfo": excinfo, "/late_excinfo": late_excinfo,
          "/errors": errors}


def _route(environ, start_response):
    fn = ROUTES.get(environ["PATH_INFO"])
    if fn is None:
        return _text(start_response, "no route %s\n" % environ["PATH_INFO"], "404 Not Found")
    return fn(environ, start_response)


app = validator(_route)


def _sleepy(environ, start_response):
    """Not validated: waits, as the class allows (?how=time|narwhal&s=SECONDS),
    or spins (?how=spin) past the deadline, its finally logged."""
    from urllib.parse import parse_qs
    q = parse_qs(environ.get("QUERY_STRING", ""))
    how = q.get("how", ["narwhal"])[0]
    s = float(q.get("s", ["0.5"])[0])
    if how == "time":
        import time
        time.sleep(s)
    elif how == "narwhal":
        narwhal.sleep(s)
    elif how == "spin":
        n = 0
        try:
            while True:
                n += 1
        finally:
            print("spin's finally ran after %d rounds" % (n > 0))
    return _text(start_response, "pid %d waited %s %s\n" % (os.getpid(), how, s))


sleepy = _sleepy


def _ctypes_app(environ, start_response):
    """A C library calls back into Python (PyGILState_Ensure), and the
    callback waits through narwhal, so under -k async other coroutines run
    inside it."""
    import ctypes
    libc = ctypes.CDLL(None)
    CMP = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p)
    arr = (ctypes.c_int * 6)(6, 2, 5, 1, 4, 3)

    def cmp(a, b):
        x = ctypes.cast(a, ctypes.POINTER(ctypes.c_int))[0]
        y = ctypes.cast(b, ctypes.POINTER(ctypes.c_int))[0]
        narwhal.sleep(0.01)
        return x - y
    libc.qsort(arr, len(arr), ctypes.sizeof(ctypes.c_int), CMP(cmp))
    return _text(start_response, "sorted %s\n" % list(arr))


ctypes_app = _ctypes_app
