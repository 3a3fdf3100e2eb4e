/* cache/t_zset: sorted sets as a skiplist with spans (ranks) plus a
 * member -> score dictionary, with Redis's commands and replies. The
 * skiplist's level generator is a per-set deterministic PRNG, so applying
 * the same writes yields the same structure on every node. */
#include "cache/cache_int.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define A(i) (&x->argv[(i)])
#define ZM_OFF offsetof(zmember_t, key)

static zsl_node_t *zsl_node_new(int level, double score, zmember_t *m)
{
    zsl_node_t *n = core_malloc(CORE_TAG_CACHE_VALUES,
                                sizeof(*n) + (size_t)level * sizeof(struct zsl_level));

    if (n == NULL)
        return NULL;
    n->score = score;
    n->m = m;
    n->back = NULL;
    return n;
}

zset_t *zset_new(void)
{
    zset_t *z = core_calloc(CORE_TAG_CACHE_VALUES, 1, sizeof(*z));

    if (z == NULL)
        return NULL;
    z->head = zsl_node_new(ZSL_MAXLEVEL, 0, NULL);
    if (z->head == NULL) {
        core_free(z);
        return NULL;
    }
    for (int i = 0; i < ZSL_MAXLEVEL; i++) {
        z->head->level[i].fwd = NULL;
        z->head->level[i].span = 0;
    }
    z->level = 1;
    z->rng = 0x853c49e6748fea9bull;
    ht_init(&z->dict, ZM_OFF, CORE_TAG_CACHE_VALUES);
    return z;
}

void zset_free(zset_t *z)
{
    zsl_node_t *n, *next;

    if (z == NULL)
        return;
    for (n = z->head->level[0].fwd; n != NULL; n = next) {
        next = n->level[0].fwd;
        core_free(n->m);
        core_free(n);
    }
    core_free(z->head);
    ht_close(&z->dict);
    core_free(z);
}

static int random_level(zset_t *z)
{
    int level = 1;

    while (level < ZSL_MAXLEVEL) {
        z->rng ^= z->rng << 13;
        z->rng ^= z->rng >> 7;
        z->rng ^= z->rng << 17;
        if ((z->rng & 0xffff) >= 0xffff / 4)
            break;
        level++;
    }
    return level;
}

static int memcmp_len(const char *a, size_t al, const char *b, size_t bl)
{
    size_t n = al < bl ? al : bl;
    int c = memcmp(a, b, n);

    if (c != 0)
        return c;
    return al < bl ? -1 : (al > bl ? 1 : 0);
}

int zsl_cmp(double s1, const char *m1, size_t l1, double s2, const char *m2, size_t l2)
{
    if (s1 < s2)
        return -1;
    if (s1 > s2)
        return 1;
    return memcmp_len(m1, l1, m2, l2);
}

/* Scores first: the member (another cache line) is read only on a tie. */
static inline int node_lt(const zsl_node_t *n, double score, const char *m, size_t ml)
{
    if (n->score != score)
        return n->score < score;
    return memcmp_len(n->m->key, n->m->h.klen, m, ml) < 0;
}

static inline int node_le(const zsl_node_t *n, double score, const char *m, size_t ml)
{
    if (n->score != score)
        return n->score < score;
    return memcmp_len(n->m->key, n->m->h.klen, m, ml) <= 0;
}

static zsl_node_t *zsl_insert(zset_t *z, double score, zmember_t *m)
{
    zsl_node_t *update[ZSL_MAXLEVEL], *x = z->head, *n;
    size_t rank[ZSL_MAXLEVEL];
    int level;

    for (int i = z->level - 1; i >= 0; i--) {
        rank[i] = i == z->level - 1 ? 0 : rank[i + 1];
        while (x->level[i].fwd && node_lt(x->level[i].fwd, score, m->key, m->h.klen)) {
            rank[i] += x->level[i].span;
            x = x->level[i].fwd;
        }
        update[i] = x;
    }
    level = random_level(z);
    if (level > z->level) {
        for (int i = z->level; i < level; i++) {
            rank[i] = 0;
            update[i] = z->head;
            update[i]->level[i].span = z->length;
        }
        z->level = level;
    }
    n = zsl_node_new(level, score, m);
    if (n == NULL)
        return NULL;
    for (int i = 0; i < level; i++) {
        n->level[i].fwd = update[i]->level[i].fwd;
        update[i]->level[i].fwd = n;
        n->level[i].span = update[i]->level[i].span - (rank[0] - rank[i]);
        update[i]->level[i].span = (rank[0] - rank[i]) + 1;
    }
    for (int i = level; i < z->level; i++)
        update[i]->level[i].span++;
    n->back = update[0] == z->head ? NULL : update[0];
    if (n->level[0].fwd)
        n->level[0].fwd->back = n;
    else
        z->tail = n;
    z->length++;
    return n;
}

