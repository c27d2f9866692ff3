/* util.c: being written */
