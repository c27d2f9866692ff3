/* pyhost.c - narwhal's Python host: runs a WSGI app (PEP 3333) in an
 * embedded CPython, written against the same app API as any C app.
 *
 * Threads of Python. The worker's main thread holds the GIL only while it
 * loads the app; then every request takes it when it runs Python and lets
 * it go whenever it waits through narwhal (reading the body, flushing,
 * narwhal.sleep, narwhal.wait_fd). `sync` and `threads` run each handler
 * on an OS thread with a state of its own (made once per thread); `async`
 * runs each request on its own coroutine, all on one OS thread, each with
 * a PyThreadState from a pool: a coroutine switch happens only inside a
 * narwhal wait, where the GIL is let go, so to Python the coroutines are
 * threads that take turns (gilstate.c keeps PyGILState_Ensure right).
 *
 * Timeouts. A wait past the request's deadline raises narwhal.Timeout (a
 * BaseException: `except Exception` does not swallow it) in the handler,
 * whose finally blocks run; a handler running Python past its deadline
 * gets the same exception from the watchdog thread (an asynchronous
 * exception, aimed at its own thread state). Only a handler stuck in C
 * code (time.sleep under async, a blocking C library) runs on until the
 * master kills its worker, a second later. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "narwhal.h"
#include "pyhost.h"

void nw_python_gilstate_set(PyThreadState *ts);           /* gilstate.c */
void nw_python_dump_traceback(int fd, PyThreadState *ts); /* gilstate.c */

/* What narwhal looks up in this module (everything else is hidden). */
#define NW_EXPORT __attribute__((visibility("default")))
NW_EXPORT int nw_python_load(const nw_python_config *cfg, char *err, size_t errlen);
NW_EXPORT int nw_python_handler(nw_request *req);
NW_EXPORT int nw_worker_init(void);
NW_EXPORT void nw_worker_exit(void);

/* ---- process-wide state ---------------------------------------------------- */

static nw_python_config cfg;
static pid_t loaded_pid;            /* where the interpreter started */
static PyThreadState *main_ts;      /* the loading thread's state */
static PyObject *wsgi_app;          /* the callable */
static PyObject *m_narwhal;         /* the narwhal module */
static PyObject *exc_timeout;       /* narwhal.Timeout */
static PyObject *base_environ;      /* the keys every request shares */
static PyObject *format_exception;  /* traceback.format_exception */
static PyObject *s_close, *s_write; /* interned names */

typedef struct pyreq pyreq;
static __thread pyreq *cur;              /* the request running Python on this thread */
static __thread PyThreadState *thread_ts; /* sync/threads: this thread's state */

/* async: thread states of finished requests, for the next ones */
#define TS_POOL 256
static PyThreadState *ts_pool[TS_POOL];
static int ts_pooled;

/* ---- a request ----------------------------------------------------------- */

typedef struct reqobj reqobj;

struct pyreq {
    nw_request *req;
    PyThreadState *ts;
    PyObject *headers; /* the list start_response was given, validated */
    int status;
    int started;      /* start_response called */
    int headers_sent; /* the head went out with the first body byte */
    int in_wait;      /* waiting in narwhal, the GIL let go (read under the GIL) */
    int client_gone;  /* a write failed: the client went away */
    int raised;       /* the watchdog has aimed a Timeout at it */
    int64_t deadline_ms; /* CLOCK_MONOTONIC ms, -1 = none */
    pyreq *prev, *next;  /* the running requests, for the watchdog */
};

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The GIL around a wait: let go before, taken back (and this request made
 * the thread's current one again: under async another coroutine ran) after. */
static void py_release(pyreq *r)
{
    if (r)
        r->in_wait = 1;
    PyThreadState *ts = PyEval_SaveThread();
    if (cfg.coroutines)
        nw_python_gilstate_set(main_ts);
    (void)ts;
}

static void py_acquire(pyreq *r, PyThreadState *ts)
{
    PyEval_RestoreThread(ts);
    if (cfg.coroutines)
        nw_python_gilstate_set(ts);
    cur = r;
    if (r)
        r->in_wait = 0;
}

/* After a failed wait: the deadline, or the client gone. */
static PyObject *wait_failed(pyreq *r, const char *doing)
{
    if (r && nw_time_left(r->req) == 0)
        PyErr_Format(exc_timeout, "the request passed its timeout while %s", doing);
    else
        PyErr_Format(PyExc_ConnectionAbortedError, "the client went away while %s", doing);
    return NULL;
}

/* ---- logging ----------------------------------------------------------------- */

/* The exception being raised, taken (NULL if none), and put back: one
 * object, as PyErr_GetRaisedException has it from 3.12 on. */
static PyObject *take_exception(void)
{
    PyObject *t, *v, *tb;
    PyErr_Fetch(&t, &v, &tb);
    if (!t)
        return NULL;
    PyErr_NormalizeException(&t, &v, &tb);
    if (tb && v)
        PyException_SetTraceback(v, tb);
    Py_XDECREF(t);
    Py_XDECREF(tb);
    return v;
}

static void give_exception(PyObject *v)
{
    PyErr_Restore(Py_NewRef((PyObject *)Py_TYPE(v)), v, PyException_GetTraceback(v));
}

/* The current exception's traceback, one log line per line, under a
 * headline; the exception is cleared. */
static void log_exception(nw_request *req, const char *headline)
{
    PyObject *exc = take_exception();
    if (!exc)
        return;
    nw_log(req, NW_LOG_ERROR, "%s", headline);
    PyObject *lines = format_exception ? PyObject_CallOneArg(format_exception, exc) : NULL;
    if (!lines) {
        PyErr_Clear();
        PyObject *s = PyObject_Repr(exc);
        PyErr_Clear();
        nw_log(NULL, NW_LOG_ERROR, "  %s", s ? PyUnicode_AsUTF8(s) : "(unprintable exception)");
        Py_XDECREF(s);
    } else {
        Py_ssize_t n = PyList_Size(lines);
        for (Py_ssize_t i = 0; i < n; i++) {
            const char *chunk = PyUnicode_AsUTF8(PyList_GET_ITEM(lines, i));
            if (!chunk) {
                PyErr_Clear();
                continue;
            }
            while (*chunk) {
                size_t len = strcspn(chunk, "\n");
                nw_log(NULL, NW_LOG_ERROR, "%.*s", (int)len, chunk);
                chunk += len + (chunk[len] == '\n');
            }
        }
        Py_DECREF(lines);
    }
    PyErr_Clear();
    Py_DECREF(exc);
}

/* ---- the request object: start_response, write and wsgi.input in one ---------- */

struct reqobj {
    PyObject_HEAD
    pyreq *r;      /* NULL once the request is over */
    char *buf;     /* wsgi.input: bytes read ahead (readline) */
    size_t off, len, cap;
    int eof;
};

static int req_over(reqobj *o)
{
    if (o->r)
        return 0;
    PyErr_SetString(PyExc_ValueError, "the request is over");
    return 1;
}

/* RFC 9110 token / field-value, as nw_add_header checks them (it would
 * refuse them later; here the app hears why, at start_response). */
static unsigned char tchar[256]; /* 1 for a token character */

static void tchar_init(void)
{
    for (int c = 0x21; c < 0x7f; c++)
        tchar[c] = !strchr("\"(),/:;<=>?@[\\]{}", c);
}

static int token_ok(const char *s, Py_ssize_t n)
{
    if (n == 0)
        return 0;
    for (Py_ssize_t i = 0; i < n; i++)
        if (!tchar[(unsigned char)s[i]])
            return 0;
    return 1;
}

static int value_ok(const char *s, Py_ssize_t n)
{
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
            return 0;
    }
    return 1;
}

