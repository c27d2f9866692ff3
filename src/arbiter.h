/* arbiter.h: being written */
