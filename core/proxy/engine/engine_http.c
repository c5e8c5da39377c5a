/* The L7 fast path: routing a request, forwarding bodies, member answers, stalls, sweeping. */
#include "engine.h"


/* Reset a client and the member connection its request is on: an answer cut, or a socket broken. */
void h_abort(Engine *e, conn_t *c, conn_t *u) {
    if (u && u->hs == US_CONNECTING) { /* its connect is abandoned: Python forgets the request */
        h_abandon(e, c, u);
        return;
    }
    if (u) conn_end(e, u, 1);
    conn_end(e, c, 1);
}

/* Hand the client connection to Python (between requests): the fd and the bytes read but not used. */
void h_handoff(Engine *e, conn_t *c, int timed_out) {
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
void h_close_soon(Engine *e, conn_t *c) {
    c->hf |= H_LINGER | H_CLOSING;
    c->last = mono_coarse();
    if (!c->c.len && !(c->c.flags & F_SHUT)) {
        shutdown(c->c.fd, SHUT_WR);
        c->c.flags |= F_SHUT;
    }
}

/* Answer with Python's error response (``code``: one of FAIL_*). */
void h_fail(Engine *e, conn_t *c, int code, int target) {
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

/* The request goes out on u: its head, then the body read so far. */
void h_attach(Engine *e, conn_t *c, conn_t *u) {
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
void h_route(Engine *e, conn_t *c, long t, int announce) {
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

void h_connect_done(Engine *e, conn_t *u, int err) {
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

void h_connect(Engine *e, conn_t *c, long t) {
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

/* Parse the request head (hl bytes at c->in) into c->req. 0: routed on; 1: not for the fast path. */
int h_request(Engine *e, conn_t *c, long hl) {
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
void h_read_heads(Engine *e, conn_t *c) {
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
void h_body(Engine *e, conn_t *c, conn_t *u) {
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
void h_done(Engine *e, conn_t *c, conn_t *u) {
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

/* Body bytes from the member: forward what belongs to the answer. 1: the answer is complete, 0: more to
 * come, -1: malformed. */
int h_body_bytes(Engine *e, conn_t *c, conn_t *u, const char *d, size_t n) {
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
int h_response_head(Engine *e, conn_t *c, conn_t *u, long hl) {
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
    e->targets[u->target].classes[status / 100 - 1]++; /* a final answer relayed (http.py counts the same) */
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
void h_up_lost(Engine *e, conn_t *c, conn_t *u) {
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
void h_stalled(Engine *e, conn_t *u) {
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
void h_abandon(Engine *e, conn_t *c, conn_t *u) {
    long cid = conn_cid(c);
    int t = u->target;
    double secs = mono() - u->cstart;
    conn_end(e, u, 1);
    conn_end(e, c, 1);
    call_int(e->on_connect, Py_BuildValue("(liid)", cid, t, CONNECT_CLIENT_LEFT, secs));
}

/* Whether the client's EOF (RDHUP) came with nothing unread before it: then it left (a FIN after bytes is
 * a half-close, and the bytes are still to be delivered). */
int client_left(int fd) {
    char b;
    ssize_t n = recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

/* Member side: flush the request, read the answer, forward it. */
void h_up_read(Engine *e, conn_t *u) {
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
void h_client_io(Engine *e, conn_t *c) {
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

void h_accept(Engine *e, conn_t *c) {
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

void h_event(Engine *e, conn_t *c, uint32_t ev) {
    side_t *s = &c->c;
    if (ev & (EPOLLIN | EPOLLHUP | EPOLLERR)) s->flags |= F_READABLE;
    if (ev & EPOLLRDHUP) s->flags |= F_RDHUP | F_READABLE;
    if (ev & (EPOLLOUT | EPOLLHUP | EPOLLERR)) s->flags |= F_WRITABLE;
    if (c->kind == K_UP) {
        if (c->hs == US_CONNECTING) {
            int err;
            if (!connect_outcome(s->fd, ev, &err)) return;
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
long h_sweep(Engine *e, double idle) {
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
