/* cache/t_hll: HyperLogLog (PFADD, PFCOUNT, PFMERGE), stored like Redis's
 * as a string value in Redis's dense representation ("HYLL" header and
 * 16384 6-bit registers), with Redis's hash (MurmurHash64A, same seed) and
 * estimator, so counts equal Redis's for the same elements. Sparse values
 * written by Redis are read, and rewritten dense on update. */
#include "cache/cache_int.h"

#include <math.h>
#include <string.h>

#define A(i) (&x->argv[(i)])

#define HLL_P 14
#define HLL_Q (64 - HLL_P)
#define HLL_REGS (1 << HLL_P)
#define HLL_BITS 6
#define HLL_HDR 16
#define HLL_REG_BYTES ((HLL_REGS * HLL_BITS + 7) / 8)
#define HLL_DENSE_SIZE (HLL_HDR + HLL_REG_BYTES)
#define HLL_ALPHA_INF 0.721347520444481703680

static const char *const err_invalid = "WRONGTYPE Key is not a valid HyperLogLog string value.";

static uint64_t murmur64a(const void *key, size_t len, uint64_t seed)
{
    const uint64_t m = 0xc6a4a7935bd1e995ull;
    const int r = 47;
    const unsigned char *p = key;
    uint64_t h = seed ^ (len * m);
    size_t blocks = len / 8;

    for (size_t i = 0; i < blocks; i++) {
        uint64_t k;

        memcpy(&k, p + i * 8, 8);
        k *= m;
        k ^= k >> r;
        k *= m;
        h ^= k;
        h *= m;
    }
    p += blocks * 8;
    switch (len & 7) {
    case 7: h ^= (uint64_t)p[6] << 48; /* fall through */
    case 6: h ^= (uint64_t)p[5] << 40; /* fall through */
    case 5: h ^= (uint64_t)p[4] << 32; /* fall through */
    case 4: h ^= (uint64_t)p[3] << 24; /* fall through */
    case 3: h ^= (uint64_t)p[2] << 16; /* fall through */
    case 2: h ^= (uint64_t)p[1] << 8;  /* fall through */
    case 1:
        h ^= (uint64_t)p[0];
        h *= m;
    }
    h ^= h >> r;
    h *= m;
    h ^= h >> r;
    return h;
}

static int reg_get(const unsigned char *r, size_t i)
{
    size_t byte = i * HLL_BITS / 8;
    unsigned fb = (unsigned)(i * HLL_BITS) & 7;
    unsigned b0 = r[byte], b1 = byte + 1 < HLL_REG_BYTES ? r[byte + 1] : 0;

    return (int)(((b0 >> fb) | (b1 << (8 - fb))) & 63);
}

static void reg_set(unsigned char *r, size_t i, unsigned v)
{
    size_t byte = i * HLL_BITS / 8;
    unsigned fb = (unsigned)(i * HLL_BITS) & 7;

    r[byte] = (unsigned char)((r[byte] & ~(63u << fb)) | (v << fb));
    if (byte + 1 < HLL_REG_BYTES)
        r[byte + 1] = (unsigned char)((r[byte + 1] & ~(63u >> (8 - fb))) | (v >> (8 - fb)));
}

/* Decode a valid HLL string value into registers (one byte each).
 * Returns 0, or -1 if the value is not a valid HLL. */
static int hll_load(const char *v, size_t n, unsigned char *regs)
{
    const unsigned char *p = (const unsigned char *)v;

    if (n < HLL_HDR || memcmp(p, "HYLL", 4) != 0 || p[4] > 1)
        return -1;
    if (p[4] == 0) {
        if (n != HLL_DENSE_SIZE)
            return -1;
        for (size_t i = 0; i < HLL_REGS; i++)
            regs[i] = (unsigned char)reg_get(p + HLL_HDR, i);
        return 0;
    }
    {
        size_t idx = 0, i = HLL_HDR;

        memset(regs, 0, HLL_REGS);
        while (i < n) {
            unsigned op = p[i];
            size_t run;

            if ((op & 0xc0) == 0) {
                run = (op & 0x3f) + 1;
                i++;
            } else if ((op & 0xc0) == 0x40) {
                if (i + 1 >= n)
                    return -1;
                run = (((size_t)op & 0x3f) << 8 | p[i + 1]) + 1;
                i += 2;
            } else {
                unsigned val = ((op >> 2) & 0x1f) + 1;

                run = (op & 3) + 1;
                if (idx + run > HLL_REGS)
                    return -1;
                for (size_t k = 0; k < run; k++)
                    regs[idx + k] = (unsigned char)val;
                i++;
            }
            idx += run;
            if (idx > HLL_REGS)
                return -1;
        }
        return idx == HLL_REGS ? 0 : -1;
    }
}

