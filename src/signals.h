/* signals.h: being written */
