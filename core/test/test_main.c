/* test_main.c: runs the registered C unit tests. */
#include "test.h"

#include <stdarg.h>
#include <stdlib.h>

#define MAX_TESTS 4096

static struct {
    const char *name;
    tg_test_fn fn;
} tests[MAX_TESTS];
static int ntests;
int tg_test_failed_now;

void tg_test_register(const char *name, tg_test_fn fn)
{
    if (ntests == MAX_TESTS) {
        fprintf(stderr, "too many tests\n");
        abort();
    }
    tests[ntests].name = name;
    tests[ntests].fn = fn;
    ntests++;
}

void tg_test_fail(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "    %s:%d: ", file, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    tg_test_failed_now = 1;
}

static int by_name(const void *a, const void *b)
{
    const char *x = *(const char *const *)a, *y = *(const char *const *)b;
    return strcmp(x, y);
}

int main(int argc, char **argv)
{
    int passed = 0, failed = 0;
    const char *filter = argc > 1 ? argv[1] : NULL;

    qsort(tests, (size_t)ntests, sizeof(tests[0]), by_name);
    for (int i = 0; i < ntests; i++) {
        if (filter && !strstr(tests[i].name, filter))
            continue;
        tg_test_failed_now = 0;
        tests[i].fn();
        if (tg_test_failed_now) {
            printf("not ok - %s\n", tests[i].name);
            failed++;
        } else {
            printf("ok - %s\n", tests[i].name);
            passed++;
        }
        fflush(stdout);
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
