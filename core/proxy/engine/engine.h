#ifndef BALANCEDESK_ENGINE_H
#define BALANCEDESK_ENGINE_H
/* Balance Desk's native data plane: the one header every part of the engine includes.
 *
 * The engine is split by role; each file's first line says what it holds:
 *   engine_conn.c      the connection table, clocks, deadlines and the timer, closing a connection
 *   engine_log.c       access-log completion records (kept only while a log is on)
 *   engine_pool.c      member connects and the pool of idle member connections
 *   engine_l4.c        the L4 relay: byte-exact copying with flow control and half-close
 *   engine_parse.c     the HTTP/1.1 parser: head ends, header names and values, Content-Length, chunked framing
 *   engine_http.c      the L7 fast path: routing a request, forwarding bodies, member answers, stalls, sweeping
 *   engine_listen.c    listeners and accept, and dispatching epoll events to L4 or L7
 *   engine_module.c    the Python type (Engine) and the module
 *
 * What follows is the engine's overview, then its constants, types and every function shared between the
 * files. Only PyInit__engine is visible outside the extension (-fvisibility=hidden). */
/* Balance Desk's native data plane (Linux): accept, connect and relay bytes in C; decide in Python.
 * L4 in engine_l4.c; the L7 fast path (HTTP mode) in engine_http.c, its parser in engine_parse.c.
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
    unsigned long long classes[5]; /* L7: final answer heads relayed from this member, by class 1xx..5xx */
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


#define LOG_REQ_MAX 160
#define C_CLOSE 1
#define C_KEEPALIVE 2
#define C_OTHER 4
#define POOL_PER_TARGET 64


static inline uint64_t tag(conn_t *c, int upstream) {
    return ((uint64_t)c->gen << 32) | ((uint64_t)c->id << 1) | (uint64_t)upstream;
}

static inline long conn_cid(conn_t *c) { return (long)(((uint64_t)c->gen << 32) | c->id); }
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

static inline int lc(int ch) { return (ch >= 'A' && ch <= 'Z') ? ch + 32 : ch; }

static inline conn_t *h_link(conn_t *c) {
    conn_t *o = c->link;
    return (o && o->gen == c->link_gen && o->state != ST_FREE) ? o : NULL;
}

/* Chunked body: advance the parser over d[0..n). Returns bytes up to and including the end of the body
 * (the rest belongs to nobody), n if not at the end yet, -1 on a malformed chunk. */
enum { CS_SIZE = 0, CS_EXT, CS_SIZE_LF, CS_DATA, CS_DATA_CR, CS_DATA_LF, CS_TR_START, CS_TR_LINE, CS_TR_LF, CS_END_LF,
       CS_DONE };

/* shared functions, by the file that defines them */
/* engine_conn.c */
double mono(void);
double mono_coarse(void);
void dl_remove(Engine *e, conn_t *c);
void arm_timer(Engine *e, double at);
void dl_add(Engine *e, conn_t *c, double deadline);
void rd_add(Engine *e, conn_t *u);
conn_t *conn_new(Engine *e);
conn_t *conn_get(Engine *e, long cid);
void close_fd(int fd, int reset);
void conn_end(Engine *e, conn_t *c, int reset);
long call_int(PyObject *fn, PyObject *args);
void on_timer(Engine *e);
/* engine_log.c */
void log_put(Engine *e, conn_t *c, int target, int status, int outcome, double first, int l7);
void log_l7(Engine *e, conn_t *c, int status, int outcome);
void log_l4(Engine *e, conn_t *c, int reset);
/* engine_pool.c */
int connect_outcome(int fd, uint32_t ev, int *err);
void connect_done(Engine *e, conn_t *c, int err);
int open_connect(Engine *e, target_t *tg, uint64_t tagv, conn_t *dl, int *fdp);
void start_connect(Engine *e, conn_t *c, long target);
void link_pair(conn_t *c, conn_t *u);
void pool_unlink(Engine *e, conn_t *u);
void pool_put(Engine *e, conn_t *u);
PyObject *pooled_mask(Engine *e);
/* engine_l4.c */
int out_put(side_t *s, const char *d, size_t n);
int out_write(side_t *s, const char *d, size_t n);
int out_flush(side_t *s);
int flush(side_t *dst);
int pump(Engine *e, conn_t *c, side_t *src, side_t *dst, int down);
void relay(Engine *e, conn_t *c);
/* engine_parse.c */
int hb_reserve(hbuf_t *b, size_t more);
void h_release(conn_t *c);
int hb_put(hbuf_t *b, const char *d, size_t n);
int name_is(const char *n, size_t len, const char *lit);
int is_tchar(int ch);
long head_end(hbuf_t *b);
void trim(const char **v, const char **ve);
int parse_len(const char *v, const char *ve, long long *out);
int conn_options(const char *v, const char *ve);
long chunk_scan(conn_t *u, const char *d, long n);
/* engine_listen.c */
void accept_some(Engine *e, int lfd);
void on_conn_event(Engine *e, uint64_t data, uint32_t ev);
/* engine_http.c */
void h_abort(Engine *e, conn_t *c, conn_t *u);
void h_handoff(Engine *e, conn_t *c, int timed_out);
void h_close_soon(Engine *e, conn_t *c);
void h_fail(Engine *e, conn_t *c, int code, int target);
void h_attach(Engine *e, conn_t *c, conn_t *u);
void h_route(Engine *e, conn_t *c, long t, int announce);
void h_connect_done(Engine *e, conn_t *u, int err);
void h_connect(Engine *e, conn_t *c, long t);
int h_request(Engine *e, conn_t *c, long hl);
void h_read_heads(Engine *e, conn_t *c);
void h_body(Engine *e, conn_t *c, conn_t *u);
void h_done(Engine *e, conn_t *c, conn_t *u);
int h_body_bytes(Engine *e, conn_t *c, conn_t *u, const char *d, size_t n);
int h_response_head(Engine *e, conn_t *c, conn_t *u, long hl);
void h_up_lost(Engine *e, conn_t *c, conn_t *u);
void h_stalled(Engine *e, conn_t *u);
void h_abandon(Engine *e, conn_t *c, conn_t *u);
int client_left(int fd);
void h_up_read(Engine *e, conn_t *u);
void h_client_io(Engine *e, conn_t *c);
void h_accept(Engine *e, conn_t *c);
void h_event(Engine *e, conn_t *c, uint32_t ev);
long h_sweep(Engine *e, double idle);

#endif
