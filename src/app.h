/* app.h: being written */
