"""bench/python.sh's plain WSGI app: the least a WSGI app can do.

    application       "Hello, World!\n" as text/plain
    sleep50           the same after time.sleep(0.05) (under gunicorn's
                      gevent worker, time.sleep is gevent.sleep: gunicorn
                      monkey-patches the worker)
    sleep50_narwhal   the same after narwhal.sleep(0.05), which yields the
                      coroutine under narwhal's async class
"""
import time

BODY = b"Hello, World!\n"
HEADERS = [("Content-Type", "text/plain"), ("Content-Length", str(len(BODY)))]


def application(environ, start_response):
    start_response("200 OK", HEADERS)
    return [BODY]


def sleep50(environ, start_response):
    time.sleep(0.05)
    start_response("200 OK", HEADERS)
    return [BODY]


def sleep50_narwhal(environ, start_response):
    import narwhal
    narwhal.sleep(0.05)
    start_response("200 OK", HEADERS)
    return [BODY]
