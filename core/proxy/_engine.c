/* Balance Desk's native data plane (Linux): accept, connect and relay bytes in C; decide in Python.
 * L4 below; the L7 fast path (HTTP mode) in the HTTP section.
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

#define SCRATCH (64 * 1024) /* limits.IO_CHUNK_BYTES: exposed as _engine.IO_CHUNK_BYTES, checked by the tests */
#define MAX_HEADERS 100 /* limits.REQUEST_HEADERS_MAX, exposed under that name: more lines go to http.py */
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
    size_t off, len, cap;
} side_t;

typedef struct { /* bytes read and not consumed yet (HTTP heads, and what follows them) */
    char *p;
    size_t off, len, cap, scanned;
} hbuf_t;

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
    /* HTTP (kind K_CLIENT: one client connection; K_UP: one member connection, pooled between requests) */
    int kind;
    int hs;                   /* client: HS_*; member: US_* */
    unsigned hf;              /* H_* flags */
    struct conn *link;        /* client <-> member while a request is in flight */
    uint32_t link_gen;
    struct conn *pool_next;   /* member: next idle connection of the same target */
    hbuf_t in;                /* client: request heads (and what came with them); member: response head */
    hbuf_t req;               /* client: the request head to send (kept for a replay until answered) */
    long long body_left;      /* client: request body bytes still to forward */
    long long left;           /* member: response Content-Length left / chunk bytes left */
    int framing, cs;          /* member: FR_* and chunk parser state */
    int status;
    double head_t0;           /* client: when the request head began */
    char ip[INET6_ADDRSTRLEN];
    double sent;              /* member: when its request was complete (the read timeout runs from here) */
    int rd;                   /* the deadline list c is on: 0 connects (dl_*), 1 answers awaited (rd_*) */
    /* access log (see "access log records"): bytes each way of this connection (L4) / request (L7), seconds
     * to connect (L4) / to the answer's head (L7), the member the request went to, an L7 request not logged
     * yet, and an L4 outcome decided before the end */
    unsigned long long log_in, log_out;
    double log_first;
    int log_target, log_open, log_outcome;
} conn_t;

enum { K_PAIR = 0, K_CLIENT = 1, K_UP = 2 };
enum { HS_HEAD = 1, HS_ROUTE, HS_BODY, HS_WAIT };           /* client */
enum { US_CONNECTING = 1, US_IDLE, US_BUSY };                /* member connection */
enum { FR_NONE = 0, FR_CL, FR_CHUNKED, FR_CLOSE };
#define H_KEEP 0x01u      /* client: the request allows keep-alive */
#define H_HEADONLY 0x02u  /* HEAD */
#define H_IDEMP 0x04u     /* idempotent method */
#define H_STARTED 0x08u   /* client: the answer's head went to the client */
#define H_CLOSING 0x10u   /* client: close after the answer in flight; member: not reusable */
#define H_RETRIED 0x20u
#define H_LINGER 0x40u    /* client: answered and shut down for writing; reading until EOF */
#define H_REUSED 0x80u    /* member: taken from the pool */
#define H_UPKEEP 0x100u   /* member: its answer allows keep-alive */
#define H_WANTREAD 0x200u /* member: reading paused until the client's backlog drains */
#define H_COUNTED 0x400u  /* member: carries a request Python counted as active (closed++ when it ends) */
#define H_HASBODY 0x800u  /* client: the request has a body (not kept: it cannot be sent again) */
#define H_SERVED 0x1000u  /* client: a request was answered (later heads are timed from their first byte) */
/* on_fail codes (module constants FAIL_*, read by native.py) */
#define FAIL_ROUTING 0      /* every member tried failed, or none is enabled */
#define FAIL_BAD_ANSWER 2   /* the member answered garbage */
#define FAIL_IDLE 3         /* the client went idle while sending its body (no answer yet) */
#define FAIL_CLOSED 4       /* a pooled connection closed before answering; the request cannot be sent again */
#define FAIL_STALLED 5      /* no answer byte within the read timeout; the request cannot be sent again */
#define FAIL_CLOSED_FRESH 6 /* a fresh connection closed before answering; the request cannot be sent again */
/* on_connect's errno below 0 (module constants CONNECT_*) */
#define CONNECT_CLIENT_LEFT -1 /* the client went away while its connect was in progress */
#define CONNECT_UNANSWERED -2  /* L7: the member closed before answering the request it took */
#define CONNECT_STALLED -3     /* L7: the member sent no answer byte within the read timeout; may go on */

