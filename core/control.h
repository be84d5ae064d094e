/* control.h: the control thread's state — its lua_State, the declarative
 * config, snapshot building and publishing, reloads. */
#ifndef TG_CONTROL_H
#define TG_CONTROL_H

#include "conf.h"

#include <event2/event.h>
#include <lua.h>

/* Creates the control lua_State and loads the declarative config (when
 * database = off and declarative_config is set; an empty config otherwise).
 * Publishes the first snapshot. */
int tg_control_init(struct event_base *base, const tg_conf_t *conf, char *err, size_t errlen);
/* Re-reads the declarative files; a bad file is refused (logged) and the
 * running config stays. Returns 0 or TG_EINVAL. */
int tg_control_reload(void);
lua_State *tg_control_lua(void);
void tg_control_shutdown(void);

#endif
