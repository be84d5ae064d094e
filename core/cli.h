/* cli.h: the tollgate command line (Kong's verbs: start, stop, quit, restart,
 * reload, prepare, health, check, version, config parse, lua, busted). */
#ifndef TG_CLI_H
#define TG_CLI_H

#include "conf.h"

/* The binary's entry point (core/main.c). Returns the process exit code. */
int tg_cli_main(int argc, char **argv);

/* Called once by the server when it is listening with its config loaded
 * (ok = 1) or has failed to start (ok = 0, err says why). Under `start` with
 * nginx_daemon = on this releases the waiting parent, which exits 0, or prints
 * "Error: <err>" and exits 1; in the foreground a failure is printed on stderr.
 * Later calls are ignored. */
void tg_cli_notify_ready(int ok, const char *err);

/* Creates <prefix>, <prefix>/logs, <prefix>/pids and <prefix>/ssl. */
int tg_cli_prepare_prefix(const tg_conf_t *conf, char *err, size_t errlen);

/* The pid of the instance holding <prefix>/pids/tollgate.pid (its flock), or 0
 * when none is running there. */
int tg_cli_running_pid(const char *pid_file);

#endif
