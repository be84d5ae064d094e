/* tg.h: definitions shared by every part of the tollgate core. */
#ifndef TG_H
#define TG_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include <string.h>

#define TG_VERSION "0.1.0"
/* The Kong version tollgate is compatible with (KONG_COMPAT.md, "Version"). */
#define TG_KONG_VERSION "3.10.0"
#define TG_KONG_VERSION_NUM 3010000

/* Errors are values: 0 or a negative TG_E* code. */
enum {
    TG_OK = 0,
    TG_ERROR = -1,    /* generic failure, message elsewhere */
    TG_EAGAIN = -2,   /* incomplete input / would block */
    TG_ENOMEM = -3,
    TG_EINVAL = -4,
    TG_ENOTFOUND = -5,
    TG_ETOOLARGE = -6,
    TG_ETIMEDOUT = -7,
    TG_EIO = -8,
    TG_ECONFLICT = -9,
};

const char *tg_strerror(int code);

/* A slice: pointer + length, never NUL-terminated unless said so. */
typedef struct {
    const char *p;
    size_t len;
} tg_str_t;

#define TG_STR(lit) ((tg_str_t){(lit), sizeof(lit) - 1})
#define TG_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define TG_UNUSED(x) ((void)(x))
#define TG_LIKELY(x) __builtin_expect(!!(x), 1)
#define TG_UNLIKELY(x) __builtin_expect(!!(x), 0)

static inline bool tg_str_eq(tg_str_t a, tg_str_t b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.p, b.p, a.len) == 0);
}

/* ASCII case-insensitive comparison of a slice against a lowercase literal. */
bool tg_str_ieq(const char *a, size_t alen, const char *lower, size_t llen);

#endif