static void zsl_unlink(zset_t *z, zsl_node_t *x, zsl_node_t **update)
{
    for (int i = 0; i < z->level; i++) {
        if (update[i]->level[i].fwd == x) {
            update[i]->level[i].span += x->level[i].span - 1;
            update[i]->level[i].fwd = x->level[i].fwd;
        } else {
            update[i]->level[i].span -= 1;
        }
    }
    if (x->level[0].fwd)
        x->level[0].fwd->back = x->back;
    else
        z->tail = x->back;
    while (z->level > 1 && z->head->level[z->level - 1].fwd == NULL)
        z->level--;
    z->length--;
}

/* Remove the node (score, m) from the skiplist; returns it (not freed). */
static zsl_node_t *zsl_remove(zset_t *z, double score, const char *m, size_t ml)
{
    zsl_node_t *update[ZSL_MAXLEVEL], *x = z->head;

    for (int i = z->level - 1; i >= 0; i--) {
        while (x->level[i].fwd && node_lt(x->level[i].fwd, score, m, ml))
            x = x->level[i].fwd;
        update[i] = x;
    }
    x = x->level[0].fwd;
    if (x == NULL || x->score != score || memcmp_len(x->m->key, x->m->h.klen, m, ml) != 0)
        return NULL;
    zsl_unlink(z, x, update);
    return x;
}

zmember_t *zset_find(zset_t *z, const char *m, size_t ml)
{
    return (zmember_t *)ht_find(&z->dict, m, ml);
}

int zset_update(zset_t *z, zmember_t *zm, double score)
{
    zsl_node_t *update[ZSL_MAXLEVEL], *x = z->head;

    if (zm->score == score)
        return 0;
    for (int i = z->level - 1; i >= 0; i--) {
        while (x->level[i].fwd && node_lt(x->level[i].fwd, zm->score, zm->key, zm->h.klen))
            x = x->level[i].fwd;
        update[i] = x;
    }
    x = x->level[0].fwd;
    if (x == NULL || x->m != zm)
        return -EINVAL; /* cannot happen: dict and list agree */
    /* still between its neighbours: change the score in place */
    if ((x->back == NULL || x->back->score < score) &&
        (x->level[0].fwd == NULL || x->level[0].fwd->score > score)) {
        x->score = score;
        zm->score = score;
        return 0;
    }
    zsl_unlink(z, x, update);
    core_free(x);
    zm->score = score;
    if (zsl_insert(z, score, zm) == NULL) {
        /* keep dict and list consistent: drop the member */
        ht_node_t **slot = ht_findp(&z->dict, zm->key, zm->h.klen, zm->h.hash);

        ht_unlink(&z->dict, slot);
        core_free(zm);
        return -ENOMEM;
    }
    return 0;
}

int zset_set(zset_t *z, const char *m, size_t ml, double score)
{
    zmember_t *zm = zset_find(z, m, ml);

    if (zm != NULL)
        return zset_update(z, zm, score);
    zm = core_malloc(CORE_TAG_CACHE_VALUES, sizeof(*zm) + ml);
    if (zm == NULL)
        return -ENOMEM;
    zm->h.hash = cache_hash(m, ml);
    zm->h.klen = (uint32_t)ml;
    zm->score = score;
    memcpy(zm->key, m, ml);
    if (ht_insert(&z->dict, &zm->h) != 0) {
        core_free(zm);
        return -ENOMEM;
    }
    if (zsl_insert(z, score, zm) == NULL) {
        ht_node_t **slot = ht_findp(&z->dict, m, ml, zm->h.hash);

        ht_unlink(&z->dict, slot);
        core_free(zm);
        return -ENOMEM;
    }
    return 1;
}

int zset_del(zset_t *z, const char *m, size_t ml)
{
    ht_node_t **slot = ht_findp(&z->dict, m, ml, cache_hash(m, ml));
    zmember_t *zm;
    zsl_node_t *n;

    if (slot == NULL)
        return 0;
    zm = (zmember_t *)*slot;
    n = zsl_remove(z, zm->score, m, ml);
    core_free(n);
    ht_unlink(&z->dict, slot);
    core_free(zm);
    ht_maybe_shrink(&z->dict);
    return 1;
}

size_t zset_rank(zset_t *z, double score, const char *m, size_t ml)
{
    zsl_node_t *x = z->head;
    size_t rank = 0;

    for (int i = z->level - 1; i >= 0; i--) {
        while (x->level[i].fwd && node_le(x->level[i].fwd, score, m, ml)) {
            rank += x->level[i].span;
            x = x->level[i].fwd;
        }
        if (x->m != NULL && x->score == score && memcmp_len(x->m->key, x->m->h.klen, m, ml) == 0)
            return rank - 1;
    }
    return 0;
}

