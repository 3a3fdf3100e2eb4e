/* proto/resp: RESP2/RESP3 request parsing, value scanning and encoding.
 *
 * The request parser follows Redis's processMultibulkBuffer and
 * processInlineBuffer (same limits, same error texts) but keeps "need more
 * bytes" and "malformed" apart and resumes where it stopped. */
#include "proto/resp.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

void resp_req_reset(resp_req_t *r)
{
    r->state = 0;
    r->inline_req = 0;
    r->nargs = 0;
    r->argc = 0;
    r->pos = 0;
    r->bulk = -1;
}

int resp_str2ll(const char *s, size_t n, long long *v)
{
    unsigned long long acc = 0;
    size_t i = 0;
    int neg = 0;

    if (n == 0 || n > 20)
        return -1;
    if (n == 1 && s[0] == '0') {
        *v = 0;
        return 0;
    }
    if (s[0] == '-') {
        neg = 1;
        i = 1;
        if (n == 1)
            return -1;
    }
    if (s[i] < '1' || s[i] > '9')
        return -1;
    for (; i < n; i++) {
        unsigned d;

        if (s[i] < '0' || s[i] > '9')
            return -1;
        d = (unsigned)(s[i] - '0');
        if (acc > (ULLONG_MAX - d) / 10)
            return -1;
        acc = acc * 10 + d;
    }
    if (neg) {
        if (acc > (unsigned long long)LLONG_MAX + 1)
            return -1;
        *v = (long long)(0 - acc);
    } else {
        if (acc > LLONG_MAX)
            return -1;
        *v = (long long)acc;
    }
    return 0;
}

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Scan one inline token starting at s[0] (not a space) within s[0..n).
 * Tokens end at a space or the end; quotes switch to quoted mode as in
 * Redis's sdssplitargs. If dst is not NULL the value is written there.
 * Returns bytes of input consumed (> 0), or -1 on unbalanced quotes; *vlen
 * gets the value length, *esc whether quotes were involved. */
static ssize_t inline_token(const char *s, size_t n, char *dst, size_t *vlen, int *esc)
{
    size_t i = 0, o = 0;
    int inq = 0, insq = 0;

    *esc = 0;
    while (1) {
        char c = i < n ? s[i] : '\0';

        if (inq) {
            if (c == '\\' && i + 3 < n && s[i + 1] == 'x' && hexval(s[i + 2]) >= 0 &&
                hexval(s[i + 3]) >= 0) {
                if (dst)
                    dst[o] = (char)(hexval(s[i + 2]) * 16 + hexval(s[i + 3]));
                o++;
                i += 4;
                continue;
            }
            if (c == '\\' && i + 1 < n && s[i + 1] != '\0') {
                char e = s[i + 1];

                switch (e) {
                case 'n': e = '\n'; break;
                case 'r': e = '\r'; break;
                case 't': e = '\t'; break;
                case 'b': e = '\b'; break;
                case 'a': e = '\a'; break;
                default: break;
                }
                if (dst)
                    dst[o] = e;
                o++;
                i += 2;
                continue;
            }
            if (c == '"') {
                if (i + 1 < n && s[i + 1] != '\0' && !is_space(s[i + 1]))
                    return -1;
                i++;
                break;
            }
            if (i >= n || c == '\0')
                return -1;
            if (dst)
                dst[o] = c;
            o++;
            i++;
        } else if (insq) {
            if (c == '\\' && i + 1 < n && s[i + 1] == '\'') {
                if (dst)
                    dst[o] = '\'';
                o++;
                i += 2;
                continue;
            }
            if (c == '\'') {
                if (i + 1 < n && s[i + 1] != '\0' && !is_space(s[i + 1]))
                    return -1;
                i++;
                break;
            }
            if (i >= n || c == '\0')
                return -1;
            if (dst)
                dst[o] = c;
            o++;
            i++;
        } else {
            if (i >= n || c == ' ' || c == '\n' || c == '\r' || c == '\t' || c == '\0')
                break;
            if (c == '"') {
                inq = 1;
                *esc = 1;
            } else if (c == '\'') {
                insq = 1;
                *esc = 1;
            } else {
                if (dst)
                    dst[o] = c;
                o++;
            }
            i++;
        }
    }
    *vlen = o;
    return (ssize_t)i;
}

size_t resp_arg_unescape(const resp_arg_t *a, char *dst)
{
    size_t vlen = 0;
    int esc;

    if (!a->esc) {
        memcpy(dst, a->p, a->len);
        return a->len;
    }
    if (inline_token(a->p, a->len, dst, &vlen, &esc) < 0)
        return 0;
    return vlen;
}

