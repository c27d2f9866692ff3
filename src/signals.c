/* signals.c: being written */
