/* proto_uwsgi.c: being written */
