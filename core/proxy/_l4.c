/* Balance Desk's native L4 data plane (Linux): accept, connect and relay bytes in C; decide in Python.
 *
 * The Python L4 shell (tcp.py) spends most of a short connection's cost in the event loop's transport and
 * protocol machinery, not in the decision. This engine keeps the decisions (which member, what a failure
 * means, health, events) in Python and does the rest the way nginx's stream module does: one epoll set of
 * its own, edge-triggered, every socket registered once (no epoll_ctl per read or write), a send attempted
 * straight after each receive, and a copy kept only of what the peer's socket buffer could not take.
 *
 * It shares the Python event loop's thread: the loop watches the engine's epoll fd (``loop.add_reader(
 * engine.fileno(), engine.run)``) and ``run`` handles whatever is ready. Python is called back twice per
 * connection: ``on_accept(cid) -> member index | -1`` and ``on_connect(cid, member, errno, seconds) ->
 * next member index | -1`` (errno 0: connected; -1: the client went away while connecting). Counters
 * (bytes, closes, first-byte latencies) accumulate per member index and are taken by ``collect()``.
 *
 * Semantics kept from tcp.py: connect bounded by the connect timeout (a timerfd armed for the earliest
 * deadline), flow control (a side whose peer cannot take more is not read), half-close passed through
 * (EOF → shutdown(SHUT_WR) on the other side once its backlog is written), a reset passed on as a reset,
 * an idle timeout (``sweep``), a connection cap (excess closed at once and counted), EMFILE survived
 * (accepting pauses until the next ``sweep``).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define SCRATCH (64 * 1024)
#define MAX_EVENTS 256
#define MAX_LISTENERS 8
#define MAX_SAMPLES 1024 /* first-byte latencies kept between two collects (a member keeps 512) */

#define TAG_TIMER 0xFFFFFFFEu
#define TAG_LISTEN 0xFFFFFF00u /* + listener index */

enum { ST_FREE = 0, ST_CONNECTING = 1, ST_RELAY = 2 };

/* side flags */
#define F_READABLE 0x01u /* an edge said data (or EOF) may be waiting and we have not seen EAGAIN */
#define F_WRITABLE 0x02u
#define F_EOF 0x04u      /* recv returned 0 */
#define F_SHUT 0x08u     /* we shut down writing to this side */
#define F_RDHUP 0x10u    /* the peer half-closed: read until 0 even after a short read */

typedef struct {
    int fd;
    unsigned flags;
    char *buf; /* bytes not yet written to this side */
    size_t off, len;
} side_t;

typedef struct conn {
    uint32_t id, gen;
    int state;
    int target;
    side_t c, u;
    double t0;          /* accepted (CLOCK_MONOTONIC seconds) */
    double cstart;      /* current connect started */
    double deadline;    /* current connect's deadline (0: none) */
    double last;        /* last byte either way (coarse) */
    int first_pending;  /* 1 until the first member → client byte */
    struct conn *dl_prev, *dl_next;
    struct sockaddr_storage peer;
    socklen_t peerlen;
} conn_t;

typedef struct {
    struct sockaddr_storage addr;
    socklen_t len;
    unsigned long long d_in, d_out, closed;
} target_t;

typedef struct {
    PyObject_HEAD
    int epfd, tfd;
    double timer_at;
    conn_t **conns;
    uint32_t cap, n_used;
    uint32_t *free_ids;
    uint32_t n_free;
    long active; /* conns alive (connecting or relaying) */
    long max_conns;
    double connect_timeout; /* seconds; 0 = none */
    int listeners[MAX_LISTENERS];
    int n_listeners;
    int accept_paused;
    target_t *targets;
    int n_targets, targets_cap;
    conn_t *dl_head, *dl_tail; /* connects in progress with a deadline, in start order */
    PyObject *on_accept, *on_connect;
    unsigned long long refused, accept_errors;
    double samples_t[MAX_SAMPLES];
    int samples_i[MAX_SAMPLES];
    int n_samples;
    unsigned long long samples_dropped;
    char scratch[SCRATCH];
} Engine;