static void hll_store(char *dst, const unsigned char *regs)
{
    memset(dst, 0, HLL_DENSE_SIZE);
    memcpy(dst, "HYLL", 4);
    dst[15] = (char)0x80; /* cached cardinality invalid */
    for (size_t i = 0; i < HLL_REGS; i++)
        if (regs[i])
            reg_set((unsigned char *)dst + HLL_HDR, i, regs[i]);
}

static int pat_len(const char *e, size_t n, size_t *idx)
{
    uint64_t h = murmur64a(e, n, 0xadc83b19ull), bit = 1;
    int count = 1;

    *idx = (size_t)(h & (HLL_REGS - 1));
    h >>= HLL_P;
    h |= (uint64_t)1 << HLL_Q;
    while ((h & bit) == 0) {
        count++;
        bit <<= 1;
    }
    return count;
}

static double tau(double x)
{
    double y = 1.0, z, zp;

    if (x == 0. || x == 1.)
        return 0.;
    z = 1 - x;
    do {
        x = sqrt(x);
        zp = z;
        y *= 0.5;
        z -= pow(1 - x, 2) * y;
    } while (zp != z);
    return z / 3;
}

static double sigma(double x)
{
    double y = 1, z = x, zp;

    if (x == 1.)
        return INFINITY;
    do {
        x *= x;
        zp = z;
        z += x * y;
        y += y;
    } while (zp != z);
    return z;
}

static uint64_t hll_count(const unsigned char *regs)
{
    int histo[64] = {0};
    double m = HLL_REGS, z;

    for (size_t i = 0; i < HLL_REGS; i++)
        histo[regs[i]]++;
    z = m * tau((m - histo[HLL_Q + 1]) / m);
    for (int j = HLL_Q; j >= 1; --j) {
        z += histo[j];
        z *= 0.5;
    }
    z += m * sigma(histo[0] / m);
    return (uint64_t)llroundl(HLL_ALPHA_INF * m * m / z);
}

/* Load key's registers into regs. Returns 1 if loaded, 0 if missing, -1
 * after replying an error. */
static int load_key(cache_ctx_t *x, const resp_arg_t *key, unsigned char *regs)
{
    int wrong = 0;
    cache_entry_t *e = lookup_typed(x, key, CACHE_T_STRING, &wrong);

    if (wrong)
        return -1;
    if (e == NULL)
        return 0;
    if (hll_load(ent_val(e), e->vlen, regs) != 0) {
        add_err(x, err_invalid);
        return -1;
    }
    return 1;
}

static int save_key(cache_ctx_t *x, const resp_arg_t *key, const unsigned char *regs)
{
    char *buf = core_malloc(CORE_TAG_RESP_CONN, HLL_DENSE_SIZE);
    cache_entry_t *e;
    int64_t exp = -1;

    if (buf == NULL)
        return -1;
    hll_store(buf, regs);
    e = lookup(x, key);
    if (e != NULL)
        exp = ent_expire(e);
    e = cache_ks_set_str(x->ks, key->p, key->len, buf, HLL_DENSE_SIZE, exp, 0, x->now_ms);
    core_free(buf);
    return e == NULL ? -1 : 0;
}

CMD(cmd_pfadd)
{
    unsigned char regs[HLL_REGS];
    int st = load_key(x, A(1), regs), updated = 0;

    if (st < 0)
        return;
    if (st == 0) {
        memset(regs, 0, sizeof(regs));
        updated = 1;
    }
    for (int i = 2; i < x->argc; i++) {
        size_t idx;
        int c = pat_len(A(i)->p, A(i)->len, &idx);

        if (c > regs[idx]) {
            regs[idx] = (unsigned char)c;
            updated = 1;
        }
    }
    if (updated && save_key(x, A(1), regs) != 0) {
        add_err(x, "OOM command not allowed when used memory > 'maxmemory'.");
        return;
    }
    add_int(x, updated);
}

CMD(cmd_pfcount)
{
    unsigned char regs[HLL_REGS], tmp[HLL_REGS];

    memset(regs, 0, sizeof(regs));
    for (int i = 1; i < x->argc; i++) {
        int st = load_key(x, A(i), tmp);

        if (st < 0)
            return;
        if (st == 0)
            continue;
        for (size_t r = 0; r < HLL_REGS; r++)
            if (tmp[r] > regs[r])
                regs[r] = tmp[r];
    }
    add_int(x, (long long)hll_count(regs));
}

CMD(cmd_pfmerge)
{
    unsigned char regs[HLL_REGS], tmp[HLL_REGS];

    memset(regs, 0, sizeof(regs));
    for (int i = 1; i < x->argc; i++) {
        int st = load_key(x, A(i), tmp);

        if (st < 0)
            return;
        if (st == 0)
            continue;
        for (size_t r = 0; r < HLL_REGS; r++)
            if (tmp[r] > regs[r])
                regs[r] = tmp[r];
    }
    if (save_key(x, A(1), regs) != 0) {
        add_err(x, "OOM command not allowed when used memory > 'maxmemory'.");
        return;
    }
    add_ok(x);
}
