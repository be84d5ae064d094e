/* cli.c: `tollgate <verb>` — Kong's CLI verbs, options, messages and exit codes.
 *
 * Prefix layout (Kong's, with tollgate's names): <prefix>/logs/error.log,
 * <prefix>/logs/access.log, <prefix>/pids/tollgate.pid (Kong: pids/nginx.pid),
 * <prefix>/ssl/, <prefix>/.tollgate_env (Kong: .kong_env; the effective
 * configuration of the last `start`, read by `restart -p`). The pid file is
 * held with flock(2) for the life of the instance, so a stale pid file never
 * counts as running and a second start on the same prefix is refused. */
#include "cli.h"
#include "tls.h"
#include "conf.h"
#include "log.h"
#include "lua_vm.h"
#include "server.h"
#include "tg.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/crypto.h>
#include <luajit.h>

/* Written by another engineer in core/cmd_lua.c; weak so the CLI links without. */
int tg_cmd_lua(int argc, char **argv) __attribute__((weak));
int tg_cmd_busted(int argc, char **argv) __attribute__((weak));

typedef struct {
    const char *conf;   /* -c */
    const char *prefix; /* -p */
    int wait_s, timeout_s;
    bool all;
    int npos;
    char **pos; /* positional arguments */
} args_t;

static int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("Error: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputs("\n", stderr);
    va_end(ap);
    return 1;
}

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    fputs("\n", stdout);
    fflush(stdout);
}

/* Kong's option spellings: -c/--conf, -p/--prefix, -w/--wait, -t/--timeout,
 * -a/--all; --opt=value also works. Options that only matter to nginx
 * (--nginx-conf, --nginx-conf-flags) and --run-migrations / --db-timeout /
 * --lock-timeout are accepted and ignored. */
static int parse_args(int argc, char **argv, args_t *a)
{
    memset(a, 0, sizeof(*a));
    a->timeout_s = 10;
    a->pos = calloc((size_t)argc + 1, sizeof(char *));
    if (!a->pos)
        return fail("out of memory");
    for (int i = 0; i < argc; i++) {
        char *o = argv[i];
        char name[64];
        const char *val = NULL;
        if (o[0] != '-' || strcmp(o, "-") == 0) {
            a->pos[a->npos++] = o;
            continue;
        }
        const char *eq = strchr(o, '=');
        size_t nl = eq ? (size_t)(eq - o) : strlen(o);
        if (nl >= sizeof(name))
            return fail("unknown option '%s'", o);
        memcpy(name, o, nl);
        name[nl] = '\0';
        if (eq)
            val = eq + 1;
#define TAKE()                                                                                     \
    do {                                                                                           \
        if (!val) {                                                                                \
            if (i + 1 >= argc)                                                                     \
                return fail("option %s needs a value", name);                                      \
            val = argv[++i];                                                                       \
        }                                                                                          \
    } while (0)
        if (!strcmp(name, "-c") || !strcmp(name, "--conf")) {
            TAKE();
            a->conf = val;
        } else if (!strcmp(name, "-p") || !strcmp(name, "--prefix")) {
            TAKE();
            a->prefix = val;
        } else if (!strcmp(name, "-w") || !strcmp(name, "--wait")) {
            TAKE();
            a->wait_s = atoi(val);
        } else if (!strcmp(name, "-t") || !strcmp(name, "--timeout")) {
            TAKE();
            a->timeout_s = atoi(val);
        } else if (!strcmp(name, "-a") || !strcmp(name, "--all")) {
            a->all = true;
        } else if (!strcmp(name, "--nginx-conf") || !strcmp(name, "--nginx-conf-flags") ||
                   !strcmp(name, "--db-timeout") || !strcmp(name, "--lock-timeout")) {
            TAKE();
        } else if (!strcmp(name, "--run-migrations") || !strcmp(name, "--v") ||
                   !strcmp(name, "--vv") || !strcmp(name, "-v")) {
            /* accepted, no effect */
        } else {
            return fail("unknown option '%s'", o);
        }
#undef TAKE
    }
    return 0;
}