zsl_node_t *zset_at(zset_t *z, size_t r)
{
    zsl_node_t *x = z->head;
    size_t traversed = 0, rank = r + 1;

    for (int i = z->level - 1; i >= 0; i--) {
        while (x->level[i].fwd && traversed + x->level[i].span <= rank) {
            traversed += x->level[i].span;
            x = x->level[i].fwd;
        }
        if (traversed == rank)
            return x;
    }
    return NULL;
}

/* ---- ranges ---------------------------------------------------------------- */

typedef struct zrange_spec {
    double min, max;
    int minex, maxex;
} zrange_spec_t;

static int parse_score(const resp_arg_t *a, double *v, int *ex)
{
    char buf[128];
    const char *p = a->p;
    size_t n = a->len;
    char *end;

    *ex = 0;
    if (n > 0 && p[0] == '(') {
        *ex = 1;
        p++;
        n--;
    }
    if (n >= sizeof(buf))
        return -1;
    memcpy(buf, p, n);
    buf[n] = '\0';
    *v = strtod(buf, &end);
    if (*end != '\0' || isnan(*v))
        return -1;
    return 0;
}

static int parse_range(const resp_arg_t *min, const resp_arg_t *max, zrange_spec_t *r)
{
    if (parse_score(min, &r->min, &r->minex) != 0 || parse_score(max, &r->max, &r->maxex) != 0)
        return -1;
    return 0;
}

static int gte_min(double v, const zrange_spec_t *r)
{
    return r->minex ? v > r->min : v >= r->min;
}

static int lte_max(double v, const zrange_spec_t *r)
{
    return r->maxex ? v < r->max : v <= r->max;
}

static int range_empty(const zrange_spec_t *r)
{
    return r->min > r->max || (r->min == r->max && (r->minex || r->maxex));
}

static zsl_node_t *first_in_range(zset_t *z, const zrange_spec_t *r)
{
    zsl_node_t *x = z->head;

    if (range_empty(r) || z->tail == NULL || !gte_min(z->tail->score, r) ||
        !lte_max(z->head->level[0].fwd->score, r))
        return NULL;
    for (int i = z->level - 1; i >= 0; i--)
        while (x->level[i].fwd && !gte_min(x->level[i].fwd->score, r))
            x = x->level[i].fwd;
    x = x->level[0].fwd;
    return x && lte_max(x->score, r) ? x : NULL;
}

static zsl_node_t *last_in_range(zset_t *z, const zrange_spec_t *r)
{
    zsl_node_t *x = z->head;

    if (range_empty(r) || z->tail == NULL || !gte_min(z->tail->score, r) ||
        !lte_max(z->head->level[0].fwd->score, r))
        return NULL;
    for (int i = z->level - 1; i >= 0; i--)
        while (x->level[i].fwd && lte_max(x->level[i].fwd->score, r))
            x = x->level[i].fwd;
    return x != z->head && gte_min(x->score, r) ? x : NULL;
}

typedef struct zlex_spec {
    const char *min, *max;
    size_t minl, maxl;
    int minex, maxex;
    int mininf, maxinf;   /* -1 = "-", +1 = "+" */
} zlex_spec_t;

static int parse_lex_item(const resp_arg_t *a, const char **p, size_t *l, int *ex, int *inf)
{
    *inf = 0;
    *ex = 0;
    if (a->len == 1 && a->p[0] == '+') {
        *inf = 1;
        return 0;
    }
    if (a->len == 1 && a->p[0] == '-') {
        *inf = -1;
        return 0;
    }
    if (a->len >= 1 && (a->p[0] == '(' || a->p[0] == '[')) {
        *ex = a->p[0] == '(';
        *p = a->p + 1;
        *l = a->len - 1;
        return 0;
    }
    return -1;
}

static int lex_cmp_item(const char *m, size_t ml, const char *p, size_t l, int inf)
{
    if (inf == 1)
        return -1;
    if (inf == -1)
        return 1;
    return memcmp_len(m, ml, p, l);
}

static int lex_gte_min(zsl_node_t *n, const zlex_spec_t *s)
{
    int c = lex_cmp_item(n->m->key, n->m->h.klen, s->min, s->minl, s->mininf);

    return s->minex ? c > 0 : c >= 0;
}

static int lex_lte_max(zsl_node_t *n, const zlex_spec_t *s)
{
    int c = lex_cmp_item(n->m->key, n->m->h.klen, s->max, s->maxl, s->maxinf);

    return s->maxex ? c < 0 : c <= 0;
}

