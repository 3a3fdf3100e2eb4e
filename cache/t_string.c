/* cache/t_string: string commands with Redis's semantics and replies. */
#include "cache/cache_int.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define A(i) (&x->argv[(i)])

enum {
    SET_NX = 1 << 0,
    SET_XX = 1 << 1,
    SET_GET = 1 << 2,
    SET_KEEPTTL = 1 << 3,
    SET_PERSIST = 1 << 4,
    SET_EX = 1 << 5,
    SET_PX = 1 << 6,
    SET_EXAT = 1 << 7,
    SET_PXAT = 1 << 8,
};
#define SET_ANY_EXP (SET_EX | SET_PX | SET_EXAT | SET_PXAT)

static void err_expire(cache_ctx_t *x, const char *cmd)
{
    add_errf(x, "ERR invalid expire time in '%s' command", cmd);
}

/* Redis's parseExtendedStringArgumentsOrReply + getExpireMillisecondsOrReply.
 * getex: options of GETEX (PERSIST allowed, no NX/XX/GET/KEEPTTL).
 * *when gets the absolute expiry in ms (-1 none). Returns 0 or -1 (replied). */
static int parse_set_opts(cache_ctx_t *x, int start, int getex, const char *cmd, unsigned *flags,
                          long long *when, int *exp_idx)
{
    const resp_arg_t *expire = NULL;
    long long ms;

    *flags = 0;
    *when = -1;
    *exp_idx = -1;
    for (int j = start; j < x->argc; j++) {
        const resp_arg_t *a = A(j);
        int next = j + 1 < x->argc;
        unsigned f = *flags;

        if (!getex && arg_eq(a, "nx") && !(f & SET_XX)) {
            *flags |= SET_NX;
        } else if (!getex && arg_eq(a, "xx") && !(f & SET_NX)) {
            *flags |= SET_XX;
        } else if (!getex && arg_eq(a, "get")) {
            *flags |= SET_GET;
        } else if (!getex && arg_eq(a, "keepttl") && !(f & (SET_PERSIST | SET_ANY_EXP))) {
            *flags |= SET_KEEPTTL;
        } else if (getex && arg_eq(a, "persist") && !(f & (SET_KEEPTTL | SET_ANY_EXP))) {
            *flags |= SET_PERSIST;
        } else if (arg_eq(a, "ex") && next && !(f & (SET_KEEPTTL | SET_PERSIST | SET_EXAT | SET_PX | SET_PXAT))) {
            *flags |= SET_EX;
            expire = A(++j);
            *exp_idx = j - 1;
        } else if (arg_eq(a, "px") && next && !(f & (SET_KEEPTTL | SET_PERSIST | SET_EX | SET_EXAT | SET_PXAT))) {
            *flags |= SET_PX;
            expire = A(++j);
            *exp_idx = j - 1;
        } else if (arg_eq(a, "exat") && next && !(f & (SET_KEEPTTL | SET_PERSIST | SET_EX | SET_PX | SET_PXAT))) {
            *flags |= SET_EXAT;
            expire = A(++j);
            *exp_idx = j - 1;
        } else if (arg_eq(a, "pxat") && next && !(f & (SET_KEEPTTL | SET_PERSIST | SET_EX | SET_EXAT | SET_PX))) {
            *flags |= SET_PXAT;
            expire = A(++j);
            *exp_idx = j - 1;
        } else {
            add_err(x, err_syntax);
            return -1;
        }
    }
    if (expire == NULL)
        return 0;
    if (get_ll_or_reply(x, expire, &ms, NULL) != 0)
        return -1;
    if (ms <= 0 || ((*flags & (SET_EX | SET_EXAT)) && ms > LLONG_MAX / 1000)) {
        err_expire(x, cmd);
        return -1;
    }
    if (*flags & (SET_EX | SET_EXAT))
        ms *= 1000;
    if (*flags & (SET_EX | SET_PX)) {
        if (ms > LLONG_MAX - (long long)x->now_ms) {
            err_expire(x, cmd);
            return -1;
        }
        ms += (long long)x->now_ms;
    }
    *when = ms;
    return 0;
}

