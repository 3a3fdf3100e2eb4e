/* proto/amf0: Action Message Format 0, the value encoding of RTMP
 * commands and metadata.
 *
 * Decoding is a pure function over bytes: values are built in a scoped
 * arena the caller passes in (every string points into that arena, NUL
 * terminated), nesting depth and element counts are bounded. Encoding
 * appends to a caller-owned fixed buffer; errors are sticky so a sequence
 * of puts is checked once at the end. */
#ifndef PROTO_AMF0_H
#define PROTO_AMF0_H

#include "core/arena.h"

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef enum amf0_type {
    AMF0_NUMBER = 0x00,
    AMF0_BOOLEAN = 0x01,
    AMF0_STRING = 0x02,
    AMF0_OBJECT = 0x03,
    AMF0_NULL = 0x05,
    AMF0_UNDEFINED = 0x06,
    AMF0_ECMA_ARRAY = 0x08,
    AMF0_OBJECT_END = 0x09,
    AMF0_STRICT_ARRAY = 0x0a,
    AMF0_DATE = 0x0b,
    AMF0_LONG_STRING = 0x0c,
} amf0_type_t;

#define AMF0_MAX_DEPTH 16       /* nesting of objects and arrays */
#define AMF0_MAX_ITEMS 4096     /* properties or elements of one object/array */

typedef struct amf0_value amf0_value_t;

typedef struct amf0_prop {
    const char *key;            /* NUL terminated, in the scope */
    size_t keylen;
    amf0_value_t *value;
} amf0_prop_t;

struct amf0_value {
    amf0_type_t type;
    double num;                 /* NUMBER, DATE (ms since the epoch) */
    int boolean;                /* BOOLEAN */
    int16_t tz;                 /* DATE (minutes; ignored by everyone) */
    const char *str;            /* STRING, LONG_STRING: NUL terminated */
    size_t len;                 /* string length */
    size_t n;                   /* props (OBJECT, ECMA_ARRAY) or items */
    amf0_prop_t *props;
    amf0_value_t **items;       /* STRICT_ARRAY */
};

/* Decode one value from buf[0..len) into *out, allocating from scope
 * (borrowed; values live until it is reset). Returns bytes consumed,
 * -EAGAIN when buf ends inside the value, -EPROTO for malformed input
 * (unknown marker, depth or item count over the limits), -ENOMEM. */
ssize_t amf0_parse(core_scope_t *scope, const uint8_t *buf, size_t len, amf0_value_t **out);

/* Property of an OBJECT or ECMA_ARRAY by key; NULL if absent or v is not
 * one. */
const amf0_value_t *amf0_get(const amf0_value_t *v, const char *key);

/* Convenience: the string / number of a property, or NULL / dflt. */
const char *amf0_get_str(const amf0_value_t *v, const char *key);
double amf0_get_num(const amf0_value_t *v, const char *key, double dflt);

typedef struct amf0_buf {
    uint8_t *p;                 /* borrowed storage */
    size_t len, cap;
    int err;                    /* 0 or -ENOSPC once something did not fit */
} amf0_buf_t;

/* Start writing into p[0..cap). */
void amf0_buf_init(amf0_buf_t *b, uint8_t *p, size_t cap);

/* Append one value. Strings longer than 65535 bytes become LONG_STRING. */
void amf0_put_number(amf0_buf_t *b, double v);
void amf0_put_bool(amf0_buf_t *b, int v);
void amf0_put_string(amf0_buf_t *b, const char *s);
void amf0_put_stringn(amf0_buf_t *b, const char *s, size_t n);
void amf0_put_null(amf0_buf_t *b);
void amf0_put_undefined(amf0_buf_t *b);
void amf0_put_date(amf0_buf_t *b, double ms, int16_t tz);
/* Objects: begin, then (key, value) pairs with amf0_put_key + a put, then
 * end. amf0_put_ecma_begin writes the ECMA array header with count n. */
void amf0_put_object_begin(amf0_buf_t *b);
void amf0_put_ecma_begin(amf0_buf_t *b, uint32_t n);
void amf0_put_key(amf0_buf_t *b, const char *key);
void amf0_put_object_end(amf0_buf_t *b);
void amf0_put_strict_array_begin(amf0_buf_t *b, uint32_t n);

/* Append a decoded value (round trip). */
void amf0_put_value(amf0_buf_t *b, const amf0_value_t *v);

#endif