static int lex_empty(const zlex_spec_t *s)
{
    int c;

    if (s->mininf == 1 || s->maxinf == -1)
        return 1;
    if (s->mininf == -1 || s->maxinf == 1)
        return 0;
    c = memcmp_len(s->min, s->minl, s->max, s->maxl);
    return c > 0 || (c == 0 && (s->minex || s->maxex));
}

static zsl_node_t *lex_first(zset_t *z, const zlex_spec_t *s)
{
    zsl_node_t *x = z->head;

    if (lex_empty(s) || z->tail == NULL)
        return NULL;
    for (int i = z->level - 1; i >= 0; i--)
        while (x->level[i].fwd && !lex_gte_min(x->level[i].fwd, s))
            x = x->level[i].fwd;
    x = x->level[0].fwd;
    return x && lex_lte_max(x, s) ? x : NULL;
}

static zsl_node_t *lex_last(zset_t *z, const zlex_spec_t *s)
{
    zsl_node_t *x = z->head;

    if (lex_empty(s) || z->tail == NULL)
        return NULL;
    for (int i = z->level - 1; i >= 0; i--)
        while (x->level[i].fwd && lex_lte_max(x->level[i].fwd, s))
            x = x->level[i].fwd;
    return x != z->head && lex_gte_min(x, s) ? x : NULL;
}

/* ---- helpers --------------------------------------------------------------- */

static void oom(cache_ctx_t *x)
{
    add_err(x, "OOM command not allowed when used memory > 'maxmemory'.");
}

static zset_t *get_zset(cache_ctx_t *x, const resp_arg_t *key, int *wrong, cache_entry_t **ep)
{
    cache_entry_t *e = lookup_typed(x, key, CACHE_T_ZSET, wrong);

    if (ep)
        *ep = e;
    return e ? ent_ptr(e) : NULL;
}

static zset_t *create_zset(cache_ctx_t *x, const resp_arg_t *key, cache_entry_t **ep)
{
    zset_t *z = zset_new();
    cache_entry_t *e;

    if (z == NULL)
        return NULL;
    e = cache_ks_add_ptr(x->ks, key->p, key->len, CACHE_T_ZSET, z);
    if (e == NULL) {
        zset_free(z);
        return NULL;
    }
    if (ep)
        *ep = e;
    return z;
}

static void drop_if_empty(cache_ctx_t *x, cache_entry_t *e, zset_t *z)
{
    if (e != NULL && z->length == 0)
        cache_ks_del_entry(x->ks, e);
}

static void add_member(cache_ctx_t *x, zsl_node_t *n, int withscores)
{
    if (withscores && x->resp == 3)
        add_array(x, 2);
    add_bulk(x, n->m->key, n->m->h.klen);
    if (withscores)
        add_bulk_double(x, n->score);
}

/* ---- ZADD / ZINCRBY ----------------------------------------------------- */

enum { ZA_NX = 1, ZA_XX = 2, ZA_GT = 4, ZA_LT = 8, ZA_CH = 16, ZA_INCR = 32 };

static void zadd_generic(cache_ctx_t *x, unsigned fl, int scoreidx)
{
    int elements = x->argc - scoreidx, wrong = 0;
    long long added = 0, updated = 0, processed = 0;
    double newscore = 0;
    cache_entry_t *e;
    zset_t *z;
    double scores_small[16], *scores = scores_small;

    if (elements % 2 || elements == 0) {
        add_err(x, err_syntax);
        return;
    }
    elements /= 2;
    if ((fl & ZA_NX) && (fl & ZA_XX)) {
        add_err(x, "ERR XX and NX options at the same time are not compatible");
        return;
    }
    if (((fl & ZA_GT) && (fl & ZA_NX)) || ((fl & ZA_LT) && (fl & ZA_NX)) || ((fl & ZA_GT) && (fl & ZA_LT))) {
        add_err(x, "ERR GT, LT, and/or NX options at the same time are not compatible");
        return;
    }
    if ((fl & ZA_INCR) && elements > 1) {
        add_err(x, "ERR INCR option supports a single increment-element pair");
        return;
    }
    if (elements > 16) {
        scores = core_malloc(CORE_TAG_RESP_CONN, (size_t)elements * sizeof(double));
        if (scores == NULL) {
            oom(x);
            return;
        }
    }
    for (int j = 0; j < elements; j++)
        if (arg_double(A(scoreidx + j * 2), &scores[j]) != 0) {
            add_err(x, err_notfloat);
            goto out;
        }
    z = get_zset(x, A(1), &wrong, &e);
    if (wrong)
        goto out;
    if (z == NULL) {
        if (fl & ZA_XX)
            goto reply;
        z = create_zset(x, A(1), &e);
        if (z == NULL) {
            oom(x);
            goto out;
        }
    }
    for (int j = 0; j < elements; j++) {
        const resp_arg_t *m = A(scoreidx + j * 2 + 1);
        double score = scores[j];
        zmember_t *zm = zset_find(z, m->p, m->len);

        if (zm != NULL) {
            double cur = zm->score;

            if (fl & ZA_NX)
                continue;
            if (fl & ZA_INCR) {
                score += cur;
                if (isnan(score)) {
                    add_err(x, "ERR resulting score is not a number (NaN)");
                    drop_if_empty(x, e, z);
                    goto out;
                }
            }
            if (((fl & ZA_LT) && score >= cur) || ((fl & ZA_GT) && score <= cur))
                continue;
            newscore = score;
            processed++;
            if (score != cur) {
                if (zset_update(z, zm, score) < 0) {
                    oom(x);
                    drop_if_empty(x, e, z);
                    goto out;
                }
                updated++;
            }
        } else if (!(fl & ZA_XX)) {
            if (zset_set(z, m->p, m->len, score) < 0) {
                oom(x);
                drop_if_empty(x, e, z);
                goto out;
            }
            newscore = score;
            added++;
            processed++;
        }
    }
    drop_if_empty(x, e, z);
reply:
    if (fl & ZA_INCR) {
        if (processed)
            add_bulk_double(x, newscore);
        else
            add_null(x);
    } else {
        add_int(x, (fl & ZA_CH) ? added + updated : added);
    }
out:
    if (scores != scores_small)
        core_free(scores);
}

