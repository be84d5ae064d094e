-- kong.reports: Kong's anonymous usage reports. tollgate sends no telemetry:
-- every function of Kong 3.10's module exists (plugins require it at load
-- time and call it) and does nothing.

local function noop() end

return {
  init = noop,
  init_worker = noop,
  add_immutable_value = noop,
  configure_ping = noop,
  add_ping_value = noop,
  get_ping_value = noop, -- nothing is recorded: always nil
  send_ping = noop,
  log = noop,
  admin_gui_log = noop,
  toggle = noop,
  send = noop,
  retrieve_redis_version = noop,
  _create_counter = noop,
  _sync_counter = noop,
}
