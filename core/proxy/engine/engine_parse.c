/* The HTTP/1.1 parser: head ends, header names and values, Content-Length, chunked framing. */
#include "engine.h"


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

int hb_reserve(hbuf_t *b, size_t more) {
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
void h_release(conn_t *c) {
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

int hb_put(hbuf_t *b, const char *d, size_t n) {
    if (hb_reserve(b, n) < 0) return -1;
    memcpy(b->p + b->len, d, n);
    b->len += n;
    return 0;
}

int name_is(const char *n, size_t len, const char *lit) {
    size_t k = strlen(lit);
    if (len != k) return 0;
    for (size_t i = 0; i < k; i++)
        if (lc((unsigned char)n[i]) != lit[i]) return 0;
    return 1;
}

int is_tchar(int ch) {
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           (ch && strchr("!#$%&'*+-.^_`|~", ch) != NULL);
}

/* Find the blank line ending a head in b (from b->scanned on). Returns the head's length, 0 if incomplete,
 * -1 if a bare LF or CR shows up (a head the fast path leaves to Python, which refuses it at once). */
long head_end(hbuf_t *b) {
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

void trim(const char **v, const char **ve) {
    while (*v < *ve && (**v == ' ' || **v == '\t')) (*v)++;
    while (*ve > *v && ((*ve)[-1] == ' ' || (*ve)[-1] == '\t')) (*ve)--;
}

int parse_len(const char *v, const char *ve, long long *out) {
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
int conn_options(const char *v, const char *ve) {
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
long chunk_scan(conn_t *u, const char *d, long n) {
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
