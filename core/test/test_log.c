/* test_log.c: the non-blocking error and access logs. */
#include "test.h"
#include "log.h"

#include <fcntl.h>
#include <pthread.h>
#include <regex.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    size_t got = fread(buf, 1, (size_t)n, f);
    buf[got] = '\0';
    fclose(f);
    return buf;
}

static void tmpname(char *out, size_t n, const char *tag)
{
    snprintf(out, n, "/tmp/tg_test_log_%d_%s", (int)getpid(), tag);
    unlink(out);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

TEST(log_error_line_format_and_level)
{
    char path[256];
    tmpname(path, sizeof(path), "err");
    ASSERT_EQ(tg_log_open(path, TG_LOG_NOTICE), 0);
    tg_log(TG_LOG_ERR, "hello %d", 42);
    tg_log(TG_LOG_DEBUG, "not written");
    tg_log(TG_LOG_INFO, "not written either");
    tg_log(TG_LOG_NOTICE, "notice line");
    tg_log_flush();
    char *text = slurp(path);
    tg_log_shutdown();
    tg_log_set_level(TG_LOG_NOTICE);
    ASSERT(text);
    char pat[256];
    snprintf(pat, sizeof(pat),
             "^[0-9]{4}/[0-9]{2}/[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2} \\[error\\] %d#[0-9]+: "
             "hello 42\n[0-9/]{10} [0-9:]{8} \\[notice\\] %d#[0-9]+: notice line\n$",
             (int)getpid(), (int)getpid());
    regex_t re;
    ASSERT_EQ(regcomp(&re, pat, REG_EXTENDED), 0);
    int m = regexec(&re, text, 0, NULL, 0);
    regfree(&re);
    CHECK(m == 0, "unexpected error log:\n%s", text);
    free(text);
    unlink(path);
}

TEST(log_level_names)
{
    static const char *names[] = {"debug", "info", "notice", "warn",
                                  "error", "crit", "alert",  "emerg"};
    for (int i = 0; i < 8; i++) {
        CHECK(tg_log_level_parse(names[i]) == i, "%s", names[i]);
        CHECK(strcmp(tg_log_level_name(i), names[i]) == 0, "%d", i);
    }
    ASSERT_EQ(tg_log_level_parse("warning"), -1);
    ASSERT_EQ(TG_LOG_ERR, 4);
}

typedef struct {
    tg_accesslog_t *log;
    int id, n;
} writer_arg_t;

static void *access_writer(void *p)
{
    writer_arg_t *a = p;
    for (int i = 0; i < a->n; i++) {
        char line[128];
        int len = snprintf(line, sizeof(line), "t%d %d %s\n", a->id, i,
                           "GET /some/path HTTP/1.1 200 1234");
        tg_accesslog_write(a->log, line, (size_t)len);
        if (i % 2000 == 1999)
            tg_log_flush(); /* 2000 lines fit a thread's buffer: no drops in this test */
    }
    return NULL;
}

TEST(log_access_lines_from_threads_stay_whole_and_ordered)
{
    char path[256];
    tmpname(path, sizeof(path), "access");
    tg_accesslog_t *a = tg_accesslog_open(path);
    ASSERT(a != NULL);
    ASSERT(tg_accesslog_open(path) == a); /* one file per path */
    ASSERT(tg_accesslog_open("off") == NULL);
    tg_accesslog_write(NULL, "x\n", 2); /* a no-op, not a crash */
    uint64_t dropped0 = tg_log_dropped();
    enum { NT = 4, NL = 20000 };
    pthread_t th[NT];
    writer_arg_t args[NT];
    for (int i = 0; i < NT; i++) {
        args[i] = (writer_arg_t){a, i, NL};
        pthread_create(&th[i], NULL, access_writer, &args[i]);
    }
    for (int i = 0; i < NT; i++)
        pthread_join(th[i], NULL);
    tg_log_flush();
    uint64_t dropped = tg_log_dropped() - dropped0;
    char *text = slurp(path);
    tg_log_shutdown();
    ASSERT(text);
    int next[NT] = {0};
    int lines = 0, bad = 0;
    char *save = NULL;
    for (char *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        int t, i;
        char rest[64];
        if (sscanf(l, "t%d %d %63[^\n]", &t, &i, rest) != 3 || t < 0 || t >= NT ||
            strcmp(rest, "GET /some/path HTTP/1.1 200 1234") != 0) {
            bad++;
            continue;
        }
        if (i < next[t]) /* per thread, lines keep their order */
            bad++;
        next[t] = i + 1;
        lines++;
    }
    free(text);
    unlink(path);
    ASSERT_EQ(bad, 0);
    CHECK((uint64_t)lines + dropped == NT * NL, "%d lines + %llu dropped != %d", lines,
          (unsigned long long)dropped, NT * NL);
    CHECK(dropped == 0, "%llu lines dropped with a keeping-up writer", (unsigned long long)dropped);
}

static int fifo_rd = -1;
static atomic_int drain_stop;

static void *fifo_drainer(void *p)
{
    (void)p;
    char buf[65536];
    while (!drain_stop) {
        ssize_t n = read(fifo_rd, buf, sizeof(buf));
        if (n == 0)
            break;
        if (n < 0) {
            struct timespec ts = {0, 1000000};
            nanosleep(&ts, NULL);
        }
    }
    return NULL;
}

TEST(log_stalled_writer_drops_instead_of_blocking)
{
    char path[256];
    tmpname(path, sizeof(path), "fifo");
    ASSERT_EQ(mkfifo(path, 0600), 0);
    /* a reader that never reads: the writer thread blocks once the pipe is full */
    fifo_rd = open(path, O_RDONLY | O_NONBLOCK);
    ASSERT(fifo_rd >= 0);
    tg_accesslog_t *a = tg_accesslog_open(path);
    ASSERT(a != NULL);
    uint64_t dropped0 = tg_log_dropped();
    char line[200];
    memset(line, 'x', sizeof(line));
    line[sizeof(line) - 1] = '\n';
    double t0 = now_s();
    for (int i = 0; i < 100000; i++) /* 20 MB against a 64 KB pipe */
        tg_accesslog_write(a, line, sizeof(line));
    double elapsed = now_s() - t0;
    uint64_t dropped = tg_log_dropped() - dropped0;
    /* unstick the writer, then stop it */
    drain_stop = 0;
    pthread_t th;
    pthread_create(&th, NULL, fifo_drainer, NULL);
    tg_log_shutdown();
    drain_stop = 1;
    pthread_join(th, NULL);
    close(fifo_rd);
    unlink(path);
    CHECK(elapsed < 2.0, "100000 writes took %.2fs against a stalled writer", elapsed);
    CHECK(dropped > 0, "nothing dropped although the writer was stalled");
}

TEST(log_reopen_follows_rotation)
{
    char path[256], rotated[300];
    tmpname(path, sizeof(path), "rot");
    snprintf(rotated, sizeof(rotated), "%s.1", path);
    unlink(rotated);
    tg_accesslog_t *a = tg_accesslog_open(path);
    ASSERT(a);
    tg_accesslog_write(a, "before\n", 7);
    tg_log_flush();
    ASSERT_EQ(rename(path, rotated), 0);
    tg_log_reopen();
    tg_log_flush();
    tg_accesslog_write(a, "after\n", 6);
    tg_log_flush();
    char *old = slurp(rotated), *cur = slurp(path);
    tg_log_shutdown();
    ASSERT(old && cur);
    ASSERT_STREQ(old, "before\n");
    ASSERT_STREQ(cur, "after\n");
    free(old);
    free(cur);
    unlink(path);
    unlink(rotated);
}

TEST(log_goes_to_stderr_when_not_open_and_off_when_off)
{
    char path[256];
    tmpname(path, sizeof(path), "stderr");
    int saved = dup(2);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ASSERT(fd >= 0);
    fflush(stderr);
    dup2(fd, 2);
    tg_log_set_level(TG_LOG_NOTICE);
    tg_log(TG_LOG_WARN, "synchronous before open");
    /* an access log started the writer, the error log is not open: stderr still */
    char apath[256];
    tmpname(apath, sizeof(apath), "stderr_access");
    ASSERT(tg_accesslog_open(apath) != NULL);
    tg_log(TG_LOG_WARN, "through the writer before open");
    tg_log_flush();
    unlink(apath);
    /* "off": nothing anywhere */
    ASSERT_EQ(tg_log_open("off", TG_LOG_DEBUG), 0);
    tg_log(TG_LOG_EMERG, "must not appear");
    tg_log_flush();
    tg_log_shutdown();
    tg_log_set_level(TG_LOG_NOTICE);
    tg_log(TG_LOG_ERR, "synchronous after shutdown");
    dup2(saved, 2);
    close(saved);
    close(fd);
    char *text = slurp(path);
    unlink(path);
    ASSERT(text);
    CHECK(strstr(text, "[warn] ") && strstr(text, ": synchronous before open\n"), "got: %s",
          text);
    CHECK(strstr(text, "[error] ") && strstr(text, ": synchronous after shutdown\n"), "got: %s",
          text);
    CHECK(strstr(text, ": through the writer before open\n"), "got: %s", text);
    CHECK(!strstr(text, "must not appear"), "got: %s", text);
    free(text);
}
