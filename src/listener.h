/* listener.h: being written */
