/* proto_fastcgi.c: being written */
