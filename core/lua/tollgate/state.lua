-- tollgate.state: the control thread's view of the running configuration.
--
-- The Admin API reads `state.config` (the rows the declarative loader
-- validated) and changes it only through `state.apply`, which builds and
-- publishes a new snapshot in C and keeps the old one when that fails.

local control = require "tollgate.c.control"

local state = {
  config = nil,   -- the running config, as returned by tollgate.declarative
  conf = nil,     -- kong.configuration-style table (set by the C side)
  pid = nil,
}

local function random_uuid()
  local ok, util = pcall(require, "tollgate.c.util")
  if ok and util.uuid_v4 then
    return util.uuid_v4()
  end
  local t = {}
  for i = 1, 16 do t[i] = math.random(0, 255) end
  t[7] = 0x40 + t[7] % 16
  t[9] = 0x80 + t[9] % 64
  return string.format("%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
                       unpack(t))
end

state.node_id = random_uuid()
do
  local f = io.open("/proc/sys/kernel/hostname")
  state.hostname = f and f:read("*l") or "localhost"
  if f then f:close() end
  local s = io.open("/proc/self/stat")
  state.pid = s and tonumber(s:read("*l"):match("^(%d+)")) or 0
  if s then s:close() end
end

--- Builds and publishes a snapshot from a validated config.
-- @treturn true|nil
-- @treturn string the reason, when the config was refused
function state.apply(config)
  local ok, err = control.apply(config)
  if not ok then
    return nil, err
  end
  state.config = config
  -- a load leaves much garbage (parsing, validation): give it back now
  collectgarbage("collect")
  control.trim()
  return true
end

--- The loader's options: the enabled plugins (a plugin not in `plugins` is
-- refused with Kong's message).
function state.declarative_opts(opts)
  opts = opts or {}
  if opts.plugins == nil and state.conf then
    opts.plugins = require("tollgate.plugins").expand(state.conf.plugins)
  end
  return opts
end

--- Loads the declarative files and applies them (start and reload).
-- @treturn true|nil
-- @treturn string Kong's "Failed parsing" text, when refused
function state.load_declarative(files)
  local declarative = require "tollgate.declarative"
  local config, err_t = declarative.load_files(files, state.declarative_opts())
  if not config then
    if type(err_t) == "table" then
      return nil, declarative.error_text(err_t)
    end
    return nil, tostring(err_t)
  end
  return state.apply(config)
end

state.stats = control.stats
state.ready = control.ready

return state