/* Rewrite the expiry option at idx (and its value) into "PXAT when". */
static int rewrite_pxat(cache_ctx_t *x, core_scope_t *scope, int idx, long long when)
{
    resp_arg_t *nv = argv_dup(x, scope, x->argc);

    if (nv == NULL) {
        add_err(x, "OOM command not allowed when used memory > 'maxmemory'.");
        return -1;
    }
    arg_set_lit(&nv[idx], "PXAT");
    if (arg_set_ll(scope, &nv[idx + 1], when) != 0) {
        add_err(x, "OOM command not allowed when used memory > 'maxmemory'.");
        return -1;
    }
    x->argv = nv;
    return 0;
}

PREP(prep_set)
{
    unsigned flags;
    long long when;
    int idx;

    if (parse_set_opts(x, 3, 0, "set", &flags, &when, &idx) != 0)
        return -1;
    if (idx >= 0 && !(flags & SET_PXAT))
        return rewrite_pxat(x, scope, idx, when);
    return 0;
}

static void reply_get(cache_ctx_t *x, cache_entry_t *e)
{
    if (e == NULL)
        add_null(x);
    else
        add_bulk(x, ent_val(e), e->vlen);
}

static void set_generic(cache_ctx_t *x, unsigned flags, long long when, const char *cmd)
{
    cache_entry_t *e;
    int wrong = 0;

    e = lookup_typed(x, A(1), CACHE_T_STRING, &wrong);
    if (wrong)
        return;
    if (flags & SET_GET)
        reply_get(x, e);
    if (((flags & SET_NX) && e != NULL) || ((flags & SET_XX) && e == NULL)) {
        if (!(flags & SET_GET))
            add_null(x);
        return;
    }
    if (cache_ks_set_str(x->ks, A(1)->p, A(1)->len, A(2)->p, A(2)->len, when,
                         (flags & SET_KEEPTTL) != 0, x->now_ms) == NULL) {
        if (!(flags & SET_GET))
            add_err(x, "OOM command not allowed when used memory > 'maxmemory'.");
        return;
    }
    if (!(flags & SET_GET))
        add_ok(x);
}

CMD(cmd_set)
{
    unsigned flags;
    long long when;
    int idx;

    if (x->argc == 3) {
        /* the common case: no options, no type check needed */
        if (cache_ks_set_str(x->ks, A(1)->p, A(1)->len, A(2)->p, A(2)->len, -1, 0, x->now_ms) == NULL)
            add_err(x, "OOM command not allowed when used memory > 'maxmemory'.");
        else
            add_ok(x);
        return;
    }
    if (parse_set_opts(x, 3, 0, "set", &flags, &when, &idx) != 0)
        return;
    set_generic(x, flags, when, "set");
}

static int setex_parse(cache_ctx_t *x, int seconds, const char *cmd, long long *when)
{
    long long ms;

    if (get_ll_or_reply(x, A(2), &ms, NULL) != 0)
        return -1;
    if (ms <= 0 || (seconds && ms > LLONG_MAX / 1000)) {
        err_expire(x, cmd);
        return -1;
    }
    if (seconds)
        ms *= 1000;
    if (ms > LLONG_MAX - (long long)x->now_ms) {
        err_expire(x, cmd);
        return -1;
    }
    *when = ms + (long long)x->now_ms;
    return 0;
}

/* SETEX/PSETEX k t v -> SET k v PXAT when */
static int prep_setex_generic(cache_ctx_t *x, core_scope_t *scope, int seconds, const char *cmd)
{
    long long when;
    resp_arg_t *nv;

    if (setex_parse(x, seconds, cmd, &when) != 0)
        return -1;
    nv = core_scope_alloc(scope, 5 * sizeof(*nv));
    if (nv == NULL || arg_set_ll(scope, &nv[4], when) != 0) {
        add_err(x, "OOM command not allowed when used memory > 'maxmemory'.");
        return -1;
    }
    arg_set_lit(&nv[0], "SET");
    nv[1] = x->argv[1];
    nv[2] = x->argv[3];
    arg_set_lit(&nv[3], "PXAT");
    x->argv = nv;
    x->argc = 5;
    return 0;
}

PREP(prep_setex)
{
    return prep_setex_generic(x, scope, 1, "setex");
}

PREP(prep_psetex)
{
    return prep_setex_generic(x, scope, 0, "psetex");
}

