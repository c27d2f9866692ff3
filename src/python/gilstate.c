/* gilstate.c - the one place the Python host reaches into CPython's
 * internals.
 *
 * Under `-k async` every request runs Python on its own coroutine with its
 * own PyThreadState, all on one OS thread. CPython keeps one "this thread's
 * state" per OS thread (what PyGILState_Ensure finds): a C extension that
 * calls PyGILState_Ensure from a request (a ctypes callback does) would find
 * the worker's main state, not the running coroutine's, and wait for a GIL
 * its own thread holds: a deadlock. So when a coroutine takes the GIL, its
 * state becomes the thread's state here, and goes back after. There is no
 * public call for it; the key lives in _PyRuntime (3.11: .gilstate). */
#define Py_BUILD_CORE 1
#include <Python.h>

#include <internal/pycore_runtime.h>
#include <internal/pycore_traceback.h>

void nw_python_gilstate_set(PyThreadState *ts);
void nw_python_dump_traceback(int fd, PyThreadState *ts);

void nw_python_gilstate_set(PyThreadState *ts)
{
#if PY_VERSION_HEX >= 0x030C0000
    PyThread_tss_set(&_PyRuntime.autoTSSkey, ts);
#else
    PyThread_tss_set(&_PyRuntime.gilstate.autoTSSkey, ts);
#endif
}

/* The Python frames of ts to fd, from a signal handler: faulthandler's
 * writer, made for that (no allocation, no lock, no GIL). */
void nw_python_dump_traceback(int fd, PyThreadState *ts)
{
    _Py_DumpTraceback(fd, ts);
}