static int load_conf(const args_t *a, tg_conf_t **c)
{
    char err[8192];
    if (tg_conf_load(a->conf, a->prefix, c, err, sizeof(err)) != 0)
        return fail("%s", err);
    return 0;
}

static int mkdir_p(const char *path, mode_t mode)
{
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof(tmp), "%s", path);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(tmp, mode) != 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    if (mkdir(tmp, mode) != 0 && errno != EEXIST)
        return -1;
    return 0;
}

int tg_cli_prepare_prefix(const tg_conf_t *conf, char *err, size_t errlen)
{
    static const char *const dirs[] = {"", "/logs", "/pids", "/ssl"};
    for (size_t i = 0; i < TG_ARRAY_SIZE(dirs); i++) {
        char p[PATH_MAX];
        snprintf(p, sizeof(p), "%s%s", conf->prefix, dirs[i]);
        if (mkdir_p(p, 0755) != 0) {
            snprintf(err, errlen, "could not create directory %s: %s", p, strerror(errno));
            return TG_EIO;
        }
        struct stat st;
        if (stat(p, &st) != 0 || !S_ISDIR(st.st_mode)) {
            snprintf(err, errlen, "%s is not a directory", p);
            return TG_EIO;
        }
    }
    /* the default certificates of the ssl listeners (ssl/kong-default*) */
    return tg_tls_prepare_prefix(conf, err, errlen);
}