CMD(cmd_zadd)
{
    unsigned fl = 0;
    int i = 2;

    for (; i < x->argc; i++) {
        if (arg_eq(A(i), "nx"))
            fl |= ZA_NX;
        else if (arg_eq(A(i), "xx"))
            fl |= ZA_XX;
        else if (arg_eq(A(i), "ch"))
            fl |= ZA_CH;
        else if (arg_eq(A(i), "incr"))
            fl |= ZA_INCR;
        else if (arg_eq(A(i), "gt"))
            fl |= ZA_GT;
        else if (arg_eq(A(i), "lt"))
            fl |= ZA_LT;
        else
            break;
    }
    zadd_generic(x, fl, i);
}

CMD(cmd_zincrby)
{
    zadd_generic(x, ZA_INCR, 2);
}

CMD(cmd_zscore)
{
    int wrong = 0;
    zset_t *z = get_zset(x, A(1), &wrong, NULL);
    zmember_t *m;

    if (wrong)
        return;
    m = z ? zset_find(z, A(2)->p, A(2)->len) : NULL;
    if (m == NULL)
        add_null(x);
    else
        add_bulk_double(x, m->score);
}

CMD(cmd_zmscore)
{
    int wrong = 0;
    zset_t *z = get_zset(x, A(1), &wrong, NULL);

    if (wrong)
        return;
    add_array(x, (size_t)x->argc - 2);
    for (int i = 2; i < x->argc; i++) {
        zmember_t *m = z ? zset_find(z, A(i)->p, A(i)->len) : NULL;

        if (m == NULL)
            add_null(x);
        else
            add_bulk_double(x, m->score);
    }
}

CMD(cmd_zcard)
{
    int wrong = 0;
    zset_t *z = get_zset(x, A(1), &wrong, NULL);

    if (!wrong)
        add_int(x, z ? (long long)z->length : 0);
}

static void zrank_generic(cache_ctx_t *x, int rev)
{
    int wrong = 0;
    zset_t *z = get_zset(x, A(1), &wrong, NULL);
    zmember_t *m;
    size_t r;

    if (wrong)
        return;
    m = z ? zset_find(z, A(2)->p, A(2)->len) : NULL;
    if (m == NULL) {
        add_null(x);
        return;
    }
    r = zset_rank(z, m->score, m->key, m->h.klen);
    add_int(x, rev ? (long long)(z->length - 1 - r) : (long long)r);
}

CMD(cmd_zrank)
{
    zrank_generic(x, 0);
}

CMD(cmd_zrevrank)
{
    zrank_generic(x, 1);
}

/* ---- ZRANGE family ------------------------------------------------------ */

enum { RT_AUTO, RT_RANK, RT_SCORE, RT_LEX };
enum { DIR_AUTO, DIR_FWD, DIR_REV };

