/* arbiter.c: being written */
