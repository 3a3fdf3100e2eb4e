/* proto/amf0: AMF0 decode into a scope, encode into a fixed buffer. */
#include "proto/amf0.h"

#include <errno.h>
#include <string.h>

typedef struct rd {
    core_scope_t *scope;
    const uint8_t *p;
    size_t len, off;
} rd_t;

static int need(const rd_t *r, size_t n)
{
    return r->len - r->off >= n;
}

static uint16_t get16(const uint8_t *p)
{
    return (uint16_t)((p[0] << 8) | p[1]);
}

static uint32_t get32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static double getdbl(const uint8_t *p)
{
    uint64_t u = 0;
    double d;

    for (int i = 0; i < 8; i++)
        u = (u << 8) | p[i];
    memcpy(&d, &u, sizeof(d));
    return d;
}

/* A string of n bytes (length already read). */
static int rd_str(rd_t *r, size_t n, const char **out)
{
    if (!need(r, n))
        return -EAGAIN;
    *out = core_scope_strndup(r->scope, (const char *)r->p + r->off, n);
    if (*out == NULL)
        return -ENOMEM;
    r->off += n;
    return 0;
}

static int rd_value(rd_t *r, amf0_value_t **out, int depth);

/* Properties until the 00 00 09 end marker. */
static int rd_props(rd_t *r, amf0_value_t *v, int depth)
{
    size_t cap = 0;

    for (;;) {
        size_t klen;
        const char *key;
        amf0_prop_t *np;
        int rv;

        if (!need(r, 2))
            return -EAGAIN;
        klen = get16(r->p + r->off);
        if (klen == 0) {
            if (!need(r, 3))
                return -EAGAIN;
            if (r->p[r->off + 2] != AMF0_OBJECT_END)
                return -EPROTO;
            r->off += 3;
            return 0;
        }
        r->off += 2;
        if ((rv = rd_str(r, klen, &key)) != 0)
            return rv;
        if (v->n == AMF0_MAX_ITEMS)
            return -EPROTO;
        if (v->n == cap) {
            size_t ncap = cap ? cap * 2 : 8;

            np = core_scope_alloc(r->scope, ncap * sizeof(*np));
            if (np == NULL)
                return -ENOMEM;
            if (v->n)
                memcpy(np, v->props, v->n * sizeof(*np));
            v->props = np;
            cap = ncap;
        }
        v->props[v->n].key = key;
        v->props[v->n].keylen = klen;
        if ((rv = rd_value(r, &v->props[v->n].value, depth + 1)) != 0)
            return rv;
        v->n++;
    }
}

static int rd_value(rd_t *r, amf0_value_t **out, int depth)
{
    amf0_value_t *v;
    uint8_t m;
    int rv = 0;

    if (depth > AMF0_MAX_DEPTH)
        return -EPROTO;
    if (!need(r, 1))
        return -EAGAIN;
    m = r->p[r->off];
    v = core_scope_calloc(r->scope, sizeof(*v));
    if (v == NULL)
        return -ENOMEM;
    v->type = (amf0_type_t)m;
    r->off++;
    switch (m) {
    case AMF0_NUMBER:
        if (!need(r, 8))
            return -EAGAIN;
        v->num = getdbl(r->p + r->off);
        r->off += 8;
        break;
    case AMF0_BOOLEAN:
        if (!need(r, 1))
            return -EAGAIN;
        v->boolean = r->p[r->off++] != 0;
        break;
    case AMF0_STRING:
        if (!need(r, 2))
            return -EAGAIN;
        v->len = get16(r->p + r->off);
        r->off += 2;
        rv = rd_str(r, v->len, &v->str);
        break;
    case AMF0_LONG_STRING:
        if (!need(r, 4))
            return -EAGAIN;
        v->len = get32(r->p + r->off);
        r->off += 4;
        rv = rd_str(r, v->len, &v->str);
        break;
    case AMF0_NULL:
    case AMF0_UNDEFINED:
        break;
    case AMF0_OBJECT:
        rv = rd_props(r, v, depth);
        break;
    case AMF0_ECMA_ARRAY:
        /* the count is a hint that encoders get wrong; the end marker rules */
        if (!need(r, 4))
            return -EAGAIN;
        r->off += 4;
        rv = rd_props(r, v, depth);
        break;
    case AMF0_STRICT_ARRAY: {
        uint32_t n;

        if (!need(r, 4))
            return -EAGAIN;
        n = get32(r->p + r->off);
        r->off += 4;
        if (n > AMF0_MAX_ITEMS)
            return -EPROTO;
        /* every element is at least one byte: do not allocate for a lie */
        if (r->len - r->off < n)
            return -EAGAIN;
        v->items = core_scope_alloc(r->scope, (n ? n : 1) * sizeof(*v->items));
        if (v->items == NULL)
            return -ENOMEM;
        for (v->n = 0; v->n < n; v->n++)
            if ((rv = rd_value(r, &v->items[v->n], depth + 1)) != 0)
                return rv;
        break;
    }
    case AMF0_DATE:
        if (!need(r, 10))
            return -EAGAIN;
        v->num = getdbl(r->p + r->off);
        v->tz = (int16_t)get16(r->p + r->off + 8);
        r->off += 10;
        break;
    default:
        return -EPROTO;
    }
    if (rv != 0)
        return rv;
    *out = v;
    return 0;
}