static ssize_t parse_inline(resp_req_t *r, const resp_limits_t *lim, const char *buf, size_t len,
                            resp_arg_t *argv, size_t argv_cap, size_t *argc, const char **err)
{
    const char *nl = memchr(buf, '\n', len);
    size_t end, i, n = 0;

    if (nl == NULL) {
        if (len > lim->max_inline) {
            *err = "Protocol error: too big inline request";
            return -EPROTO;
        }
        return -EAGAIN;
    }
    end = (size_t)(nl - buf);
    if (end > lim->max_inline) {
        *err = "Protocol error: too big inline request";
        return -EPROTO;
    }
    /* Redis treats the line as a C string: a NUL ends it */
    {
        const char *z = memchr(buf, '\0', end);

        if (z != NULL)
            end = (size_t)(z - buf);
    }
    if (end > 0 && buf[end - 1] == '\r')
        end--;
    i = 0;
    while (1) {
        size_t vlen;
        int esc;
        ssize_t t;

        while (i < end && is_space(buf[i]))
            i++;
        if (i >= end)
            break;
        t = inline_token(buf + i, end - i, NULL, &vlen, &esc);
        if (t < 0) {
            *err = "Protocol error: unbalanced quotes in request";
            return -EPROTO;
        }
        if (n >= argv_cap) {
            /* count the rest so the caller can size argv once */
            size_t total = n, j = i;

            while (j < end) {
                ssize_t u;

                while (j < end && is_space(buf[j]))
                    j++;
                if (j >= end)
                    break;
                u = inline_token(buf + j, end - j, NULL, &vlen, &esc);
                if (u < 0) {
                    *err = "Protocol error: unbalanced quotes in request";
                    return -EPROTO;
                }
                j += (size_t)u;
                total++;
            }
            r->nargs = (long long)total;
            return -ENOSPC;
        }
        argv[n].off = i;
        argv[n].len = (size_t)t;
        argv[n].p = buf + i;
        argv[n].esc = esc;
        if (!esc)
            argv[n].len = vlen;
        n++;
        i += (size_t)t;
    }
    *argc = n;
    return (ssize_t)(nl - buf) + 1;
}

ssize_t resp_req_parse(resp_req_t *r, const resp_limits_t *lim, const char *buf, size_t len,
                       resp_arg_t *argv, size_t argv_cap, size_t *argc, const char **err)
{
    size_t pos = r->pos;

    *argc = 0;
    if (len == 0)
        return -EAGAIN;
    if (r->state == 0) {
        const char *cr;
        long long ll;

        if (buf[0] != '*')
            return parse_inline(r, lim, buf, len, argv, argv_cap, argc, err);
        cr = memchr(buf, '\r', len);
        if (cr == NULL) {
            if (len > lim->max_inline) {
                *err = "Protocol error: too big mbulk count string";
                return -EPROTO;
            }
            return -EAGAIN;
        }
        if ((size_t)(cr - buf) > lim->max_inline) {
            *err = "Protocol error: too big mbulk count string";
            return -EPROTO;
        }
        if ((size_t)(cr - buf) + 1 >= len)
            return -EAGAIN;
        if (cr[1] != '\n' || resp_str2ll(buf + 1, (size_t)(cr - buf) - 1, &ll) != 0 ||
            ll > INT_MAX || ll > lim->max_multibulk) {
            *err = "Protocol error: invalid multibulk length";
            return -EPROTO;
        }
        if (ll > RESP_UNAUTH_MAX_MULTIBULK && lim->unauthenticated) {
            *err = "Protocol error: unauthenticated multibulk length";
            return -EPROTO;
        }
        pos = (size_t)(cr - buf) + 2;
        if (ll <= 0) {
            resp_req_reset(r);
            return (ssize_t)pos;
        }
        r->state = 1;
        r->nargs = ll;
        r->argc = 0;
        r->bulk = -1;
        r->pos = pos;
    }
    if ((size_t)r->nargs > argv_cap)
        return -ENOSPC;
    while (r->argc < (size_t)r->nargs) {
        if (r->bulk < 0) {
            const char *cr;
            long long ll;

            if (pos >= len)
                return -EAGAIN;
            cr = memchr(buf + pos, '\r', len - pos);
            if (cr == NULL) {
                if (len - pos > lim->max_inline) {
                    *err = "Protocol error: too big bulk count string";
                    return -EPROTO;
                }
                return -EAGAIN;
            }
            if ((size_t)(cr - (buf + pos)) > lim->max_inline) {
                *err = "Protocol error: too big bulk count string";
                return -EPROTO;
            }
            if ((size_t)(cr - buf) + 1 >= len)
                return -EAGAIN;
            if (buf[pos] != '$') {
                snprintf(r->errbuf, sizeof(r->errbuf), "Protocol error: expected '$', got '%c'",
                         buf[pos]);
                *err = r->errbuf;
                return -EPROTO;
            }
            if (cr[1] != '\n' || resp_str2ll(buf + pos + 1, (size_t)(cr - (buf + pos)) - 1, &ll) != 0 ||
                ll < 0 || ll > lim->max_bulk) {
                *err = "Protocol error: invalid bulk length";
                return -EPROTO;
            }
            if (ll > RESP_UNAUTH_MAX_BULK && lim->unauthenticated) {
                *err = "Protocol error: unauthenticated bulk length";
                return -EPROTO;
            }
            pos = (size_t)(cr - buf) + 2;
            r->bulk = ll;
            r->pos = pos;
        }
        if (len - pos < (size_t)r->bulk + 2)
            return -EAGAIN;
        if (buf[pos + (size_t)r->bulk] != '\r' || buf[pos + (size_t)r->bulk + 1] != '\n') {
            *err = "Protocol error: bulk string not terminated by CRLF";
            return -EPROTO;
        }
        argv[r->argc].off = pos;
        argv[r->argc].len = (size_t)r->bulk;
        argv[r->argc].esc = 0;
        r->argc++;
        pos += (size_t)r->bulk + 2;
        r->bulk = -1;
        r->pos = pos;
    }
    for (size_t i = 0; i < r->argc; i++)
        argv[i].p = buf + argv[i].off;
    *argc = r->argc;
    resp_req_reset(r);
    return (ssize_t)pos;
}