static void zrange_generic(cache_ctx_t *x, int rangetype, int dir)
{
    int withscores = 0, minidx = 2, maxidx = 3, wrong = 0;
    long long offset = 0, limit = -1, start = 0, end = 0;
    int has_limit = 0;
    zrange_spec_t rs = {0, 0, 0, 0};
    zlex_spec_t ls = {NULL, NULL, 0, 0, 0, 0, 0, 0};
    zset_t *z;

    for (int j = 4; j < x->argc; j++) {
        int left = x->argc - j - 1;

        if (arg_eq(A(j), "withscores")) {
            withscores = 1;
        } else if (arg_eq(A(j), "limit") && left >= 2) {
            if (get_ll_or_reply(x, A(j + 1), &offset, NULL) != 0 ||
                get_ll_or_reply(x, A(j + 2), &limit, NULL) != 0)
                return;
            has_limit = 1;
            j += 2;
        } else if (dir == DIR_AUTO && arg_eq(A(j), "rev")) {
            dir = DIR_REV;
        } else if (rangetype == RT_AUTO && arg_eq(A(j), "bylex")) {
            rangetype = RT_LEX;
        } else if (rangetype == RT_AUTO && arg_eq(A(j), "byscore")) {
            rangetype = RT_SCORE;
        } else {
            add_err(x, err_syntax);
            return;
        }
    }
    if (dir == DIR_AUTO)
        dir = DIR_FWD;
    if (rangetype == RT_AUTO)
        rangetype = RT_RANK;
    if (has_limit && rangetype == RT_RANK) {
        add_err(x, "ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX");
        return;
    }
    if (withscores && rangetype == RT_LEX) {
        add_err(x, "ERR syntax error, WITHSCORES not supported in combination with BYLEX");
        return;
    }
    if (dir == DIR_REV && rangetype != RT_RANK) {
        minidx = 3;
        maxidx = 2;
    }
    switch (rangetype) {
    case RT_RANK:
        if (get_ll_or_reply(x, A(minidx), &start, NULL) != 0 ||
            get_ll_or_reply(x, A(maxidx), &end, NULL) != 0)
            return;
        break;
    case RT_SCORE:
        if (parse_range(A(minidx), A(maxidx), &rs) != 0) {
            add_err(x, "ERR min or max is not a float");
            return;
        }
        break;
    default:
        if (parse_lex_item(A(minidx), &ls.min, &ls.minl, &ls.minex, &ls.mininf) != 0 ||
            parse_lex_item(A(maxidx), &ls.max, &ls.maxl, &ls.maxex, &ls.maxinf) != 0) {
            add_err(x, "ERR min or max not valid string range item");
            return;
        }
        break;
    }
    z = get_zset(x, A(1), &wrong, NULL);
    if (wrong)
        return;
    if (z == NULL) {
        add_array(x, 0);
        return;
    }
    if (rangetype == RT_RANK) {
        long long llen = (long long)z->length, n;
        zsl_node_t *ln;

        if (start < 0)
            start = llen + start;
        if (end < 0)
            end = llen + end;
        if (start < 0)
            start = 0;
        if (start > end || start >= llen) {
            add_array(x, 0);
            return;
        }
        if (end >= llen)
            end = llen - 1;
        n = end - start + 1;
        add_array(x, (size_t)(withscores && x->resp == 2 ? n * 2 : n));
        ln = dir == DIR_REV ? zset_at(z, (size_t)(llen - 1 - start)) : zset_at(z, (size_t)start);
        while (n-- > 0 && ln != NULL) {
            add_member(x, ln, withscores);
            ln = dir == DIR_REV ? ln->back : ln->level[0].fwd;
        }
        return;
    }
    {
        zsl_node_t *ln;
        size_t at = add_deferred_array(x), cnt = 0;

        if (rangetype == RT_SCORE)
            ln = dir == DIR_REV ? last_in_range(z, &rs) : first_in_range(z, &rs);
        else
            ln = dir == DIR_REV ? lex_last(z, &ls) : lex_first(z, &ls);
        while (ln && offset--)
            ln = dir == DIR_REV ? ln->back : ln->level[0].fwd;
        while (ln && limit--) {
            if (rangetype == RT_SCORE) {
                if (dir == DIR_REV ? !gte_min(ln->score, &rs) : !lte_max(ln->score, &rs))
                    break;
            } else {
                if (dir == DIR_REV ? !lex_gte_min(ln, &ls) : !lex_lte_max(ln, &ls))
                    break;
            }
            add_member(x, ln, withscores);
            cnt++;
            ln = dir == DIR_REV ? ln->back : ln->level[0].fwd;
        }
        set_deferred_len(x, at, withscores && x->resp == 2 ? cnt * 2 : cnt);
    }
}

CMD(cmd_zrange)
{
    zrange_generic(x, RT_AUTO, DIR_AUTO);
}

CMD(cmd_zrevrange)
{
    zrange_generic(x, RT_RANK, DIR_REV);
}

CMD(cmd_zrangebyscore)
{
    zrange_generic(x, RT_SCORE, DIR_FWD);
}

CMD(cmd_zrevrangebyscore)
{
    zrange_generic(x, RT_SCORE, DIR_REV);
}