ssize_t amf0_parse(core_scope_t *scope, const uint8_t *buf, size_t len, amf0_value_t **out)
{
    rd_t r = {scope, buf, len, 0};
    int rv = rd_value(&r, out, 0);

    return rv != 0 ? rv : (ssize_t)r.off;
}

const amf0_value_t *amf0_get(const amf0_value_t *v, const char *key)
{
    if (v == NULL || (v->type != AMF0_OBJECT && v->type != AMF0_ECMA_ARRAY))
        return NULL;
    for (size_t i = 0; i < v->n; i++)
        if (strcmp(v->props[i].key, key) == 0)
            return v->props[i].value;
    return NULL;
}

const char *amf0_get_str(const amf0_value_t *v, const char *key)
{
    const amf0_value_t *p = amf0_get(v, key);

    return p && (p->type == AMF0_STRING || p->type == AMF0_LONG_STRING) ? p->str : NULL;
}

double amf0_get_num(const amf0_value_t *v, const char *key, double dflt)
{
    const amf0_value_t *p = amf0_get(v, key);

    return p && p->type == AMF0_NUMBER ? p->num : dflt;
}

/* ---- encoding --------------------------------------------------------- */

void amf0_buf_init(amf0_buf_t *b, uint8_t *p, size_t cap)
{
    b->p = p;
    b->len = 0;
    b->cap = cap;
    b->err = 0;
}

static uint8_t *room(amf0_buf_t *b, size_t n)
{
    uint8_t *p;

    if (b->err != 0 || b->cap - b->len < n) {
        b->err = -ENOSPC;
        return NULL;
    }
    p = b->p + b->len;
    b->len += n;
    return p;
}

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static void putdbl(uint8_t *p, double d)
{
    uint64_t u;

    memcpy(&u, &d, sizeof(u));
    for (int i = 7; i >= 0; i--, u >>= 8)
        p[i] = (uint8_t)u;
}

void amf0_put_number(amf0_buf_t *b, double v)
{
    uint8_t *p = room(b, 9);

    if (p != NULL) {
        p[0] = AMF0_NUMBER;
        putdbl(p + 1, v);
    }
}

void amf0_put_bool(amf0_buf_t *b, int v)
{
    uint8_t *p = room(b, 2);

    if (p != NULL) {
        p[0] = AMF0_BOOLEAN;
        p[1] = v != 0;
    }
}

static void put_str(amf0_buf_t *b, const char *s, size_t n, int lng)
{
    uint8_t *p;

    if (n > 0xffffffffu) {
        b->err = -ENOSPC;
        return;
    }
    if (lng || n > 0xffff) {
        if ((p = room(b, 5 + n)) == NULL)
            return;
        p[0] = AMF0_LONG_STRING;
        put32(p + 1, (uint32_t)n);
        memcpy(p + 5, s, n);
        return;
    }
    if ((p = room(b, 3 + n)) == NULL)
        return;
    p[0] = AMF0_STRING;
    put16(p + 1, (uint16_t)n);
    memcpy(p + 3, s, n);
}

