/* accesslog.c: being written */
