"""bench/python.sh's Flask app: one route, "Hello, World!\n" as text/plain."""
from flask import Flask

app = Flask(__name__)


@app.route("/")
def hello():
    return "Hello, World!\n", 200, {"Content-Type": "text/plain"}