/* A header value's bytes: an ASCII str is its own UTF-8 (no copy); any
 * other is encoded to latin-1 into *hold (a new reference, or NULL). */
static const char *value_bytes(PyObject *value, PyObject **hold, Py_ssize_t *n)
{
    *hold = NULL;
    if (PyUnicode_IS_ASCII(value)) {
        *n = PyUnicode_GET_LENGTH(value);
        return (const char *)PyUnicode_DATA(value);
    }
    *hold = PyUnicode_AsLatin1String(value);
    if (!*hold)
        return NULL;
    *n = PyBytes_GET_SIZE(*hold);
    return PyBytes_AS_STRING(*hold);
}

static PyObject *start_response(reqobj *o, PyObject *args, PyObject *kw)
{
    static char *names[] = {"status", "headers", "exc_info", NULL};
    PyObject *status, *headers, *exc_info = Py_None;
    Py_ssize_t nargs = PyTuple_GET_SIZE(args);
    if (!kw && (nargs == 2 || nargs == 3) && PyUnicode_Check(PyTuple_GET_ITEM(args, 0))) {
        status = PyTuple_GET_ITEM(args, 0); /* the usual call, without the parser */
        headers = PyTuple_GET_ITEM(args, 1);
        if (nargs == 3)
            exc_info = PyTuple_GET_ITEM(args, 2);
    } else if (!PyArg_ParseTupleAndKeywords(args, kw, "UO|O:start_response", names, &status,
                                            &headers, &exc_info)) {
        return NULL;
    }
    if (req_over(o))
        return NULL;
    pyreq *r = o->r;
    if (exc_info != Py_None) {
        if (r->headers_sent) { /* too late to change the head: re-raise (PEP 3333) */
            PyObject *t, *v, *tb;
            if (!PyArg_ParseTuple(exc_info, "OOO:exc_info", &t, &v, &tb))
                return NULL;
            Py_INCREF(t);
            Py_INCREF(v);
            Py_INCREF(tb);
            PyErr_Restore(t, v, tb);
            return NULL;
        }
    } else if (r->started) {
        PyErr_SetString(PyExc_RuntimeError,
                        "start_response called a second time without exc_info");
        return NULL;
    }
    Py_ssize_t slen;
    const char *st = PyUnicode_AsUTF8AndSize(status, &slen);
    if (!st)
        return NULL;
    int code = slen >= 4 && st[3] == ' ' && st[0] >= '2' && st[0] <= '5' && st[1] >= '0' &&
                       st[1] <= '9' && st[2] >= '0' && st[2] <= '9'
                   ? (st[0] - '0') * 100 + (st[1] - '0') * 10 + (st[2] - '0')
                   : 0;
    if (!code || !value_ok(st, slen)) {
        PyErr_Format(PyExc_ValueError,
                     "status %R is not \"NNN Reason\" with a final status (200-599)", status);
        return NULL;
    }
    PyObject *list = PySequence_List(headers);
    if (!list)
        return NULL;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(list); i++) {
        PyObject *h = PyList_GET_ITEM(list, i);
        PyObject *name, *value;
        if (!PyTuple_Check(h) || PyTuple_GET_SIZE(h) != 2 ||
            !PyUnicode_Check(name = PyTuple_GET_ITEM(h, 0)) ||
            !PyUnicode_Check(value = PyTuple_GET_ITEM(h, 1))) {
            PyErr_Format(PyExc_TypeError, "header %R is not a (str, str) tuple", h);
            goto bad;
        }
        PyObject *hold;
        Py_ssize_t vlen;
        const char *v = value_bytes(value, &hold, &vlen);
        int ok = v && value_ok(v, vlen);
        Py_XDECREF(hold);
        if (!ok || !PyUnicode_IS_ASCII(name) ||
            !token_ok((const char *)PyUnicode_DATA(name), PyUnicode_GET_LENGTH(name))) {
            PyErr_Clear();
            PyErr_Format(PyExc_ValueError, "header %R has a bad name or a control character",
                         h);
            goto bad;
        }
        if (PyUnicode_GET_LENGTH(name) == 6 &&
            strcasecmp((const char *)PyUnicode_DATA(name), "Status") == 0) {
            PyErr_SetString(PyExc_ValueError, "a Status header: give the status to "
                                              "start_response");
            goto bad;
        }
    }
    Py_XSETREF(r->headers, list);
    r->status = code;
    r->started = 1;
    return PyObject_GetAttr((PyObject *)o, s_write);
bad:
    Py_DECREF(list);
    return NULL;
}

/* Hop-by-hop headers are the front end's business (PEP 3333 forbids them
 * to apps): dropped, as gunicorn drops them. */
static int hop_by_hop(const char *n, Py_ssize_t len)
{
    static const char *const hop[] = {"Connection", "Keep-Alive", "Proxy-Authenticate",
                                      "Proxy-Authorization", "TE", "Trailers",
                                      "Transfer-Encoding", "Upgrade"};
    for (size_t i = 0; i < sizeof hop / sizeof *hop; i++)
        if ((Py_ssize_t)strlen(hop[i]) == len && strcasecmp(n, hop[i]) == 0)
            return 1;
    return 0;
}

static int send_head(pyreq *r)
{
    if (r->headers_sent)
        return 0;
    if (!r->started) {
        PyErr_SetString(PyExc_RuntimeError, "the app sent body bytes before start_response");
        return -1;
    }
    nw_set_status(r->req, r->status);
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(r->headers); i++) {
        PyObject *h = PyList_GET_ITEM(r->headers, i);
        PyObject *name = PyTuple_GET_ITEM(h, 0);
        const char *n = (const char *)PyUnicode_DATA(name); /* ASCII: checked */
        PyObject *hold;
        Py_ssize_t vlen;
        const char *v = value_bytes(PyTuple_GET_ITEM(h, 1), &hold, &vlen);
        if (!v)
            return -1;
        if (!hop_by_hop(n, PyUnicode_GET_LENGTH(name)))
            nw_add_header(r->req, n, v);
        Py_XDECREF(hold);
    }
    r->headers_sent = 1;
    return 0;
}

static int send_body(pyreq *r, const char *data, Py_ssize_t n)
{
    if (send_head(r) < 0)
        return -1;
    if (n == 0)
        return 0;
    py_release(r);
    ssize_t w = nw_write(r->req, data, (size_t)n);
    py_acquire(r, r->ts);
    if (w < 0) {
        r->client_gone = nw_time_left(r->req) != 0;
        wait_failed(r, "sending the response");
        return -1;
    }
    return 0;
}