int tg_cli_running_pid(const char *pid_file)
{
    int fd = open(pid_file, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    int pid = 0;
    if (flock(fd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK) {
        char buf[32] = {0};
        ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
        if (n > 0)
            pid = atoi(buf);
        if (pid <= 0 || (kill(pid, 0) != 0 && errno == ESRCH))
            pid = 0;
    }
    close(fd);
    return pid;
}

/* ---- start ---- */

static struct {
    int fd;          /* the pipe to the waiting parent, -1 in the foreground */
    bool notified;
    bool foreground;
} ready = {-1, false, false};

void tg_cli_notify_ready(int ok, const char *err)
{
    if (ready.notified)
        return;
    ready.notified = true;
    if (ready.fd >= 0) {
        char msg[4096];
        int n = snprintf(msg, sizeof(msg), "%c%s", ok ? '1' : '0', ok || !err ? "" : err);
        if (n > (int)sizeof(msg) - 1)
            n = (int)sizeof(msg) - 1;
        ssize_t w;
        do {
            w = write(ready.fd, msg, (size_t)n);
        } while (w < 0 && errno == EINTR);
        close(ready.fd);
        ready.fd = -1;
    } else if (!ok && ready.foreground) {
        fprintf(stderr, "Error: %s\n", err ? err : "tollgate failed to start");
    }
}

static void redirect_stdio(void)
{
    int null = open("/dev/null", O_RDWR);
    if (null < 0)
        return;
    dup2(null, 0);
    dup2(null, 1);
    dup2(null, 2);
    if (null > 2)
        close(null);
}

/* In the process that will serve: pid into the locked file, logs open, run. */
static int serve(tg_conf_t *c, int pidfd)
{
    char pid[32];
    int n = snprintf(pid, sizeof(pid), "%d\n", (int)getpid());
    if (ftruncate(pidfd, 0) != 0 || pwrite(pidfd, pid, (size_t)n, 0) != n) {
        char err[512];
        snprintf(err, sizeof(err), "could not write the pid file %s: %s", c->pid_file,
                 strerror(errno));
        tg_cli_notify_ready(0, err);
        return 1;
    }
    if (tg_log_open(c->proxy_error_log, c->log_level) != 0) {
        char err[512];
        snprintf(err, sizeof(err), "could not open the error log %s: %s", c->proxy_error_log,
                 strerror(errno));
        tg_cli_notify_ready(0, err);
        return 1;
    }
    for (size_t i = 0; i < c->nwarnings; i++)
        tg_log(TG_LOG_WARN, "%s", c->warnings[i]);
    int rc = tg_server_run(c);
    if (!ready.notified)
        tg_cli_notify_ready(0, "the server stopped before it was ready");
    unlink(c->pid_file); /* still holding the lock: no new instance has it */
    tg_log_shutdown();
    close(pidfd);
    return rc;
}

static int cmd_start(args_t *a)
{
    tg_conf_t *c;
    if (load_conf(a, &c) != 0)
        return 1;
    char err[8192];
    int rc = 1;
    if (tg_cli_running_pid(c->pid_file)) {
        rc = fail("tollgate is already running in %s", c->prefix);
        goto out;
    }
    if (tg_cli_prepare_prefix(c, err, sizeof(err)) != 0) {
        rc = fail("could not prepare tollgate prefix at %s: %s", c->prefix, err);
        goto out;
    }
    int pidfd = open(c->pid_file, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (pidfd < 0) {
        rc = fail("could not open the pid file %s: %s", c->pid_file, strerror(errno));
        goto out;
    }
    if (flock(pidfd, LOCK_EX | LOCK_NB) != 0) {
        close(pidfd);
        rc = fail("tollgate is already running in %s", c->prefix);
        goto out;
    }
    if (tg_conf_write_env(c) != 0)
        tg_log(TG_LOG_WARN, "could not write %s: %s", c->env_file, strerror(errno));

    if (!c->nginx_daemon) {
        ready.foreground = true;
        rc = serve(c, pidfd);
        goto out;
    }

    int pfd[2];
    if (pipe2(pfd, O_CLOEXEC) != 0) {
        close(pidfd);
        rc = fail("pipe: %s", strerror(errno));
        goto out;
    }
    fflush(NULL);
    pid_t child = fork();
    if (child < 0) {
        close(pidfd);
        rc = fail("fork: %s", strerror(errno));
        goto out;
    }
    if (child == 0) {
        close(pfd[0]);
        setsid();
        pid_t gc = fork();
        if (gc != 0)
            _exit(gc < 0 ? 1 : 0);
        umask(022);
        redirect_stdio();
        ready.fd = pfd[1];
        int code = serve(c, pidfd);
        tg_conf_free(c);
        _exit(code);
    }
    close(pfd[1]);
    close(pidfd); /* the grandchild's copy keeps the lock */
    int status;
    waitpid(child, &status, 0);
    char msg[4096];
    size_t got = 0;
    for (;;) {
        ssize_t n = read(pfd[0], msg + got, sizeof(msg) - 1 - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
        if (got == sizeof(msg) - 1)
            break;
    }
    close(pfd[0]);
    msg[got] = '\0';
    if (got > 0 && msg[0] == '1') {
        say("tollgate started");
        rc = 0;
    } else if (got > 0) {
        rc = fail("%s", msg + 1);
    } else {
        rc = fail("tollgate exited while starting; see %s", c->proxy_error_log);
    }
out:
    tg_conf_free(c);
    return rc;
}

/* ---- stop, quit, health, reload, restart ---- */

static bool wait_exit(const char *pid_file, int timeout_ms)
{
    for (int waited = 0; waited <= timeout_ms; waited += 50) {
        if (!tg_cli_running_pid(pid_file))
            return true;
        struct timespec ts = {0, 50 * 1000000};
        nanosleep(&ts, NULL);
    }
    return !tg_cli_running_pid(pid_file);
}

/* Loads the conf for a verb acting on a running instance and checks the prefix. */
static int running_conf(const args_t *a, tg_conf_t **c)
{
    if (load_conf(a, c) != 0)
        return 1;
    struct stat st;
    if (stat((*c)->prefix, &st) != 0) {
        fail("no such prefix: %s", (*c)->prefix);
        tg_conf_free(*c);
        return 1;
    }
    return 0;
}

static int signal_instance(const tg_conf_t *c, int sig)
{
    int pid = tg_cli_running_pid(c->pid_file);
    if (!pid)
        return fail("tollgate not running in prefix: %s", c->prefix);
    if (kill(pid, sig) != 0)
        return fail("could not send signal: %s", strerror(errno));
    return 0;
}

static int cmd_stop(args_t *a)
{
    tg_conf_t *c;
    if (running_conf(a, &c) != 0)
        return 1;
    int rc = signal_instance(c, SIGTERM);
    if (rc == 0) {
        if (!wait_exit(c->pid_file, 10000))
            rc = fail("tollgate at %s did not stop within 10s", c->prefix);
        else
            say("tollgate stopped");
    }
    tg_conf_free(c);
    return rc;
}

static int cmd_quit(args_t *a)
{
    tg_conf_t *c;
    if (running_conf(a, &c) != 0)
        return 1;
    int rc = 0;
    if (!tg_cli_running_pid(c->pid_file)) {
        rc = fail("tollgate not running in prefix: %s", c->prefix);
        goto out;
    }
    for (int waited = 0; waited < a->wait_s * 1000; waited += 200) {
        struct timespec ts = {0, 200 * 1000000};
        nanosleep(&ts, NULL);
        if (!tg_cli_running_pid(c->pid_file)) {
            fprintf(stderr, "tollgate stopped while waiting (unexpected)\n");
            goto out;
        }
    }
    if ((rc = signal_instance(c, SIGQUIT)) != 0)
        goto out;
    int timeout = a->timeout_s < 1 ? 1 : a->timeout_s;
    if (wait_exit(c->pid_file, timeout * 1000)) {
        say("tollgate stopped (gracefully)");
        goto out;
    }
    if ((rc = signal_instance(c, SIGTERM)) == 0) {
        wait_exit(c->pid_file, 10000);
        say("Timeout, tollgate stopped forcefully");
    }
out:
    tg_conf_free(c);
    return rc;
}

static int cmd_health(args_t *a)
{
    tg_conf_t *c;
    if (running_conf(a, &c) != 0)
        return 1;
    int pid = tg_cli_running_pid(c->pid_file);
    say("tollgate....%s", pid ? "running" : "not running");
    say("%s", "");
    int rc = 0;
    if (pid)
        say("tollgate is healthy at %s", c->prefix);
    else
        rc = fail("tollgate is not running at %s", c->prefix);
    tg_conf_free(c);
    return rc;
}

/* Loads the declarative files with the Lua loader, as the server would.
 * Returns 0, or 1 after printing Kong's "Failed parsing:" text. */
static int check_declarative(const tg_conf_t *c, char *const *files, size_t n)
{
    int rc = 1;
    /* lua_package_path goes after tollgate's own paths, the order
     * tg_lua_new_state(extra) documents. */
    lua_State *L = tg_lua_new_state(NULL);
    if (!L)
        return fail("out of memory");
    if (c->lua_package_path && *c->lua_package_path) {
        lua_getglobal(L, "package");
        lua_getfield(L, -1, "path");
        lua_pushfstring(L, "%s;%s", lua_tostring(L, -1), c->lua_package_path);
        lua_setfield(L, -3, "path");
        lua_pop(L, 2);
    }
    if (tg_lua_require(L, "tollgate.declarative") != 0) {
        rc = fail("%s", lua_tostring(L, -1));
        lua_close(L);
        return rc;
    }
    int mod = lua_gettop(L);
    lua_getfield(L, mod, "load_files");
    lua_createtable(L, (int)n, 0);
    for (size_t i = 0; i < n; i++) {
        lua_pushstring(L, files[i]);
        lua_rawseti(L, -2, (int)i + 1);
    }
    /* as Kong's config parse (load_plugin_schemas): the enabled plugins must
     * load, under the PDK; a worker id of -1 skips their init_worker */
    if (tg_lua_require(L, "tollgate.runloop") != 0) {
        rc = fail("%s", lua_tostring(L, -1));
        lua_close(L);
        return rc;
    }
    lua_getfield(L, -1, "init");
    tg_conf_push_lua(L, c);
    lua_pushinteger(L, -1);
    lua_pushinteger(L, 0);
    if (tg_lua_pcall(L, 3, 2) != 0 || !lua_toboolean(L, -2)) {
        rc = fail("%s", lua_isstring(L, -1) ? lua_tostring(L, -1) : "plugins failed to load");
        lua_close(L);
        return rc;
    }
    lua_pop(L, 3);
    /* opts.plugins: the enabled plugins, as the node would load them */
    lua_createtable(L, 0, 1);
    if (tg_lua_require(L, "tollgate.plugins") != 0) {
        rc = fail("%s", lua_tostring(L, -1));
        lua_close(L);
        return rc;
    }
    lua_getfield(L, -1, "expand");
    lua_createtable(L, (int)c->nplugins, 0);
    for (size_t i = 0; i < c->nplugins; i++) {
        lua_pushstring(L, c->plugins[i]);
        lua_rawseti(L, -2, (int)i + 1);
    }
    if (tg_lua_pcall(L, 1, 1) != 0) {
        rc = fail("%s", lua_tostring(L, -1));
        lua_close(L);
        return rc;
    }
    lua_setfield(L, -3, "plugins");
    lua_pop(L, 1); /* tollgate.plugins */
    if (tg_lua_pcall(L, 2, 2) != 0) {
        rc = fail("%s", lua_tostring(L, -1));
    } else if (lua_isnil(L, -2)) {
        /* Kong: error("Failed parsing:\n" .. err) */
        lua_getfield(L, mod, "error_text");
        lua_pushvalue(L, -2);
        if (tg_lua_pcall(L, 1, 1) != 0 || !lua_isstring(L, -1)) {
            rc = fail("Failed parsing:\n%s", lua_tostring(L, -1));
        } else {
            /* the loader's text may already carry Kong's "Failed parsing:" line */
            const char *text = lua_tostring(L, -1);
            bool has = strncmp(text, "Failed parsing:", 15) == 0;
            rc = fail("%s%s", has ? "" : "Failed parsing:\n", text);
        }
    } else {
        rc = 0;
    }
    lua_close(L);
    return rc;
}

/* As Kong: -c names the configuration to reload with; with -p alone, the
 * running node's own. The declarative config is checked here first, so a bad
 * file is refused with Kong's text and the running node is never signalled;
 * the server then re-reads the effective configuration (.tollgate_env) on
 * SIGHUP. Keys other than declarative_config need a restart. */
static int cmd_reload(args_t *a)
{
    char envp[PATH_MAX] = "";
    if (a->prefix && !a->conf) {
        snprintf(envp, sizeof(envp), "%s/.tollgate_env", a->prefix);
        if (access(envp, R_OK) == 0)
            a->conf = envp;
    }
    tg_conf_t *c;
    if (running_conf(a, &c) != 0)
        return 1;
    int rc = 1;
    if (!tg_cli_running_pid(c->pid_file)) {
        rc = fail("tollgate is not running in %s", c->prefix);
        goto out;
    }
    if (c->database_off && c->ndeclarative_config > 0 &&
        check_declarative(c, c->declarative_config, c->ndeclarative_config) != 0)
        goto out;
    if (a->conf != envp && tg_conf_write_env(c) != 0) {
        rc = fail("could not write %s: %s", c->env_file, strerror(errno));
        goto out;
    }
    rc = signal_instance(c, SIGHUP);
    if (rc == 0)
        say("tollgate reloaded");
out:
    tg_conf_free(c);
    return rc;
}

static int cmd_restart(args_t *a)
{
    /* As Kong: with -p and no -c, the running node's configuration. */
    char envp[PATH_MAX];
    if (a->prefix && !a->conf) {
        snprintf(envp, sizeof(envp), "%s/.tollgate_env", a->prefix);
        if (access(envp, R_OK) == 0)
            a->conf = envp;
    }
    /* the warnings of this load are repeated by start's own load: keep them once */
    int lvl = tg_log_level();
    tg_log_set_level(TG_LOG_EMERG);
    tg_conf_t *c;
    char err[64];
    int rc = tg_conf_load(a->conf, a->prefix, &c, err, sizeof(err));
    tg_log_set_level(lvl);
    if (rc == 0) {
        int pid = tg_cli_running_pid(c->pid_file);
        if (pid) {
            kill(pid, SIGTERM);
            wait_exit(c->pid_file, 5000);
        }
        tg_conf_free(c);
    }
    return cmd_start(a);
}

static int cmd_prepare(args_t *a)
{
    tg_conf_t *c;
    if (load_conf(a, &c) != 0)
        return 1;
    char err[1024];
    int rc = 0;
    if (tg_cli_prepare_prefix(c, err, sizeof(err)) != 0)
        rc = fail("could not prepare tollgate prefix at %s: %s", c->prefix, err);
    tg_conf_free(c);
    return rc;
}

static int cmd_check(args_t *a)
{
    const char *path = a->npos > 0 ? a->pos[0] : a->conf;
    if (!path)
        path = access("/etc/tollgate/tollgate.conf", R_OK) == 0 ? "/etc/tollgate/tollgate.conf"
                                                                : "/etc/kong/kong.conf";
    tg_conf_t *c;
    char err[8192];
    if (tg_conf_load(path, NULL, &c, err, sizeof(err)) != 0) {
        char *save = NULL;
        for (char *l = strtok_r(err, "\n", &save); l; l = strtok_r(NULL, "\n", &save))
            fprintf(stderr, "Error: %s\n", l);
        return 1;
    }
    say("configuration at %s is valid", path);
    tg_conf_free(c);
    return 0;
}

static int cmd_version(args_t *a)
{
    if (!a->all) {
        say("tollgate %s (Kong %s compatible)", TG_VERSION, TG_KONG_VERSION);
        return 0;
    }
    say("tollgate: %s", TG_VERSION);
    say("Kong: %s", TG_KONG_VERSION);
    say("LuaJIT: %s", LUAJIT_VERSION);
    say("libevent: %s", event_get_version());
    say("OpenSSL: %s", OpenSSL_version(OPENSSL_VERSION));
    return 0;
}

/* ---- config ---- */

static int cmd_config(args_t *a)
{
    if (a->npos < 1)
        return fail("missing command; see `tollgate config --help`");
    const char *sub = a->pos[0];
    tg_conf_t *c;
    if (load_conf(a, &c) != 0)
        return 1;
    int rc = 1;
    if (!strcmp(sub, "db_import") || !strcmp(sub, "db-import")) {
        if (c->database_off)
            rc = fail("'tollgate config db_import' only works with a database.\n"
                      "When using database=off, reload your declarative configuration\n"
                      "using the /config endpoint.");
        else
            rc = fail("'tollgate config db_import' is not implemented yet");
        goto out;
    }
    if (!strcmp(sub, "db_export") || !strcmp(sub, "db-export")) {
        rc = fail(c->database_off ? "'tollgate config db_export' only works with a database."
                                  : "'tollgate config db_export' is not implemented yet");
        goto out;
    }
    if (strcmp(sub, "parse") != 0) {
        rc = fail("unknown command '%s'; see `tollgate config --help`", sub);
        goto out;
    }
    if (a->npos < 2) {
        rc = fail("expected a declarative configuration file; see `tollgate config --help`");
        goto out;
    }
    char abs[PATH_MAX];
    if (a->pos[1][0] == '/' || !getcwd(abs, sizeof(abs)))
        snprintf(abs, sizeof(abs), "%s", a->pos[1]);
    else {
        size_t l = strlen(abs);
        snprintf(abs + l, sizeof(abs) - l, "/%s", a->pos[1]);
    }
    char *files[1] = {abs};
    rc = check_declarative(c, files, 1);
    if (rc == 0)
        say("parse successful");
out:
    tg_conf_free(c);
    return rc;
}

static int cmd_migrations(args_t *a)
{
    TG_UNUSED(a);
    return fail("'tollgate migrations' is not implemented yet (database = off is the default)");
}

/* ---- help and dispatch ---- */

static const char usage[] =
    "Usage: tollgate COMMAND [OPTIONS]\n"
    "\n"
    "The available commands are:\n"
    " busted\n check\n config\n health\n help\n lua\n prepare\n quit\n reload\n restart\n"
    " start\n stop\n version\n"
    "\n"
    "Options:\n"
    " -c,--conf      (optional string) configuration file (start, prepare, reload, restart,\n"
    "                config; default /etc/tollgate/tollgate.conf, else /etc/kong/kong.conf)\n"
    " -p,--prefix    (optional string) prefix directory (default /usr/local/tollgate)\n"
    " -t,--timeout   (default 10) quit: timeout before forced shutdown\n"
    " -w,--wait      (default 0) quit: wait time before initiating the shutdown\n"
    " -a,--all       version: print the versions of the dependencies\n"
    "\n"
    "  tollgate start [-c CONF] [-p PREFIX]     start (in the background unless\n"
    "                                           nginx_daemon = off)\n"
    "  tollgate stop [-p PREFIX]                fast shutdown (SIGTERM)\n"
    "  tollgate quit [-p PREFIX] [-w N] [-t N]  graceful shutdown (SIGQUIT)\n"
    "  tollgate restart [-c CONF] [-p PREFIX]\n"
    "  tollgate reload [-c CONF] [-p PREFIX]    reload the declarative config (SIGHUP)\n"
    "  tollgate prepare [-c CONF] [-p PREFIX]   create logs/, pids/, ssl/ in the prefix\n"
    "  tollgate health [-p PREFIX]\n"
    "  tollgate check [CONF]\n"
    "  tollgate version [-a]\n"
    "  tollgate config parse FILE [-c CONF]\n"
    "  tollgate lua FILE [ARGS...]\n"
    "  tollgate busted [ARGS...]\n";

int tg_cli_main(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "help") || !strcmp(argv[1], "--help") ||
        !strcmp(argv[1], "-h")) {
        fputs(usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? 1 : 0;
    }
    const char *verb = argv[1];
    /* lua and busted take their arguments verbatim */
    if (!strcmp(verb, "lua")) {
        if (!tg_cmd_lua)
            return fail("'tollgate lua' is not available in this build");
        if (argc < 3)
            return fail("expected a Lua file: tollgate lua FILE [ARGS...]");
        return tg_cmd_lua(argc - 2, argv + 2);
    }
    if (!strcmp(verb, "busted")) {
        if (!tg_cmd_busted)
            return fail("'tollgate busted' is not available in this build");
        return tg_cmd_busted(argc - 2, argv + 2);
    }
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(usage, stdout);
            return 0;
        }
    }
    args_t a;
    if (parse_args(argc - 2, argv + 2, &a) != 0) {
        free(a.pos);
        return 1;
    }
    static const struct {
        const char *name;
        int (*fn)(args_t *a);
    } verbs[] = {
        {"start", cmd_start},     {"stop", cmd_stop},       {"quit", cmd_quit},
        {"restart", cmd_restart}, {"reload", cmd_reload},   {"prepare", cmd_prepare},
        {"health", cmd_health},   {"check", cmd_check},     {"version", cmd_version},
        {"config", cmd_config},   {"migrations", cmd_migrations},
    };
    int rc = -1;
    for (size_t i = 0; i < TG_ARRAY_SIZE(verbs) && rc < 0; i++)
        if (!strcmp(verb, verbs[i].name))
            rc = verbs[i].fn(&a);
    if (rc < 0)
        rc = fail("No such command: %s\n\n%s", verb, usage);
    free(a.pos);
    return rc;
}
