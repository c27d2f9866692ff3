/* listener.c: being written */