CMD(cmd_zcount)
{
    zrange_spec_t r;
    int wrong = 0;
    zset_t *z;
    zsl_node_t *f, *l;

    if (parse_range(A(2), A(3), &r) != 0) {
        add_err(x, "ERR min or max is not a float");
        return;
    }
    z = get_zset(x, A(1), &wrong, NULL);
    if (wrong)
        return;
    if (z == NULL || (f = first_in_range(z, &r)) == NULL) {
        add_int(x, 0);
        return;
    }
    l = last_in_range(z, &r);
    add_int(x, (long long)(zset_rank(z, l->score, l->m->key, l->m->h.klen) -
                           zset_rank(z, f->score, f->m->key, f->m->h.klen) + 1));
}

CMD(cmd_zrem)
{
    int wrong = 0;
    cache_entry_t *e;
    zset_t *z = get_zset(x, A(1), &wrong, &e);
    long long n = 0;

    if (wrong)
        return;
    if (z != NULL) {
        for (int i = 2; i < x->argc; i++)
            n += zset_del(z, A(i)->p, A(i)->len);
        drop_if_empty(x, e, z);
    }
    add_int(x, n);
}

static void del_node(zset_t *z, zsl_node_t *n)
{
    zmember_t *m = n->m;

    zset_del(z, m->key, m->h.klen);
}

CMD(cmd_zremrangebyrank)
{
    long long start, end, llen, n;
    int wrong = 0;
    cache_entry_t *e;
    zset_t *z;
    zsl_node_t *ln;

    if (get_ll_or_reply(x, A(2), &start, NULL) != 0 || get_ll_or_reply(x, A(3), &end, NULL) != 0)
        return;
    z = get_zset(x, A(1), &wrong, &e);
    if (wrong)
        return;
    if (z == NULL) {
        add_int(x, 0);
        return;
    }
    llen = (long long)z->length;
    if (start < 0)
        start = llen + start;
    if (end < 0)
        end = llen + end;
    if (start < 0)
        start = 0;
    if (start > end || start >= llen) {
        add_int(x, 0);
        return;
    }
    if (end >= llen)
        end = llen - 1;
    n = end - start + 1;
    ln = zset_at(z, (size_t)start);
    for (long long i = 0; i < n && ln != NULL; i++) {
        zsl_node_t *next = ln->level[0].fwd;

        del_node(z, ln);
        ln = next;
    }
    drop_if_empty(x, e, z);
    add_int(x, n);
}

CMD(cmd_zremrangebyscore)
{
    zrange_spec_t r;
    int wrong = 0;
    cache_entry_t *e;
    zset_t *z;
    zsl_node_t *ln;
    long long n = 0;

    if (parse_range(A(2), A(3), &r) != 0) {
        add_err(x, "ERR min or max is not a float");
        return;
    }
    z = get_zset(x, A(1), &wrong, &e);
    if (wrong)
        return;
    if (z == NULL) {
        add_int(x, 0);
        return;
    }
    ln = first_in_range(z, &r);
    while (ln != NULL && lte_max(ln->score, &r)) {
        zsl_node_t *next = ln->level[0].fwd;

        del_node(z, ln);
        n++;
        ln = next;
    }
    drop_if_empty(x, e, z);
    add_int(x, n);
}

static void zpop_generic(cache_ctx_t *x, int max)
{
    long long count = 1;
    int has_count = x->argc == 3, wrong = 0;
    cache_entry_t *e;
    zset_t *z;
    long long n;

    if (x->argc > 3) {
        add_err(x, err_syntax);
        return;
    }
    if (has_count && (arg_ll(A(2), &count) != 0 || count < 0)) {
        add_err(x, "ERR value is out of range, must be positive");
        return;
    }
    z = get_zset(x, A(1), &wrong, &e);
    if (wrong)
        return;
    if (z == NULL || count == 0) {
        add_array(x, 0);
        return;
    }
    n = count < (long long)z->length ? count : (long long)z->length;
    if (has_count && x->resp == 3)
        add_array(x, (size_t)n);
    else
        add_array(x, (size_t)n * 2);
    while (n-- > 0) {
        zsl_node_t *ln = max ? z->tail : z->head->level[0].fwd;

        if (has_count && x->resp == 3)
            add_array(x, 2);
        add_bulk(x, ln->m->key, ln->m->h.klen);
        add_bulk_double(x, ln->score);
        del_node(z, ln);
    }
    drop_if_empty(x, e, z);
}

CMD(cmd_zpopmin)
{
    zpop_generic(x, 0);
}

CMD(cmd_zpopmax)
{
    zpop_generic(x, 1);
}

/* ---- ZUNIONSTORE / ZINTERSTORE ---------------------------------------- */

enum { AGG_SUM, AGG_MIN, AGG_MAX };

