/* cache/reply: reply encoding into a client's output buffer, and the
 * argument parsers every command shares (Redis's exact semantics). */
#include "cache/cache_int.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

const char *const err_wrongtype = "WRONGTYPE Operation against a key holding the wrong kind of value";
const char *const err_notint = "ERR value is not an integer or out of range";
const char *const err_notfloat = "ERR value is not a valid float";
const char *const err_syntax = "ERR syntax error";
const char *const err_overflow = "ERR increment or decrement would overflow";

int out_reserve(cache_out_t *o, size_t n)
{
    size_t cap;
    char *p;

    if (o->cap - o->len >= n)
        return 0;
    if (o->oom)
        return -ENOMEM;
    cap = o->cap ? o->cap : 1024;
    while (cap - o->len < n)
        cap *= 2;
    p = core_realloc(CORE_TAG_RESP_CONN, o->p, cap);
    if (p == NULL) {
        o->oom = 1;
        return -ENOMEM;
    }
    o->p = p;
    o->cap = cap;
    return 0;
}

void out_free(cache_out_t *o)
{
    core_free(o->p);
    memset(o, 0, sizeof(*o));
}

static char *res(cache_ctx_t *x, size_t n)
{
    cache_out_t *o = x->out;

    if (out_reserve(o, n) != 0)
        return NULL;
    return o->p + o->len;
}

static void commit(cache_ctx_t *x, char *end)
{
    x->out->len = (size_t)(end - x->out->p);
}

void add_raw(cache_ctx_t *x, const char *s, size_t n)
{
    char *p = res(x, n);

    if (p == NULL)
        return;
    memcpy(p, s, n);
    commit(x, p + n);
}

void add_ok(cache_ctx_t *x)
{
    add_raw(x, "+OK\r\n", 5);
}

void add_status(cache_ctx_t *x, const char *s)
{
    size_t n = strlen(s);
    char *p = res(x, n + 3);

    if (p != NULL)
        commit(x, resp_encode_line(p, '+', s, n));
}

void add_err(cache_ctx_t *x, const char *s)
{
    size_t n = strlen(s);
    char *p = res(x, n + 3);

    if (p != NULL)
        commit(x, resp_encode_line(p, '-', s, n));
}

void add_errf(cache_ctx_t *x, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    add_err(x, buf);
}

void add_int(cache_ctx_t *x, long long v)
{
    char *p = res(x, RESP_HDR_MAX);

    if (p != NULL)
        commit(x, resp_encode_hdr(p, ':', v));
}

void add_bulk(cache_ctx_t *x, const char *s, size_t n)
{
    char *p = res(x, RESP_HDR_MAX + n + 2);

    if (p != NULL)
        commit(x, resp_encode_bulk(p, s, n));
}

void add_bulk_ll(cache_ctx_t *x, long long v)
{
    char buf[24];

    add_bulk(x, buf, resp_ll2str(buf, v));
}

int cache_d2string(char *buf, size_t len, double v)
{
    if (isnan(v))
        return snprintf(buf, len, "nan");
    if (isinf(v))
        return snprintf(buf, len, v < 0 ? "-inf" : "inf");
    if (v == 0)
        return snprintf(buf, len, signbit(v) ? "-0" : "0");
    if (v > -4503599627370495.0 && v < 4503599627370496.0 && v == (double)(long long)v)
        return snprintf(buf, len, "%lld", (long long)v);
    return snprintf(buf, len, "%.17g", v);
}

void add_bulk_double(cache_ctx_t *x, double d)
{
    char buf[128];
    int n;

    if (x->resp == 3) {
        char *p;

        buf[0] = ',';
        if (isinf(d))
            n = snprintf(buf + 1, sizeof(buf) - 1, d > 0 ? "inf" : "-inf");
        else
            n = snprintf(buf + 1, sizeof(buf) - 1, "%.17g", d);
        p = res(x, (size_t)n + 3);
        if (p == NULL)
            return;
        memcpy(p, buf, (size_t)n + 1);
        memcpy(p + n + 1, "\r\n", 2);
        commit(x, p + n + 3);
        return;
    }
    n = cache_d2string(buf, sizeof(buf), d);
    add_bulk(x, buf, (size_t)n);
}

