/* conn.h: being written */