void amf0_put_stringn(amf0_buf_t *b, const char *s, size_t n)
{
    put_str(b, s, n, 0);
}

void amf0_put_string(amf0_buf_t *b, const char *s)
{
    amf0_put_stringn(b, s, strlen(s));
}

void amf0_put_null(amf0_buf_t *b)
{
    uint8_t *p = room(b, 1);

    if (p != NULL)
        p[0] = AMF0_NULL;
}

void amf0_put_undefined(amf0_buf_t *b)
{
    uint8_t *p = room(b, 1);

    if (p != NULL)
        p[0] = AMF0_UNDEFINED;
}

void amf0_put_date(amf0_buf_t *b, double ms, int16_t tz)
{
    uint8_t *p = room(b, 11);

    if (p != NULL) {
        p[0] = AMF0_DATE;
        putdbl(p + 1, ms);
        put16(p + 9, (uint16_t)tz);
    }
}

void amf0_put_object_begin(amf0_buf_t *b)
{
    uint8_t *p = room(b, 1);

    if (p != NULL)
        p[0] = AMF0_OBJECT;
}

void amf0_put_ecma_begin(amf0_buf_t *b, uint32_t n)
{
    uint8_t *p = room(b, 5);

    if (p != NULL) {
        p[0] = AMF0_ECMA_ARRAY;
        put32(p + 1, n);
    }
}

void amf0_put_strict_array_begin(amf0_buf_t *b, uint32_t n)
{
    uint8_t *p = room(b, 5);

    if (p != NULL) {
        p[0] = AMF0_STRICT_ARRAY;
        put32(p + 1, n);
    }
}

static void put_keyn(amf0_buf_t *b, const char *key, size_t n)
{
    uint8_t *p;

    if (n > 0xffff) {
        b->err = -ENOSPC;
        return;
    }
    if ((p = room(b, 2 + n)) != NULL) {
        put16(p, (uint16_t)n);
        memcpy(p + 2, key, n);
    }
}

void amf0_put_key(amf0_buf_t *b, const char *key)
{
    put_keyn(b, key, strlen(key));
}

void amf0_put_object_end(amf0_buf_t *b)
{
    uint8_t *p = room(b, 3);

    if (p != NULL) {
        p[0] = 0;
        p[1] = 0;
        p[2] = AMF0_OBJECT_END;
    }
}

void amf0_put_value(amf0_buf_t *b, const amf0_value_t *v)
{
    switch (v->type) {
    case AMF0_NUMBER: amf0_put_number(b, v->num); break;
    case AMF0_BOOLEAN: amf0_put_bool(b, v->boolean); break;
    case AMF0_STRING: put_str(b, v->str, v->len, 0); break;
    case AMF0_LONG_STRING: put_str(b, v->str, v->len, 1); break;
    case AMF0_NULL: amf0_put_null(b); break;
    case AMF0_UNDEFINED: amf0_put_undefined(b); break;
    case AMF0_DATE: amf0_put_date(b, v->num, v->tz); break;
    case AMF0_OBJECT:
    case AMF0_ECMA_ARRAY:
        if (v->type == AMF0_OBJECT)
            amf0_put_object_begin(b);
        else
            amf0_put_ecma_begin(b, (uint32_t)v->n);
        for (size_t i = 0; i < v->n; i++) {
            put_keyn(b, v->props[i].key, v->props[i].keylen);
            amf0_put_value(b, v->props[i].value);
        }
        amf0_put_object_end(b);
        break;
    case AMF0_STRICT_ARRAY:
        amf0_put_strict_array_begin(b, (uint32_t)v->n);
        for (size_t i = 0; i < v->n; i++)
            amf0_put_value(b, v->items[i]);
        break;
    default:
        b->err = -EINVAL;
        break;
    }
}
