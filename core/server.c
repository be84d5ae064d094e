/* server.c: process start-up and shutdown around the control thread's loop. */
#include "server.h"
#include "admin.h"
#include "cli.h"
#include "control.h"
#include "log.h"
#include "plugins.h"
#include "proxy.h"
#include "shdict.h"
#include "tls.h"
#include "worker.h"

#include <event2/thread.h>
#include <signal.h>
#include <stdio.h>
#include <unistd.h>

static struct event_base *cbase;
static int stop_mode; /* 1 graceful, 2 fast */
static int quit_timeout_ms = 10000;

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    switch (sig) {
    case SIGTERM:
    case SIGINT:
        tg_log(TG_LOG_NOTICE, "received signal %d, exiting fast", (int)sig);
        stop_mode = 2;
        event_base_loopbreak(cbase);
        break;
    case SIGQUIT:
        tg_log(TG_LOG_NOTICE, "received SIGQUIT, shutting down gracefully");
        stop_mode = 1;
        event_base_loopbreak(cbase);
        break;
    case SIGHUP:
        tg_log(TG_LOG_NOTICE, "received SIGHUP, reloading the configuration");
        tg_control_reload();
        break;
    case SIGUSR1:
        tg_log_reopen();
        break;
    }
}

tg_accesslog_t *tg_proxy_accesslog;

int tg_server_run(tg_conf_t *conf)
{
    char err[8192];
    int rc = 1;
    evthread_use_pthreads();
    signal(SIGPIPE, SIG_IGN);
    cbase = event_base_new();
    if (!cbase) {
        tg_cli_notify_ready(0, "event_base_new() failed");
        return 1;
    }
    tg_proxy_accesslog = tg_accesslog_open(conf->proxy_access_log);
    if (tg_shdict_setup(conf, err, sizeof(err)) != 0) {
        tg_log(TG_LOG_EMERG, "%s", err);
        tg_cli_notify_ready(0, err);
        return 1;
    }

    /* before the first snapshot: its certificates share the listeners' settings */
    if (tg_tls_init(conf, err, sizeof(err)) != 0) {
        tg_log(TG_LOG_EMERG, "%s", err);
        tg_cli_notify_ready(0, err);
        return 1;
    }
    if (tg_control_init(cbase, conf, err, sizeof(err)) != 0) {
        tg_log(TG_LOG_EMERG, "%s", err);
        tg_cli_notify_ready(0, err);
        return 1;
    }
    /* a plugin that cannot load refuses the start, with Kong's message */
    if (tg_plugins_check(conf, err, sizeof(err)) != 0) {
        tg_log(TG_LOG_EMERG, "%s", err);
        tg_cli_notify_ready(0, err);
        return 1;
    }
    int n = conf->worker_threads > 0 ? conf->worker_threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (tg_workers_start(conf, n, err, sizeof(err)) != 0) {
        tg_log(TG_LOG_EMERG, "%s", err);
        tg_cli_notify_ready(0, err);
        return 1;
    }
    if (tg_admin_start(cbase, tg_control_lua(), conf, err, sizeof(err)) != 0) {
        tg_log(TG_LOG_EMERG, "%s", err);
        tg_cli_notify_ready(0, err);
        tg_workers_stop(false, 0);
        return 1;
    }
    int sigs[] = {SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1};
    struct event *sev[TG_ARRAY_SIZE(sigs)];
    for (size_t i = 0; i < TG_ARRAY_SIZE(sigs); i++) {
        sev[i] = evsignal_new(cbase, sigs[i], on_signal, NULL);
        event_add(sev[i], NULL);
    }
    tg_log(TG_LOG_NOTICE, "tollgate %s started, %d worker threads", TG_VERSION, n);
    tg_cli_notify_ready(1, NULL);

    event_base_dispatch(cbase);

    tg_admin_stop();
    tg_workers_stop(stop_mode != 2, quit_timeout_ms);
    for (size_t i = 0; i < TG_ARRAY_SIZE(sigs); i++)
        event_free(sev[i]);
    tg_log(TG_LOG_NOTICE, "tollgate stopped");
    rc = 0;
    tg_control_shutdown();
    tg_tls_shutdown();
    event_base_free(cbase);
    return rc;
}
