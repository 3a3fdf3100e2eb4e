/* proto/resp: the Redis serialization protocol (RESP2 and RESP3) as pure
 * functions over bytes: no sockets, no allocation, no logging.
 *
 * Requests: resp_req_parse() reads one command, either a multibulk array
 * of bulk strings ("*2\r\n$3\r\nGET\r\n$1\r\nk\r\n") or an inline line
 * ("GET k\r\n", as telnet and redis-cli send), with Redis's limits and
 * Redis's exact "Protocol error: ..." texts.
 *
 * Values: resp_value_scan() checks that a complete RESP2/RESP3 value
 * (replies, nested aggregates, attributes, pushes) is present and returns
 * its length; resp_token_parse() reads one type header.
 *
 * Encoding: resp_encode_*() write into caller memory that has at least
 * the documented number of bytes available, and return the end. */
#ifndef PROTO_RESP_H
#define PROTO_RESP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Redis's defaults */
#define RESP_INLINE_MAX (64 * 1024)          /* PROTO_INLINE_MAX_SIZE */
#define RESP_MBULK_BIG_ARG (32 * 1024)
#define RESP_UNAUTH_MAX_MULTIBULK 10
#define RESP_UNAUTH_MAX_BULK 16384

typedef struct resp_limits {
    long long max_bulk;      /* proto-max-bulk-len */
    long long max_multibulk; /* largest argument count */
    size_t max_inline;       /* longest inline command / header line */
    int unauthenticated;     /* apply Redis's tighter limits before AUTH */
} resp_limits_t;

/* One argument: offset into the buffer given to resp_req_parse, and length.
 * Offsets (not pointers) so that the caller may move its buffer between
 * calls. */
typedef struct resp_arg {
    const char *p;           /* filled in on success: buf + off */
    size_t off;
    size_t len;
    int esc;                 /* inline argument with quotes: p/len is the raw
                                token; resp_arg_unescape() gives the value */
} resp_arg_t;

/* Parser state, owned by the caller; zero it (resp_req_reset) before the
 * first command and after each complete one. It lets a large request
 * arriving in many reads be parsed without rescanning. */
typedef struct resp_req {
    int state;               /* 0 start, 1 in multibulk */
    int inline_req;
    long long nargs;         /* multibulk count announced */
    size_t argc;             /* arguments complete so far */
    size_t pos;              /* bytes of buf examined and accepted so far */
    long long bulk;          /* length of the current bulk, -1 if none yet */
    char errbuf[48];         /* for errors that quote the input */
} resp_req_t;

void resp_req_reset(resp_req_t *r);

/* Parse one request from buf[0..len) (the same buffer, possibly extended
 * or moved, on every call until the request is complete). Arguments are
 * stored in argv[0..argv_cap); when the request announces more than
 * argv_cap arguments the call returns -ENOSPC with r->nargs set: grow argv
 * to at least r->nargs entries and call again (progress is kept).
 *
 * Returns the number of bytes the request occupies (> 0; *argc set, argv[i].p
 * set; *argc may be 0 for an empty line or "*0", which Redis ignores),
 * -EAGAIN when more bytes are needed, -ENOSPC as above, or -EPROTO with
 * *err set to the Redis error text without the "-ERR " prefix (static
 * string, e.g. "Protocol error: invalid bulk length"). */
ssize_t resp_req_parse(resp_req_t *r, const resp_limits_t *lim, const char *buf, size_t len,
                       resp_arg_t *argv, size_t argv_cap, size_t *argc, const char **err);

/* Value of an inline argument that has esc set (quotes and escapes as in
 * redis-cli and redis.conf: "a\x41\n", 'it''s'): written to dst, which
 * needs a->len bytes. Returns the value's length. */
size_t resp_arg_unescape(const resp_arg_t *a, char *dst);

/* Redis's string2ll: strict decimal (no '+', no leading zeros, no spaces).
 * Returns 0 and *v, or -1. */
int resp_str2ll(const char *s, size_t n, long long *v);

/* ---- general values (RESP2 and RESP3) ------------------------------- */

typedef enum resp_type {
    RESP_SIMPLE = '+', RESP_ERROR = '-', RESP_INTEGER = ':', RESP_BULK = '$',
    RESP_ARRAY = '*', RESP_NULL = '_', RESP_BOOL = '#', RESP_DOUBLE = ',',
    RESP_BIGNUM = '(', RESP_BULKERR = '!', RESP_VERBATIM = '=', RESP_MAP = '%',
    RESP_SET = '~', RESP_ATTR = '|', RESP_PUSH = '>',
} resp_type_t;

/* One header: for SIMPLE/ERROR/INTEGER/DOUBLE/BIGNUM/BOOL/NULL the line
 * content (p, len); for BULK/BULKERR/VERBATIM the payload (p, len), len -1
 * for the RESP2 null bulk; for aggregates the element count in n (-1 for
 * the RESP2 null array; a map or attribute of n pairs has 2n elements). */
typedef struct resp_token {
    resp_type_t type;
    const char *p;
    long long len;
    long long n;
    long long ival;          /* INTEGER */
} resp_token_t;

/* Parse one token at buf. Returns bytes consumed, -EAGAIN or -EPROTO. */
ssize_t resp_token_parse(const resp_limits_t *lim, const char *buf, size_t len, resp_token_t *t);

/* Check that one complete value (nesting at most max_depth) is at buf.
 * Returns its length, -EAGAIN or -EPROTO; *type gets the top-level type. */
ssize_t resp_value_scan(const resp_limits_t *lim, const char *buf, size_t len, int max_depth,
                        resp_type_t *type);

/* ---- encoding --------------------------------------------------------- */

/* Bytes any header (type char, 20 digits, CRLF) needs at most. */
#define RESP_HDR_MAX 24

/* "<type><v>\r\n", e.g. resp_encode_hdr(p, ':', 42) or ('*', 3), ('$', 5). */
char *resp_encode_hdr(char *dst, char type, long long v);
/* Bulk string: needs RESP_HDR_MAX + n + 2 bytes. */
char *resp_encode_bulk(char *dst, const void *p, size_t n);
/* Simple string or error line: type '+' or '-'; needs n + 3 bytes. CR and
 * LF in s are replaced by spaces so the reply stays one line. */
char *resp_encode_line(char *dst, char type, const char *s, size_t n);
/* Null: "$-1\r\n" (RESP2) or "_\r\n" (RESP3); needs 5 bytes. */
char *resp_encode_null(char *dst, int resp3);
/* Encode a command as a multibulk array (for clients and tests); needs
 * resp_encode_cmd_len() bytes. */
size_t resp_encode_cmd_len(int argc, const char *const *argv, const size_t *lens);
char *resp_encode_cmd(char *dst, int argc, const char *const *argv, const size_t *lens);
/* Decimal digits of v, into dst (needs 21 bytes); returns length. */
size_t resp_ll2str(char *dst, long long v);

#endif
