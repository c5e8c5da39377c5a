/* The L4 relay: byte-exact copying with flow control and half-close. */
#include "engine.h"


/* --- relay ------------------------------------------------------------------------------------------ */

/* A side's backlog: bytes its socket did not take yet (``buf`` from ``off``, ``len`` bytes, ``cap`` allocated). */

/* Queue bytes without writing (a head is put together piece by piece, then written with one send). */
int out_put(side_t *s, const char *d, size_t n) {
    if (s->off + s->len + n > s->cap) {
        if (s->off) {
            memmove(s->buf, s->buf + s->off, s->len);
            s->off = 0;
        }
        if (s->len + n > s->cap) {
            size_t ncap = s->cap ? s->cap : 4096;
            while (ncap < s->len + n) ncap *= 2;
            char *nb = PyMem_Realloc(s->buf, ncap);
            if (!nb) return -1;
            s->buf = nb;
            s->cap = ncap;
        }
    }
    memcpy(s->buf + s->off + s->len, d, n);
    s->len += n;
    return 0;
}

/* Write to a socket: straight away if nothing is queued, the rest queued. -1 on an error. */
int out_write(side_t *s, const char *d, size_t n) {
    if (!s->len) {
        while (n) {
            ssize_t w = send(s->fd, d, n, MSG_NOSIGNAL);
            if (w < 0) {
                if (errno == EINTR) continue;
                if (errno != EAGAIN && errno != EWOULDBLOCK) return -1;
                s->flags &= ~F_WRITABLE;
                break;
            }
            d += w;
            n -= (size_t)w;
        }
        if (!n) return 0;
    }
    return out_put(s, d, n);
}

/* Write the queued bytes. 0: all written, 1: some left, -1: error. The buffer is kept for reuse. */
int out_flush(side_t *s) {
    while (s->len) {
        ssize_t w = send(s->fd, s->buf + s->off, s->len, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                s->flags &= ~F_WRITABLE;
                return 1;
            }
            return -1;
        }
        s->off += (size_t)w;
        s->len -= (size_t)w;
    }
    s->off = 0;
    return 0;
}

/* Write dst's backlog (L4). Returns 0 when it is empty, 1 when some is left, -1 on error; an emptied
 * backlog is freed, as a relayed connection seldom needs one again. */
int flush(side_t *dst) {
    int r = out_flush(dst);
    if (r == 0) {
        PyMem_Free(dst->buf);
        dst->buf = NULL;
        dst->cap = 0;
    }
    return r;
}

/* Move bytes src → dst until src has none ready or dst is full. Returns -1 on an error (reset). */
int pump(Engine *e, conn_t *c, side_t *src, side_t *dst, int down) {
    if (dst->len) {
        if (!(dst->flags & F_WRITABLE)) return 0;
        int r = flush(dst);
        if (r) return r < 0 ? -1 : 0;
    }
    while ((src->flags & (F_READABLE | F_EOF)) == F_READABLE) {
        ssize_t n = recv(src->fd, e->scratch, SCRATCH, 0);
        if (n > 0) {
            target_t *tg = &e->targets[c->target];
            if (down) {
                tg->d_out += (unsigned long long)n;
                c->log_out += (unsigned long long)n;
                if (c->first_pending) {
                    c->first_pending = 0;
                    if (e->n_samples < MAX_SAMPLES) {
                        e->samples_t[e->n_samples] = mono() - c->t0;
                        e->samples_i[e->n_samples++] = c->target;
                    } else {
                        e->samples_dropped++;
                    }
                }
            } else {
                tg->d_in += (unsigned long long)n;
                c->log_in += (unsigned long long)n;
            }
            size_t done = 0;
            while (done < (size_t)n) {
                ssize_t w = send(dst->fd, e->scratch + done, (size_t)n - done, MSG_NOSIGNAL);
                if (w < 0) {
                    if (errno == EINTR) continue;
                    if (errno != EAGAIN && errno != EWOULDBLOCK) return -1;
                    break;
                }
                done += (size_t)w;
            }
            if (done < (size_t)n) { /* dst is full: keep the rest, stop reading src until it drains */
                if (out_put(dst, e->scratch + done, (size_t)n - done) < 0) return -1;
                dst->flags &= ~F_WRITABLE;
                return 0;
            }
            if ((size_t)n < SCRATCH && !(src->flags & F_RDHUP)) src->flags &= ~F_READABLE;
        } else if (n == 0) {
            src->flags |= F_EOF;
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            src->flags &= ~F_READABLE;
        } else if (errno != EINTR) {
            return -1;
        }
    }
    if ((src->flags & F_EOF) && !(dst->flags & F_SHUT) && !dst->len) {
        shutdown(dst->fd, SHUT_WR);
        dst->flags |= F_SHUT;
    }
    return 0;
}

void relay(Engine *e, conn_t *c) {
    double now = mono_coarse();
    c->last = now;
    if (pump(e, c, &c->c, &c->u, 0) < 0 || pump(e, c, &c->u, &c->c, 1) < 0) {
        conn_end(e, c, 1);
        return;
    }
    if ((c->c.flags & F_EOF) && (c->u.flags & F_EOF) && (c->c.flags & F_SHUT) && (c->u.flags & F_SHUT))
        conn_end(e, c, 0);
}
