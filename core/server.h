/* server.h: running the gateway: control thread (this thread), workers,
 * the Admin and status listeners, signals. */
#ifndef TG_SERVER_H
#define TG_SERVER_H

#include "conf.h"

/* Runs until stopped (SIGTERM/SIGINT fast, SIGQUIT graceful); SIGHUP reloads
 * the declarative config, SIGUSR1 reopens the logs. Calls
 * tg_cli_notify_ready() once listening (or on failure). Returns the exit code. */
int tg_server_run(tg_conf_t *conf);

#endif
