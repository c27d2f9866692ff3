/* util.h: being written */
