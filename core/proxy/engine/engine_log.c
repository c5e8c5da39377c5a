/* Access-log completion records (kept only while a log is on). */
#include "engine.h"


void log_put(Engine *e, conn_t *c, int target, int status, int outcome, double first, int l7) {
    if (e->log_n >= e->log_cap) {
        e->log_dropped++;
        return;
    }
    log_rec_t *r = &e->log[e->log_n++];
    memset(r, 0, sizeof *r);
    r->t0 = c->t0;
    r->total = mono() - c->t0;
    r->first = first;
    r->bytes_in = c->log_in;
    r->bytes_out = c->log_out;
    r->target = target;
    r->status = status;
    r->outcome = outcome;
    if (c->peer.ss_family == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)&c->peer;
        r->family = 4;
        r->port = ntohs(a->sin_port);
        memcpy(r->addr, &a->sin_addr, 4);
    } else if (c->peer.ss_family == AF_INET6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&c->peer;
        r->family = 6;
        r->port = ntohs(a->sin6_port);
        memcpy(r->addr, &a->sin6_addr, 16);
    }
    if (l7 && c->req.p && c->req.len) {
        const char *cr = memchr(c->req.p, '\r', c->req.len);
        size_t n = cr ? (size_t)(cr - c->req.p) : c->req.len;
        if (n > LOG_REQ_MAX) n = LOG_REQ_MAX;
        memcpy(r->req, c->req.p, n);
        r->req_len = (uint8_t)n;
    }
}

/* An L7 request is over (once: the record clears log_open). */
void log_l7(Engine *e, conn_t *c, int status, int outcome) {
    c->log_open = 0;
    log_put(e, c, c->log_target, status, outcome, c->log_first, 1);
}

/* An L4 connection ends: relayed (ok, or reset), or never connected (failed, or abandoned by the client). */
void log_l4(Engine *e, conn_t *c, int reset) {
    if (c->state == ST_RELAY)
        log_put(e, c, c->target, 0, reset ? LOG_RESET : LOG_OK, c->log_first, 0);
    else
        log_put(e, c, -1, 0, c->log_outcome == LOG_ABANDONED ? LOG_ABANDONED : LOG_FAILED, -1.0, 0);
}