/* ---- general values ---------------------------------------------------- */

static int valid_double(const char *p, size_t n)
{
    size_t i = 0;
    int digits = 0;

    if (n == 3 && (memcmp(p, "inf", 3) == 0 || memcmp(p, "nan", 3) == 0))
        return 1;
    if (n == 4 && (memcmp(p, "-inf", 4) == 0 || memcmp(p, "+inf", 4) == 0))
        return 1;
    if (i < n && (p[i] == '-' || p[i] == '+'))
        i++;
    for (; i < n && p[i] >= '0' && p[i] <= '9'; i++)
        digits++;
    if (i < n && p[i] == '.')
        for (i++; i < n && p[i] >= '0' && p[i] <= '9'; i++)
            digits++;
    if (!digits)
        return 0;
    if (i < n && (p[i] == 'e' || p[i] == 'E')) {
        int ed = 0;

        i++;
        if (i < n && (p[i] == '-' || p[i] == '+'))
            i++;
        for (; i < n && p[i] >= '0' && p[i] <= '9'; i++)
            ed++;
        if (!ed)
            return 0;
    }
    return i == n;
}

static int valid_bignum(const char *p, size_t n)
{
    size_t i = 0;

    if (n > 0 && (p[0] == '-' || p[0] == '+'))
        i++;
    if (i == n)
        return 0;
    for (; i < n; i++)
        if (p[i] < '0' || p[i] > '9')
            return 0;
    return 1;
}

ssize_t resp_token_parse(const resp_limits_t *lim, const char *buf, size_t len, resp_token_t *t)
{
    const char *cr;
    size_t line;
    long long ll;

    if (len == 0)
        return -EAGAIN;
    cr = memchr(buf, '\r', len);
    if (cr == NULL)
        return len > lim->max_inline ? -EPROTO : -EAGAIN;
    line = (size_t)(cr - buf);
    if (line > lim->max_inline)
        return -EPROTO;
    if (line + 1 >= len)
        return -EAGAIN;
    if (cr[1] != '\n')
        return -EPROTO;
    t->type = (resp_type_t)buf[0];
    t->p = buf + 1;
    t->len = (long long)line - 1;
    t->n = 0;
    t->ival = 0;
    if (memchr(buf + 1, '\n', line - 1) != NULL)
        return -EPROTO;
    switch (buf[0]) {
    case '+':
    case '-':
        return (ssize_t)line + 2;
    case ':':
        if (resp_str2ll(buf + 1, line - 1, &ll) != 0)
            return -EPROTO;
        t->ival = ll;
        return (ssize_t)line + 2;
    case '_':
        return line == 1 ? (ssize_t)line + 2 : -EPROTO;
    case '#':
        return line == 2 && (buf[1] == 't' || buf[1] == 'f') ? (ssize_t)line + 2 : -EPROTO;
    case ',':
        return valid_double(buf + 1, line - 1) ? (ssize_t)line + 2 : -EPROTO;
    case '(':
        return valid_bignum(buf + 1, line - 1) ? (ssize_t)line + 2 : -EPROTO;
    case '$':
    case '!':
    case '=':
        if (buf[0] == '$' && line == 3 && buf[1] == '-' && buf[2] == '1') {
            t->p = NULL;
            t->len = -1;
            return 5;
        }
        if (resp_str2ll(buf + 1, line - 1, &ll) != 0 || ll < 0 || ll > lim->max_bulk)
            return -EPROTO;
        if (buf[0] == '=' && (ll < 4 || (len >= line + 2 + 4 && buf[line + 2 + 3] != ':')))
            return -EPROTO;
        if (len - (line + 2) < (size_t)ll + 2)
            return -EAGAIN;
        if (buf[line + 2 + (size_t)ll] != '\r' || buf[line + 3 + (size_t)ll] != '\n')
            return -EPROTO;
        t->p = buf + line + 2;
        t->len = ll;
        return (ssize_t)(line + 2 + (size_t)ll + 2);
    case '*':
    case '%':
    case '~':
    case '|':
    case '>':
        if (buf[0] == '*' && line == 3 && buf[1] == '-' && buf[2] == '1') {
            t->n = -1;
            return 5;
        }
        if (resp_str2ll(buf + 1, line - 1, &ll) != 0 || ll < 0 || ll > lim->max_multibulk)
            return -EPROTO;
        t->n = (buf[0] == '%' || buf[0] == '|') ? ll * 2 : ll;
        return (ssize_t)line + 2;
    default:
        return -EPROTO;
    }
}

