/* cache/t_keys: generic key commands, expiry commands, SCAN/KEYS. */
#include "cache/cache_int.h"
#include "cache/t_live.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#define A(i) (&x->argv[(i)])

cache_entry_t *lookup(cache_ctx_t *x, const resp_arg_t *key)
{
    cache_entry_t *e = cache_ks_find(x->ks, key->p, key->len, x->now_ms, x->in_apply);

    if (e == NULL)
        x->ks->misses++;
    else
        x->ks->hits++;
    return e;
}

cache_entry_t *lookup_typed(cache_ctx_t *x, const resp_arg_t *key, int type, int *wrong)
{
    cache_entry_t *e = lookup(x, key);

    if (e != NULL && e->type != type) {
        add_err(x, err_wrongtype);
        *wrong = 1;
        return NULL;
    }
    return e;
}

resp_arg_t *argv_dup(cache_ctx_t *x, core_scope_t *scope, int n)
{
    resp_arg_t *nv = core_scope_alloc(scope, (size_t)n * sizeof(*nv));

    if (nv == NULL)
        return NULL;
    memcpy(nv, x->argv, (size_t)(n < x->argc ? n : x->argc) * sizeof(*nv));
    return nv;
}

int arg_set_ll(core_scope_t *scope, resp_arg_t *a, long long v)
{
    char *p = core_scope_alloc(scope, 24);

    if (p == NULL)
        return -ENOMEM;
    a->len = resp_ll2str(p, v);
    a->p = p;
    a->off = 0;
    a->esc = 0;
    return 0;
}

void arg_set_lit(resp_arg_t *a, const char *lit)
{
    a->p = lit;
    a->len = strlen(lit);
    a->off = 0;
    a->esc = 0;
}

CMD(cmd_del)
{
    long long n = 0;

    for (int i = 1; i < x->argc; i++) {
        cache_entry_t *e = lookup(x, A(i));

        if (e != NULL) {
            cache_ks_del_entry(x->ks, e);
            n++;
        }
    }
    add_int(x, n);
}

CMD(cmd_expdel)
{
    /* delete the key only if it is expired at the batch time */
    cache_entry_t *e = cache_ks_find(x->ks, A(1)->p, A(1)->len, 0, 0);

    if (e != NULL && ent_expire(e) >= 0 && (int64_t)x->now_ms > ent_expire(e)) {
        cache_ks_del_entry(x->ks, e);
        x->ks->expired_total++;
        add_int(x, 1);
        return;
    }
    add_int(x, 0);
}

CMD(cmd_exists)
{
    long long n = 0;

    for (int i = 1; i < x->argc; i++)
        if (lookup(x, A(i)) != NULL)
            n++;
    add_int(x, n);
}

static const char *type_name(int t)
{
    switch (t) {
    case CACHE_T_STRING: return "string";
    case CACHE_T_HASH: return "hash";
    case CACHE_T_ZSET: return "zset";
    default: return live_type_name(t) ? live_type_name(t) : "none";
    }
}

CMD(cmd_type)
{
    cache_entry_t *e = lookup(x, A(1));

    add_status(x, e ? type_name(e->type) : "none");
}

static void rename_generic(cache_ctx_t *x, int nx)
{
    cache_entry_t *e = lookup(x, A(1)), *d;
    int same = A(1)->len == A(2)->len && memcmp(A(1)->p, A(2)->p, A(1)->len) == 0;

    if (e == NULL) {
        add_err(x, "ERR no such key");
        return;
    }
    if (same) {
        if (nx)
            add_int(x, 0);
        else
            add_ok(x);
        return;
    }
    d = lookup(x, A(2));
    if (d != NULL) {
        if (nx) {
            add_int(x, 0);
            return;
        }
        cache_ks_del_entry(x->ks, d);
        e = lookup(x, A(1));
    }
    if (cache_ks_rename(x->ks, e, A(2)->p, A(2)->len) == NULL) {
        add_err(x, "OOM command not allowed when used memory > 'maxmemory'.");
        return;
    }
    if (nx)
        add_int(x, 1);
    else
        add_ok(x);
}

CMD(cmd_rename)
{
    rename_generic(x, 0);
}