void add_null(cache_ctx_t *x)
{
    char *p = res(x, 5);

    if (p != NULL)
        commit(x, resp_encode_null(p, x->resp == 3));
}

void add_null_array(cache_ctx_t *x)
{
    if (x->resp == 3)
        add_raw(x, "_\r\n", 3);
    else
        add_raw(x, "*-1\r\n", 5);
}

void add_array(cache_ctx_t *x, size_t n)
{
    char *p = res(x, RESP_HDR_MAX);

    if (p != NULL)
        commit(x, resp_encode_hdr(p, '*', (long long)n));
}

void add_map(cache_ctx_t *x, size_t n)
{
    char *p = res(x, RESP_HDR_MAX);

    if (p != NULL)
        commit(x, x->resp == 3 ? resp_encode_hdr(p, '%', (long long)n)
                               : resp_encode_hdr(p, '*', (long long)n * 2));
}

void add_set(cache_ctx_t *x, size_t n)
{
    char *p = res(x, RESP_HDR_MAX);

    if (p != NULL)
        commit(x, resp_encode_hdr(p, x->resp == 3 ? '~' : '*', (long long)n));
}

void add_bool(cache_ctx_t *x, int b)
{
    if (x->resp == 3)
        add_raw(x, b ? "#t\r\n" : "#f\r\n", 4);
    else
        add_raw(x, b ? ":1\r\n" : ":0\r\n", 4);
}

/* A fixed-width header ("*" + 20 digits + CRLF) that set_deferred_len
 * rewrites; 20 digits padded with leading zeros would not parse under
 * Redis's strict rules, so the header is written at its final size by
 * moving the payload instead. */
size_t add_deferred_array(cache_ctx_t *x)
{
    size_t at = x->out->len;
    char *p = res(x, RESP_HDR_MAX);

    if (p == NULL)
        return (size_t)-1;
    x->out->len += RESP_HDR_MAX;
    return at;
}

void set_deferred_len(cache_ctx_t *x, size_t at, size_t n)
{
    cache_out_t *o = x->out;
    char hdr[RESP_HDR_MAX];
    size_t hl;

    if (at == (size_t)-1 || o->oom)
        return;
    hl = (size_t)(resp_encode_hdr(hdr, '*', (long long)n) - hdr);
    memmove(o->p + at + hl, o->p + at + RESP_HDR_MAX, o->len - at - RESP_HDR_MAX);
    memcpy(o->p + at, hdr, hl);
    o->len -= RESP_HDR_MAX - hl;
}

/* ---- arguments ---------------------------------------------------------- */

int arg_ll(const resp_arg_t *a, long long *v)
{
    return resp_str2ll(a->p, a->len, v);
}

int arg_double(const resp_arg_t *a, double *v)
{
    char buf[5 * 1024 + 1];
    char *end;
    double d;

    if (a->len == 0 || a->len >= sizeof(buf) || isspace((unsigned char)a->p[0]))
        return -1;
    memcpy(buf, a->p, a->len);
    buf[a->len] = '\0';
    errno = 0;
    d = strtod(buf, &end);
    if (*end != '\0' || (size_t)(end - buf) != a->len ||
        (errno == ERANGE && (d == HUGE_VAL || d == -HUGE_VAL || fpclassify(d) == FP_ZERO)) ||
        isnan(d))
        return -1;
    *v = d;
    return 0;
}

int arg_eq(const resp_arg_t *a, const char *lit)
{
    size_t n = strlen(lit);

    return a->len == n && strncasecmp(a->p, lit, n) == 0;
}

int get_ll_or_reply(cache_ctx_t *x, const resp_arg_t *a, long long *v, const char *msg)
{
    if (arg_ll(a, v) != 0) {
        add_err(x, msg ? msg : err_notint);
        return -1;
    }
    return 0;
}
