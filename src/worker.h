/* worker.h: being written */