CMD(cmd_setex)
{
    long long when;

    if (setex_parse(x, 1, "setex", &when) != 0)
        return;
    if (cache_ks_set_str(x->ks, A(1)->p, A(1)->len, A(3)->p, A(3)->len, when, 0, x->now_ms) == NULL)
        add_err(x, "OOM command not allowed when used memory > 'maxmemory'.");
    else
        add_ok(x);
}

CMD(cmd_psetex)
{
    long long when;

    if (setex_parse(x, 0, "psetex", &when) != 0)
        return;
    if (cache_ks_set_str(x->ks, A(1)->p, A(1)->len, A(3)->p, A(3)->len, when, 0, x->now_ms) == NULL)
        add_err(x, "OOM command not allowed when used memory > 'maxmemory'.");
    else
        add_ok(x);
}

CMD(cmd_setnx)
{
    if (lookup(x, A(1)) != NULL) {
        add_int(x, 0);
        return;
    }
    if (cache_ks_set_str(x->ks, A(1)->p, A(1)->len, A(2)->p, A(2)->len, -1, 0, x->now_ms) == NULL)
        add_err(x, "OOM command not allowed when used memory > 'maxmemory'.");
    else
        add_int(x, 1);
}

CMD(cmd_get)
{
    int wrong = 0;
    cache_entry_t *e = lookup_typed(x, A(1), CACHE_T_STRING, &wrong);

    if (!wrong)
        reply_get(x, e);
}

CMD(cmd_getset)
{
    int wrong = 0;
    cache_entry_t *e = lookup_typed(x, A(1), CACHE_T_STRING, &wrong);

    if (wrong)
        return;
    reply_get(x, e);
    cache_ks_set_str(x->ks, A(1)->p, A(1)->len, A(2)->p, A(2)->len, -1, 0, x->now_ms);
}

CMD(cmd_getdel)
{
    int wrong = 0;
    cache_entry_t *e = lookup_typed(x, A(1), CACHE_T_STRING, &wrong);

    if (wrong)
        return;
    reply_get(x, e);
    if (e != NULL)
        cache_ks_del_entry(x->ks, e);
}

PREP(prep_getex)
{
    unsigned flags;
    long long when;
    int idx;

    if (parse_set_opts(x, 2, 1, "getex", &flags, &when, &idx) != 0)
        return -1;
    if (idx >= 0 && !(flags & SET_PXAT))
        return rewrite_pxat(x, scope, idx, when);
    return 0;
}

CMD(cmd_getex)
{
    unsigned flags;
    long long when;
    int idx, wrong = 0;
    cache_entry_t *e;

    if (parse_set_opts(x, 2, 1, "getex", &flags, &when, &idx) != 0)
        return;
    e = lookup_typed(x, A(1), CACHE_T_STRING, &wrong);
    if (wrong)
        return;
    reply_get(x, e);
    if (e == NULL)
        return;
    if ((flags & (SET_EXAT | SET_PXAT)) && when <= (long long)x->now_ms)
        cache_ks_del_entry(x->ks, e);
    else if (when >= 0)
        cache_ks_set_expire(x->ks, e, when);
    else if (flags & SET_PERSIST)
        cache_ks_set_expire(x->ks, e, -1);
}

CMD(cmd_mget)
{
    add_array(x, (size_t)x->argc - 1);
    for (int i = 1; i < x->argc; i++) {
        cache_entry_t *e = lookup(x, A(i));

        if (e == NULL || e->type != CACHE_T_STRING)
            add_null(x);
        else
            add_bulk(x, ent_val(e), e->vlen);
    }
}

static void err_arity(cache_ctx_t *x, const char *cmd)
{
    add_errf(x, "ERR wrong number of arguments for '%s' command", cmd);
}

CMD(cmd_mset)
{
    if (x->argc % 2 == 0) {
        err_arity(x, "mset");
        return;
    }
    for (int i = 1; i < x->argc; i += 2)
        cache_ks_set_str(x->ks, A(i)->p, A(i)->len, A(i + 1)->p, A(i + 1)->len, -1, 0, x->now_ms);
    add_ok(x);
}

CMD(cmd_msetnx)
{
    if (x->argc % 2 == 0) {
        err_arity(x, "msetnx");
        return;
    }
    for (int i = 1; i < x->argc; i += 2)
        if (lookup(x, A(i)) != NULL) {
            add_int(x, 0);
            return;
        }
    for (int i = 1; i < x->argc; i += 2)
        cache_ks_set_str(x->ks, A(i)->p, A(i)->len, A(i + 1)->p, A(i + 1)->len, -1, 0, x->now_ms);
    add_int(x, 1);
}