static ssize_t scan(const resp_limits_t *lim, const char *buf, size_t len, int depth)
{
    resp_token_t t;
    ssize_t n = resp_token_parse(lim, buf, len, &t);
    size_t pos;

    if (n < 0)
        return n;
    pos = (size_t)n;
    if (t.type == RESP_ATTR) {
        /* an attribute precedes the value it describes */
        ssize_t m;

        if (depth <= 0)
            return -EPROTO;
        for (long long i = 0; i < t.n; i++) {
            m = scan(lim, buf + pos, len - pos, depth - 1);
            if (m < 0)
                return m;
            pos += (size_t)m;
        }
        m = scan(lim, buf + pos, len - pos, depth);
        return m < 0 ? m : (ssize_t)(pos + (size_t)m);
    }
    if (t.type == RESP_ARRAY || t.type == RESP_MAP || t.type == RESP_SET || t.type == RESP_PUSH) {
        if (t.n > 0 && depth <= 0)
            return -EPROTO;
        for (long long i = 0; i < t.n; i++) {
            ssize_t m = scan(lim, buf + pos, len - pos, depth - 1);

            if (m < 0)
                return m;
            pos += (size_t)m;
        }
    }
    return (ssize_t)pos;
}

ssize_t resp_value_scan(const resp_limits_t *lim, const char *buf, size_t len, int max_depth,
                        resp_type_t *type)
{
    ssize_t n = scan(lim, buf, len, max_depth);

    if (n > 0 && type != NULL)
        *type = (resp_type_t)buf[0];
    return n;
}

/* ---- encoding ------------------------------------------------------------ */

size_t resp_ll2str(char *dst, long long v)
{
    char tmp[24];
    unsigned long long u;
    size_t n = 0, i = 0;

    if (v < 0) {
        dst[i++] = '-';
        u = 0 - (unsigned long long)v;
    } else {
        u = (unsigned long long)v;
    }
    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u != 0);
    while (n > 0)
        dst[i++] = tmp[--n];
    return i;
}

char *resp_encode_hdr(char *dst, char type, long long v)
{
    *dst++ = type;
    dst += resp_ll2str(dst, v);
    *dst++ = '\r';
    *dst++ = '\n';
    return dst;
}

char *resp_encode_bulk(char *dst, const void *p, size_t n)
{
    dst = resp_encode_hdr(dst, '$', (long long)n);
    memcpy(dst, p, n);
    dst += n;
    *dst++ = '\r';
    *dst++ = '\n';
    return dst;
}

char *resp_encode_line(char *dst, char type, const char *s, size_t n)
{
    *dst++ = type;
    for (size_t i = 0; i < n; i++)
        *dst++ = (s[i] == '\r' || s[i] == '\n') ? ' ' : s[i];
    *dst++ = '\r';
    *dst++ = '\n';
    return dst;
}

char *resp_encode_null(char *dst, int resp3)
{
    if (resp3) {
        memcpy(dst, "_\r\n", 3);
        return dst + 3;
    }
    memcpy(dst, "$-1\r\n", 5);
    return dst + 5;
}

size_t resp_encode_cmd_len(int argc, const char *const *argv, const size_t *lens)
{
    size_t n = RESP_HDR_MAX;

    for (int i = 0; i < argc; i++)
        n += RESP_HDR_MAX + lens[i] + 2;
    return n;
}

char *resp_encode_cmd(char *dst, int argc, const char *const *argv, const size_t *lens)
{
    dst = resp_encode_hdr(dst, '*', argc);
    for (int i = 0; i < argc; i++)
        dst = resp_encode_bulk(dst, argv[i], lens[i]);
    return dst;
}