CMD(cmd_renamenx)
{
    rename_generic(x, 1);
}

typedef struct keys_ctx {
    cache_ctx_t *x;
    const resp_arg_t *pat;
    int all;
    size_t n;
    int type;           /* -1 any */
    cache_entry_t **found;
    size_t nfound, cap;
    int oom;
} keys_ctx_t;

static int live(cache_ctx_t *x, cache_entry_t *e)
{
    return !(e->flags & CACHE_E_EXPIRE) || (int64_t)x->now_ms <= ent_expire(e);
}

static void keys_cb(void *arg, ht_node_t *n)
{
    keys_ctx_t *k = arg;
    cache_entry_t *e = (cache_entry_t *)n;

    if (!live(k->x, e))
        return;
    if (!k->all && !cache_glob(k->pat->p, k->pat->len, e->key, e->klen, 0))
        return;
    add_bulk(k->x, e->key, e->klen);
    k->n++;
}

CMD(cmd_keys)
{
    keys_ctx_t k = {x, A(1), A(1)->len == 1 && A(1)->p[0] == '*', 0, -1, NULL, 0, 0, 0};
    size_t at = add_deferred_array(x);

    ht_foreach(&x->ks->ht, keys_cb, &k);
    set_deferred_len(x, at, k.n);
}

static void scan_cb(void *arg, ht_node_t *n)
{
    keys_ctx_t *k = arg;

    if (k->nfound == k->cap) {
        size_t cap = k->cap ? k->cap * 2 : 32;
        cache_entry_t **p = core_realloc(CORE_TAG_RESP_CONN, k->found, cap * sizeof(*p));

        if (p == NULL) {
            k->oom = 1;
            return;
        }
        k->found = p;
        k->cap = cap;
    }
    k->found[k->nfound++] = (cache_entry_t *)n;
}

static int parse_cursor(const resp_arg_t *a, uint64_t *cur)
{
    char buf[32];
    char *end;

    if (a->len == 0 || a->len >= sizeof(buf))
        return -1;
    memcpy(buf, a->p, a->len);
    buf[a->len] = '\0';
    errno = 0;
    *cur = strtoull(buf, &end, 10);
    if (*end != '\0' || errno == ERANGE || buf[0] == '-' || buf[0] == ' ' || buf[0] == '+')
        return -1;
    return 0;
}

CMD(cmd_scan)
{
    uint64_t cur;
    long long count = 10;
    keys_ctx_t k = {x, NULL, 1, 0, -1, NULL, 0, 0, 0};
    long maxiter;
    char cbuf[24];
    size_t out = 0, at;

    if (parse_cursor(A(1), &cur) != 0) {
        add_err(x, "ERR invalid cursor");
        return;
    }
    for (int i = 2; i < x->argc; i += 2) {
        int left = x->argc - i;

        if (arg_eq(A(i), "count") && left >= 2) {
            if (get_ll_or_reply(x, A(i + 1), &count, NULL) != 0)
                return;
            if (count < 1) {
                add_err(x, err_syntax);
                return;
            }
        } else if (arg_eq(A(i), "match") && left >= 2) {
            k.pat = A(i + 1);
            k.all = k.pat->len == 1 && k.pat->p[0] == '*';
        } else if (arg_eq(A(i), "type") && left >= 2) {
            if (arg_eq(A(i + 1), "string"))
                k.type = CACHE_T_STRING;
            else if (arg_eq(A(i + 1), "hash"))
                k.type = CACHE_T_HASH;
            else if (arg_eq(A(i + 1), "zset"))
                k.type = CACHE_T_ZSET;
            else if (arg_eq(A(i + 1), "wcount"))
                k.type = CACHE_T_WCOUNT;
            else if (arg_eq(A(i + 1), "wrank"))
                k.type = CACHE_T_WRANK;
            else if (arg_eq(A(i + 1), "presence"))
                k.type = CACHE_T_PRESENCE;
            else
                k.type = 99; /* a type this server does not have: nothing matches */
        } else {
            add_err(x, err_syntax);
            return;
        }
    }
    maxiter = count * 10;
    do {
        cur = ht_scan(&x->ks->ht, cur, scan_cb, &k);
    } while (cur != 0 && maxiter-- > 0 && k.nfound < (size_t)count && !k.oom);
    add_array(x, 2);
    add_bulk(x, cbuf, (size_t)snprintf(cbuf, sizeof(cbuf), "%llu", (unsigned long long)cur));
    at = add_deferred_array(x);
    for (size_t i = 0; i < k.nfound; i++) {
        cache_entry_t *e = k.found[i];

        if (!live(x, e))
            continue;
        if (k.type >= 0 && e->type != k.type)
            continue;
        if (!k.all && !cache_glob(k.pat->p, k.pat->len, e->key, e->klen, 0))
            continue;
        add_bulk(x, e->key, e->klen);
        out++;
    }
    set_deferred_len(x, at, out);
    core_free(k.found);
}