static double mono(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double mono_coarse(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static inline uint64_t tag(conn_t *c, int upstream) {
    return ((uint64_t)c->gen << 32) | ((uint64_t)c->id << 1) | (uint64_t)upstream;
}

/* --- connect deadlines ------------------------------------------------------------------------------ */

static void dl_remove(Engine *e, conn_t *c) {
    if (c->deadline == 0.0) return;
    if (c->dl_prev) c->dl_prev->dl_next = c->dl_next; else e->dl_head = c->dl_next;
    if (c->dl_next) c->dl_next->dl_prev = c->dl_prev; else e->dl_tail = c->dl_prev;
    c->dl_prev = c->dl_next = NULL;
    c->deadline = 0.0;
}

static void arm_timer(Engine *e, double at) {
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

static void dl_add(Engine *e, conn_t *c, double deadline) {
    c->deadline = deadline;
    c->dl_next = NULL;
    c->dl_prev = e->dl_tail;
    if (e->dl_tail) e->dl_tail->dl_next = c; else e->dl_head = c;
    e->dl_tail = c;
    /* the timer only moves earlier here; it is re-armed lazily when it fires */
    if (e->timer_at == 0.0 || deadline < e->timer_at) arm_timer(e, deadline);
}

/* --- connection slots ------------------------------------------------------------------------------- */

static conn_t *conn_new(Engine *e) {
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

static conn_t *conn_get(Engine *e, long cid) {
    if (cid < 0) return NULL;
    uint32_t id = (uint32_t)(cid & 0xFFFFFFFF), gen = (uint32_t)(cid >> 32);
    if (id >= e->n_used) return NULL;
    conn_t *c = e->conns[id];
    if (!c || c->state == ST_FREE || c->gen != gen) return NULL;
    return c;
}

static inline long conn_cid(conn_t *c) { return (long)(((uint64_t)c->gen << 32) | c->id); }

static void close_fd(int fd, int reset) {
    if (fd < 0) return;
    if (reset) {
        struct linger lg = {1, 0};
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    }
    close(fd);
}

/* End a connection: both sockets closed (with a reset if ``reset``), counters to its member. */
static void conn_end(Engine *e, conn_t *c, int reset) {
    dl_remove(e, c);
    close_fd(c->c.fd, reset);
    close_fd(c->u.fd, reset);
    PyMem_Free(c->c.buf);
    PyMem_Free(c->u.buf);
    c->c.buf = c->u.buf = NULL;
    c->c.fd = c->u.fd = -1;
    if (c->state == ST_RELAY && c->target >= 0 && c->target < e->n_targets) e->targets[c->target].closed++;
    c->state = ST_FREE;
    c->gen++;
    e->free_ids[e->n_free++] = c->id;
    e->active--;
}

/* --- Python callbacks ------------------------------------------------------------------------------- */

static long call_int(PyObject *fn, PyObject *args) {
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

static void start_connect(Engine *e, conn_t *c, long target);

/* A connect attempt ended (err 0 = connected). Python says what next. */
static void connect_done(Engine *e, conn_t *c, int err) {
    int t = c->target;
    double secs = mono() - c->cstart;
    dl_remove(e, c);
    if (err == 0) {
        c->state = ST_RELAY;
        c->first_pending = 1;
        c->last = mono_coarse();
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

static void start_connect(Engine *e, conn_t *c, long target) {
    for (;;) {
        target_t *tg = &e->targets[target];
        c->target = (int)target;
        c->state = ST_CONNECTING;
        c->cstart = mono();
        c->u.flags = 0;
        int fd = socket(tg->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        int err = 0;
        if (fd < 0) {
            err = errno;
        } else {
            int one = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            if (connect(fd, (struct sockaddr *)&tg->addr, tg->len) < 0 && errno != EINPROGRESS) err = errno;
        }
        if (err == 0) {
            struct epoll_event ev = {EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, {.u64 = 0}};
            c->u.fd = fd;
            ev.data.u64 = tag(c, 1);
            if (epoll_ctl(e->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
                err = errno;
                close(fd);
                c->u.fd = -1;
            } else {
                if (e->connect_timeout > 0.0) dl_add(e, c, c->cstart + e->connect_timeout);
                return; /* EPOLLOUT (or an error) says how it went */
            }
        } else if (fd >= 0) {
            close(fd);
        }
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

/* --- relay ------------------------------------------------------------------------------------------ */

/* Write dst's backlog. Returns 0 when it is empty, 1 when some is left, -1 on error. */
static int flush(side_t *dst) {
    while (dst->len) {
        ssize_t w = send(dst->fd, dst->buf + dst->off, dst->len, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                dst->flags &= ~F_WRITABLE;
                return 1;
            }
            if (errno == EINTR) continue;
            return -1;
        }
        dst->off += (size_t)w;
        dst->len -= (size_t)w;
    }
    PyMem_Free(dst->buf);
    dst->buf = NULL;
    dst->off = 0;
    return 0;
}

/* Move bytes src → dst until src has none ready or dst is full. Returns -1 on an error (reset). */
static int pump(Engine *e, conn_t *c, side_t *src, side_t *dst, int down) {
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
                size_t left = (size_t)n - done;
                dst->buf = PyMem_Malloc(left);
                if (!dst->buf) return -1;
                memcpy(dst->buf, e->scratch + done, left);
                dst->off = 0;
                dst->len = left;
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

static void relay(Engine *e, conn_t *c) {
    double now = mono_coarse();
    c->last = now;
    if (pump(e, c, &c->c, &c->u, 0) < 0 || pump(e, c, &c->u, &c->c, 1) < 0) {
        conn_end(e, c, 1);
        return;
    }
    if ((c->c.flags & F_EOF) && (c->u.flags & F_EOF) && (c->c.flags & F_SHUT) && (c->u.flags & F_SHUT))
        conn_end(e, c, 0);
}

/* --- events ----------------------------------------------------------------------------------------- */

static void accept_some(Engine *e, int lfd) {
    for (int i = 0; i < 64; i++) {
        struct sockaddr_storage peer;
        socklen_t plen = sizeof peer;
        int fd = accept4(lfd, (struct sockaddr *)&peer, &plen, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) return;
            if (errno == EINTR || errno == ECONNABORTED) continue;
            e->accept_errors++;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                for (int k = 0; k < e->n_listeners; k++) epoll_ctl(e->epfd, EPOLL_CTL_DEL, e->listeners[k], NULL);
                e->accept_paused = 1; /* sweep() resumes */
            }
            return;
        }
        if (e->active >= e->max_conns) {
            e->refused++;
            close(fd);
            continue;
        }
        conn_t *c = conn_new(e);
        if (!c) {
            e->refused++;
            close(fd);
            continue;
        }
        e->active++;
        c->state = ST_CONNECTING;
        c->c.fd = fd;
        c->t0 = mono();
        memcpy(&c->peer, &peer, plen);
        c->peerlen = plen;
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct epoll_event ev = {EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, {.u64 = tag(c, 0)}};
        if (epoll_ctl(e->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
            e->accept_errors++;
            conn_end(e, c, 0);
            continue;
        }
        uint32_t gen = c->gen;
        long t = call_int(e->on_accept, Py_BuildValue("(l)", conn_cid(c)));
        if (c->gen == gen && c->state != ST_FREE) {
            if (t < 0 || t >= e->n_targets) conn_end(e, c, 0);
            else start_connect(e, c, t);
        }
        if (e->accept_paused || e->n_listeners == 0) return; /* Python stopped accepting meanwhile */
    }
}

static void on_timer(Engine *e) {
    uint64_t x;
    if (read(e->tfd, &x, sizeof x) < 0) { /* EAGAIN: nothing to do */ }
    e->timer_at = 0.0;
    double now = mono();
    while (e->dl_head && e->dl_head->deadline <= now) {
        conn_t *c = e->dl_head;
        close(c->u.fd);
        c->u.fd = -1;
        connect_done(e, c, ETIMEDOUT);
    }
    if (e->dl_head) arm_timer(e, e->dl_head->deadline);
}

static void on_conn_event(Engine *e, uint64_t data, uint32_t ev) {
    uint32_t id = (uint32_t)((data >> 1) & 0x7FFFFFFF), gen = (uint32_t)(data >> 32);
    int upstream = (int)(data & 1);
    if (id >= e->n_used) return;
    conn_t *c = e->conns[id];
    if (!c || c->gen != gen || c->state == ST_FREE) return; /* stale: ended earlier in this batch */
    side_t *s = upstream ? &c->u : &c->c;
    if (ev & (EPOLLIN | EPOLLHUP | EPOLLERR)) s->flags |= F_READABLE;
    if (ev & EPOLLRDHUP) s->flags |= F_RDHUP | F_READABLE;
    if (ev & (EPOLLOUT | EPOLLHUP | EPOLLERR)) s->flags |= F_WRITABLE;
    if (c->state == ST_CONNECTING) {
        if (!upstream) {
            if (ev & (EPOLLHUP | EPOLLERR)) { /* the client went away while its connect was in progress */
                int t = c->target;
                dl_remove(e, c);
                close_fd(c->u.fd, 1);
                c->u.fd = -1;
                c->target = t;
                connect_done(e, c, -1);
            }
            return;
        }
        int err = 0;
        if (ev & (EPOLLERR | EPOLLHUP)) {
            socklen_t len = sizeof err;
            if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) err = errno;
            if (err == 0) err = ECONNRESET;
        } else if (!(ev & EPOLLOUT)) {
            return;
        }
        if (err) {
            close(c->u.fd);
            c->u.fd = -1;
            connect_done(e, c, err);
            return;
        }
        connect_done(e, c, 0);
        if (c->gen != gen || c->state != ST_RELAY) return;
    } else if (ev & EPOLLERR) { /* a reset (or another socket error): pass it on as a reset */
        conn_end(e, c, 1);
        return;
    }
    relay(e, c);
}

static PyObject *Engine_run(Engine *e, PyObject *Py_UNUSED(ignored)) {
    struct epoll_event evs[MAX_EVENTS];
    for (int round = 0; round < 4; round++) {
        int n = epoll_wait(e->epfd, evs, MAX_EVENTS, 0);
        if (n <= 0) break;
        for (int i = 0; i < n; i++) {
            uint64_t d = evs[i].data.u64;
            if (d == TAG_TIMER) {
                on_timer(e);
            } else if ((d >> 8) == (TAG_LISTEN >> 8) && (d >> 32) == 0) {
                int k = (int)(d & 0xFF);
                if (k < e->n_listeners && !e->accept_paused) accept_some(e, e->listeners[k]);
            } else {
                on_conn_event(e, d, evs[i].events);
            }
        }
        if (n < MAX_EVENTS) break;
    }
    Py_RETURN_NONE;
}

/* --- Python API ------------------------------------------------------------------------------------- */

static int Engine_init(Engine *e, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"on_accept", "on_connect", "max_connections", "connect_timeout", NULL};
    PyObject *on_accept, *on_connect;
    long max_conns = 10000;
    double ct = 0.0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OO|ld", kwlist, &on_accept, &on_connect, &max_conns, &ct))
        return -1;
    if (!PyCallable_Check(on_accept) || !PyCallable_Check(on_connect)) {
        PyErr_SetString(PyExc_TypeError, "on_accept and on_connect must be callable");
        return -1;
    }
    if (e->epfd > 0) {
        PyErr_SetString(PyExc_RuntimeError, "Engine already initialised");
        return -1;
    }
    e->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (e->epfd < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    e->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (e->tfd < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    struct epoll_event ev = {EPOLLIN, {.u64 = TAG_TIMER}};
    if (epoll_ctl(e->epfd, EPOLL_CTL_ADD, e->tfd, &ev) < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    Py_INCREF(on_accept);
    Py_INCREF(on_connect);
    e->on_accept = on_accept;
    e->on_connect = on_connect;
    e->max_conns = max_conns;
    e->connect_timeout = ct > 0.0 ? ct : 0.0;
    return 0;
}

static PyObject *Engine_new(PyTypeObject *type, PyObject *args, PyObject *kw) {
    Engine *e = (Engine *)type->tp_alloc(type, 0);
    if (e) {
        e->epfd = -1;
        e->tfd = -1;
    }
    return (PyObject *)e;
}

static void engine_close_all(Engine *e, int reset) {
    for (uint32_t i = 0; i < e->n_used; i++) {
        conn_t *c = e->conns[i];
        if (c && c->state != ST_FREE) conn_end(e, c, reset);
    }
}

/* The engine holds its callbacks (bound methods of the Python object that holds the engine): a cycle the
 * garbage collector must be able to see and break. */
static int Engine_traverse(Engine *e, visitproc visit, void *arg) {
    Py_VISIT(e->on_accept);
    Py_VISIT(e->on_connect);
    return 0;
}

static int Engine_clear(Engine *e) {
    Py_CLEAR(e->on_accept);
    Py_CLEAR(e->on_connect);
    return 0;
}

static void Engine_dealloc(Engine *e) {
    PyObject_GC_UnTrack(e);
    if (e->conns) {
        engine_close_all(e, 1);
        for (uint32_t i = 0; i < e->cap; i++) PyMem_Free(e->conns[i]);
        PyMem_Free(e->conns);
    }
    PyMem_Free(e->free_ids);
    PyMem_Free(e->targets);
    if (e->tfd >= 0) close(e->tfd);
    if (e->epfd >= 0) close(e->epfd);
    Engine_clear(e);
    Py_TYPE(e)->tp_free((PyObject *)e);
}

static PyObject *Engine_fileno(Engine *e, PyObject *Py_UNUSED(ignored)) { return PyLong_FromLong(e->epfd); }

static PyObject *Engine_add_listener(Engine *e, PyObject *arg) {
    int fd = (int)PyLong_AsLong(arg);
    if (fd == -1 && PyErr_Occurred()) return NULL;
    if (e->n_listeners >= MAX_LISTENERS) {
        PyErr_SetString(PyExc_ValueError, "too many listeners");
        return NULL;
    }
    int k = e->n_listeners;
    struct epoll_event ev = {EPOLLIN, {.u64 = TAG_LISTEN + (uint32_t)k}};
    if (!e->accept_paused && epoll_ctl(e->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) return PyErr_SetFromErrno(PyExc_OSError);
    e->listeners[e->n_listeners++] = fd;
    Py_RETURN_NONE;
}

/* Stop accepting (graceful stop): the listeners leave the epoll set before Python closes them. */
static PyObject *Engine_stop_accepting(Engine *e, PyObject *Py_UNUSED(ignored)) {
    if (!e->accept_paused)
        for (int k = 0; k < e->n_listeners; k++) epoll_ctl(e->epfd, EPOLL_CTL_DEL, e->listeners[k], NULL);
    e->n_listeners = 0;
    e->accept_paused = 0;
    Py_RETURN_NONE;
}

static PyObject *Engine_add_target(Engine *e, PyObject *args) {
    const char *host;
    int port;
    if (!PyArg_ParseTuple(args, "si", &host, &port)) return NULL;
    if (port <= 0 || port > 65535) {
        PyErr_Format(PyExc_ValueError, "port out of range: %d", port);
        return NULL;
    }
    target_t t;
    memset(&t, 0, sizeof t);
    struct sockaddr_in *a4 = (struct sockaddr_in *)&t.addr;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&t.addr;
    if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)port);
        t.len = sizeof *a4;
    } else if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)port);
        t.len = sizeof *a6;
    } else {
        PyErr_Format(PyExc_ValueError, "not a numeric IP address: %s", host);
        return NULL;
    }
    if (e->n_targets == e->targets_cap) {
        int ncap = e->targets_cap ? e->targets_cap * 2 : 16;
        target_t *nt = PyMem_Realloc(e->targets, (size_t)ncap * sizeof *nt);
        if (!nt) return PyErr_NoMemory();
        e->targets = nt;
        e->targets_cap = ncap;
    }
    e->targets[e->n_targets] = t;
    return PyLong_FromLong(e->n_targets++);
}

static PyObject *Engine_set_connect_timeout(Engine *e, PyObject *arg) {
    double v = PyFloat_AsDouble(arg);
    if (v == -1.0 && PyErr_Occurred()) return NULL;
    e->connect_timeout = v > 0.0 ? v : 0.0;
    Py_RETURN_NONE;
}


static PyObject *Engine_peer(Engine *e, PyObject *arg) {
    long cid = PyLong_AsLong(arg);
    if (cid == -1 && PyErr_Occurred()) return NULL;
    conn_t *c = conn_get(e, cid);
    if (!c) Py_RETURN_NONE;
    char buf[INET6_ADDRSTRLEN];
    if (c->peer.ss_family == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)&c->peer;
        inet_ntop(AF_INET, &a->sin_addr, buf, sizeof buf);
        return Py_BuildValue("(si)", buf, ntohs(a->sin_port));
    }
    if (c->peer.ss_family == AF_INET6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&c->peer;
        inet_ntop(AF_INET6, &a->sin6_addr, buf, sizeof buf);
        return Py_BuildValue("(siii)", buf, ntohs(a->sin6_port), 0, 0);
    }
    Py_RETURN_NONE;
}

/* End connections: every one (target -1) or those relayed to one member; with a reset. */
static PyObject *Engine_abort(Engine *e, PyObject *arg) {
    long t = PyLong_AsLong(arg);
    if (t == -1 && PyErr_Occurred()) return NULL;
    long n = 0;
    for (uint32_t i = 0; i < e->n_used; i++) {
        conn_t *c = e->conns[i];
        if (!c || c->state == ST_FREE) continue;
        if (t >= 0 && !(c->state == ST_RELAY && c->target == t)) continue;
        conn_end(e, c, 1);
        n++;
    }
    return PyLong_FromLong(n);
}


/* Idle timeout (no byte either way for ``idle`` seconds: reset both sides) and resuming accepts
 * paused by EMFILE. Returns the number of idle connections ended. */
static PyObject *Engine_sweep(Engine *e, PyObject *arg) {
    double idle = PyFloat_AsDouble(arg);
    if (idle == -1.0 && PyErr_Occurred()) return NULL;
    if (e->accept_paused) {
        e->accept_paused = 0;
        for (int k = 0; k < e->n_listeners; k++) {
            struct epoll_event ev = {EPOLLIN, {.u64 = TAG_LISTEN + (uint32_t)k}};
            epoll_ctl(e->epfd, EPOLL_CTL_ADD, e->listeners[k], &ev);
        }
    }
    long n = 0;
    if (idle > 0.0) {
        double now = mono_coarse();
        for (uint32_t i = 0; i < e->n_used; i++) {
            conn_t *c = e->conns[i];
            if (c && c->state == ST_RELAY && now - c->last >= idle) {
                conn_end(e, c, 1);
                n++;
            }
        }
    }
    return PyLong_FromLong(n);
}

/* Counters since the last call: ([(member, bytes_in, bytes_out, closed), ...], [(member, seconds), ...],
 * refused, accept_errors, samples_dropped). */
static PyObject *Engine_collect(Engine *e, PyObject *Py_UNUSED(ignored)) {
    PyObject *per = PyList_New(0), *lat = PyList_New(e->n_samples);
    if (!per || !lat) goto fail;
    for (int t = 0; t < e->n_targets; t++) {
        target_t *tg = &e->targets[t];
        if (!(tg->d_in | tg->d_out | tg->closed)) continue;
        PyObject *row = Py_BuildValue("(iKKK)", t, tg->d_in, tg->d_out, tg->closed);
        if (!row || PyList_Append(per, row) < 0) {
            Py_XDECREF(row);
            goto fail;
        }
        Py_DECREF(row);
        tg->d_in = tg->d_out = tg->closed = 0;
    }
    for (int i = 0; i < e->n_samples; i++) {
        PyObject *row = Py_BuildValue("(id)", e->samples_i[i], e->samples_t[i]);
        if (!row) goto fail;
        PyList_SET_ITEM(lat, i, row);
    }
    e->n_samples = 0;
    PyObject *out = Py_BuildValue("(NNKKK)", per, lat, e->refused, e->accept_errors, e->samples_dropped);
    e->refused = e->accept_errors = e->samples_dropped = 0;
    return out;
fail:
    Py_XDECREF(per);
    Py_XDECREF(lat);
    return NULL;
}

static PyObject *Engine_close(Engine *e, PyObject *Py_UNUSED(ignored)) {
    if (e->conns) engine_close_all(e, 1);
    Py_RETURN_NONE;
}

static PyMethodDef Engine_methods[] = {
    {"run", (PyCFunction)Engine_run, METH_NOARGS, "Handle what is ready (the loop's reader callback)."},
    {"fileno", (PyCFunction)Engine_fileno, METH_NOARGS, "The epoll fd the event loop watches."},
    {"add_listener", (PyCFunction)Engine_add_listener, METH_O, "Accept on a listening, non-blocking socket fd."},
    {"stop_accepting", (PyCFunction)Engine_stop_accepting, METH_NOARGS, "Forget the listeners."},
    {"add_target", (PyCFunction)Engine_add_target, METH_VARARGS, "add_target(ip, port) -> member index"},
    {"set_connect_timeout", (PyCFunction)Engine_set_connect_timeout, METH_O, "Seconds; 0 = none."},
    {"peer", (PyCFunction)Engine_peer, METH_O, "The client address of a connection, or None."},
    {"abort", (PyCFunction)Engine_abort, METH_O, "abort(member) resets its connections; -1: all."},
    {"sweep", (PyCFunction)Engine_sweep, METH_O, "sweep(idle_seconds) -> idle connections ended."},
    {"collect", (PyCFunction)Engine_collect, METH_NOARGS, "Counters since the last call."},
    {"close", (PyCFunction)Engine_close, METH_NOARGS, "Reset every connection."},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef Engine_members[] = {
    {"active", T_LONG, offsetof(Engine, active), READONLY, "connections alive (connecting or relaying)"},
    {NULL, 0, 0, 0, NULL},
};

static PyTypeObject EngineType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "balancedesk.core.proxy._l4.Engine",
    .tp_basicsize = sizeof(Engine),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_traverse = (traverseproc)Engine_traverse,
    .tp_clear = (inquiry)Engine_clear,
    .tp_doc = "The native L4 data plane: accept, connect, relay; decisions by Python callbacks.",
    .tp_new = Engine_new,
    .tp_init = (initproc)Engine_init,
    .tp_dealloc = (destructor)Engine_dealloc,
    .tp_methods = Engine_methods,
    .tp_members = Engine_members,
};

static struct PyModuleDef l4module = {
    PyModuleDef_HEAD_INIT, "_l4", "Balance Desk's native L4 data plane (Linux epoll).", -1, NULL,
};

PyMODINIT_FUNC PyInit__l4(void) {
    if (PyType_Ready(&EngineType) < 0) return NULL;
    PyObject *m = PyModule_Create(&l4module);
    if (!m) return NULL;
    Py_INCREF(&EngineType);
    if (PyModule_AddObject(m, "Engine", (PyObject *)&EngineType) < 0) {
        Py_DECREF(&EngineType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