static int check_len(cache_ctx_t *x, long long total)
{
    if (total > cache_server_max_bulk(x->srv) || total > UINT32_MAX - 64) {
        add_err(x, "ERR string exceeds maximum allowed size (proto-max-bulk-len)");
        return -1;
    }
    return 0;
}

CMD(cmd_append)
{
    int wrong = 0;
    cache_entry_t *e = lookup_typed(x, A(1), CACHE_T_STRING, &wrong);
    size_t old;

    if (wrong)
        return;
    if (e == NULL) {
        if (cache_ks_set_str(x->ks, A(1)->p, A(1)->len, A(2)->p, A(2)->len, -1, 0, x->now_ms) == NULL)
            add_err(x, "OOM command not allowed when used memory > 'maxmemory'.");
        else
            add_int(x, (long long)A(2)->len);
        return;
    }
    if (check_len(x, (long long)e->vlen + (long long)A(2)->len) != 0)
        return;
    old = e->vlen;
    e = cache_ks_resize_str(x->ks, e, old + A(2)->len);
    if (e == NULL) {
        add_err(x, "OOM command not allowed when used memory > 'maxmemory'.");
        return;
    }
    memcpy(ent_val(e) + old, A(2)->p, A(2)->len);
    add_int(x, (long long)e->vlen);
}

CMD(cmd_strlen)
{
    int wrong = 0;
    cache_entry_t *e = lookup_typed(x, A(1), CACHE_T_STRING, &wrong);

    if (!wrong)
        add_int(x, e ? (long long)e->vlen : 0);
}

CMD(cmd_getrange)
{
    long long start, end, len;
    cache_entry_t *e;
    int wrong = 0;

    if (get_ll_or_reply(x, A(2), &start, NULL) != 0 || get_ll_or_reply(x, A(3), &end, NULL) != 0)
        return;
    e = lookup_typed(x, A(1), CACHE_T_STRING, &wrong);
    if (wrong)
        return;
    if (e == NULL) {
        add_bulk(x, "", 0);
        return;
    }
    len = e->vlen;
    if (start < 0 && end < 0 && start > end) {
        add_bulk(x, "", 0);
        return;
    }
    if (start < 0)
        start = len + start;
    if (end < 0)
        end = len + end;
    if (start < 0)
        start = 0;
    if (end < 0)
        end = 0;
    if (end >= len)
        end = len - 1;
    if (start > end || len == 0)
        add_bulk(x, "", 0);
    else
        add_bulk(x, ent_val(e) + start, (size_t)(end - start + 1));
}

CMD(cmd_setrange)
{
    long long off;
    cache_entry_t *e;
    int wrong = 0;
    const resp_arg_t *v = A(3);
    size_t old;

    if (get_ll_or_reply(x, A(2), &off, NULL) != 0)
        return;
    if (off < 0) {
        add_err(x, "ERR offset is out of range");
        return;
    }
    e = lookup_typed(x, A(1), CACHE_T_STRING, &wrong);
    if (wrong)
        return;
    if (e == NULL) {
        if (v->len == 0) {
            add_int(x, 0);
            return;
        }
        if (check_len(x, off + (long long)v->len) != 0)
            return;
        e = cache_ks_set_str(x->ks, A(1)->p, A(1)->len, "", 0, -1, 0, x->now_ms);
        if (e == NULL) {
            add_err(x, "OOM command not allowed when used memory > 'maxmemory'.");
            return;
        }
    } else {
        if (v->len == 0) {
            add_int(x, (long long)e->vlen);
            return;
        }
        if (check_len(x, off + (long long)v->len) != 0)
            return;
    }
    old = e->vlen;
    if ((size_t)off + v->len > old) {
        e = cache_ks_resize_str(x->ks, e, (size_t)off + v->len);
        if (e == NULL) {
            add_err(x, "OOM command not allowed when used memory > 'maxmemory'.");
            return;
        }
        if ((size_t)off > old)
            memset(ent_val(e) + old, 0, (size_t)off - old);
    }
    memcpy(ent_val(e) + off, v->p, v->len);
    add_int(x, (long long)e->vlen);
}

