/* test.h: the C unit test framework (libuv-style TEST / ASSERT).
 *
 *   TEST(parser_rejects_bare_lf) { ASSERT_EQ(parse("GET / HTTP/1.1\n"), -1); }
 *
 * Tests register themselves; tg_tests runs all of them, or those whose name
 * contains argv[1], and ends with "N passed, N failed". */
#ifndef TG_TEST_H
#define TG_TEST_H

#include <stdio.h>
#include <string.h>
#include <stdint.h>

typedef void (*tg_test_fn)(void);
void tg_test_register(const char *name, tg_test_fn fn);
void tg_test_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
extern int tg_test_failed_now;

#define TEST(name)                                                                                 \
    static void test_##name(void);                                                                 \
    __attribute__((constructor)) static void register_##name(void)                                 \
    {                                                                                              \
        tg_test_register(#name, test_##name);                                                      \
    }                                                                                              \
    static void test_##name(void)

#define ASSERT(cond)                                                                               \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            tg_test_fail(__FILE__, __LINE__, "assertion failed: %s", #cond);                       \
            return;                                                                                \
        }                                                                                          \
    } while (0)

#define ASSERT_EQ(a, b)                                                                            \
    do {                                                                                           \
        long long _a = (long long)(a), _b = (long long)(b);                                        \
        if (_a != _b) {                                                                            \
            tg_test_fail(__FILE__, __LINE__, "%s == %s: %lld != %lld", #a, #b, _a, _b);            \
            return;                                                                                \
        }                                                                                          \
    } while (0)

#define ASSERT_STREQ(a, b)                                                                         \
    do {                                                                                           \
        const char *_a = (a), *_b = (b);                                                           \
        if (!_a || !_b || strcmp(_a, _b) != 0) {                                                   \
            tg_test_fail(__FILE__, __LINE__, "%s == %s: \"%s\" != \"%s\"", #a, #b,                 \
                         _a ? _a : "(null)", _b ? _b : "(null)");                                  \
            return;                                                                                \
        }                                                                                          \
    } while (0)

#define ASSERT_MEMEQ(p, n, lit)                                                                    \
    do {                                                                                           \
        size_t _n = (n);                                                                           \
        if (_n != strlen(lit) || memcmp((p), (lit), _n) != 0) {                                    \
            tg_test_fail(__FILE__, __LINE__, "%s == \"%s\": got \"%.*s\"", #p, lit, (int)_n,       \
                         (const char *)(p));                                                       \
            return;                                                                                \
        }                                                                                          \
    } while (0)

/* For table-driven tests: report one failing row and keep going. */
#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond))                                                                               \
            tg_test_fail(__FILE__, __LINE__, __VA_ARGS__);                                         \
    } while (0)

#endif
