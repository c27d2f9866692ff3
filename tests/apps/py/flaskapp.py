"""The seed's app, as a Flask app would be: tests/e2e/test_python.c copies
this file to app.py and runs `narwhal -c gunicorn.conf app:app`."""
import hashlib
import os
import time

from flask import Flask, jsonify, request

import narwhal

app = Flask(__name__)
IMPORTED_IN = os.getpid()


@app.route("/")
def index():
    return "Hello from Flask in pid %d (imported in %d)\n" % (os.getpid(), IMPORTED_IN)


@app.route("/form", methods=["POST"])
def form():
    return "name=%s lang=%s\n" % (request.form["name"], request.form.get("lang", ""))


@app.route("/json", methods=["POST"])
def json_echo():
    data = request.get_json()
    return jsonify(got=data, n=len(data.get("items", [])))


@app.route("/upload", methods=["POST"])
def upload():
    h = hashlib.sha256()
    n = 0
    stream = request.stream
    while True:
        chunk = stream.read(65536)
        if not chunk:
            break
        n += len(chunk)
        h.update(chunk)
    return "%d %s\n" % (n, h.hexdigest())


@app.route("/boom")
def boom():
    raise ValueError("boom from a Flask view")


@app.route("/sleep")
def sleep():
    s = float(request.args.get("s", "0.5"))
    if request.args.get("how") == "time":
        time.sleep(s)
    else:
        narwhal.sleep(s)
    return "slept %s\n" % s
