/* The connection table, clocks, deadlines and the timer, closing a connection. */
#include "engine.h"

double mono(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

double mono_coarse(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* --- connect deadlines ------------------------------------------------------------------------------ */

void dl_remove(Engine *e, conn_t *c) {
    if (c->deadline == 0.0) return;
    conn_t **head = c->rd ? &e->rd_head : &e->dl_head, **tail = c->rd ? &e->rd_tail : &e->dl_tail;
    if (c->dl_prev) c->dl_prev->dl_next = c->dl_next; else *head = c->dl_next;
    if (c->dl_next) c->dl_next->dl_prev = c->dl_prev; else *tail = c->dl_prev;
    c->dl_prev = c->dl_next = NULL;
    c->deadline = 0.0;
    c->rd = 0;
}

void arm_timer(Engine *e, double at) {
    struct itimerspec its;
    memset(&its, 0, sizeof its);
    if (at > 0.0) {
        its.it_value.tv_sec = (time_t)at;
        its.it_value.tv_nsec = (long)((at - (double)(time_t)at) * 1e9);
        if (its.it_value.tv_sec == 0 && its.it_value.tv_nsec == 0) its.it_value.tv_nsec = 1;
    }
    timerfd_settime(e->tfd, TFD_TIMER_ABSTIME, &its, NULL);
    e->timer_at = at;
}

void dl_add(Engine *e, conn_t *c, double deadline) {
    c->deadline = deadline;
    c->dl_next = NULL;
    c->dl_prev = e->dl_tail;
    if (e->dl_tail) e->dl_tail->dl_next = c; else e->dl_head = c;
    e->dl_tail = c;
    /* the timer only moves earlier here; it is re-armed lazily when it fires */
    if (e->timer_at == 0.0 || deadline < e->timer_at) arm_timer(e, deadline);
}

/* HTTP: the request on member connection u is complete; its answer's first byte is due within the read
 * timeout. One list in send order (every entry waits the same timeout, so the head is due first). */
void rd_add(Engine *e, conn_t *u) {
    dl_remove(e, u);
    u->sent = mono();
    u->rd = 1;
    u->deadline = u->sent + e->read_timeout;
    u->dl_next = NULL;
    u->dl_prev = e->rd_tail;
    if (e->rd_tail) e->rd_tail->dl_next = u; else e->rd_head = u;
    e->rd_tail = u;
    if (e->timer_at == 0.0 || u->deadline < e->timer_at) arm_timer(e, u->deadline);
}

/* --- connection slots ------------------------------------------------------------------------------- */

conn_t *conn_new(Engine *e) {
    uint32_t id;
    if (e->n_free) {
        id = e->free_ids[--e->n_free];
    } else {
        if (e->n_used == e->cap) {
            uint32_t ncap = e->cap ? e->cap * 2 : 256;
            conn_t **nc = PyMem_Realloc(e->conns, ncap * sizeof *nc);
            uint32_t *nf = PyMem_Realloc(e->free_ids, ncap * sizeof *nf);
            if (!nc || !nf) {
                if (nc) e->conns = nc;
                if (nf) e->free_ids = nf;
                return NULL;
            }
            for (uint32_t i = e->cap; i < ncap; i++) nc[i] = NULL;
            e->conns = nc;
            e->free_ids = nf;
            e->cap = ncap;
        }
        id = e->n_used++;
    }
    conn_t *c = e->conns[id];
    if (c == NULL) {
        c = PyMem_Calloc(1, sizeof *c);
        if (!c) {
            e->free_ids[e->n_free++] = id;
            return NULL;
        }
        e->conns[id] = c;
        c->id = id;
    }
    uint32_t gen = c->gen + 1;
    memset(((char *)c) + offsetof(conn_t, state), 0, sizeof *c - offsetof(conn_t, state));
    c->gen = gen;
    c->c.fd = c->u.fd = -1;
    c->target = -1;
    return c;
}

conn_t *conn_get(Engine *e, long cid) {
    if (cid < 0) return NULL;
    uint32_t id = (uint32_t)(cid & 0xFFFFFFFF), gen = (uint32_t)(cid >> 32);
    if (id >= e->n_used) return NULL;
    conn_t *c = e->conns[id];
    if (!c || c->state == ST_FREE || c->gen != gen) return NULL;
    return c;
}

void close_fd(int fd, int reset) {
    if (fd < 0) return;
    if (reset) {
        struct linger lg = {1, 0};
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    }
    close(fd);
}

/* --- access log records ----------------------------------------------------------------------------
 *
 * Only while an access log is on (``set_access_log(capacity)``; ``e->log`` NULL otherwise: one branch per
 * connection or request, nothing else): one fixed-size record per L4 connection (at its end) and per L7
 * request the fast path served (answered, failed or cut), appended here and taken by Python with
 * ``take_log()`` (every 100 ms; accesslog.py's ENGINE_RECORD is this layout and is checked against
 * LOG_RECORD_SIZE and LOG_REQ_MAX at import). A full buffer counts the record as dropped. Requests handed
 * to http.py are logged there.
 */

void conn_end(Engine *e, conn_t *c, int reset) {
    if (e->log && c->state != ST_FREE) {
        if (c->kind == K_PAIR) log_l4(e, c, reset);
        else if (c->kind == K_CLIENT && c->log_open) log_l7(e, c, 0, (c->hf & H_STARTED) ? LOG_RESET : LOG_ABANDONED);
    }
    dl_remove(e, c);
    if (c->kind == K_UP && c->hs == US_IDLE) pool_unlink(e, c);
    if (c->kind == K_UP && (c->hf & H_COUNTED) && c->target >= 0) e->targets[c->target].closed++;
    close_fd(c->c.fd, reset);
    close_fd(c->u.fd, reset);
    PyMem_Free(c->c.buf);
    PyMem_Free(c->u.buf);
    PyMem_Free(c->in.p);
    PyMem_Free(c->req.p);
    c->in.p = c->req.p = NULL;
    c->c.buf = c->u.buf = NULL;
    c->c.fd = c->u.fd = -1;
    if (c->kind == K_PAIR && c->state == ST_RELAY && c->target >= 0 && c->target < e->n_targets)
        e->targets[c->target].closed++;
    if (c->kind != K_UP) e->active--;
    c->state = ST_FREE;
    c->gen++;
    e->free_ids[e->n_free++] = c->id;
}

/* --- Python callbacks ------------------------------------------------------------------------------- */

long call_int(PyObject *fn, PyObject *args) {
    if (!fn) { /* cleared by the garbage collector: the engine is going away */
        Py_XDECREF(args);
        return -1;
    }
    if (!args) {
        PyErr_WriteUnraisable(fn);
        return -1;
    }
    PyObject *r = PyObject_Call(fn, args, NULL);
    Py_DECREF(args);
    if (!r) {
        PyErr_WriteUnraisable(fn);
        return -1;
    }
    long v = PyLong_Check(r) ? PyLong_AsLong(r) : -1;
    Py_DECREF(r);
    if (v == -1 && PyErr_Occurred()) {
        PyErr_WriteUnraisable(fn);
        return -1;
    }
    return v;
}

void on_timer(Engine *e) {
    uint64_t x;
    if (read(e->tfd, &x, sizeof x) < 0) { /* EAGAIN: nothing to do */ }
    e->timer_at = 0.0;
    double now = mono();
    while (e->dl_head && e->dl_head->deadline <= now) {
        conn_t *c = e->dl_head;
        if (c->kind == K_UP) {
            h_connect_done(e, c, ETIMEDOUT);
            continue;
        }
        close(c->u.fd);
        c->u.fd = -1;
        connect_done(e, c, ETIMEDOUT);
    }
    while (e->rd_head && e->rd_head->deadline <= now) h_stalled(e, e->rd_head);
    double at = e->dl_head ? e->dl_head->deadline : 0.0;
    if (e->rd_head && (at == 0.0 || e->rd_head->deadline < at)) at = e->rd_head->deadline;
    if (at > 0.0) arm_timer(e, at);
}
