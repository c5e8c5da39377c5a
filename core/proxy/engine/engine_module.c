/* The Python type (Engine) and the module. */
#include "engine.h"


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

/* Counters since the last call: ([(member, bytes_in, bytes_out, closed, failures, 1xx, 2xx, 3xx, 4xx, 5xx), ...],
 * [(member, seconds),
 * ...], refused, accept_errors, samples_dropped, accepted (HTTP; in L4 Python counts accepts)). */
static PyObject *Engine_collect(Engine *e, PyObject *Py_UNUSED(ignored)) {
    PyObject *per = PyList_New(0), *lat = PyList_New(e->n_samples);
    if (!per || !lat) goto fail;
    for (int t = 0; t < e->n_targets; t++) {
        target_t *tg = &e->targets[t];
        unsigned long long *k = tg->classes;
        if (!(tg->d_in | tg->d_out | tg->closed | tg->failures | k[0] | k[1] | k[2] | k[3] | k[4])) continue;
        PyObject *row = Py_BuildValue("(iKKKKKKKKK)", t, tg->d_in, tg->d_out, tg->closed, tg->failures, k[0], k[1],
                                      k[2], k[3], k[4]);
        if (!row || PyList_Append(per, row) < 0) {
            Py_XDECREF(row);
            goto fail;
        }
        Py_DECREF(row);
        tg->d_in = tg->d_out = tg->closed = tg->failures = 0;
        memset(tg->classes, 0, sizeof tg->classes);
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
