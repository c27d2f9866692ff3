/* settings.c: being written */