typedef struct {
    struct sockaddr_storage addr;
    socklen_t len;
    unsigned long long d_in, d_out, closed, failures;
    conn_t *idle; /* HTTP: idle member connections, most recently used first */
    int n_idle;
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
    conn_t *rd_head, *rd_tail; /* HTTP: member connections awaiting an answer's first byte, in send order */
    double read_timeout;       /* HTTP: seconds from a complete request to its answer's first byte */
    PyObject *on_accept, *on_connect;
    PyObject *on_request, *on_fail, *on_handoff; /* HTTP mode */
    int http;
    double head_timeout, linger;
    size_t head_limit, answer_head_limit;
    char affinity[64];
    size_t affinity_len;
    int draining;
    unsigned long long refused, accept_errors, accepted;
    double samples_t[MAX_SAMPLES];
    int samples_i[MAX_SAMPLES];
    int n_samples;
    unsigned long long samples_dropped;
    char scratch[SCRATCH];
    struct log_rec *log; /* access log records since the last take_log (NULL: no access log) */
    int log_n, log_cap;
    unsigned long long log_dropped;
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
    conn_t **head = c->rd ? &e->rd_head : &e->dl_head, **tail = c->rd ? &e->rd_tail : &e->dl_tail;
    if (c->dl_prev) c->dl_prev->dl_next = c->dl_next; else *head = c->dl_next;
    if (c->dl_next) c->dl_next->dl_prev = c->dl_prev; else *tail = c->dl_prev;
    c->dl_prev = c->dl_next = NULL;
    c->deadline = 0.0;
    c->rd = 0;
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

/* HTTP: the request on member connection u is complete; its answer's first byte is due within the read
 * timeout. One list in send order (every entry waits the same timeout, so the head is due first). */
static void rd_add(Engine *e, conn_t *u) {
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

/* --- access log records ----------------------------------------------------------------------------
 *
 * Only while an access log is on (``set_access_log(capacity)``; ``e->log`` NULL otherwise: one branch per
 * connection or request, nothing else): one fixed-size record per L4 connection (at its end) and per L7
 * request the fast path served (answered, failed or cut), appended here and taken by Python with
 * ``take_log()`` (every 100 ms; accesslog.py's ENGINE_RECORD is this layout and is checked against
 * LOG_RECORD_SIZE and LOG_REQ_MAX at import). A full buffer counts the record as dropped. Requests handed
 * to http.py are logged there.
 */
#define LOG_REQ_MAX 160
enum { LOG_OK = 0, LOG_FAILED = 1, LOG_RESET = 2, LOG_ABANDONED = 3 };

typedef struct log_rec {
    double t0, total, first; /* started (CLOCK_MONOTONIC), seconds until the end, until connect/head (<0 none) */
    uint64_t bytes_in, bytes_out;
    int32_t target, status, outcome; /* target -1: none; status 0: none (L4) */
    uint16_t port;
    uint8_t family, req_len; /* family 4 or 6 (0: unknown) */
    uint8_t addr[16];
    char req[LOG_REQ_MAX]; /* L7: the request line, cut at LOG_REQ_MAX */
} log_rec_t;

static void log_put(Engine *e, conn_t *c, int target, int status, int outcome, double first, int l7) {
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
static void log_l7(Engine *e, conn_t *c, int status, int outcome) {
    c->log_open = 0;
    log_put(e, c, c->log_target, status, outcome, c->log_first, 1);
}

/* An L4 connection ends: relayed (ok, or reset), or never connected (failed, or abandoned by the client). */
static void log_l4(Engine *e, conn_t *c, int reset) {
    if (c->state == ST_RELAY)
        log_put(e, c, c->target, 0, reset ? LOG_RESET : LOG_OK, c->log_first, 0);
    else
        log_put(e, c, -1, 0, c->log_outcome == LOG_ABANDONED ? LOG_ABANDONED : LOG_FAILED, -1.0, 0);
}

/* End a connection: both sockets closed (with a reset if ``reset``), counters to its member. */
static void pool_unlink(Engine *e, conn_t *u);

static void conn_end(Engine *e, conn_t *c, int reset) {
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
static int open_connect(Engine *e, target_t *tg, uint64_t tagv, conn_t *dl, int *fdp) {
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

static void start_connect(Engine *e, conn_t *c, long target) {
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

/* --- relay ------------------------------------------------------------------------------------------ */

/* A side's backlog: bytes its socket did not take yet (``buf`` from ``off``, ``len`` bytes, ``cap`` allocated). */

/* Queue bytes without writing (a head is put together piece by piece, then written with one send). */
static int out_put(side_t *s, const char *d, size_t n) {
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
static int out_write(side_t *s, const char *d, size_t n) {
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
static int out_flush(side_t *s) {
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
static int flush(side_t *dst) {
    int r = out_flush(dst);
    if (r == 0) {
        PyMem_Free(dst->buf);
        dst->buf = NULL;
        dst->cap = 0;
    }
    return r;
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

/* --- HTTP/1.1 (L7) ----------------------------------------------------------------------------------
 *
 * The usual request takes the fast path here: a head of at most ``head_limit`` bytes with CRLF line ends and no
 * other CR or LF, HTTP/1.1, a common method (GET HEAD POST PUT DELETE OPTIONS PATCH TRACE), an origin-form target
 * of visible ASCII, one Host made of
 * [A-Za-z0-9.-_:[]], at most MAX_HEADERS header lines, at most one Content-Length (digits), no Expect, Upgrade,
 * Transfer-Encoding or Connection options beyond close/keep-alive. What it does not fully understand it does not
 * judge: the request goes to http.py, whose rules (framing.py) answer it. Its head is forwarded with each header
 * line written as ``Name: value`` (the value's surrounding whitespace dropped, as http.py does), the
 * hop-by-hop headers dropped and
 * X-Forwarded-For added, on a pooled keep-alive connection to the member Python picked; the answer comes
 * back with its hop-by-hop headers dropped, Content-Length and chunked bodies passed through as they are
 * (chunk boundaries tracked to find the end), a body delimited by the member's close ends the client
 * connection too. Anything else — and every client error (400, 408, 431, 501) — is handed to the Python
 * L7 shell (http.py) with the bytes read so far, between two requests: it owns that connection from then
 * on. Error answers of routing (502, 503, 504) are built by Python (``on_fail``) and written here.
 */

static int hb_reserve(hbuf_t *b, size_t more) {
    if (b->off && b->off == b->len) b->off = b->len = b->scanned = 0;
    if (b->len + more <= b->cap) return 0;
    if (b->off) { /* slide what is left to the front */
        memmove(b->p, b->p + b->off, b->len - b->off);
        b->len -= b->off;
        b->scanned = b->scanned > b->off ? b->scanned - b->off : 0;
        b->off = 0;
        if (b->len + more <= b->cap) return 0;
    }
    size_t ncap = b->cap ? b->cap : 4096;
    while (ncap < b->len + more) ncap *= 2;
    char *np = PyMem_Realloc(b->p, ncap);
    if (!np) return -1;
    b->p = np;
    b->cap = ncap;
    return 0;
}

/* A connection waiting for its peer holds no buffers: its read buffer (``in``, empty), its kept request head
 * (``req``) and its socket's backlog (``c``, if empty) are freed, to be allocated again by the next bytes — as
 * nginx frees a keep-alive connection's buffers. An idle keep-alive client then costs its conn_t only, not the
 * 12-13 KB of touched pages its three buffers held (bench/bench_memory.py). */
static void h_release(conn_t *c) {
    if (c->in.len == c->in.off) {
        PyMem_Free(c->in.p);
        memset(&c->in, 0, sizeof c->in);
    }
    PyMem_Free(c->req.p);
    memset(&c->req, 0, sizeof c->req);
    if (!c->c.len) {
        PyMem_Free(c->c.buf);
        c->c.buf = NULL;
        c->c.off = c->c.cap = 0;
    }
}

static int hb_put(hbuf_t *b, const char *d, size_t n) {
    if (hb_reserve(b, n) < 0) return -1;
    memcpy(b->p + b->len, d, n);
    b->len += n;
    return 0;
}

static inline int lc(int ch) { return (ch >= 'A' && ch <= 'Z') ? ch + 32 : ch; }

static int name_is(const char *n, size_t len, const char *lit) {
    size_t k = strlen(lit);
    if (len != k) return 0;
    for (size_t i = 0; i < k; i++)
        if (lc((unsigned char)n[i]) != lit[i]) return 0;
    return 1;
}

static int is_tchar(int ch) {
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           (ch && strchr("!#$%&'*+-.^_`|~", ch) != NULL);
}

/* Find the blank line ending a head in b (from b->scanned on). Returns the head's length, 0 if incomplete,
 * -1 if a bare LF or CR shows up (a head the fast path leaves to Python, which refuses it at once). */
static long head_end(hbuf_t *b) {
    const char *p = b->p + b->off;
    size_t n = b->len - b->off;
    size_t i = b->scanned > b->off ? b->scanned - b->off : 0;
    for (; i < n; i++) {
        if (p[i] != '\n') {
            if (p[i] == '\r' && i + 1 < n && p[i + 1] != '\n') return -1;
            continue;
        }
        if (i == 0 || p[i - 1] != '\r') return -1;
        if (i >= 3 && p[i - 2] == '\n' && p[i - 3] == '\r') return (long)(i + 1);
    }
    b->scanned = b->off + (n >= 3 ? n - 3 : 0);
    return 0;
}

static void trim(const char **v, const char **ve) {
    while (*v < *ve && (**v == ' ' || **v == '\t')) (*v)++;
    while (*ve > *v && ((*ve)[-1] == ' ' || (*ve)[-1] == '\t')) (*ve)--;
}

static int parse_len(const char *v, const char *ve, long long *out) {
    if (v == ve || ve - v > 18) return -1;
    long long x = 0;
    for (; v < ve; v++) {
        if (*v < '0' || *v > '9') return -1;
        x = x * 10 + (*v - '0');
    }
    *out = x;
    return 0;
}

/* The options of a Connection header value: C_CLOSE, C_KEEPALIVE, C_OTHER (any other token) or'ed. */
#define C_CLOSE 1
#define C_KEEPALIVE 2
#define C_OTHER 4
static int conn_options(const char *v, const char *ve) {
    int got = 0;
    for (const char *t = v; t < ve;) {
        const char *tend = memchr(t, ',', (size_t)(ve - t));
        if (!tend) tend = ve;
        const char *a = t, *b = tend;
        trim(&a, &b);
        if (name_is(a, (size_t)(b - a), "close")) got |= C_CLOSE;
        else if (name_is(a, (size_t)(b - a), "keep-alive")) got |= C_KEEPALIVE;
        else if (b > a) got |= C_OTHER;
        t = tend + 1;
    }
    return got;
}

static void h_client_io(Engine *e, conn_t *c);
static void h_up_read(Engine *e, conn_t *u);

static void h_abandon(Engine *e, conn_t *c, conn_t *u);

/* Reset a client and the member connection its request is on: an answer cut, or a socket broken. */
static void h_abort(Engine *e, conn_t *c, conn_t *u) {
    if (u && u->hs == US_CONNECTING) { /* its connect is abandoned: Python forgets the request */
        h_abandon(e, c, u);
        return;
    }
    if (u) conn_end(e, u, 1);
    conn_end(e, c, 1);
}

static inline conn_t *h_link(conn_t *c) {
    conn_t *o = c->link;
    return (o && o->gen == c->link_gen && o->state != ST_FREE) ? o : NULL;
}

static void link_pair(conn_t *c, conn_t *u) {
    c->link = u;
    c->link_gen = u->gen;
    u->link = c;
    u->link_gen = c->gen;
}

static void pool_unlink(Engine *e, conn_t *u) {
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

#define POOL_PER_TARGET 64

static void pool_put(Engine *e, conn_t *u) {
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

/* Hand the client connection to Python (between requests): the fd and the bytes read but not used. */
static void h_handoff(Engine *e, conn_t *c, int timed_out) {
    int fd = c->c.fd;
    epoll_ctl(e->epfd, EPOLL_CTL_DEL, fd, NULL);
    PyObject *data = PyBytes_FromStringAndSize(c->in.p ? c->in.p + c->in.off : "", (Py_ssize_t)(c->in.len - c->in.off));
    c->c.fd = -1; /* Python owns it now */
    conn_end(e, c, 0);
    if (!data) {
        PyErr_WriteUnraisable(e->on_handoff);
        close(fd);
        return;
    }
    PyObject *r = e->on_handoff ? PyObject_CallFunction(e->on_handoff, "(iNi)", fd, data, timed_out) : NULL;
    if (!r) {
        if (PyErr_Occurred()) PyErr_WriteUnraisable(e->on_handoff);
        close(fd);
        return;
    }
    Py_DECREF(r);
}

/* Close after what is queued for the client is written: shut down writing, read until EOF (or linger). */
static void h_close_soon(Engine *e, conn_t *c) {
    c->hf |= H_LINGER | H_CLOSING;
    c->last = mono_coarse();
    if (!c->c.len && !(c->c.flags & F_SHUT)) {
        shutdown(c->c.fd, SHUT_WR);
        c->c.flags |= F_SHUT;
    }
}

/* Answer with Python's error response (``code``: one of FAIL_*). */
static void h_fail(Engine *e, conn_t *c, int code, int target) {
    int keep = (c->hf & H_KEEP) && !(c->hf & H_CLOSING) && c->body_left == 0 && !e->draining;
    uint32_t gen = c->gen;
    const char *m = c->req.p ? c->req.p : "";
    const char *sp = c->req.len ? memchr(m, ' ', c->req.len) : NULL;
    PyObject *r = e->on_fail ? PyObject_CallFunction(e->on_fail, "(liiis#)", conn_cid(c), code, target, keep, m,
                                                     (Py_ssize_t)(sp ? sp - m : 0))
                             : NULL;
    if (c->gen != gen || c->state == ST_FREE) {
        Py_XDECREF(r);
        return;
    }
    char *d;
    Py_ssize_t n;
    if (!r || PyBytes_AsStringAndSize(r, &d, &n) < 0) {
        PyErr_WriteUnraisable(e->on_fail);
        Py_XDECREF(r);
        conn_end(e, c, 1);
        return;
    }
    if (c->log_open) { /* the status of the answer Python built: "HTTP/1.1 NNN ..." */
        c->log_out += (unsigned long long)n;
        if (code == FAIL_ROUTING) c->log_target = -1;
        log_l7(e, c, n > 12 ? (d[9] - '0') * 100 + (d[10] - '0') * 10 + (d[11] - '0') : 0, LOG_FAILED);
    }
    c->hs = HS_HEAD;
    c->req.off = c->req.len = 0;
    int bad = out_write(&c->c, d, (size_t)n) < 0;
    Py_DECREF(r);
    if (bad) {
        conn_end(e, c, 1);
        return;
    }
    if (!keep) {
        h_close_soon(e, c);
        return;
    }
    c->hf |= H_SERVED;
    c->head_t0 = mono_coarse();
    h_client_io(e, c); /* a pipelined request may be waiting */
}

static void h_connect(Engine *e, conn_t *c, long t);

/* The request goes out on u: its head, then the body read so far. */
static void h_attach(Engine *e, conn_t *c, conn_t *u) {
    link_pair(c, u);
    c->log_target = u->target;
    u->hs = US_BUSY;
    u->framing = FR_NONE;
    u->status = 0;
    u->hf = (u->hf & H_REUSED) | H_COUNTED;
    u->in.off = u->in.len = u->in.scanned = 0;
    c->hs = c->body_left ? HS_BODY : HS_WAIT;
    if (out_put(&u->c, c->req.p, c->req.len) < 0) goto broken;
    if (c->body_left && c->in.len > c->in.off) {
        size_t n = c->in.len - c->in.off;
        if ((long long)n > c->body_left) n = (size_t)c->body_left;
        if (out_put(&u->c, c->in.p + c->in.off, n) < 0) goto broken;
        e->targets[u->target].d_in += n;
        c->log_in += n;
        c->in.off += n;
        c->body_left -= (long long)n;
        if (!c->body_left) c->hs = HS_WAIT;
    }
    if (out_flush(&u->c) < 0) goto broken; /* head and body so far: one send */
    if (c->hs == HS_BODY) h_client_io(e, c);
    else rd_add(e, u);
    return;
broken: /* the member connection failed at once: the same as a close before answering */
    u->c.flags |= F_EOF;
    h_up_read(e, u);
}

/* Route the request just parsed: Python picks, a pooled connection is used when there is one. */
/* ``announce``: tell Python a pooled connection is used (after a failed connect; on_request knew already). */
static void h_route(Engine *e, conn_t *c, long t, int announce) {
    if (t < 0 || t >= e->n_targets) {
        h_fail(e, c, 0, -1);
        return;
    }
    target_t *tg = &e->targets[t];
    conn_t *u = tg->idle;
    if (u) {
        pool_unlink(e, u);
        u->hf = H_REUSED;
        if (announce) {
            uint32_t gen = c->gen;
            call_int(e->on_connect, Py_BuildValue("(liid)", conn_cid(c), (int)t, 0, 0.0));
            if (c->gen != gen || c->state == ST_FREE) {
                pool_put(e, u);
                return;
            }
        }
        h_attach(e, c, u);
        return;
    }
    h_connect(e, c, t);
}

static void h_connect_done(Engine *e, conn_t *u, int err) {
    conn_t *c = h_link(u);
    double secs = mono() - u->cstart;
    dl_remove(e, u);
    if (!c) { /* the client went away meanwhile: Python forgets the request, the connection is pooled */
        long cid = u->link ? (long)(((uint64_t)u->link_gen << 32) | u->link->id) : -1;
        int t = u->target;
        u->link = NULL;
        if (err == 0) pool_put(e, u);
        else conn_end(e, u, 0);
        if (cid >= 0) call_int(e->on_connect, Py_BuildValue("(liid)", cid, t, -1, secs));
        return;
    }
    long t = u->target;
    if (err == 0) {
        u->hs = US_BUSY;
        uint32_t gen = c->gen;
        call_int(e->on_connect, Py_BuildValue("(liid)", conn_cid(c), (int)t, 0, secs));
        if (c->gen != gen || c->state == ST_FREE) {
            pool_put(e, u);
            return;
        }
        h_attach(e, c, u);
        return;
    }
    conn_end(e, u, 0);
    c->link = NULL;
    uint32_t gen = c->gen;
    long next = call_int(e->on_connect, Py_BuildValue("(liid)", conn_cid(c), (int)t, err, secs));
    if (c->gen != gen || c->state == ST_FREE) return;
    if (next < 0 || next >= e->n_targets) h_fail(e, c, 0, -1);
    else h_route(e, c, next, 1);
}

static void h_connect(Engine *e, conn_t *c, long t) {
    for (;;) {
        target_t *tg = &e->targets[t];
        conn_t *u = conn_new(e);
        int err = 0;
        if (!u) {
            err = ENOMEM;
        } else {
            u->kind = K_UP;
            u->state = ST_RELAY;
            u->hs = US_CONNECTING;
            u->target = (int)t;
            u->cstart = mono();
            link_pair(c, u);
            err = open_connect(e, tg, tag(u, 0), u, &u->c.fd);
            if (!err) {
                c->hs = HS_ROUTE;
                return;
            }
        }
        double secs = u ? mono() - u->cstart : 0.0;
        if (u) conn_end(e, u, 0);
        c->link = NULL;
        uint32_t gen = c->gen;
        long next = call_int(e->on_connect, Py_BuildValue("(liid)", conn_cid(c), (int)t, err, secs));
        if (c->gen != gen || c->state == ST_FREE) return;
        if (next < 0 || next >= e->n_targets) {
            h_fail(e, c, 0, -1);
            return;
        }
        tg = &e->targets[next];
        if (tg->idle) {
            h_route(e, c, next, 1);
            return;
        }
        t = next;
    }
}

/* A Python int with bit t set for every target t with an idle pooled connection, for any number of targets
 * (one machine word for the usual group; a byte string turned into an int past 64). */
static PyObject *pooled_mask(Engine *e) {
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

/* Parse the request head (hl bytes at c->in) into c->req. 0: routed on; 1: not for the fast path. */
static int h_request(Engine *e, conn_t *c, long hl) {
    const char *p = c->in.p + c->in.off, *end = p + hl - 2; /* end: the final CRLF */
    const char *le = memchr(p, '\r', (size_t)(end - p));
    if (!le || le[1] != '\n') return 1; /* a bare CR: not judged here */
    /* request line: METHOD SP target SP HTTP/1.1 */
    const char *sp1 = memchr(p, ' ', (size_t)(le - p));
    if (!sp1 || sp1 == p) return 1;
    for (const char *q = p; q < sp1; q++)
        if (!is_tchar((unsigned char)*q)) return 1;
    const char *sp2 = memchr(sp1 + 1, ' ', (size_t)(le - sp1 - 1));
    if (!sp2 || sp2 == sp1 + 1 || le - sp2 != 9 || memcmp(sp2 + 1, "HTTP/1.1", 8) != 0) return 1;
    if (sp1[1] != '/') return 1; /* absolute-form, asterisk-form or not a target: http.py's */
    for (const char *q = sp1 + 1; q < sp2; q++)
        if ((unsigned char)*q <= ' ' || (unsigned char)*q >= 0x7f) return 1; /* visible ASCII only */
    size_t ml = (size_t)(sp1 - p);
    unsigned hf = H_KEEP;
    if (ml == 4 && !memcmp(p, "HEAD", 4)) hf |= H_HEADONLY | H_IDEMP;
    else if ((ml == 3 && (!memcmp(p, "GET", 3) || !memcmp(p, "PUT", 3))) || (ml == 6 && !memcmp(p, "DELETE", 6)) ||
             (ml == 7 && !memcmp(p, "OPTIONS", 7)) || (ml == 5 && !memcmp(p, "TRACE", 5)))
        hf |= H_IDEMP;
    else if (!(ml == 4 && !memcmp(p, "POST", 4)) && !(ml == 5 && !memcmp(p, "PATCH", 5)))
        return 1; /* CONNECT, a rarer method, or not a method: http.py's */
    hbuf_t *r = &c->req;
    r->off = r->len = 0;
    if (hb_put(r, p, (size_t)(le - p) + 2) < 0) return -1;
    long long cl = -1;
    const char *key = NULL, *key_end = NULL;
    const char *xff = NULL, *xff_end = NULL;
    int n_xff = 0, n_host = 0, n_lines = 0;
    for (const char *ls = le + 2; ls < end;) {
        const char *lend = memchr(ls, '\r', (size_t)(end - ls));
        if (!lend || lend[1] != '\n' || ++n_lines > MAX_HEADERS) return 1;
        if (*ls == ' ' || *ls == '\t') return 1; /* a folded line */
        const char *colon = memchr(ls, ':', (size_t)(lend - ls));
        if (!colon || colon == ls) return 1;
        for (const char *q = ls; q < colon; q++)
            if (!is_tchar((unsigned char)*q)) return 1;
        const char *v = colon + 1, *ve = lend;
        for (const char *q = v; q < ve; q++)
            if (((unsigned char)*q < ' ' && *q != '\t') || *q == 0x7f) return 1;
        trim(&v, &ve);
        size_t nl = (size_t)(colon - ls);
        int keep_line = 1;
        switch (nl) {
        case 2:
            if (name_is(ls, nl, "te")) keep_line = 0;
            break;
        case 6:
            if (name_is(ls, nl, "expect")) return 1;
            break;
        case 7:
            if (name_is(ls, nl, "upgrade")) return 1;
            if (name_is(ls, nl, "trailer")) keep_line = 0;
            break;
        case 10:
            if (name_is(ls, nl, "keep-alive")) {
                keep_line = 0;
            } else if (name_is(ls, nl, "connection")) {
                keep_line = 0;
                int opt = conn_options(v, ve);
                if (opt & C_OTHER) return 1; /* headers named as hop-by-hop: http.py drops them */
                if (opt & C_CLOSE) hf &= ~H_KEEP;
            }
            break;
        case 4:
            if (name_is(ls, nl, "host")) {
                if (n_host++) return 1;
                for (const char *q = v; q < ve; q++)
                    if (!((*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z') || (*q >= '0' && *q <= '9') ||
                          (*q && strchr(".-_:[]", *q))))
                        return 1;
            }
            break;
        case 14:
            if (name_is(ls, nl, "content-length")) {
                long long x;
                if (parse_len(v, ve, &x) < 0 || cl >= 0) return 1; /* a second one, even equal: http.py's */
                cl = x;
            }
            break;
        case 15:
            if (name_is(ls, nl, "x-forwarded-for")) {
                if (n_xff++) return 1; /* several: Python joins them */
                xff = v;
                xff_end = ve;
                keep_line = 0;
            }
            break;
        case 16:
            if (name_is(ls, nl, "proxy-connection")) keep_line = 0;
            break;
        case 17:
            if (name_is(ls, nl, "transfer-encoding")) return 1;
            break;
        }
        if (e->affinity_len && nl == e->affinity_len && name_is(ls, nl, e->affinity)) {
            key = v;
            key_end = ve;
        }
        if (keep_line) {
            if (v == colon + 2 && colon[1] == ' ' && ve == lend) { /* already ``Name: value`` */
                if (hb_put(r, ls, (size_t)(lend - ls) + 2) < 0) return -1;
            } else if (hb_put(r, ls, nl) < 0 || hb_put(r, ": ", 2) < 0 || hb_put(r, v, (size_t)(ve - v)) < 0 ||
                       hb_put(r, "\r\n", 2) < 0) {
                return -1;
            }
        }
        ls = lend + 2;
    }
    if (n_host != 1) return 1;
    if (hb_put(r, "X-Forwarded-For: ", 17) < 0) return -1;
    if (xff && (hb_put(r, xff, (size_t)(xff_end - xff)) < 0 || hb_put(r, ", ", 2) < 0)) return -1;
    if (hb_put(r, c->ip, strlen(c->ip)) < 0 || hb_put(r, "\r\n\r\n", 4) < 0) return -1;
    if (cl > 0) hf |= H_HASBODY;
    c->hf = hf;
    c->body_left = cl > 0 ? cl : 0;
    c->in.off += (size_t)hl;
    c->in.scanned = c->in.off;
    c->t0 = mono();
    if (e->log) { /* this request gets a record */
        c->log_open = 1;
        c->log_in = r->len;
        c->log_out = 0;
        c->log_first = -1.0;
        c->log_target = -1;
    }
    c->hs = HS_ROUTE;
    /* which members have a pooled connection ready (the route event of a pooled request is Python's) */
    PyObject *mask = pooled_mask(e);
    PyObject *k = key ? PyUnicode_DecodeLatin1(key, key_end - key, NULL) : (Py_INCREF(Py_None), Py_None);
    uint32_t gen = c->gen;
    if (!mask || !k) {
        Py_XDECREF(mask);
        Py_XDECREF(k);
        mask = k = NULL;
    }
    long t = call_int(e->on_request, k ? Py_BuildValue("(lNN)", conn_cid(c), k, mask) : NULL);
    if (c->gen != gen || c->state == ST_FREE) return 0;
    h_route(e, c, t, 0);
    return 0;
}

/* Read and route request heads while the client connection is between requests. */
static void h_read_heads(Engine *e, conn_t *c) {
    while (c->hs == HS_HEAD && !(c->hf & H_LINGER)) {
        long hl = c->in.len > c->in.off ? head_end(&c->in) : 0;
        if (hl < 0) {
            if (c->c.len) return; /* the previous answer first */
            h_handoff(e, c, 0);
            return;
        }
        if (hl > 0) {
            if ((size_t)hl > e->head_limit) {
                if (c->c.len) return;
                h_handoff(e, c, 0);
                return;
            }
            uint32_t gen = c->gen;
            int r = h_request(e, c, hl);
            if (c->gen != gen || c->state == ST_FREE) return;
            if (r < 0) {
                conn_end(e, c, 1);
                return;
            }
            if (r > 0) {
                if (c->c.len) return; /* handed over once the previous answer is written */
                h_handoff(e, c, 0);
                return;
            }
            continue; /* routed: c->hs moved on (or an error answer was queued and a next head may follow) */
        }
        if (c->in.len - c->in.off > e->head_limit) {
            if (c->c.len) return;
            h_handoff(e, c, 0);
            return;
        }
        if (!(c->c.flags & F_READABLE) || (c->c.flags & F_EOF)) {
            if ((c->c.flags & F_EOF) && !c->c.len) {
                if (c->in.len > c->in.off) h_handoff(e, c, 0); /* a head cut by EOF: http.py judges what came */
                else conn_end(e, c, 0); /* the client is done */
            } else if (c->in.len == c->in.off) {
                h_release(c); /* idle between requests: no buffers held */
            }
            return;
        }
        if (hb_reserve(&c->in, 16384) < 0) {
            conn_end(e, c, 1);
            return;
        }
        size_t room = c->in.cap - c->in.len;
        ssize_t n = recv(c->c.fd, c->in.p + c->in.len, room, 0);
        if (n > 0) {
            if (c->in.len == c->in.off && (c->hf & H_SERVED)) c->head_t0 = mono_coarse(); /* the first: from the accept */
            c->in.len += (size_t)n;
            c->last = mono_coarse();
            /* a short read emptied the socket: the next bytes bring a new edge (saves a recv → EAGAIN) */
            if ((size_t)n < room && !(c->c.flags & F_RDHUP)) c->c.flags &= ~F_READABLE;
        } else if (n == 0) {
            c->c.flags |= F_EOF;
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            c->c.flags &= ~F_READABLE;
        } else if (errno != EINTR) {
            conn_end(e, c, 1);
            return;
        }
    }
}

/* Forward request body bytes client → member while the member's side takes them. */
static void h_body(Engine *e, conn_t *c, conn_t *u) {
    while (c->hs == HS_BODY && !u->c.len && (c->c.flags & (F_READABLE | F_EOF)) == F_READABLE) {
        size_t want = c->body_left < SCRATCH ? (size_t)c->body_left : SCRATCH;
        ssize_t n = recv(c->c.fd, e->scratch, want, 0);
        if (n > 0) {
            e->targets[u->target].d_in += (unsigned long long)n;
            c->log_in += (unsigned long long)n;
            c->body_left -= n;
            c->last = mono_coarse();
            if (!c->body_left) {
                c->hs = HS_WAIT;
                rd_add(e, u);
            }
            if (out_write(&u->c, e->scratch, (size_t)n) < 0) {
                u->c.flags |= F_EOF; /* seen by h_up_read as a member gone before answering */
                return;
            }
        } else if (n == 0) {
            c->c.flags |= F_EOF; /* the body is cut: the member will not answer a complete request */
            return;
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            c->c.flags &= ~F_READABLE;
        } else if (errno != EINTR) {
            c->c.flags |= F_EOF;
            return;
        }
    }
}

/* The answer is complete: the member connection back to the pool (or closed), the client on to its next. */
static void h_done(Engine *e, conn_t *c, conn_t *u) {
    if (c->log_open) log_l7(e, c, u->status, LOG_OK);
    int reusable = (u->hf & H_UPKEEP) && !(u->hf & H_CLOSING) && u->framing != FR_CLOSE && c->body_left == 0 &&
                   c->hs != HS_BODY && u->in.len == u->in.off;
    c->link = NULL;
    if (reusable) pool_put(e, u);
    else conn_end(e, u, 0);
    c->hs = HS_HEAD;
    c->hf &= ~H_STARTED;
    c->req.off = c->req.len = 0;
    if ((c->hf & H_CLOSING) || !(c->hf & H_KEEP) || e->draining || (c->c.flags & F_EOF)) {
        h_close_soon(e, c);
        return;
    }
    c->hf |= H_SERVED;
    c->head_t0 = mono_coarse();
    c->last = c->head_t0;
    h_read_heads(e, c);
}

/* Chunked body: advance the parser over d[0..n). Returns bytes up to and including the end of the body
 * (the rest belongs to nobody), n if not at the end yet, -1 on a malformed chunk. */
enum { CS_SIZE = 0, CS_EXT, CS_SIZE_LF, CS_DATA, CS_DATA_CR, CS_DATA_LF, CS_TR_START, CS_TR_LINE, CS_TR_LF, CS_END_LF,
       CS_DONE };
static long chunk_scan(conn_t *u, const char *d, long n) {
    for (long i = 0; i < n; i++) {
        char ch = d[i];
        switch (u->cs) {
        case CS_SIZE: {
            int v = (ch >= '0' && ch <= '9') ? ch - '0' : (lc(ch) >= 'a' && lc(ch) <= 'f') ? lc(ch) - 'a' + 10 : -1;
            if (v >= 0) {
                if (u->left > (1LL << 40)) return -1;
                u->left = u->left * 16 + v;
                u->status |= 0x10000; /* a digit seen */
            } else if (ch == ';' || ch == ' ' || ch == '\t') {
                u->cs = CS_EXT;
            } else if (ch == '\r') {
                u->cs = CS_SIZE_LF;
            } else {
                return -1;
            }
            if (u->cs != CS_SIZE && !(u->status & 0x10000)) return -1;
            break;
        }
        case CS_EXT:
            if (ch == '\r') u->cs = CS_SIZE_LF;
            break;
        case CS_SIZE_LF:
            if (ch != '\n') return -1;
            u->status &= ~0x10000;
            u->cs = u->left ? CS_DATA : CS_TR_START;
            break;
        case CS_DATA: {
            long take = n - i;
            if (take > u->left) take = (long)u->left;
            u->left -= take;
            i += take - 1;
            if (!u->left) u->cs = CS_DATA_CR;
            break;
        }
        case CS_DATA_CR:
            if (ch != '\r') return -1;
            u->cs = CS_DATA_LF;
            break;
        case CS_DATA_LF:
            if (ch != '\n') return -1;
            u->cs = CS_SIZE;
            break;
        case CS_TR_START:
            u->cs = ch == '\r' ? CS_END_LF : CS_TR_LINE;
            break;
        case CS_TR_LINE:
            if (ch == '\r') u->cs = CS_TR_LF;
            break;
        case CS_TR_LF:
            if (ch != '\n') return -1;
            u->cs = CS_TR_START;
            break;
        case CS_END_LF:
            if (ch != '\n') return -1;
            u->cs = CS_DONE;
            return i + 1;
        }
    }
    return n;
}

/* Body bytes from the member: forward what belongs to the answer. 1: the answer is complete, 0: more to
 * come, -1: malformed. */
static int h_body_bytes(Engine *e, conn_t *c, conn_t *u, const char *d, size_t n) {
    size_t take = n;
    int done = 0;
    if (u->framing == FR_CL) {
        if ((long long)take >= u->left) {
            if ((long long)take > u->left) u->hf |= H_CLOSING; /* more than it announced: not reused */
            take = (size_t)u->left;
            done = 1;
        }
        u->left -= (long long)take;
    } else if (u->framing == FR_CHUNKED) {
        long k = chunk_scan(u, d, (long)n);
        if (k < 0) return -1;
        if (u->cs == CS_DONE) {
            if ((size_t)k < n) u->hf |= H_CLOSING;
            take = (size_t)k;
            done = 1;
        }
    }
    if (take) {
        e->targets[u->target].d_out += take;
        c->log_out += take;
        if (u->framing == FR_CLOSE) {
            char size[24];
            int k = snprintf(size, sizeof size, "%zx\r\n", take);
            if (out_put(&c->c, size, (size_t)k) < 0 || out_put(&c->c, d, take) < 0 ||
                out_put(&c->c, "\r\n", 2) < 0 || out_flush(&c->c) < 0)
                return -2;
        } else if (out_write(&c->c, d, take) < 0) {
            return -2;
        }
    }
    return done;
}

/* Parse the member's answer head (hl bytes at u->in) and queue the client's. 0 ok, -1 malformed. */
static int h_response_head(Engine *e, conn_t *c, conn_t *u, long hl) {
    const char *p = u->in.p + u->in.off, *end = p + hl - 2;
    const char *le = memchr(p, '\r', (size_t)(end - p));
    if (!le || le - p < 12 || memcmp(p, "HTTP/1.", 7) != 0 || (p[7] != '0' && p[7] != '1') || p[8] != ' ')
        return -1;
    if (p[9] < '1' || p[9] > '5' || p[10] < '0' || p[10] > '9' || p[11] < '0' || p[11] > '9' ||
        (le - p > 12 && p[12] != ' '))
        return -1;
    int status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
    if (status == 101) return -1; /* we never ask for an upgrade */
    int copts = 0;
    long long cl = -1;
    int chunked = 0, te = 0;
    /* first pass: check every line and learn the framing; nothing is queued for the client before the
     * whole head is known good (a bad one becomes a clean 502) */
    for (const char *ls = le + 2; ls < end;) {
        const char *lend = memchr(ls, '\r', (size_t)(end - ls));
        if (!lend || *ls == ' ' || *ls == '\t') return -1;
        const char *colon = memchr(ls, ':', (size_t)(lend - ls));
        if (!colon || colon == ls) return -1;
        const char *v = colon + 1, *ve = lend;
        trim(&v, &ve);
        size_t nl = (size_t)(colon - ls);
        if (nl == 10 && name_is(ls, nl, "connection")) {
            copts |= conn_options(v, ve);
        } else if (nl == 17 && name_is(ls, nl, "transfer-encoding")) {
            te = 1;
            const char *a = ve - 7 > v ? ve - 7 : v;
            chunked = (ve - v >= 7) && name_is(a, 7, "chunked");
        } else if (nl == 14 && name_is(ls, nl, "content-length")) {
            long long x;
            if (parse_len(v, ve, &x) < 0 || (cl >= 0 && x != cl)) return -1;
            cl = x;
        }
        ls = lend + 2;
    }
    /* HTTP/1.1 keeps the connection unless it says close; HTTP/1.0 only if it says keep-alive */
    int keep = !(copts & C_CLOSE) && (p[7] == '1' || (copts & C_KEEPALIVE));
    if (te && cl >= 0) return -1; /* both framings: refused as a bad answer, as http.py's parser does (RFC 9112 §6.3) */
    /* second pass: the head for the client — an HTTP/1.1 status line with the member's code and reason,
     * the end-to-end lines; Transfer-Encoding only when it is chunked (forwarded with the chunks) */
    side_t *o = &c->c;
    size_t log_before = o->len; /* the head's bytes for the access log */
    if (out_put(o, "HTTP/1.1", 8) < 0 || out_put(o, p + 8, (size_t)(le - p) - 8 + 2) < 0) return -2;
    for (const char *ls = le + 2; ls < end;) {
        const char *lend = memchr(ls, '\r', (size_t)(end - ls));
        const char *colon = memchr(ls, ':', (size_t)(lend - ls));
        size_t nl = (size_t)(colon - ls);
        int drop = (nl == 10 && (name_is(ls, nl, "connection") || name_is(ls, nl, "keep-alive"))) ||
                   (nl == 16 && name_is(ls, nl, "proxy-connection")) || (nl == 2 && name_is(ls, nl, "te")) ||
                   (nl == 7 && (name_is(ls, nl, "trailer") || name_is(ls, nl, "upgrade"))) ||
                   (nl == 17 && !chunked && name_is(ls, nl, "transfer-encoding"));
        if (!drop && out_put(o, ls, (size_t)(lend - ls) + 2) < 0) return -2;
        ls = lend + 2;
    }
    u->in.off += (size_t)hl;
    u->in.scanned = u->in.off;
    if (status < 200) { /* an interim answer (100, 103): forwarded; the final one follows */
        if (out_put(o, "\r\n", 2) < 0) return -2;
        c->log_out += o->len - log_before;
        return 1;
    }
    u->status = status;
    u->left = 0;
    u->cs = CS_SIZE;
    if ((c->hf & H_HEADONLY) || status == 204 || status == 304) u->framing = FR_NONE;
    else if (chunked) u->framing = FR_CHUNKED;
    else if (te || cl < 0) u->framing = FR_CLOSE;
    else if (cl == 0) u->framing = FR_NONE;
    else {
        u->framing = FR_CL;
        u->left = cl;
    }
    if (keep) u->hf |= H_UPKEEP;
    /* a body the member ends by closing goes to the client re-chunked, so the client's connection lives on */
    if (u->framing == FR_CLOSE && out_put(o, "Transfer-Encoding: chunked\r\n", 28) < 0) return -2;
    if (!(c->hf & H_KEEP) || (c->hf & H_CLOSING) || e->draining || c->body_left || c->hs == HS_BODY) {
        c->hf |= H_CLOSING;
        if (out_put(o, "Connection: close\r\n\r\n", 21) < 0) return -2;
    } else if (out_put(o, "\r\n", 2) < 0) {
        return -2;
    }
    c->hf |= H_STARTED;
    c->log_out += o->len - log_before;
    if (c->log_open) c->log_first = mono() - c->t0;
    if (e->n_samples < MAX_SAMPLES) {
        e->samples_t[e->n_samples] = mono() - c->t0;
        e->samples_i[e->n_samples++] = u->target;
    } else {
        e->samples_dropped++;
    }
    return 0;
}

/* The member connection ended or broke before the answer was complete. */
static void h_up_lost(Engine *e, conn_t *c, conn_t *u) {
    int t = u->target;
    if (c->hf & H_STARTED) {
        if (u->framing == FR_CLOSE) { /* an answer delimited by the close: complete */
            u->hf |= H_CLOSING;
            if (out_write(&c->c, "0\r\n\r\n", 5) < 0) {
                h_abort(e, c, u);
                return;
            }
            h_done(e, c, u);
            return;
        }
        e->targets[t].failures++;
        h_abort(e, c, u); /* the answer is cut: the client must see it cut */
        return;
    }
    int reused = u->hf & H_REUSED;
    double secs = mono() - c->t0;
    conn_end(e, u, 0);
    c->link = NULL;
    uint32_t gen = c->gen; /* the request does not count on a member that closed before answering */
    call_int(e->on_connect, Py_BuildValue("(liid)", conn_cid(c), t, CONNECT_UNANSWERED, 0.0));
    if (c->gen != gen || c->state == ST_FREE) return;
    /* nginx's rule: sent again only if nothing was answered and the request can be repeated (idempotent,
     * and without a body, which is not kept) */
    int replayable = (c->hf & H_IDEMP) && !(c->hf & H_HASBODY) && c->hs == HS_WAIT;
    if (!replayable) { /* the member failed it: counted on it; a fresh connection also marks it (http.py alike) */
        h_fail(e, c, reused ? FAIL_CLOSED : FAIL_CLOSED_FRESH, t);
        return;
    }
    if (reused && !(c->hf & H_RETRIED)) { /* a pooled connection the member had closed: once more, fresh */
        c->hf |= H_RETRIED;
        h_connect(e, c, t);
        return;
    }
    /* a fresh connection closed before answering: a failed attempt; Python says which member next */
    long next = call_int(e->on_connect, Py_BuildValue("(liid)", conn_cid(c), t, ECONNRESET, secs));
    if (c->gen != gen || c->state == ST_FREE) return;
    if (next < 0 || next >= e->n_targets) h_fail(e, c, 0, -1);
    else h_route(e, c, next, 1);
}

/* No answer byte from u within the read timeout (or the idle timeout, if shorter) after its request was
 * complete: the member connection is reset and the member counted failed and marked (Python). nginx's rule
 * for the request: one that can be sent again (idempotent, no body) goes on to the next member Python
 * names; any other is answered 504. */
static void h_stalled(Engine *e, conn_t *u) {
    conn_t *c = h_link(u);
    dl_remove(e, u);
    if (!c || (c->hf & H_STARTED)) { /* (not awaiting a first byte: nothing to time out) */
        if (!c) conn_end(e, u, 1);
        return;
    }
    int t = u->target;
    double secs = mono() - u->sent;
    conn_end(e, u, 1);
    c->link = NULL;
    if (!((c->hf & H_IDEMP) && !(c->hf & H_HASBODY) && c->hs == HS_WAIT)) {
        h_fail(e, c, FAIL_STALLED, t);
        return;
    }
    uint32_t gen = c->gen;
    long next = call_int(e->on_connect, Py_BuildValue("(liid)", conn_cid(c), t, CONNECT_STALLED, secs));
    if (c->gen != gen || c->state == ST_FREE) return;
    if (next < 0 || next >= e->n_targets) h_fail(e, c, FAIL_ROUTING, -1);
    else h_route(e, c, next, 1);
}

/* The client ended its connection (a reset, or EOF with nothing unread) while its request's connect to u
 * was in progress: the connect is abandoned (nginx: proxy_ignore_client_abort off), Python forgets the
 * request (no route event, no health mark). */
static void h_abandon(Engine *e, conn_t *c, conn_t *u) {
    long cid = conn_cid(c);
    int t = u->target;
    double secs = mono() - u->cstart;
    conn_end(e, u, 1);
    conn_end(e, c, 1);
    call_int(e->on_connect, Py_BuildValue("(liid)", cid, t, CONNECT_CLIENT_LEFT, secs));
}

/* Whether the client's EOF (RDHUP) came with nothing unread before it: then it left (a FIN after bytes is
 * a half-close, and the bytes are still to be delivered). */
static int client_left(int fd) {
    char b;
    ssize_t n = recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

/* Member side: flush the request, read the answer, forward it. */
static void h_up_read(Engine *e, conn_t *u) {
    conn_t *c = h_link(u);
    if (!c) { /* idle in the pool, or orphaned: any event from it ends it */
        conn_end(e, u, 0);
        return;
    }
    if (u->c.len && (u->c.flags & F_WRITABLE)) {
        if (out_flush(&u->c) < 0) u->c.flags |= F_EOF;
    }
    if (c->hs == HS_BODY && !u->c.len) {
        uint32_t gen = u->gen;
        h_body(e, c, u);
        if (u->gen != gen || u->state == ST_FREE) return;
    }
    while (!(u->c.flags & F_EOF) && (u->c.flags & F_READABLE)) {
        if (c->c.len) { /* the client has not taken the last bytes yet: wait for it */
            u->hf |= H_WANTREAD;
            return;
        }
        if (!u->status) { /* reading the head */
            if (hb_reserve(&u->in, 16384) < 0) {
                u->c.flags |= F_EOF;
                break;
            }
            size_t room = u->in.cap - u->in.len;
            ssize_t n = recv(u->c.fd, u->in.p + u->in.len, room, 0);
            if (n == 0) {
                u->c.flags |= F_EOF;
                break;
            }
            if (n < 0) {
                if (errno == EAGAIN || errno == EWOULDBLOCK) u->c.flags &= ~F_READABLE;
                else if (errno != EINTR) u->c.flags |= F_EOF;
                continue;
            }
            u->in.len += (size_t)n;
            if (u->rd) dl_remove(e, u); /* the answer began within the read timeout */
            if ((size_t)n < room && !(u->c.flags & F_RDHUP)) u->c.flags &= ~F_READABLE;
            c->last = mono_coarse();
            for (;;) {
                long hl = head_end(&u->in);
                if (hl == 0) {
                    if (u->in.len - u->in.off > e->answer_head_limit) hl = -1;
                    else break;
                }
                if ((size_t)hl > e->answer_head_limit) hl = -1; /* complete, but too large all the same */
                int r = hl > 0 ? h_response_head(e, c, u, hl) : -1;
                if (r == 1) { /* an interim answer: on its way now */
                    if (out_flush(&c->c) < 0) {
                        h_abort(e, c, u);
                        return;
                    }
                    continue;
                }
                if (r < 0) {
                    if (c->hf & H_STARTED || r == -2) {
                        h_abort(e, c, u);
                        return;
                    }
                    c->link = NULL;
                    int t = u->target;
                    conn_end(e, u, 1);
                    h_fail(e, c, 2, t);
                    return;
                }
                /* the head is out; body bytes that came with it */
                size_t rest = u->in.len - u->in.off;
                int d = u->framing == FR_NONE ? 1 : 0;
                if (rest && u->framing != FR_NONE) {
                    d = h_body_bytes(e, c, u, u->in.p + u->in.off, rest);
                    if (d < 0) {
                        h_abort(e, c, u);
                        return;
                    }
                } else if (rest) {
                    u->hf |= H_CLOSING; /* bytes after a bodiless answer: not reused */
                }
                u->in.off = u->in.len = u->in.scanned = 0;
                if (out_flush(&c->c) < 0) {
                    h_abort(e, c, u);
                    return;
                }
                if (d == 1) {
                    h_done(e, c, u);
                    return;
                }
                break;
            }
            continue;
        }
        ssize_t n = recv(u->c.fd, e->scratch, SCRATCH, 0);
        if (n == 0) {
            u->c.flags |= F_EOF;
            break;
        }
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) u->c.flags &= ~F_READABLE;
            else if (errno != EINTR) u->c.flags |= F_EOF;
            continue;
        }
        c->last = mono_coarse();
        int d = h_body_bytes(e, c, u, e->scratch, (size_t)n);
        if (d < 0) {
            if (d == -1) e->targets[u->target].failures++; /* a malformed chunk */
            h_abort(e, c, u);
            return;
        }
        if (d == 1) {
            h_done(e, c, u);
            return;
        }
        if ((size_t)n < SCRATCH && !(u->c.flags & F_RDHUP)) u->c.flags &= ~F_READABLE;
    }
    if (u->c.flags & F_EOF) h_up_lost(e, c, u);
}

/* Client side: flush the answer, then as the state says: read heads, forward the body, or wait. */
static void h_client_io(Engine *e, conn_t *c) {
    if (c->c.len && (c->c.flags & F_WRITABLE)) {
        if (out_flush(&c->c) < 0) {
            conn_t *u = h_link(c);
            h_abort(e, c, u);
            return;
        }
    }
    if (c->hf & H_LINGER) {
        if (!c->c.len && !(c->c.flags & F_SHUT)) {
            shutdown(c->c.fd, SHUT_WR);
            c->c.flags |= F_SHUT;
        }
        while (c->c.flags & F_READABLE) { /* read and drop until EOF, so the answer is not reset away */
            ssize_t n = recv(c->c.fd, e->scratch, SCRATCH, 0);
            if (n > 0) continue;
            if (n < 0 && errno == EINTR) continue;
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                c->c.flags &= ~F_READABLE;
                return;
            }
            conn_end(e, c, 0);
            return;
        }
        return;
    }
    conn_t *u = h_link(c);
    if (u && u->hs == US_CONNECTING) {
        if ((c->c.flags & F_RDHUP) && c->in.len == c->in.off && client_left(c->c.fd)) h_abandon(e, c, u);
        return;
    }
    if (u) {
        if ((u->hf & H_WANTREAD) && !c->c.len) {
            u->hf &= ~H_WANTREAD;
            h_up_read(e, u);
            return;
        }
        if (c->hs == HS_BODY) {
            uint32_t gen = u->gen;
            h_body(e, c, u);
            if (u->gen == gen && u->state != ST_FREE && (u->c.flags & F_EOF)) h_up_read(e, u);
            else if (c->hs == HS_BODY && (c->c.flags & F_EOF)) { /* the request body is cut */
                h_abort(e, c, u);
            }
        }
        return;
    }
    if (c->hs == HS_HEAD) h_read_heads(e, c); /* (a half-close between requests: its EOF ends it there) */
}

static void h_accept(Engine *e, conn_t *c) {
    c->kind = K_CLIENT;
    c->state = ST_RELAY;
    c->hs = HS_HEAD;
    c->head_t0 = c->last = mono_coarse();
    if (c->peer.ss_family == AF_INET)
        inet_ntop(AF_INET, &((struct sockaddr_in *)&c->peer)->sin_addr, c->ip, sizeof c->ip);
    else if (c->peer.ss_family == AF_INET6)
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&c->peer)->sin6_addr, c->ip, sizeof c->ip);
    e->accepted++;
}

static void h_event(Engine *e, conn_t *c, uint32_t ev) {
    side_t *s = &c->c;
    if (ev & (EPOLLIN | EPOLLHUP | EPOLLERR)) s->flags |= F_READABLE;
    if (ev & EPOLLRDHUP) s->flags |= F_RDHUP | F_READABLE;
    if (ev & (EPOLLOUT | EPOLLHUP | EPOLLERR)) s->flags |= F_WRITABLE;
    if (c->kind == K_UP) {
        if (c->hs == US_CONNECTING) {
            int err = 0;
            if (ev & (EPOLLERR | EPOLLHUP)) {
                socklen_t len = sizeof err;
                if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) err = errno;
                if (err == 0) err = ECONNRESET;
            } else if (!(ev & EPOLLOUT)) {
                return;
            }
            h_connect_done(e, c, err);
            return;
        }
        if (c->hs == US_IDLE) { /* a pooled connection: data, a close or an error from it ends it */
            if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLERR | EPOLLHUP)) conn_end(e, c, 0);
            return;
        }
        if (ev & EPOLLERR) s->flags |= F_EOF;
        h_up_read(e, c);
        return;
    }
    if (ev & EPOLLERR) { /* the client reset: whatever it waited for is dropped */
        conn_t *u = h_link(c);
        h_abort(e, c, u);
        return;
    }
    h_client_io(e, c);
}

/* Timeouts (from sweep): a head not complete in time goes to Python (which answers 408); a client idle
 * between requests is closed; no answer within ``idle`` → Python's 504; a lingering close ends. */
static long h_sweep(Engine *e, double idle) {
    double now = mono_coarse();
    long n = 0;
    for (uint32_t i = 0; i < e->n_used; i++) {
        conn_t *c = e->conns[i];
        if (!c || c->state == ST_FREE || c->kind != K_CLIENT) continue;
        if (c->hf & H_LINGER) {
            if (now - c->last >= e->linger) {
                conn_end(e, c, 0);
                n++;
            }
            continue;
        }
        if (c->hs == HS_HEAD) {
            if (c->in.len > c->in.off && !c->c.len && now - c->head_t0 >= e->head_timeout) {
                h_handoff(e, c, 1);
                n++;
            } else if (!(c->hf & H_SERVED) && c->in.len == c->in.off && now - c->head_t0 >= e->head_timeout) {
                conn_end(e, c, 0); /* not a byte since the accept: closed without an answer, as nginx does */
                n++;
            } else if ((idle > 0.0 && now - c->last >= idle) || (e->draining && c->in.len == c->in.off)) {
                if (!c->c.len) {
                    conn_end(e, c, 0);
                    n++;
                }
            }
            continue;
        }
        if (idle > 0.0 && now - c->last >= idle) {
            conn_t *u = h_link(c);
            if (u && u->rd) {
                h_stalled(e, u); /* the idle timeout is shorter than the read timeout */
            } else if (u && !(c->hf & H_STARTED)) {
                int t = u->target;
                conn_end(e, u, 1);
                c->link = NULL;
                h_fail(e, c, FAIL_IDLE, t);
            } else {
                h_abort(e, c, u);
            }
            n++;
        }
    }
    return n;
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
            if (e->http) { /* the answer http.py gives: 503, close */
                static const char busy[] = "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
                                           "Content-Length: 51\r\nConnection: close\r\nRetry-After: 1\r\n\r\n"
                                           "balancedesk: too many connections, try again later\n";
                if (send(fd, busy, sizeof busy - 1, MSG_NOSIGNAL | MSG_DONTWAIT) >= 0) shutdown(fd, SHUT_WR);
            }
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
        if (e->http) {
            h_accept(e, c);
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

static void on_conn_event(Engine *e, uint64_t data, uint32_t ev) {
    uint32_t id = (uint32_t)((data >> 1) & 0x7FFFFFFF), gen = (uint32_t)(data >> 32);
    int upstream = (int)(data & 1);
    if (id >= e->n_used) return;
    conn_t *c = e->conns[id];
    if (!c || c->gen != gen || c->state == ST_FREE) return; /* stale: ended earlier in this batch */
    if (c->kind != K_PAIR) {
        h_event(e, c, ev);
        return;
    }
    side_t *s = upstream ? &c->u : &c->c;
    if (ev & (EPOLLIN | EPOLLHUP | EPOLLERR)) s->flags |= F_READABLE;
    if (ev & EPOLLRDHUP) s->flags |= F_RDHUP | F_READABLE;
    if (ev & (EPOLLOUT | EPOLLHUP | EPOLLERR)) s->flags |= F_WRITABLE;
    if (c->state == ST_CONNECTING) {
        if (!upstream) {
            /* the client went away while its connect was in progress: a reset, or an EOF with nothing
             * unread before it (a FIN after bytes is a half-close: the bytes still go to the member) */
            if ((ev & (EPOLLHUP | EPOLLERR)) || ((ev & EPOLLRDHUP) && client_left(c->c.fd))) {
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
    static char *kwlist[] = {"on_accept", "on_connect", "max_connections", "connect_timeout", "on_request",
                             "on_fail", "on_handoff", "head_limit", "head_timeout", "linger", "affinity",
                             "answer_head_limit", "read_timeout", NULL};
    PyObject *on_accept, *on_connect, *on_request = NULL, *on_fail = NULL, *on_handoff = NULL;
    long max_conns = LONG_MAX; /* no cap unless given; the limits (limits.py) come from Python, no defaults here */
    double ct = 0.0, head_timeout = -1.0, linger = -1.0, read_timeout = -1.0;
    Py_ssize_t head_limit = -1, answer_head_limit = -1;
    const char *affinity = NULL;
    Py_ssize_t affinity_len = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OO|ld$OOOnddz#nd", kwlist, &on_accept, &on_connect, &max_conns, &ct,
                                     &on_request, &on_fail, &on_handoff, &head_limit, &head_timeout, &linger,
                                     &affinity, &affinity_len, &answer_head_limit, &read_timeout))
        return -1;
    if (!PyCallable_Check(on_accept) || !PyCallable_Check(on_connect)) {
        PyErr_SetString(PyExc_TypeError, "on_accept and on_connect must be callable");
        return -1;
    }
    int http = on_request != NULL && on_request != Py_None;
    if (http && (!PyCallable_Check(on_request) || !on_fail || !PyCallable_Check(on_fail) || !on_handoff ||
                 !PyCallable_Check(on_handoff))) {
        PyErr_SetString(PyExc_TypeError, "HTTP mode needs callable on_request, on_fail and on_handoff");
        return -1;
    }
    if (affinity_len >= (Py_ssize_t)sizeof e->affinity) {
        PyErr_Format(PyExc_ValueError, "affinity header name longer than %d bytes", (int)sizeof e->affinity - 1);
        return -1;
    }
    if (http && (head_limit < 0 || answer_head_limit < 0 || head_timeout < 0.0 || linger < 0.0)) {
        PyErr_SetString(PyExc_TypeError, "HTTP mode needs head_limit, answer_head_limit, head_timeout and linger");
        return -1;
    }
    if (http && !(read_timeout > 0.0)) { /* the group's listener.readTimeout (core/model.py) */
        PyErr_Format(PyExc_ValueError, "HTTP mode needs a positive read_timeout: %g", read_timeout);
        return -1;
    }
    if (http && (head_limit == 0 || answer_head_limit == 0)) { /* the CLI enforces limits.REQUEST_HEAD_MIN_BYTES */
        PyErr_Format(PyExc_ValueError, "head limits must be positive: %zd, %zd", head_limit, answer_head_limit);
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
    if (http) {
        e->http = 1;
        Py_INCREF(on_request);
        Py_INCREF(on_fail);
        Py_INCREF(on_handoff);
        e->on_request = on_request;
        e->on_fail = on_fail;
        e->on_handoff = on_handoff;
        e->head_limit = (size_t)head_limit;
        e->answer_head_limit = (size_t)answer_head_limit;
        e->head_timeout = head_timeout;
        e->linger = linger;
        e->read_timeout = read_timeout;
        for (Py_ssize_t i = 0; i < affinity_len; i++) e->affinity[i] = (char)lc((unsigned char)affinity[i]);
        e->affinity_len = (size_t)affinity_len;
    }
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
    Py_VISIT(e->on_request);
    Py_VISIT(e->on_fail);
    Py_VISIT(e->on_handoff);
    return 0;
}

static int Engine_clear(Engine *e) {
    Py_CLEAR(e->on_accept);
    Py_CLEAR(e->on_connect);
    Py_CLEAR(e->on_request);
    Py_CLEAR(e->on_fail);
    Py_CLEAR(e->on_handoff);
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
    PyMem_Free(e->log);
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

/* HTTP: a new read timeout, at once for the answers awaited too (each due its new timeout after its
 * request was complete; the list stays in send order, so its head is still due first). */
static PyObject *Engine_set_read_timeout(Engine *e, PyObject *arg) {
    double v = PyFloat_AsDouble(arg);
    if (v == -1.0 && PyErr_Occurred()) return NULL;
    if (!(v > 0.0)) {
        PyErr_Format(PyExc_ValueError, "read_timeout must be positive: %g", v);
        return NULL;
    }
    e->read_timeout = v;
    for (conn_t *u = e->rd_head; u; u = u->dl_next) u->deadline = u->sent + v;
    if (e->rd_head && (e->timer_at == 0.0 || e->rd_head->deadline < e->timer_at)) arm_timer(e, e->rd_head->deadline);
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
        if (c->kind == K_UP) { /* HTTP: a member's idle connections close, busy ones after their answer */
            if (t >= 0 && c->target != t) continue;
            conn_t *cl = h_link(c);
            if (t >= 0 && cl) {
                c->hf |= H_CLOSING;
                continue;
            }
            conn_end(e, c, 1);
            if (cl) conn_end(e, cl, 1);
            n++;
            continue;
        }
        if (c->kind == K_CLIENT) {
            if (t < 0) {
                conn_end(e, c, 1);
                n++;
            }
            continue;
        }
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
    if (e->http) return PyLong_FromLong(h_sweep(e, idle));
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

/* Counters since the last call: ([(member, bytes_in, bytes_out, closed, failures), ...], [(member, seconds),
 * ...], refused, accept_errors, samples_dropped, accepted (HTTP; in L4 Python counts accepts)). */
static PyObject *Engine_collect(Engine *e, PyObject *Py_UNUSED(ignored)) {
    PyObject *per = PyList_New(0), *lat = PyList_New(e->n_samples);
    if (!per || !lat) goto fail;
    for (int t = 0; t < e->n_targets; t++) {
        target_t *tg = &e->targets[t];
        if (!(tg->d_in | tg->d_out | tg->closed | tg->failures)) continue;
        PyObject *row = Py_BuildValue("(iKKKK)", t, tg->d_in, tg->d_out, tg->closed, tg->failures);
        if (!row || PyList_Append(per, row) < 0) {
            Py_XDECREF(row);
            goto fail;
        }
        Py_DECREF(row);
        tg->d_in = tg->d_out = tg->closed = tg->failures = 0;
    }
    for (int i = 0; i < e->n_samples; i++) {
        PyObject *row = Py_BuildValue("(id)", e->samples_i[i], e->samples_t[i]);
        if (!row) goto fail;
        PyList_SET_ITEM(lat, i, row);
    }
    e->n_samples = 0;
    PyObject *out = Py_BuildValue("(NNKKKK)", per, lat, e->refused, e->accept_errors, e->samples_dropped,
                                  e->accepted);
    e->refused = e->accept_errors = e->samples_dropped = e->accepted = 0;
    return out;
fail:
    Py_XDECREF(per);
    Py_XDECREF(lat);
    return NULL;
}

/* Graceful stop (HTTP): close clients between requests now, the others after the answer in flight. */
/* Access log records on (``capacity`` records kept between two take_log calls) or off (0). */
static PyObject *Engine_set_access_log(Engine *e, PyObject *arg) {
    long cap = PyLong_AsLong(arg);
    if (cap == -1 && PyErr_Occurred()) return NULL;
    if (cap < 0 || cap > 1000000) {
        PyErr_Format(PyExc_ValueError, "access log capacity out of range: %ld", cap);
        return NULL;
    }
    if (cap == 0) {
        PyMem_Free(e->log);
        e->log = NULL;
        e->log_n = e->log_cap = 0;
        Py_RETURN_NONE;
    }
    log_rec_t *nl = PyMem_Realloc(e->log, (size_t)cap * sizeof *nl);
    if (!nl) return PyErr_NoMemory();
    e->log = nl;
    e->log_cap = (int)cap;
    if (e->log_n > e->log_cap) e->log_n = e->log_cap;
    Py_RETURN_NONE;
}

/* The access log records since the last call, as bytes (LOG_RECORD_SIZE each), and how many were dropped. */
static PyObject *Engine_take_log(Engine *e, PyObject *Py_UNUSED(ignored)) {
    PyObject *out = Py_BuildValue("(y#K)", e->log ? (const char *)e->log : "", (Py_ssize_t)e->log_n * (Py_ssize_t)sizeof(log_rec_t),
                                  e->log_dropped);
    if (out) {
        e->log_n = 0;
        e->log_dropped = 0;
    }
    return out;
}

static PyObject *Engine_drain(Engine *e, PyObject *Py_UNUSED(ignored)) {
    e->draining = 1;
    long n = 0;
    for (uint32_t i = 0; i < e->n_used; i++) {
        conn_t *c = e->conns[i];
        if (!c || c->state == ST_FREE) continue;
        if (c->kind == K_UP && c->hs == US_IDLE) {
            conn_end(e, c, 0);
        } else if (c->kind == K_CLIENT && c->hs == HS_HEAD && c->in.len == c->in.off && !c->c.len &&
                   !(c->hf & H_LINGER)) {
            conn_end(e, c, 0);
            n++;
        } else if (c->kind == K_CLIENT) {
            c->hf |= H_CLOSING;
        }
    }
    return PyLong_FromLong(n);
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
    {"set_read_timeout", (PyCFunction)Engine_set_read_timeout, METH_O, "HTTP: seconds to an answer's first byte."},
    {"peer", (PyCFunction)Engine_peer, METH_O, "The client address of a connection, or None."},
    {"abort", (PyCFunction)Engine_abort, METH_O, "abort(member) resets its connections; -1: all."},
    {"sweep", (PyCFunction)Engine_sweep, METH_O, "sweep(idle_seconds) -> idle connections ended."},
    {"collect", (PyCFunction)Engine_collect, METH_NOARGS, "Counters since the last call."},
    {"drain", (PyCFunction)Engine_drain, METH_NOARGS, "HTTP graceful stop: close idle clients, the rest after their answer."},
    {"close", (PyCFunction)Engine_close, METH_NOARGS, "Reset every connection."},
    {"set_access_log", (PyCFunction)Engine_set_access_log, METH_O, "set_access_log(capacity): records on (0: off)."},
    {"take_log", (PyCFunction)Engine_take_log, METH_NOARGS, "take_log() -> (records, dropped) since the last call."},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef Engine_members[] = {
    {"active", T_LONG, offsetof(Engine, active), READONLY, "connections alive (connecting or relaying)"},
    {NULL, 0, 0, 0, NULL},
};

static PyTypeObject EngineType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "balancedesk.core.proxy._engine.Engine",
    .tp_basicsize = sizeof(Engine),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_traverse = (traverseproc)Engine_traverse,
    .tp_clear = (inquiry)Engine_clear,
    .tp_doc = "The native data plane: accept, connect, relay (L4) or forward requests (L7); decisions by Python callbacks.",
    .tp_new = Engine_new,
    .tp_init = (initproc)Engine_init,
    .tp_dealloc = (destructor)Engine_dealloc,
    .tp_methods = Engine_methods,
    .tp_members = Engine_members,
};

static struct PyModuleDef enginemodule = {
    PyModuleDef_HEAD_INIT, "_engine", "Balance Desk's native data plane (Linux epoll): L4 and the L7 fast path.", -1, NULL,
};

PyMODINIT_FUNC PyInit__engine(void) {
    if (PyType_Ready(&EngineType) < 0) return NULL;
    PyObject *m = PyModule_Create(&enginemodule);
    if (!m) return NULL;
    if (PyModule_AddIntConstant(m, "FAIL_ROUTING", FAIL_ROUTING) < 0 ||
        PyModule_AddIntConstant(m, "FAIL_BAD_ANSWER", FAIL_BAD_ANSWER) < 0 ||
        PyModule_AddIntConstant(m, "FAIL_IDLE", FAIL_IDLE) < 0 || PyModule_AddIntConstant(m, "FAIL_CLOSED", FAIL_CLOSED) < 0 ||
        PyModule_AddIntConstant(m, "FAIL_STALLED", FAIL_STALLED) < 0 ||
        PyModule_AddIntConstant(m, "FAIL_CLOSED_FRESH", FAIL_CLOSED_FRESH) < 0 ||
        PyModule_AddIntConstant(m, "CONNECT_CLIENT_LEFT", CONNECT_CLIENT_LEFT) < 0 ||
        PyModule_AddIntConstant(m, "CONNECT_UNANSWERED", CONNECT_UNANSWERED) < 0 ||
        PyModule_AddIntConstant(m, "CONNECT_STALLED", CONNECT_STALLED) < 0 ||
        PyModule_AddIntConstant(m, "LOG_RECORD_SIZE", (long)sizeof(log_rec_t)) < 0 ||
        PyModule_AddIntConstant(m, "LOG_REQ_MAX", LOG_REQ_MAX) < 0 || PyModule_AddIntConstant(m, "LOG_OK", LOG_OK) < 0 ||
        PyModule_AddIntConstant(m, "LOG_FAILED", LOG_FAILED) < 0 || PyModule_AddIntConstant(m, "LOG_RESET", LOG_RESET) < 0 ||
        PyModule_AddIntConstant(m, "LOG_ABANDONED", LOG_ABANDONED) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    Py_INCREF(&EngineType);
    if (PyModule_AddObject(m, "Engine", (PyObject *)&EngineType) < 0) {
        Py_DECREF(&EngineType);
        Py_DECREF(m);
        return NULL;
    }
    if (PyModule_AddIntConstant(m, "IO_CHUNK_BYTES", SCRATCH) < 0 ||
        PyModule_AddIntConstant(m, "REQUEST_HEADERS_MAX", MAX_HEADERS) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
