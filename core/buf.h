/* buf.h: a growable byte buffer with a read offset (per connection, reused). */
#ifndef TG_BUF_H
#define TG_BUF_H

#include "tg.h"

#include <stdlib.h>

typedef struct {
    char *data;
    size_t off; /* first unread byte */
    size_t len; /* end of data */
    size_t cap;
} tg_buf_t;

static inline size_t tg_buf_used(const tg_buf_t *b)
{
    return b->len - b->off;
}

static inline const char *tg_buf_start(const tg_buf_t *b)
{
    return b->data + b->off;
}

/* Makes room for `need` more bytes at the end, compacting first. */
static inline int tg_buf_reserve(tg_buf_t *b, size_t need)
{
    if (b->off && b->off == b->len)
        b->off = b->len = 0;
    if (b->cap - b->len >= need)
        return 0;
    if (b->off) {
        memmove(b->data, b->data + b->off, b->len - b->off);
        b->len -= b->off;
        b->off = 0;
        if (b->cap - b->len >= need)
            return 0;
    }
    size_t ncap = b->cap ? b->cap : 4096;
    while (ncap - b->len < need)
        ncap *= 2;
    char *n = realloc(b->data, ncap);
    if (!n)
        return TG_ENOMEM;
    b->data = n;
    b->cap = ncap;
    return 0;
}

static inline int tg_buf_append(tg_buf_t *b, const void *p, size_t n)
{
    if (tg_buf_reserve(b, n) != 0)
        return TG_ENOMEM;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

#define tg_buf_append_lit(b, lit) tg_buf_append((b), (lit), sizeof(lit) - 1)

static inline int tg_buf_append_str(tg_buf_t *b, const char *s)
{
    return tg_buf_append(b, s, strlen(s));
}

/* Appends n in decimal: the request path's integers without printf. */
static inline int tg_buf_append_u64(tg_buf_t *b, uint64_t n)
{
    char d[20];
    size_t i = sizeof(d);
    do {
        d[--i] = (char)('0' + n % 10);
        n /= 10;
    } while (n);
    return tg_buf_append(b, d + i, sizeof(d) - i);
}

static inline int tg_buf_append_i64(tg_buf_t *b, int64_t n)
{
    if (n < 0) {
        tg_buf_append(b, "-", 1);
        return tg_buf_append_u64(b, (uint64_t)0 - (uint64_t)n);
    }
    return tg_buf_append_u64(b, (uint64_t)n);
}

static inline void tg_buf_consume(tg_buf_t *b, size_t n)
{
    b->off += n;
    if (b->off >= b->len)
        b->off = b->len = 0;
}

static inline void tg_buf_reset(tg_buf_t *b)
{
    b->off = b->len = 0;
}

static inline void tg_buf_free(tg_buf_t *b)
{
    free(b->data);
    b->data = NULL;
    b->off = b->len = b->cap = 0;
}

#endif