static void incr_generic(cache_ctx_t *x, long long incr)
{
    int wrong = 0;
    cache_entry_t *e = lookup_typed(x, A(1), CACHE_T_STRING, &wrong);
    long long old = 0, nv;
    char buf[24];
    size_t n;

    if (wrong)
        return;
    if (e != NULL && resp_str2ll(ent_val(e), e->vlen, &old) != 0) {
        add_err(x, err_notint);
        return;
    }
    if ((incr < 0 && old < 0 && incr < (LLONG_MIN - old)) ||
        (incr > 0 && old > 0 && incr > (LLONG_MAX - old))) {
        add_err(x, err_overflow);
        return;
    }
    nv = old + incr;
    n = resp_ll2str(buf, nv);
    if (e != NULL && e->vlen == n) {
        memcpy(ent_val(e), buf, n);
    } else if (e != NULL) {
        e = cache_ks_resize_str(x->ks, e, n);
        if (e == NULL) {
            add_err(x, "OOM command not allowed when used memory > 'maxmemory'.");
            return;
        }
        memcpy(ent_val(e), buf, n);
    } else if (cache_ks_set_str(x->ks, A(1)->p, A(1)->len, buf, n, -1, 0, x->now_ms) == NULL) {
        add_err(x, "OOM command not allowed when used memory > 'maxmemory'.");
        return;
    }
    add_int(x, nv);
}

CMD(cmd_incr)
{
    incr_generic(x, 1);
}

CMD(cmd_decr)
{
    incr_generic(x, -1);
}

CMD(cmd_incrby)
{
    long long v;

    if (get_ll_or_reply(x, A(2), &v, NULL) == 0)
        incr_generic(x, v);
}

CMD(cmd_decrby)
{
    long long v;

    if (get_ll_or_reply(x, A(2), &v, NULL) != 0)
        return;
    if (v == LLONG_MIN) {
        add_err(x, "ERR decrement would overflow");
        return;
    }
    incr_generic(x, -v);
}

static int str2ld(const char *p, size_t n, long double *v)
{
    char buf[5 * 1024 + 1];
    char *end;
    long double d;

    if (n == 0 || n >= sizeof(buf))
        return -1;
    memcpy(buf, p, n);
    buf[n] = '\0';
    if (buf[0] == ' ' || (buf[0] >= '\t' && buf[0] <= '\r'))
        return -1;
    errno = 0;
    d = strtold(buf, &end);
    if (*end != '\0' || (size_t)(end - buf) != n ||
        (errno == ERANGE && (d == HUGE_VALL || d == -HUGE_VALL || fpclassify(d) == FP_ZERO)) ||
        isnan(d))
        return -1;
    *v = d;
    return 0;
}

CMD(cmd_incrbyfloat)
{
    int wrong = 0;
    cache_entry_t *e = lookup_typed(x, A(1), CACHE_T_STRING, &wrong);
    long double old = 0, incr, nv;
    char buf[5200];
    int n;

    if (wrong)
        return;
    if ((e != NULL && str2ld(ent_val(e), e->vlen, &old) != 0) || str2ld(A(2)->p, A(2)->len, &incr) != 0) {
        add_err(x, err_notfloat);
        return;
    }
    nv = old + incr;
    if (isnan(nv) || isinf(nv)) {
        add_err(x, "ERR increment would produce NaN or Infinity");
        return;
    }
    n = snprintf(buf, sizeof(buf), "%.17Lf", nv);
    if (n <= 0 || (size_t)n >= sizeof(buf)) {
        add_err(x, "ERR increment would produce NaN or Infinity");
        return;
    }
    if (strchr(buf, '.') != NULL) {
        while (n > 0 && buf[n - 1] == '0')
            n--;
        if (n > 0 && buf[n - 1] == '.')
            n--;
    }
    if (n == 2 && buf[0] == '-' && buf[1] == '0') {
        buf[0] = '0';
        n = 1;
    }
    if (e != NULL) {
        e = cache_ks_resize_str(x->ks, e, (size_t)n);
        if (e != NULL)
            memcpy(ent_val(e), buf, (size_t)n);
    } else {
        e = cache_ks_set_str(x->ks, A(1)->p, A(1)->len, buf, (size_t)n, -1, 0, x->now_ms);
    }
    if (e == NULL)
        add_err(x, "OOM command not allowed when used memory > 'maxmemory'.");
    else
        add_bulk(x, buf, (size_t)n);
}