static double agg(int how, double a, double b)
{
    double r;

    if (how == AGG_MIN)
        return a < b ? a : b;
    if (how == AGG_MAX)
        return a > b ? a : b;
    r = a + b;
    return isnan(r) ? 0.0 : r;
}

static void zstore_generic(cache_ctx_t *x, int inter, const char *name)
{
    long long numkeys;
    int how = AGG_SUM, wrong = 0, j;
    zset_t **src = NULL, *dst = NULL;
    double *w = NULL;
    cache_entry_t *e;

    if (get_ll_or_reply(x, A(2), &numkeys, NULL) != 0)
        return;
    if (numkeys < 1) {
        add_errf(x, "ERR at least 1 input key is needed for '%s' command", name);
        return;
    }
    if (numkeys > x->argc - 3) {
        add_err(x, err_syntax);
        return;
    }
    src = core_calloc(CORE_TAG_RESP_CONN, (size_t)numkeys, sizeof(*src));
    w = core_malloc(CORE_TAG_RESP_CONN, (size_t)numkeys * sizeof(*w));
    if (src == NULL || w == NULL) {
        oom(x);
        goto out;
    }
    for (long long i = 0; i < numkeys; i++) {
        src[i] = get_zset(x, A(3 + i), &wrong, NULL);
        if (wrong)
            goto out;
        w[i] = 1.0;
    }
    for (j = 3 + (int)numkeys; j < x->argc; j++) {
        int left = x->argc - j;

        if (left >= 1 + numkeys && arg_eq(A(j), "weights")) {
            j++;
            for (long long i = 0; i < numkeys; i++, j++)
                if (arg_double(A(j), &w[i]) != 0) {
                    add_err(x, "ERR weight value is not a float");
                    goto out;
                }
            j--;
        } else if (left >= 2 && arg_eq(A(j), "aggregate")) {
            j++;
            if (arg_eq(A(j), "sum"))
                how = AGG_SUM;
            else if (arg_eq(A(j), "min"))
                how = AGG_MIN;
            else if (arg_eq(A(j), "max"))
                how = AGG_MAX;
            else {
                add_err(x, err_syntax);
                goto out;
            }
        } else {
            add_err(x, err_syntax);
            goto out;
        }
    }
    dst = zset_new();
    if (dst == NULL) {
        oom(x);
        goto out;
    }
    if (inter) {
        /* iterate the smallest input, keep members present in all */
        int small = 0;

        for (long long i = 0; i < numkeys; i++) {
            if (src[i] == NULL) {
                small = -1;
                break;
            }
            if (src[i]->length < src[small]->length)
                small = (int)i;
        }
        if (small >= 0) {
            for (zsl_node_t *n = src[small]->head->level[0].fwd; n != NULL; n = n->level[0].fwd) {
                double score = w[small] * n->score;
                int all = 1;

                if (isnan(score))
                    score = 0;
                for (long long i = 0; i < numkeys && all; i++) {
                    zmember_t *m;
                    double v;

                    if (i == small)
                        continue;
                    m = zset_find(src[i], n->m->key, n->m->h.klen);
                    if (m == NULL) {
                        all = 0;
                        break;
                    }
                    v = w[i] * m->score;
                    if (isnan(v))
                        v = 0;
                    score = agg(how, score, v);
                }
                /* Redis aggregates in input order; min/max/sum commute */
                if (all && zset_set(dst, n->m->key, n->m->h.klen, score) < 0) {
                    oom(x);
                    goto out;
                }
            }
        }
    } else {
        for (long long i = 0; i < numkeys; i++) {
            if (src[i] == NULL)
                continue;
            for (zsl_node_t *n = src[i]->head->level[0].fwd; n != NULL; n = n->level[0].fwd) {
                double score = w[i] * n->score;
                zmember_t *m;

                if (isnan(score))
                    score = 0;
                m = zset_find(dst, n->m->key, n->m->h.klen);
                if (m != NULL)
                    score = agg(how, m->score, score);
                if (zset_set(dst, n->m->key, n->m->h.klen, score) < 0) {
                    oom(x);
                    goto out;
                }
            }
        }
    }
    e = lookup(x, A(1));
    if (e != NULL)
        cache_ks_del_entry(x->ks, e);
    if (dst->length == 0) {
        add_int(x, 0);
        goto out;
    }
    if (cache_ks_add_ptr(x->ks, A(1)->p, A(1)->len, CACHE_T_ZSET, dst) == NULL) {
        oom(x);
        goto out;
    }
    add_int(x, (long long)dst->length);
    dst = NULL;
out:
    zset_free(dst);
    core_free(src);
    core_free(w);
}

CMD(cmd_zunionstore)
{
    zstore_generic(x, 0, "zunionstore");
}

CMD(cmd_zinterstore)
{
    zstore_generic(x, 1, "zinterstore");
}