static PyObject *req_write(reqobj *o, PyObject *data)
{
    if (req_over(o))
        return NULL;
    Py_buffer b;
    if (!PyBytes_Check(data)) {
        PyErr_Format(PyExc_TypeError, "write() takes bytes, not %.100s", Py_TYPE(data)->tp_name);
        return NULL;
    }
    if (PyObject_GetBuffer(data, &b, PyBUF_SIMPLE) < 0)
        return NULL;
    int rc = send_body(o->r, b.buf, b.len);
    PyBuffer_Release(&b);
    if (rc < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* -- wsgi.input -- */

/* Reads more of the body into the read-ahead buffer: bytes added, 0 at the
 * end, -1 with an exception. */
static Py_ssize_t input_fill(reqobj *o, size_t want)
{
    if (o->eof)
        return 0;
    if (o->off && o->off == o->len)
        o->off = o->len = 0;
    if (o->cap - o->len < want) {
        if (o->off) {
            memmove(o->buf, o->buf + o->off, o->len - o->off);
            o->len -= o->off;
            o->off = 0;
        }
        if (o->cap - o->len < want) {
            size_t cap = o->len + want;
            if (cap < 2 * o->cap) /* doubling: read() of a whole body copies it O(1) times */
                cap = 2 * o->cap;
            char *nb = PyMem_Realloc(o->buf, cap);
            if (!nb) {
                PyErr_NoMemory();
                return -1;
            }
            o->buf = nb;
            o->cap = cap;
        }
    }
    pyreq *r = o->r;
    py_release(r);
    ssize_t n = nw_read(r->req, o->buf + o->len, want);
    py_acquire(r, r->ts);
    if (n < 0) {
        wait_failed(r, "reading the request body");
        return -1;
    }
    if (n == 0)
        o->eof = 1;
    o->len += (size_t)n;
    return n;
}

static PyObject *take(reqobj *o, size_t n)
{
    PyObject *b = PyBytes_FromStringAndSize(o->buf + o->off, (Py_ssize_t)n);
    if (b)
        o->off += n;
    return b;
}

static Py_ssize_t size_arg(PyObject *const *args, Py_ssize_t nargs, const char *fn)
{
    if (nargs > 1) {
        PyErr_Format(PyExc_TypeError, "%s() takes at most 1 argument", fn);
        return -2;
    }
    if (nargs == 0 || args[0] == Py_None)
        return -1;
    Py_ssize_t n = PyNumber_AsSsize_t(args[0], PyExc_OverflowError);
    if (n == -1 && PyErr_Occurred())
        return -2;
    return n < 0 ? -1 : n;
}

static PyObject *input_read(reqobj *o, PyObject *const *args, Py_ssize_t nargs)
{
    Py_ssize_t size = size_arg(args, nargs, "read");
    if (size == -2 || req_over(o))
        return NULL;
    for (;;) {
        size_t have = o->len - o->off;
        if (size >= 0 && have >= (size_t)size)
            return take(o, (size_t)size);
        /* read(n) with a large n grows the buffer as bytes come, not to n
         * at once: read(10**9) of a short body holds the body, no more */
        size_t want = size >= 0 ? (size_t)size - have : 65536;
        if (want < 8192)
            want = 8192;
        if (want > 1 << 20)
            want = 1 << 20;
        Py_ssize_t n = input_fill(o, want);
        if (n < 0)
            return NULL;
        if (n == 0)
            return take(o, o->len - o->off);
    }
}

static PyObject *input_readline(reqobj *o, PyObject *const *args, Py_ssize_t nargs)
{
    Py_ssize_t size = size_arg(args, nargs, "readline");
    if (size == -2 || req_over(o))
        return NULL;
    size_t scanned = 0;
    for (;;) {
        size_t have = o->len - o->off;
        const char *nl = memchr(o->buf + o->off + scanned, '\n', have - scanned);
        if (nl) {
            size_t n = (size_t)(nl - (o->buf + o->off)) + 1;
            return take(o, size >= 0 && (size_t)size < n ? (size_t)size : n);
        }
        if (size >= 0 && have >= (size_t)size)
            return take(o, (size_t)size);
        scanned = have;
        Py_ssize_t n = input_fill(o, 8192);
        if (n < 0)
            return NULL;
        if (n == 0)
            return take(o, o->len - o->off);
    }
}

static PyObject *input_readlines(reqobj *o, PyObject *const *args, Py_ssize_t nargs)
{
    Py_ssize_t hint = size_arg(args, nargs, "readlines");
    if (hint == -2 || req_over(o))
        return NULL;
    PyObject *lines = PyList_New(0);
    Py_ssize_t total = 0;
    while (lines) {
        PyObject *line = input_readline(o, NULL, 0);
        if (!line || PyBytes_GET_SIZE(line) == 0 || PyList_Append(lines, line) < 0) {
            if (!line || PyErr_Occurred())
                Py_CLEAR(lines);
            Py_XDECREF(line);
            break;
        }
        total += PyBytes_GET_SIZE(line);
        Py_DECREF(line);
        if (hint > 0 && total >= hint)
            break;
    }
    return lines;
}

static PyObject *input_next(reqobj *o)
{
    PyObject *line = input_readline(o, NULL, 0);
    if (line && PyBytes_GET_SIZE(line) == 0) {
        Py_DECREF(line);
        return NULL; /* StopIteration */
    }
    return line;
}

static PyObject *input_iter(reqobj *o)
{
    Py_INCREF(o);
    return (PyObject *)o;
}

static void reqobj_dealloc(reqobj *o)
{
    PyMem_Free(o->buf);
    Py_TYPE(o)->tp_free((PyObject *)o);
}

static PyMethodDef reqobj_methods[] = {
    {"write", (PyCFunction)req_write, METH_O, "write(data): send body bytes (PEP 3333)"},
    {"read", (PyCFunction)(void (*)(void))input_read, METH_FASTCALL, "read([size])"},
    {"readline", (PyCFunction)(void (*)(void))input_readline, METH_FASTCALL, "readline([size])"},
    {"readlines", (PyCFunction)(void (*)(void))input_readlines, METH_FASTCALL,
     "readlines([hint])"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject reqobj_type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "narwhal.Request",
    .tp_basicsize = sizeof(reqobj),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "a request: start_response (call it), its write(), and wsgi.input",
    .tp_call = (ternaryfunc)start_response,
    .tp_iter = (getiterfunc)input_iter,
    .tp_iternext = (iternextfunc)input_next,
    .tp_methods = reqobj_methods,
    .tp_dealloc = (destructor)reqobj_dealloc,
};

/* ---- the environ ------------------------------------------------------------ */

/* The params the bridge itself reads, noted as they go into the environ. */
enum {
    K_OTHER,
    K_SKIP, /* HTTP_CONTENT_TYPE, HTTP_CONTENT_LENGTH */
    K_PATH_INFO,
    K_SCRIPT_NAME,
    K_DOCUMENT_URI,
    K_REQUEST_URI,
    K_HTTPS,
    K_REQUEST_SCHEME,
    K_REQUEST_METHOD,
    K_SERVER_NAME,
    K_SERVER_PORT,
    K_SERVER_PROTOCOL,
    K_QUERY_STRING,
    K_COUNT
};

static const char *const key_names[K_COUNT] = {
    NULL,          NULL,          "PATH_INFO",      "SCRIPT_NAME",    "DOCUMENT_URI",
    "REQUEST_URI", "HTTPS",       "REQUEST_SCHEME", "REQUEST_METHOD", "SERVER_NAME",
    "SERVER_PORT", "SERVER_PROTOCOL", "QUERY_STRING",
};
static PyObject *key_objs[K_COUNT]; /* interned */
static PyObject *s_url_scheme, *s_input, *s_http, *s_https, *s_empty;

/* Param names seen before, as interned str (their hash kept): a request's
 * names cost a table probe, not a decode, a hash and a free. The table is
 * filled once and never emptied; names past its room (a peer sending
 * endless new header names) are decoded each time, so it holds at most
 * NAME_CACHE entries. */
#define NAME_CACHE 512 /* a power of two */
typedef struct {
    char *name;
    size_t len;
    PyObject *key;
    int kind;
} name_entry;
static name_entry names[NAME_CACHE];
static int names_used;

static uint64_t name_hash(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

static int name_kind(const char *name)
{
    if (strcmp(name, "HTTP_CONTENT_TYPE") == 0 || strcmp(name, "HTTP_CONTENT_LENGTH") == 0)
        return K_SKIP; /* nginx sends them too; PEP 3333 has only CONTENT_* */
    for (int k = K_PATH_INFO; k < K_COUNT; k++)
        if (strcmp(name, key_names[k]) == 0)
            return k;
    return K_OTHER;
}

/* The environ key for a param name (a new reference), and its kind. */
static PyObject *name_key(const char *name, int *kind)
{
    size_t n = strlen(name);
    uint64_t h = name_hash(name, n);
    for (size_t i = 0; i < NAME_CACHE; i++) {
        name_entry *e = &names[(h + i) & (NAME_CACHE - 1)];
        if (!e->name) {
            PyObject *k = PyUnicode_DecodeLatin1(name, (Py_ssize_t)n, NULL);
            if (!k)
                return NULL;
            *kind = name_kind(name);
            if (names_used >= NAME_CACHE / 2) /* keep probes short: half full at most */
                return k;
            char *copy = malloc(n + 1);
            if (!copy)
                return k;
            memcpy(copy, name, n + 1);
            PyUnicode_InternInPlace(&k);
            e->name = copy;
            e->len = n;
            e->key = k;
            e->kind = *kind;
            names_used++;
            Py_INCREF(k);
            return k;
        }
        if (e->len == n && memcmp(e->name, name, n) == 0) {
            *kind = e->kind;
            Py_INCREF(e->key);
            return e->key;
        }
    }
    *kind = name_kind(name);
    return PyUnicode_DecodeLatin1(name, (Py_ssize_t)n, NULL);
}

typedef struct {
    PyObject *env;
    const char *raw[K_COUNT]; /* the values of the params noted, borrowed (last wins) */
    PyObject *val[K_COUNT];   /* the same in the environ, borrowed from it */
} environ_build;

static int add_param(const char *name, const char *value, void *arg)
{
    environ_build *b = arg;
    int kind;
    PyObject *k = name_key(name, &kind);
    if (!k)
        return -1;
    if (kind == K_SKIP) {
        Py_DECREF(k);
        return 0;
    }
    PyObject *v = PyUnicode_DecodeLatin1(value, (Py_ssize_t)strlen(value), NULL);
    int rc = v ? PyDict_SetItem(b->env, k, v) : -1;
    if (rc == 0 && kind != K_OTHER) { /* the dict holds v: a later duplicate replaces both */
        b->raw[kind] = value;
        b->val[kind] = v;
    }
    Py_DECREF(k);
    Py_XDECREF(v);
    return rc; /* the last of a repeated name wins, as nw_param has it */
}

static int set_key(PyObject *env, int kind, PyObject *v)
{
    return v ? PyDict_SetItem(env, key_objs[kind], v) : -1;
}

static int hexval(int c)
{
    return c >= '0' && c <= '9' ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

/* REQUEST_URI's path, percent-decoded, as a latin-1 str (raw bytes). */
static PyObject *uri_path(const char *uri)
{
    size_t n = strcspn(uri, "?");
    char small[512];
    char *dec = n < sizeof small ? small : PyMem_Malloc(n + 1);
    if (!dec)
        return PyErr_NoMemory();
    size_t j = 0;
    for (size_t i = 0; i < n; i++) {
        int h, l;
        if (uri[i] == '%' && i + 2 < n + 1 && (h = hexval(uri[i + 1])) >= 0 &&
            (l = hexval(uri[i + 2])) >= 0) {
            dec[j++] = (char)(h * 16 + l);
            i += 2;
        } else {
            dec[j++] = uri[i];
        }
    }
    PyObject *p = PyUnicode_DecodeLatin1(dec, (Py_ssize_t)j, NULL);
    if (dec != small)
        PyMem_Free(dec);
    return p;
}

/* PATH_INFO and SCRIPT_NAME, which WSGI routing needs and nginx's
 * fastcgi_params do not send as WSGI means them (SCRIPT_NAME is the whole
 * path there, PATH_INFO absent). Without a PATH_INFO param: the path is
 * DOCUMENT_URI, else REQUEST_URI's path, percent-decoded; SCRIPT_NAME is
 * kept only when it is a proper prefix of it (a mount point), else "". */
static int fix_paths(environ_build *b)
{
    PyObject *env = b->env;
    if (!b->val[K_PATH_INFO]) {
        PyObject *pv = b->raw[K_DOCUMENT_URI] && *b->raw[K_DOCUMENT_URI]
                           ? (Py_INCREF(b->val[K_DOCUMENT_URI]), b->val[K_DOCUMENT_URI])
                           : uri_path(b->raw[K_REQUEST_URI] ? b->raw[K_REQUEST_URI] : "/");
        if (!pv)
            return -1;
        PyObject *sn = b->val[K_SCRIPT_NAME];
        Py_ssize_t snlen = sn ? PyUnicode_GET_LENGTH(sn) : 0;
        int prefix = snlen > 0 && snlen < PyUnicode_GET_LENGTH(pv) &&
                     PyUnicode_Tailmatch(pv, sn, 0, snlen, -1) == 1 &&
                     PyUnicode_ReadChar(pv, snlen) == '/';
        PyObject *info = prefix ? PyUnicode_Substring(pv, snlen, PyUnicode_GET_LENGTH(pv))
                                : (Py_INCREF(pv), pv);
        int rc = set_key(env, K_PATH_INFO, info);
        Py_XDECREF(info);
        Py_DECREF(pv);
        if (rc < 0 || (!prefix && set_key(env, K_SCRIPT_NAME, s_empty) < 0))
            return -1;
    } else if (!b->val[K_SCRIPT_NAME] && set_key(env, K_SCRIPT_NAME, s_empty) < 0) {
        return -1;
    }
    static const char *const need[][2] = {{"GET"}, {"localhost"}, {"80"}, {"HTTP/1.0"}, {""}};
    for (int k = K_REQUEST_METHOD; k <= K_QUERY_STRING; k++) {
        if (b->val[k])
            continue;
        const char *d = need[k - K_REQUEST_METHOD][0];
        PyObject *v = PyUnicode_DecodeLatin1(d, (Py_ssize_t)strlen(d), NULL);
        int rc = set_key(env, k, v);
        Py_XDECREF(v);
        if (rc < 0)
            return -1;
    }
    return 0;
}

static PyObject *build_environ(nw_request *req, reqobj *o)
{
    environ_build b = {.env = _PyDict_NewPresized(48)};
    if (!b.env)
        return NULL;
    if (PyDict_Update(b.env, base_environ) < 0 || nw_param_each(req, add_param, &b) != 0 ||
        fix_paths(&b) < 0)
        goto bad;
    const char *https = b.raw[K_HTTPS], *scheme = b.raw[K_REQUEST_SCHEME];
    int secure = https ? (strcasecmp(https, "on") == 0 || strcmp(https, "1") == 0)
                       : (scheme && strcasecmp(scheme, "https") == 0);
    if (PyDict_SetItem(b.env, s_url_scheme, secure ? s_https : s_http) < 0 ||
        PyDict_SetItem(b.env, s_input, (PyObject *)o) < 0)
        goto bad;
    return b.env;
bad:
    if (!PyErr_Occurred())
        PyErr_SetString(PyExc_RuntimeError, "cannot build the WSGI environ");
    Py_DECREF(b.env);
    return NULL;
}

/* The interned strings of the environ, made once at load. */
static int environ_init(void)
{
    for (int k = K_PATH_INFO; k < K_COUNT; k++)
        if (!(key_objs[k] = PyUnicode_InternFromString(key_names[k])))
            return -1;
    s_url_scheme = PyUnicode_InternFromString("wsgi.url_scheme");
    s_input = PyUnicode_InternFromString("wsgi.input");
    s_http = PyUnicode_InternFromString("http");
    s_https = PyUnicode_InternFromString("https");
    s_empty = PyUnicode_InternFromString("");
    return s_url_scheme && s_input && s_http && s_https && s_empty ? 0 : -1;
}

/* ---- the watchdog: Timeout into Python that does not wait ----------------- */

static pthread_mutex_t running_lock = PTHREAD_MUTEX_INITIALIZER;
static pyreq *running; /* list of requests in the app */

/* The watchdog sleeps a second while no request has a deadline to watch;
 * the first one to come then wakes it (at most once per such sleep). */
static int watchdog_idle;
static int watchdog_wake = -1; /* an eventfd */

static void running_add(pyreq *r)
{
    pthread_mutex_lock(&running_lock);
    r->prev = NULL;
    r->next = running;
    if (running)
        running->prev = r;
    running = r;
    pthread_mutex_unlock(&running_lock);
    if (r->deadline_ms >= 0 && __atomic_exchange_n(&watchdog_idle, 0, __ATOMIC_ACQ_REL)) {
        uint64_t one = 1;
        if (write(watchdog_wake, &one, sizeof one) < 0) {
            /* full or gone: the watchdog's next look is a second away at most */
        }
    }
}

/* Under the GIL, so the watchdog (which aims only under the GIL) cannot
 * aim at this state once it is out; one aimed already is taken back. */
static void running_remove(pyreq *r)
{
    pthread_mutex_lock(&running_lock);
    if (r->prev)
        r->prev->next = r->next;
    else
        running = r->next;
    if (r->next)
        r->next->prev = r->prev;
    pthread_mutex_unlock(&running_lock);
    if (r->raised)
        PyThreadState_SetAsyncExc(r->ts->thread_id, NULL);
}

/* 1 when a running request has passed its deadline unraised; else 0, and
 * *watching says whether any running request has a deadline to watch. */
static int due(int64_t now, int *watching)
{
    int any = 0;
    *watching = 0;
    pthread_mutex_lock(&running_lock);
    for (pyreq *r = running; r && !any; r = r->next) {
        *watching |= r->deadline_ms >= 0 && !r->raised;
        any = r->deadline_ms >= 0 && now >= r->deadline_ms && !r->raised;
    }
    pthread_mutex_unlock(&running_lock);
    return any;
}

/* --reload: once a second, the files of every imported module; a change
 * asks the master for new workers (a HUP, which the master takes from a
 * worker as "the code changed", once for all the workers that see it). */
static PyObject *reload_seen; /* file -> mtime_ns */

static int modules_changed(void)
{
    PyObject *fn = PyDict_GetItemString(PyModule_GetDict(m_narwhal), "_changed");
    PyObject *f = fn ? PyObject_CallOneArg(fn, reload_seen) : NULL;
    int changed = 0;
    if (!f) {
        log_exception(NULL, "--reload: cannot check the app's module files:");
    } else if (f != Py_None) {
        const char *path = PyUnicode_AsUTF8(f);
        PyErr_Clear();
        nw_log(NULL, NW_LOG_INFO, "reload: %s changed; asking the master for new workers",
               path ? path : "a module file");
        changed = 1;
    }
    Py_XDECREF(f);
    return changed;
}

static void *watchdog(void *arg)
{
    (void)arg;
    int watching = 0;
    for (int64_t next_reload = mono_ms() + 1000;;) {
        /* every 100 ms while a request has a deadline to watch; else a
         * second (--reload's pace), or until running_add wakes it */
        struct pollfd p = {.fd = watchdog_wake, .events = POLLIN};
        if (poll(&p, 1, watching ? 100 : 1000) > 0) {
            uint64_t n;
            if (read(watchdog_wake, &n, sizeof n) < 0) {
                /* drained already */
            }
        }
        if (reload_seen && mono_ms() >= next_reload) {
            next_reload = mono_ms() + 1000;
            PyGILState_STATE g = PyGILState_Ensure();
            if (modules_changed())
                kill(getppid(), SIGHUP);
            PyGILState_Release(g);
        }
        /* idle first, then look: a request added after the look finds the
         * flag set and wakes the sleep that follows */
        __atomic_store_n(&watchdog_idle, 1, __ATOMIC_RELEASE);
        int late = due(mono_ms(), &watching);
        if (watching)
            __atomic_store_n(&watchdog_idle, 0, __ATOMIC_RELEASE);
        if (!late)
            continue;
        PyGILState_STATE g = PyGILState_Ensure();
        int64_t now = mono_ms();
        pthread_mutex_lock(&running_lock);
        for (pyreq *r = running; r; r = r->next)
            if (r->deadline_ms >= 0 && now >= r->deadline_ms && !r->raised && !r->in_wait) {
                r->raised = 1;
                PyThreadState_SetAsyncExc(r->ts->thread_id, exc_timeout);
            }
        pthread_mutex_unlock(&running_lock);
        PyGILState_Release(g);
    }
    return NULL;
}

/* ---- the handler ------------------------------------------------------------- */

static PyThreadState *state_for_request(void)
{
    if (cfg.coroutines) {
        if (ts_pooled)
            return ts_pool[--ts_pooled];
        PyThreadState *ts = PyThreadState_New(PyInterpreterState_Main());
        /* its own id, so an asynchronous exception finds this coroutine's
         * state and no other (they all run on one OS thread) */
        if (ts)
            ts->thread_id = (unsigned long)(uintptr_t)ts;
        return ts;
    }
    if (!thread_ts) {
        thread_ts = PyGILState_GetThisThreadState();
        if (!thread_ts)
            thread_ts = PyThreadState_New(PyInterpreterState_Main());
    }
    return thread_ts;
}


static int call_close(pyreq *r, PyObject *result)
{
    if (PyList_CheckExact(result) || PyTuple_CheckExact(result))
        return 0; /* the usual answer has none (and an AttributeError costs) */
    PyObject *close = NULL;
#if PY_VERSION_HEX >= 0x030D0000
    if (PyObject_GetOptionalAttr(result, s_close, &close) < 0)
#else
    if (_PyObject_LookupAttr(result, s_close, &close) < 0)
#endif
        PyErr_Clear();
    if (!close)
        return 0;
    PyObject *ok = PyObject_CallNoArgs(close);
    Py_DECREF(close);
    if (ok) {
        Py_DECREF(ok);
        return 0;
    }
    log_exception(r->req, "the response's close() raised");
    return -1;
}

/* Runs the response iterable: every chunk out, close() always. */
static int run_response(pyreq *r, PyObject *result)
{
    int rc = 0;
    PyObject *it = PyObject_GetIter(result);
    if (it) {
        PyObject *chunk;
        while ((chunk = PyIter_Next(it))) {
            int bad = 0;
            if (!PyBytes_Check(chunk)) {
                PyErr_Format(PyExc_TypeError,
                             "the app's response iterable gave %.100s, not bytes",
                             Py_TYPE(chunk)->tp_name);
                bad = 1;
            } else if (PyBytes_GET_SIZE(chunk) > 0) {
                /* the head goes with the first non-empty chunk (PEP 3333) */
                bad = send_body(r, PyBytes_AS_STRING(chunk), PyBytes_GET_SIZE(chunk)) < 0;
            }
            Py_DECREF(chunk);
            if (bad)
                break;
        }
        Py_DECREF(it);
    }
    /* an empty body: the head goes out now (an error if start_response was
     * never called) */
    if (!PyErr_Occurred())
        send_head(r);
    if (PyErr_Occurred() && r->client_gone &&
        PyErr_ExceptionMatches(PyExc_ConnectionAbortedError)) {
        /* the client going away is no fault of the app's: no traceback */
        PyErr_Clear();
        nw_log(NULL, NW_LOG_INFO, "the client went away during the response; closing it");
        rc = -1;
    } else if (PyErr_Occurred()) {
        log_exception(r->req, r->headers_sent ? "the app raised after the response began; "
                                                "ending it"
                                              : "the app raised");
        rc = -1;
    }
    if (call_close(r, result) < 0)
        rc = -1;
    return rc;
}

int nw_python_handler(nw_request *req)
{
    pyreq r = {.req = req, .deadline_ms = -1};
    long left = nw_time_left(req);
    if (left >= 0)
        r.deadline_ms = mono_ms() + left;
    r.ts = state_for_request();
    if (!r.ts) {
        nw_log(req, NW_LOG_ERROR, "cannot make a Python thread state");
        return -1;
    }
    py_acquire(&r, r.ts);
    running_add(&r);
    int rc = -1;
    reqobj *o = PyObject_New(reqobj, &reqobj_type);
    if (!o) {
        log_exception(req, "out of memory");
        goto out;
    }
    o->r = &r;
    o->buf = NULL;
    o->off = o->len = o->cap = 0;
    o->eof = 0;
    PyObject *env = build_environ(req, o);
    PyObject *result = env ? PyObject_CallFunctionObjArgs(wsgi_app, env, (PyObject *)o, NULL)
                           : NULL;
    Py_XDECREF(env);
    if (!result) {
        log_exception(req, env ? "the app raised" : "cannot build the environ");
    } else {
        rc = run_response(&r, result);
        Py_DECREF(result);
    }
    o->r = NULL;
    Py_DECREF(o);
out:
    Py_CLEAR(r.headers);
    running_remove(&r);
    cur = NULL;
    if (cfg.coroutines && ts_pooled == TS_POOL) {
        /* a burst past the pool: this state goes (what a request left in it
         * goes with it, under the GIL), so a thousand waiting requests once
         * do not keep a thousand frame stacks for ever */
        PyThreadState_Clear(r.ts);
        PyThreadState_DeleteCurrent(); /* lets the GIL go */
    } else {
        PyEval_SaveThread();
        if (cfg.coroutines)
            ts_pool[ts_pooled++] = r.ts;
    }
    if (cfg.coroutines)
        nw_python_gilstate_set(main_ts);
    return rc;
}

/* ---- the narwhal module -------------------------------------------------------- */

static PyObject *mod_sleep(PyObject *self, PyObject *arg)
{
    double s = PyFloat_AsDouble(arg);
    if (s == -1.0 && PyErr_Occurred())
        return NULL;
    if (s < 0) {
        PyErr_SetString(PyExc_ValueError, "sleep length must be non-negative");
        return NULL;
    }
    pyreq *r = cur;
    PyThreadState *ts = PyThreadState_Get();
    double ms = s * 1000.0;
    int arg_ms = ms > 2147483647.0 ? 2147483647 : (int)(ms + 0.5);
    py_release(r);
    int rc = nw_sleep(r ? r->req : NULL, arg_ms);
    py_acquire(r, ts);
    if (rc < 0)
        return wait_failed(r, "sleeping");
    Py_RETURN_NONE;
}

static PyObject *mod_wait_fd(PyObject *self, PyObject *args)
{
    PyObject *fdobj, *timeout = Py_None;
    int events;
    if (!PyArg_ParseTuple(args, "Oi|O:wait_fd", &fdobj, &events, &timeout))
        return NULL;
    int fd = PyObject_AsFileDescriptor(fdobj);
    if (fd < 0)
        return NULL;
    int ms = -1;
    if (timeout != Py_None) {
        double t = PyFloat_AsDouble(timeout);
        if (t == -1.0 && PyErr_Occurred())
            return NULL;
        ms = t <= 0 ? 0 : t * 1000.0 > 2147483647.0 ? 2147483647 : (int)(t * 1000.0 + 0.5);
    }
    pyreq *r = cur;
    if (!r) {
        PyErr_SetString(PyExc_RuntimeError, "wait_fd() is for a request's handler");
        return NULL;
    }
    PyThreadState *ts = PyThreadState_Get();
    py_release(r);
    int rc = nw_wait_fd(r->req, fd, events, ms);
    py_acquire(r, ts);
    if (rc < 0) {
        if (nw_time_left(r->req) == 0)
            return wait_failed(r, "waiting for a file descriptor");
        PyErr_Format(PyExc_OSError, "wait_fd(%d, %d): bad file descriptor or events", fd,
                     events);
        return NULL;
    }
    return PyLong_FromLong(rc);
}

static PyObject *mod_log(PyObject *self, PyObject *args)
{
    int level, with_request;
    const char *line;
    if (!PyArg_ParseTuple(args, "isp:_log", &level, &line, &with_request))
        return NULL;
    nw_log(with_request && cur ? cur->req : NULL, level, "%s", line);
    Py_RETURN_NONE;
}

static PyObject *mod_time_left(PyObject *self, PyObject *unused)
{
    if (!cur)
        Py_RETURN_NONE;
    long left = nw_time_left(cur->req);
    if (left < 0)
        Py_RETURN_NONE;
    return PyFloat_FromDouble(left / 1000.0);
}

static PyMethodDef mod_methods[] = {
    {"sleep", mod_sleep, METH_O,
     "sleep(seconds): sleep, letting the worker's other requests run (under -k async "
     "too); raises Timeout at the request's deadline"},
    {"wait_fd", mod_wait_fd, METH_VARARGS,
     "wait_fd(fd, events, timeout=None): wait until fd is ready for READ and/or WRITE; "
     "returns the ready mask, 0 on timeout; raises Timeout at the request's deadline"},
    {"time_left", mod_time_left, METH_NOARGS,
     "time_left(): seconds left before this request's deadline, or None"},
    {"_log", mod_log, METH_VARARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef mod_def = {
    PyModuleDef_HEAD_INIT, "narwhal", "narwhal's own module, for apps it runs", -1, mod_methods,
    NULL, NULL, NULL, NULL,
};

/* The parts of the module that are better said in Python. */
static const char bootstrap[] =
    "import io, sys, os, importlib\n"
    "class Timeout(BaseException):\n"
    "    '''Raised in a handler at its request's deadline (narwhal's timeout).\n"
    "    A BaseException, so `except Exception:` lets it through.'''\n"
    "class FileWrapper:\n"
    "    '''wsgi.file_wrapper: iterates a file in blocks, closes it with the response.'''\n"
    "    def __init__(self, filelike, blksize=65536):\n"
    "        self.filelike = filelike\n"
    "        self.blksize = blksize\n"
    "        if hasattr(filelike, 'close'):\n"
    "            self.close = filelike.close\n"
    "    def __iter__(self):\n"
    "        return self\n"
    "    def __next__(self):\n"
    "        data = self.filelike.read(self.blksize)\n"
    "        if data:\n"
    "            return data\n"
    "        raise StopIteration\n"
    "class _LogWriter(io.TextIOBase):\n"
    "    '''Lines written here go to narwhal's error log, one log line each\n"
    "    (a line longer than 8 KiB is cut into pieces).'''\n"
    "    def __init__(self, level, with_request, name):\n"
    "        self._level, self._req, self._name, self._part = level, with_request, name, ''\n"
    "    name = property(lambda self: self._name)\n"
    "    encoding = 'utf-8'\n"
    "    errors = 'backslashreplace'\n"
    "    def writable(self):\n"
    "        return True\n"
    "    def write(self, s):\n"
    "        if not isinstance(s, str):\n"
    "            raise TypeError('write() argument must be str, not ' + type(s).__name__)\n"
    "        text = self._part + s\n"
    "        *lines, self._part = text.split('\\n')\n"
    "        for line in lines:\n"
    "            _log(self._level, line, self._req)\n"
    "        while len(self._part) > 8192:\n"
    "            _log(self._level, self._part[:8192], self._req)\n"
    "            self._part = self._part[8192:]\n"
    "        return len(s)\n"
    "    def writelines(self, lines):\n"
    "        for line in lines:\n"
    "            self.write(line)\n"
    "    def flush(self):\n"
    "        if self._part:\n"
    "            part, self._part = self._part, ''\n"
    "            _log(self._level, part, self._req)\n"
    "def _setup(paths):\n"
    "    sys.path[:0] = [os.path.abspath(p) for p in paths] + [os.getcwd()]\n"
    "    sys.stdout = _LogWriter(1, False, '<stdout>')\n"
    "    sys.stderr = _LogWriter(2, False, '<stderr>')\n"
    "    return _LogWriter(3, True, 'wsgi.errors')\n"
    "def _changed(seen):\n"
    "    # --reload: the first file of an imported module whose mtime moved\n"
    "    # since the last call (all of them noted), or None\n"
    "    first = None\n"
    "    for m in list(sys.modules.values()):\n"
    "        f = getattr(m, '__file__', None)\n"
    "        if not isinstance(f, str):\n"
    "            continue\n"
    "        try:\n"
    "            t = os.stat(f).st_mtime_ns\n"
    "        except OSError:\n"
    "            continue\n"
    "        if seen.setdefault(f, t) != t:\n"
    "            seen[f] = t\n"
    "            first = first or f\n"
    "    return first\n"
    "def _load(spec):\n"
    "    module, _, name = spec.partition(':')\n"
    "    name = name or 'application'\n"
    "    call = name.endswith('()')\n"
    "    if call:\n"
    "        name = name[:-2]\n"
    "    obj = importlib.import_module(module)\n"
    "    for part in name.split('.'):\n"
    "        try:\n"
    "            obj = getattr(obj, part)\n"
    "        except AttributeError:\n"
    "            raise LookupError('module %r (%s) has no %r' %\n"
    "                              (module, getattr(sys.modules[module], '__file__', '?'), name)) from None\n"
    "    if call:\n"
    "        obj = obj()\n"
    "    if not callable(obj):\n"
    "        raise TypeError('%s is not callable: it is a %s' % (spec, type(obj).__name__))\n"
    "    return obj\n";

/* The current exception, as one line for err ("ModuleNotFoundError: No
 * module named 'app'"), its traceback logged. */
static void load_failed(const char *what, char *err, size_t errlen)
{
    PyObject *exc = take_exception();
    PyObject *s = exc ? PyObject_Str(exc) : NULL;
    const char *msg = s ? PyUnicode_AsUTF8(s) : NULL;
    PyErr_Clear();
    snprintf(err, errlen, "cannot load app %s: %s%s%s", cfg.spec,
             exc ? Py_TYPE(exc)->tp_name : what, msg && *msg ? ": " : "", msg ? msg : "");
    /* "app" is a module; "./app" would be a file */
    size_t mlen = strcspn(cfg.spec, ":");
    if (exc && PyErr_GivenExceptionMatches(exc, PyExc_ModuleNotFoundError)) {
        char file[256];
        snprintf(file, sizeof file, "%.*s", (int)mlen, cfg.spec);
        if (access(file, F_OK) == 0) {
            size_t k = strlen(err);
            snprintf(err + k, errlen - k, " (a file %s is here: for a C app, give ./%s)", file,
                     file);
        }
    }
    Py_XDECREF(s);
    if (exc) {
        give_exception(exc);
        log_exception(NULL, "the Python app failed to load:");
    }
}

int nw_python_load(const nw_python_config *c, char *err, size_t errlen)
{
    if (c->version != NW_PYTHON_HOST_VERSION) {
        snprintf(err, errlen, "cannot load app %s: narwhal's Python host is of another build "
                              "(reinstall narwhal)", c->spec);
        return -1;
    }
    if (Py_IsInitialized()) {
        snprintf(err, errlen, "cannot load app %s: Python is loaded already", c->spec);
        return -1;
    }
    cfg = *c;
    cfg.spec = strdup(c->spec);

    PyConfig pc;
    PyConfig_InitPythonConfig(&pc);
    pc.install_signal_handlers = 0; /* the worker's signals are narwhal's */
    pc.parse_argv = 0;
    /* The interpreter this module was built for, not the first python3 on
     * PATH (its prefix finds the standard library); a virtualenv's python
     * finds the venv's pyvenv.cfg, so site-packages are the venv's. */
    char prog[4096];
    if (c->virtualenv)
        snprintf(prog, sizeof prog, "%s/bin/python3", c->virtualenv);
    else
        snprintf(prog, sizeof prog, "%s", NW_PYTHON_EXE);
    PyStatus st = PyConfig_SetBytesString(&pc, &pc.program_name, prog);
    if (!PyStatus_Exception(st))
        st = PyConfig_SetBytesArgv(&pc, 1, (char *[]){"narwhal", NULL});
    if (!PyStatus_Exception(st))
        st = Py_InitializeFromConfig(&pc);
    PyConfig_Clear(&pc);
    if (PyStatus_Exception(st)) {
        snprintf(err, errlen, "cannot load app %s: cannot start Python: %s", c->spec,
                 st.err_msg ? st.err_msg : "unknown error");
        return -1;
    }
    loaded_pid = getpid();
    main_ts = PyThreadState_Get();

    if (PyType_Ready(&reqobj_type) < 0)
        goto fail;
    m_narwhal = PyModule_Create(&mod_def);
    if (!m_narwhal)
        goto fail;
    PyObject *d = PyModule_GetDict(m_narwhal);
    PyObject *mods = PyImport_GetModuleDict();
    if (PyDict_SetItemString(d, "__builtins__", PyEval_GetBuiltins()) < 0 ||
        PyDict_SetItemString(mods, "narwhal", m_narwhal) < 0 ||
        PyModule_AddIntConstant(m_narwhal, "READ", NW_READ) < 0 ||
        PyModule_AddIntConstant(m_narwhal, "WRITE", NW_WRITE) < 0)
        goto fail;
    PyObject *ok = PyRun_String(bootstrap, Py_file_input, d, d);
    if (!ok)
        goto fail;
    Py_DECREF(ok);
    exc_timeout = PyDict_GetItemString(d, "Timeout");
    Py_XINCREF(exc_timeout);
    PyObject *tb = PyImport_ImportModule("traceback");
    format_exception = tb ? PyObject_GetAttrString(tb, "format_exception") : NULL;
    Py_XDECREF(tb);
    tchar_init();
    if (environ_init() < 0)
        goto fail;
    s_close = PyUnicode_InternFromString("close");
    s_write = PyUnicode_InternFromString("write");
    if (!exc_timeout || !format_exception || !s_close || !s_write)
        goto fail;

    /* sys.path, stdout and stderr, wsgi.errors */
    PyObject *paths = PyList_New(0);
    if (!paths)
        goto fail;
    if (c->pythonpath) {
        char *copy = strdup(c->pythonpath), *save = NULL;
        for (char *p = strtok_r(copy, ",", &save); p; p = strtok_r(NULL, ",", &save)) {
            while (*p == ' ')
                p++;
            PyObject *s = PyUnicode_DecodeFSDefault(p);
            if (!s || PyList_Append(paths, s) < 0) {
                Py_XDECREF(s);
                free(copy);
                Py_DECREF(paths);
                goto fail;
            }
            Py_DECREF(s);
        }
        free(copy);
    }
    PyObject *setup = PyDict_GetItemString(d, "_setup");
    PyObject *errors = setup ? PyObject_CallOneArg(setup, paths) : NULL;
    Py_DECREF(paths);
    if (!errors)
        goto fail;

    base_environ = PyDict_New();
    PyObject *version = Py_BuildValue("(ii)", 1, 0);
    PyObject *wrapper = PyDict_GetItemString(d, "FileWrapper");
    if (!base_environ || !version || !wrapper ||
        PyDict_SetItemString(base_environ, "wsgi.version", version) < 0 ||
        PyDict_SetItemString(base_environ, "wsgi.errors", errors) < 0 ||
        PyDict_SetItemString(base_environ, "wsgi.multithread",
                             c->multithread || c->coroutines ? Py_True : Py_False) < 0 ||
        PyDict_SetItemString(base_environ, "wsgi.multiprocess",
                             c->multiprocess ? Py_True : Py_False) < 0 ||
        PyDict_SetItemString(base_environ, "wsgi.run_once", Py_False) < 0 ||
        PyDict_SetItemString(base_environ, "wsgi.file_wrapper", wrapper) < 0) {
        Py_XDECREF(version);
        Py_DECREF(errors);
        goto fail;
    }
    Py_DECREF(version);
    Py_DECREF(errors);

    PyObject *spec = PyUnicode_FromString(c->spec);
    PyObject *load = PyDict_GetItemString(d, "_load");
    wsgi_app = spec && load ? PyObject_CallOneArg(load, spec) : NULL;
    Py_XDECREF(spec);
    if (!wsgi_app) {
        load_failed("error", err, errlen);
        return -1;
    }
    return 0;
fail:
    load_failed("cannot set up narwhal's Python host", err, errlen);
    return -1;
}

/* ---- the worker's hooks ------------------------------------------------------------ */

/* The slowlog's Python frames (nw_set_trace_hook): called on the thread
 * whose C stack narwhal has just written, from a signal handler, for the
 * request that thread runs (under async: the coroutine holding the loop). */
static void trace_hook(int fd)
{
    pyreq *r = cur;
    if (r && r->ts)
        nw_python_dump_traceback(fd, r->ts);
}

int nw_worker_init(void)
{
    if (!main_ts)
        return 1;
    /* preload_app: the interpreter started in the master, which held the
     * GIL when it forked this worker */
    if (loaded_pid != getpid())
        PyOS_AfterFork_Child();
    if (cfg.reload) { /* what the files are now: changes count from here */
        reload_seen = PyDict_New();
        if (reload_seen)
            modules_changed();
        PyErr_Clear();
    }
    watchdog_wake = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (watchdog_wake < 0) {
        nw_log(NULL, NW_LOG_ERROR, "cannot start the Python host's watchdog: eventfd: %s",
               strerror(errno));
        return 1;
    }
    pthread_t t;
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
    int rc = pthread_create(&t, &a, watchdog, NULL);
    pthread_attr_destroy(&a);
    if (rc != 0) {
        nw_log(NULL, NW_LOG_ERROR, "cannot start the Python host's watchdog thread: %s",
               strerror(rc));
        return 1;
    }
    if (nw_set_trace_hook(trace_hook) < 0)
        nw_log(NULL, NW_LOG_WARNING, "the slowlog will have no Python frames: cannot catch "
                                     "SIGRTMIN+4");
    main_ts = PyEval_SaveThread(); /* requests take the GIL from here on */
    return 0;
}

void nw_worker_exit(void)
{
    if (!main_ts)
        return;
    PyGILState_STATE g = PyGILState_Ensure();
    /* what the app registered with atexit runs, as when gunicorn's worker
     * exits; then what stdout and stderr held without a newline */
    PyObject *atexit = PyImport_ImportModule("atexit");
    PyObject *ok = atexit ? PyObject_CallMethod(atexit, "_run_exitfuncs", NULL) : NULL;
    if (!ok)
        log_exception(NULL, "atexit functions raised:");
    Py_XDECREF(ok);
    Py_XDECREF(atexit);
    PyObject *out = PySys_GetObject("stdout"), *errs = PySys_GetObject("stderr");
    for (PyObject *f = out; f; f = f == out ? errs : NULL) {
        PyObject *r = PyObject_CallMethod(f, "flush", NULL);
        if (!r)
            PyErr_Clear();
        Py_XDECREF(r);
    }
    PyGILState_Release(g);
}
