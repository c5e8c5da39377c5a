/* Listeners and accept, and dispatching epoll events to L4 or L7. */
#include "engine.h"


/* --- events ----------------------------------------------------------------------------------------- */

void accept_some(Engine *e, int lfd) {
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

void on_conn_event(Engine *e, uint64_t data, uint32_t ev) {
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
        int err;
        if (!connect_outcome(s->fd, ev, &err)) return;
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
