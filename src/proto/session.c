/* session.c - what every protocol session shares: the first byte decides
 * the protocol, then its own rules run (session_fastcgi.c,
 * session_uwsgi.c). */
#include "session.h"

#include <string.h>

void session_init(nw_session *s, unsigned max_conns, unsigned max_reqs)
{
    memset(s, 0, sizeof *s);
    s->max_conns = max_conns;
    s->max_reqs = max_reqs;
}

void session_free(nw_session *s)
{
    if (s->proto)
        s->proto->free(s);
    s->proto = NULL;
}

int session_detect(nw_session *s, nw_protocol setting, uint8_t first)
{
    if (setting == NW_PROTO_FASTCGI || (setting == NW_PROTO_AUTO && first == FCGI_VERSION_1)) {
        s->proto = &session_fastcgi;
    } else if (setting == NW_PROTO_UWSGI ||
               (setting == NW_PROTO_AUTO && uwsgi_modifier1_served(first))) {
        s->proto = &session_uwsgi;
    } else {
        session_msg(
            s, "first byte 0x%02x is neither FastCGI (version 1) nor uwsgi (modifier1 0 or 30)",
            first);
        return -1;
    }
    s->proto->init(s);
    return 0;
}

size_t session_parse(nw_session *s, nw_protocol setting, const uint8_t *in, size_t len, nw_buf *out,
                     sess_event *ev)
{
    if (!s->proto) {
        memset(ev, 0, sizeof *ev);
        if (!len)
            return 0;
        if (session_detect(s, setting, in[0]) < 0) {
            ev->type = SESS_EV_ERROR;
            ev->msg = s->msg;
            return 0;
        }
    }
    return s->proto->parse(s, in, len, out, ev);
}

size_t session_held(const nw_session *s)
{
    return s->proto ? s->proto->held(s) : 0;
}

void session_request_over(nw_session *s)
{
    if (s->proto)
        s->proto->over(s);
}
