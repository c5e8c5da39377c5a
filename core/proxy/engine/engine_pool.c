/* Member connects and the pool of idle member connections. */
#include "engine.h"


/* A connect attempt ended (err 0 = connected). Python says what next. */
void connect_done(Engine *e, conn_t *c, int err) {
    int t = c->target;
    double secs = mono() - c->cstart;
    dl_remove(e, c);
    if (err == 0) {
        c->state = ST_RELAY;
        c->first_pending = 1;
        c->last = mono_coarse();
        c->log_first = mono() - c->t0;
    } else if (err == CONNECT_CLIENT_LEFT) {
        c->log_outcome = LOG_ABANDONED;
    }
    uint32_t gen = c->gen;
    long next = call_int(e->on_connect, Py_BuildValue("(liid)", conn_cid(c), t, err, secs));
    if (c->gen != gen || c->state == ST_FREE) return; /* Python ended it (abort) */
    if (err == 0) return;
    if (err == -1 || next < 0 || next >= e->n_targets) {
        conn_end(e, c, 0);
        return;
    }
    start_connect(e, c, next);
}

/* Start a non-blocking connect to target ``tg``, registered in the epoll set under ``tagv``; its connect
 * deadline is set on ``dl`` (started at ``dl->cstart``). 0 with *fdp set, or the errno of an immediate
 * failure (nothing left open). */
int open_connect(Engine *e, target_t *tg, uint64_t tagv, conn_t *dl, int *fdp) {
    int fd = socket(tg->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return errno;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    int err = 0;
    if (connect(fd, (struct sockaddr *)&tg->addr, tg->len) < 0 && errno != EINPROGRESS) err = errno;
    struct epoll_event ev = {EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, {.u64 = tagv}};
    if (!err && epoll_ctl(e->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) err = errno;
    if (err) {
        close(fd);
        return err;
    }
    *fdp = fd;
    if (e->connect_timeout > 0.0) dl_add(e, dl, dl->cstart + e->connect_timeout);
    return 0; /* EPOLLOUT (or an error) says how it went */
}

void start_connect(Engine *e, conn_t *c, long target) {
    for (;;) {
        target_t *tg = &e->targets[target];
        c->target = (int)target;
        c->state = ST_CONNECTING;
        c->cstart = mono();
        c->u.flags = 0;
        int err = open_connect(e, tg, tag(c, 1), c, &c->u.fd);
        if (!err) return;
        /* failed at once: ask Python for the next member, without recursion */
        double secs = mono() - c->cstart;
        uint32_t gen = c->gen;
        long next = call_int(e->on_connect, Py_BuildValue("(liid)", conn_cid(c), c->target, err, secs));
        if (c->gen != gen || c->state == ST_FREE) return;
        if (next < 0 || next >= e->n_targets) {
            conn_end(e, c, 0);
            return;
        }
        target = next;
    }
}

void link_pair(conn_t *c, conn_t *u) {
    c->link = u;
    c->link_gen = u->gen;
    u->link = c;
    u->link_gen = c->gen;
}

void pool_unlink(Engine *e, conn_t *u) {
    target_t *tg = &e->targets[u->target];
    for (conn_t **pp = &tg->idle; *pp; pp = &(*pp)->pool_next) {
        if (*pp == u) {
            *pp = u->pool_next;
            tg->n_idle--;
            break;
        }
    }
    u->pool_next = NULL;
    u->hs = US_BUSY;
}


void pool_put(Engine *e, conn_t *u) {
    target_t *tg = &e->targets[u->target];
    u->link = NULL;
    dl_remove(e, u);
    if (u->hf & H_COUNTED) tg->closed++;
    u->hf &= ~H_COUNTED;
    if (tg->n_idle >= POOL_PER_TARGET || e->draining) {
        conn_end(e, u, 0);
        return;
    }
    u->hs = US_IDLE;
    u->hf = H_REUSED;
    u->in.off = u->in.len = u->in.scanned = 0;
    h_release(u);
    u->pool_next = tg->idle;
    tg->idle = u;
    tg->n_idle++;
}

/* A Python int with bit t set for every target t with an idle pooled connection, for any number of targets
 * (one machine word for the usual group; a byte string turned into an int past 64). */
PyObject *pooled_mask(Engine *e) {
    int n = e->n_targets;
    if (n <= 64) {
        unsigned long long m = 0;
        for (int t = 0; t < n; t++)
            if (e->targets[t].idle) m |= 1ULL << t;
        return PyLong_FromUnsignedLongLong(m);
    }
    size_t nb = ((size_t)n + 7) / 8;
    unsigned char *b = PyMem_Calloc(nb, 1);
    if (!b) return PyErr_NoMemory();
    for (int t = 0; t < n; t++)
        if (e->targets[t].idle) b[t >> 3] |= (unsigned char)(1u << (t & 7));
    PyObject *r = _PyLong_FromByteArray(b, nb, 1, 0);
    PyMem_Free(b);
    return r;
}

/* What an epoll event says of a connect in progress on ``fd``: 0 — nothing yet; 1 — it ended, with ``*err``
 * 0 (connected) or the errno it failed with (a hang-up without an error reads as ECONNRESET). */
int connect_outcome(int fd, uint32_t ev, int *err) {
    *err = 0;
    if (ev & (EPOLLERR | EPOLLHUP)) {
        socklen_t len = sizeof *err;
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, err, &len) < 0) *err = errno;
        if (*err == 0) *err = ECONNRESET;
        return 1;
    }
    return (ev & EPOLLOUT) ? 1 : 0;
}
