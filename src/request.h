/* request.h: being written */