CMD(cmd_randomkey)
{
    for (int tries = 0; tries < 100; tries++) {
        cache_entry_t *e = (cache_entry_t *)ht_random(&x->ks->ht, cache_server_random(x->srv));

        if (e == NULL)
            break;
        if (live(x, e)) {
            add_bulk(x, e->key, e->klen);
            return;
        }
    }
    add_null(x);
}

enum { EXP_NX = 1, EXP_XX = 2, EXP_GT = 4, EXP_LT = 8 };

static int parse_exp_flags(cache_ctx_t *x, int start, unsigned *fl)
{
    *fl = 0;
    for (int j = start; j < x->argc; j++) {
        if (arg_eq(A(j), "nx"))
            *fl |= EXP_NX;
        else if (arg_eq(A(j), "xx"))
            *fl |= EXP_XX;
        else if (arg_eq(A(j), "gt"))
            *fl |= EXP_GT;
        else if (arg_eq(A(j), "lt"))
            *fl |= EXP_LT;
        else {
            add_errf(x, "ERR Unsupported option %.*s", (int)(A(j)->len > 128 ? 128 : A(j)->len), A(j)->p);
            return -1;
        }
    }
    if ((*fl & EXP_NX) && (*fl & (EXP_XX | EXP_GT | EXP_LT))) {
        add_err(x, "ERR NX and XX, GT or LT options at the same time are not compatible");
        return -1;
    }
    if ((*fl & EXP_GT) && (*fl & EXP_LT)) {
        add_err(x, "ERR GT and LT options at the same time are not compatible");
        return -1;
    }
    return 0;
}

/* Absolute ms for EXPIRE-family argument 2. relative: add now. */
static int expire_when(cache_ctx_t *x, int seconds, int relative, const char *cmd, long long *when)
{
    long long w, base = relative ? (long long)x->now_ms : 0;

    if (get_ll_or_reply(x, A(2), &w, NULL) != 0)
        return -1;
    if (seconds) {
        if (w > LLONG_MAX / 1000 || w < LLONG_MIN / 1000) {
            add_errf(x, "ERR invalid expire time in '%s' command", cmd);
            return -1;
        }
        w *= 1000;
    }
    if (w > LLONG_MAX - base) {
        add_errf(x, "ERR invalid expire time in '%s' command", cmd);
        return -1;
    }
    *when = w + base;
    return 0;
}

static void expire_generic(cache_ctx_t *x, int seconds, int relative, const char *cmd)
{
    unsigned fl;
    long long when, cur;
    cache_entry_t *e;

    if (parse_exp_flags(x, 3, &fl) != 0)
        return;
    if (expire_when(x, seconds, relative, cmd, &when) != 0)
        return;
    e = lookup(x, A(1));
    if (e == NULL) {
        add_int(x, 0);
        return;
    }
    cur = ent_expire(e);
    if (fl) {
        if ((fl & EXP_NX) && cur != -1) {
            add_int(x, 0);
            return;
        }
        if ((fl & EXP_XX) && cur == -1) {
            add_int(x, 0);
            return;
        }
        if ((fl & EXP_GT) && (cur == -1 || when <= cur)) {
            add_int(x, 0);
            return;
        }
        if ((fl & EXP_LT) && cur != -1 && when >= cur) {
            add_int(x, 0);
            return;
        }
    }
    if (when <= (long long)x->now_ms) {
        cache_ks_del_entry(x->ks, e);
        add_int(x, 1);
        return;
    }
    if (cache_ks_set_expire(x->ks, e, when) == NULL) {
        add_err(x, "OOM command not allowed when used memory > 'maxmemory'.");
        return;
    }
    add_int(x, 1);
}

/* EXPIRE/PEXPIRE k t [flag] -> PEXPIREAT k when [flag] */
static int prep_expire_generic(cache_ctx_t *x, core_scope_t *scope, int seconds, const char *cmd)
{
    unsigned fl;
    long long when;
    resp_arg_t *nv;

    if (parse_exp_flags(x, 3, &fl) != 0 || expire_when(x, seconds, 1, cmd, &when) != 0)
        return -1;
    nv = argv_dup(x, scope, x->argc);
    if (nv == NULL || arg_set_ll(scope, &nv[2], when) != 0) {
        add_err(x, "OOM command not allowed when used memory > 'maxmemory'.");
        return -1;
    }
    arg_set_lit(&nv[0], "PEXPIREAT");
    x->argv = nv;
    return 0;
}

PREP(prep_expire)
{
    return prep_expire_generic(x, scope, 1, "expire");
}

PREP(prep_pexpire)
{
    return prep_expire_generic(x, scope, 0, "pexpire");
}

CMD(cmd_expire)
{
    expire_generic(x, 1, 1, "expire");
}

CMD(cmd_pexpire)
{
    expire_generic(x, 0, 1, "pexpire");
}

CMD(cmd_expireat)
{
    expire_generic(x, 1, 0, "expireat");
}

CMD(cmd_pexpireat)
{
    expire_generic(x, 0, 0, "pexpireat");
}

static void ttl_generic(cache_ctx_t *x, int ms, int abs)
{
    cache_entry_t *e = lookup(x, A(1));
    long long exp, ttl;

    if (e == NULL) {
        add_int(x, -2);
        return;
    }
    exp = ent_expire(e);
    if (exp == -1) {
        add_int(x, -1);
        return;
    }
    if (abs) {
        add_int(x, ms ? exp : exp / 1000);
        return;
    }
    ttl = exp - (long long)x->now_ms;
    if (ttl < 0)
        ttl = 0;
    add_int(x, ms ? ttl : (ttl + 500) / 1000);
}

CMD(cmd_ttl)
{
    ttl_generic(x, 0, 0);
}

CMD(cmd_pttl)
{
    ttl_generic(x, 1, 0);
}

CMD(cmd_expiretime)
{
    ttl_generic(x, 0, 1);
}

CMD(cmd_pexpiretime)
{
    ttl_generic(x, 1, 1);
}

CMD(cmd_persist)
{
    cache_entry_t *e = lookup(x, A(1));

    if (e == NULL || ent_expire(e) == -1) {
        add_int(x, 0);
        return;
    }
    cache_ks_set_expire(x->ks, e, -1);
    add_int(x, 1);
}

CMD(cmd_dbsize)
{
    add_int(x, (long long)cache_ks_size(x->ks));
}

CMD(cmd_flushall)
{
    if (x->argc > 2 || (x->argc == 2 && !arg_eq(A(1), "async") && !arg_eq(A(1), "sync"))) {
        add_err(x, err_syntax);
        return;
    }
    cache_ks_clear(x->ks);
    add_ok(x);
}

CMD(cmd_memory)
{
    cache_entry_t *e;

    if (arg_eq(A(1), "usage") && (x->argc == 3 || x->argc == 5)) {
        if (x->argc == 5) {
            long long s;

            if (!arg_eq(A(3), "samples")) {
                add_err(x, err_syntax);
                return;
            }
            if (get_ll_or_reply(x, A(4), &s, NULL) != 0)
                return;
        }
        e = lookup(x, A(2));
        if (e == NULL)
            add_null(x);
        else
            add_int(x, (long long)cache_entry_mem(e));
        return;
    }
    if (arg_eq(A(1), "usage")) {
        add_err(x, err_syntax);
        return;
    }
    add_errf(x, "ERR unknown subcommand '%.*s'. Try MEMORY HELP.",
             (int)(A(1)->len > 128 ? 128 : A(1)->len), A(1)->p);
}
