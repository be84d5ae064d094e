-- spec/helpers.lua: what specs use to drive a real tollgate, with Kong's
-- helper names (kong/spec/helpers.lua) so that Kong-style specs read the same.
--
--   local helpers = require "spec.helpers"
--   local bp = helpers.get_db_utils("off")
--   local s = bp.services:insert()                 -- points at the mock upstream
--   bp.routes:insert { service = s, paths = { "/x" } }
--   assert(helpers.start_kong { database = "off" })
--   local res = helpers.proxy_client():get("/x")
--   assert.res_status(200, res)
--   helpers.stop_kong()
--
-- The gateway binary is $TOLLGATE_BIN (default <repo>/build/tollgate); the mock
-- upstream is tg_echo_server ($TG_ECHO_SERVER_BIN, default beside the binary).
-- Ports: proxy base, admin base+1, status base+7 with base = $TOLLGATE_SPEC_PORT
-- (default 9000, Kong's test ports); the mock upstream listens on 15555-15557.
local cjson = require "cjson.safe"
local socket = require "socket"
local pl_utils = require "pl.utils"
local pl_path = require "pl.path"
local pl_dir = require "pl.dir"
local pl_file = require "pl.file"
local luassert = require "luassert"
local say = require "say"
local ffi = require "ffi"

local http = require "spec.helpers.http"
local blueprints = require "spec.helpers.blueprints"

ffi.cdef [[
  int setenv(const char *name, const char *value, int overwrite);
  int unsetenv(const char *name);
  int kill(int pid, int sig);
]]

local helpers = {}

-- Paths -----------------------------------------------------------------------

local function repo_root()
  local src = debug.getinfo(1, "S").source:sub(2)
  local dir = pl_path.dirname(pl_path.abspath(src))
  return pl_path.dirname(dir)
end

helpers.root = repo_root()
-- From a tollgate checkout the binary defaults to <root>/build/tollgate; when
-- these helpers are installed as a rock (rockspecs/tollgate-spec-helpers-*),
-- to the `tollgate` on PATH, and the prefix to ./servroot.
local in_checkout = pl_path.isdir(helpers.root .. "/core/lua")
local function on_path(name)
  local f = io.popen("command -v " .. name .. " 2>/dev/null")
  local found = f and f:read("*l")
  if f then f:close() end
  return found ~= "" and found or nil
end
helpers.bin_path = os.getenv("TOLLGATE_BIN")
                   or (in_checkout and helpers.root .. "/build/tollgate" or on_path("tollgate"))
                   or "tollgate"
if not pl_path.isabs(helpers.bin_path) then
  helpers.bin_path = pl_path.abspath(helpers.bin_path)
end
helpers.echo_server_bin = os.getenv("TG_ECHO_SERVER_BIN")
                          or (pl_path.dirname(helpers.bin_path) .. "/tg_echo_server")

local PORT_BASE = tonumber(os.getenv("TOLLGATE_SPEC_PORT") or "9000")

helpers.mock_upstream_protocol = "http"
helpers.mock_upstream_host = "127.0.0.1"
helpers.mock_upstream_hostname = "localhost"
-- TOLLGATE_SPEC_PORT moves the mock upstreams too (base + 6555), and
-- TOLLGATE_SPEC_PREFIX the prefix, so two spec runs can share a machine.
local MOCK_BASE = PORT_BASE + 6555
helpers.mock_upstream_port = MOCK_BASE
helpers.mock_upstream_ports = { MOCK_BASE, MOCK_BASE + 1, MOCK_BASE + 2 }
helpers.mock_upstream_url = "http://127.0.0.1:" .. MOCK_BASE

helpers.test_conf = {
  prefix = os.getenv("TOLLGATE_SPEC_PREFIX")
           or (in_checkout and helpers.root .. "/servroot" or pl_path.abspath("servroot")),
  database = "off",
  proxy_listen = "127.0.0.1:" .. PORT_BASE,
  admin_listen = "127.0.0.1:" .. (PORT_BASE + 1),
  status_listen = "127.0.0.1:" .. (PORT_BASE + 7),
  log_level = "info",
  proxy_ip = "127.0.0.1",
  proxy_port = PORT_BASE,
  admin_ip = "127.0.0.1",
  admin_port = PORT_BASE + 1,
  status_ip = "127.0.0.1",
  status_port = PORT_BASE + 7,
}
-- Keys of test_conf that describe the harness rather than tollgate.conf.
local HARNESS_KEYS = { proxy_ip = true, proxy_port = true, admin_ip = true, admin_port = true,
                       status_ip = true, status_port = true, nginx_conf = true,
                       declarative_config_string = true }

helpers.null = cjson.null

-- Environment -----------------------------------------------------------------

function helpers.setenv(name, value)
  return ffi.C.setenv(name, tostring(value), 1) == 0
end

function helpers.unsetenv(name)
  return ffi.C.unsetenv(name) == 0
end

local function shell_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end
helpers.shell_quote = shell_quote

-- Runs a shell command; returns ok, code, stdout, stderr.
function helpers.execute(cmd)
  local ok, code, out, err = pl_utils.executeex(cmd)
  return ok, code, out, err
end

-- Kong's kong_exec: runs `<tollgate> <cmd>` with `env` (table) exported as
-- KONG_<KEY> (keys already prefixed KONG_ or TOLLGATE_ are used as they are).
-- Returns ok, stderr, stdout, exit code.
function helpers.kong_exec(cmd, env)
  local prefix = {}
  for k, v in pairs(env or {}) do
    local name = k:upper()
    if not (name:match("^KONG_") or name:match("^TOLLGATE_")) then name = "KONG_" .. name end
    prefix[#prefix + 1] = name .. "=" .. shell_quote(v)
  end
  local line = table.concat(prefix, " ") .. " " .. shell_quote(helpers.bin_path) .. " " .. cmd
  local ok, code, out, err = helpers.execute(line)
  return ok, err, out, code
end
helpers.tollgate_exec = helpers.kong_exec

-- Utilities -------------------------------------------------------------------

function helpers.unindent(str, concat_newlines, spaced_newlines)
  str = str:gsub("^%s*\n", "")
  local indent = str:match("^([ \t]*)")
  local lines = {}
  for line in (str .. "\n"):gmatch("(.-)\n") do
    if line:sub(1, #indent) == indent then line = line:sub(#indent + 1) end
    lines[#lines + 1] = line
  end
  while #lines > 0 and lines[#lines]:match("^%s*$") do lines[#lines] = nil end
  if concat_newlines then
    return table.concat(lines, spaced_newlines and " " or "")
  end
  return table.concat(lines, "\n")
end

function helpers.sleep(s) socket.sleep(s) end

-- Adler-32 of a string as 8 hex digits: the mock upstream reports the one of
-- each request body it receives ("body_adler32").
function helpers.adler32(s)
  local a, b = 1, 0
  for i = 1, #s do
    a = (a + s:byte(i)) % 65521
    b = (b + a) % 65521
  end
  return string.format("%08x", b * 65536 + a)
end

-- Calls fn until it returns a truthy value; errors after `timeout` seconds
-- (default 5). Errors raised by fn propagate at once.
function helpers.wait_until(fn, timeout, step)
  timeout, step = timeout or 5, step or 0.05
  local deadline = socket.gettime() + timeout
  while true do
    local res = fn()
    if res then return res end
    if socket.gettime() > deadline then
      error("wait_until() timeout after " .. timeout .. " seconds", 2)
    end
    socket.sleep(step)
  end
end

-- Like wait_until, but fn's errors (failed assertions) are retried until the
-- deadline, when the last error is re-raised.
function helpers.pwait_until(fn, timeout, step)
  timeout, step = timeout or 5, step or 0.05
  local deadline = socket.gettime() + timeout
  while true do
    local ok, err = pcall(fn)
    if ok then return true end
    if socket.gettime() > deadline then error(err, 2) end
    socket.sleep(step)
  end
end

local function can_connect(host, port)
  local s = socket.tcp()
  s:settimeout(0.5)
  local ok = s:connect(host, port)
  s:close()
  return ok ~= nil
end
helpers.can_connect = can_connect

local function pid_alive(pid)
  return pid and ffi.C.kill(pid, 0) == 0
end
helpers.pid_alive = pid_alive

-- The pid of the instance running on `prefix` (pids/*.pid), or nil.
function helpers.get_pid(prefix)
  prefix = prefix or helpers.test_conf.prefix
  for _, name in ipairs({ "tollgate.pid", "nginx.pid", "kong.pid" }) do
    local s = pl_file.read(prefix .. "/pids/" .. name)
    if s and tonumber(s:match("%d+")) then return tonumber(s:match("%d+")), prefix .. "/pids/" .. name end
  end
  local files = pl_path.isdir(prefix .. "/pids") and pl_dir.getfiles(prefix .. "/pids", "*.pid") or {}
  for _, f in ipairs(files) do
    local s = pl_file.read(f)
    if s and tonumber(s:match("%d+")) then return tonumber(s:match("%d+")), f end
  end
  return nil
end

-- HTTP clients ----------------------------------------------------------------

function helpers.http_client(host, port, timeout)
  return http.new(host, port, timeout)
end

function helpers.proxy_client(timeout, port, ip)
  return http.new(ip or helpers.test_conf.proxy_ip, port or helpers.test_conf.proxy_port, timeout)
end

function helpers.admin_client(timeout, port)
  return http.new(helpers.test_conf.admin_ip, port or helpers.test_conf.admin_port, timeout)
end

function helpers.status_client(timeout, port)
  return http.new(helpers.test_conf.status_ip, port or helpers.test_conf.status_port, timeout)
end

function helpers.mock_upstream_client(timeout, port)
  return http.new(helpers.mock_upstream_host, port or helpers.mock_upstream_port, timeout)
end

-- One GET through the proxy on its own connection: the response and its body.
function helpers.proxy_get(path, headers)
  local client = helpers.proxy_client()
  local res = assert(client:get(path, { headers = headers }))
  local body = res:read_body()
  client:close()
  return res, body
end

-- Waits until something listens on 127.0.0.1:port (a fixture server).
function helpers.wait_for_port(port, timeout)
  return helpers.wait_until(function()
    return can_connect("127.0.0.1", port)
  end, timeout or 10)
end

-- lua_package_path for the plugins of spec/fixtures/custom_plugins.
helpers.custom_plugins_path = helpers.root .. "/spec/fixtures/custom_plugins/?.lua"

-- Sends raw bytes to the proxy port; returns what came back and "closed" or
-- "timeout" (see spec/helpers/http.lua).
function helpers.raw_request(data, timeout, port, pause)
  return http.raw(helpers.test_conf.proxy_ip, port or helpers.test_conf.proxy_port, data,
                  timeout, pause)
end
helpers.parse_raw_response = http.parse_raw
helpers.encode_args = http.encode_args

-- Mock upstream ---------------------------------------------------------------

-- The body the mock upstream's /bytes/N answers with ("abc..z" repeated).
function helpers.mock_bytes(n)
  return ("abcdefghijklmnopqrstuvwxyz"):rep(math.floor(n / 26) + 1):sub(1, n)
end

local mock_pid

-- The number of complete requests the mock upstream has received.
function helpers.mock_upstream_count()
  local c = helpers.mock_upstream_client(2000)
  local res = c:get("/_echo/count")
  c:close()
  if not res then return nil end
  return (cjson.decode(res.body) or {}).count
end

function helpers.mock_upstream_reset()
  local c = helpers.mock_upstream_client(2000)
  local res = c:get("/_echo/reset")
  c:close()
  return res and res.status == 200
end

function helpers.start_mock_upstream()
  if can_connect(helpers.mock_upstream_host, helpers.mock_upstream_port) then
    return true -- already running (ours, left by an earlier start)
  end
  if not pl_path.isfile(helpers.echo_server_bin) then
    return nil, "mock upstream binary not found: " .. helpers.echo_server_bin
  end
  local log = os.tmpname()
  local f = io.popen(shell_quote(helpers.echo_server_bin) .. " "
                     .. table.concat(helpers.mock_upstream_ports, " ") .. " >" .. log
                     .. " 2>&1 & echo $!")
  mock_pid = tonumber(f:read("*l"))
  f:close()
  local ok = pcall(helpers.wait_until, function()
    return can_connect(helpers.mock_upstream_host, helpers.mock_upstream_port)
  end, 10)
  if not ok then
    return nil, "mock upstream did not start: " .. (pl_file.read(log) or "")
  end
  os.remove(log)
  return true
end

-- SIGTERM to a fixture server we started, and a wait for it to go.
local function stop_server(pid)
  if pid and pid_alive(pid) then
    ffi.C.kill(pid, 15)
    pcall(helpers.wait_until, function() return not pid_alive(pid) end, 5)
  end
end

function helpers.stop_mock_upstream()
  stop_server(mock_pid)
  mock_pid = nil
end

-- DNS responder ---------------------------------------------------------------

-- tg_dns_server (spec/fixtures/dns_server.c) on 127.0.0.1:(base + 6560), for
-- specs that point dns_resolver at it.
helpers.dns_server_port = PORT_BASE + 6560
helpers.dns_server_bin = os.getenv("TG_DNS_SERVER_BIN")
                         or (pl_path.dirname(helpers.bin_path) .. "/tg_dns_server")
local dns_pid

-- Starts it answering from the file `records` (re-read whenever it changes) and
-- appending every query to `querylog` ("name TYPE" lines); waits until it answers.
function helpers.start_dns_server(records, querylog)
  helpers.stop_dns_server()
  local f = io.popen(shell_quote(helpers.dns_server_bin) .. " -l " .. shell_quote(querylog) .. " "
                     .. helpers.dns_server_port .. " " .. shell_quote(records) .. " & echo $!")
  dns_pid = tonumber(f:read("*l"))
  f:close()
  -- a query for "ready." (any answer will do)
  local q = "\0\1\1\0\0\1\0\0\0\0\0\0\5ready\0\0\1\0\1"
  local ok = pcall(helpers.wait_until, function()
    local u = socket.udp()
    u:settimeout(0.2)
    u:setpeername("127.0.0.1", helpers.dns_server_port)
    u:send(q)
    local r = u:receive()
    u:close()
    return r ~= nil
  end, 10)
  if not ok then return nil, "tg_dns_server did not start" end
  return true
end

function helpers.stop_dns_server()
  stop_server(dns_pid)
  dns_pid = nil
end

-- Blueprints ------------------------------------------------------------------

local current_bp

local db_mt = {}
db_mt.__index = db_mt
-- DB-less "db": only what makes sense without a database.
function db_mt:truncate(name)
  for ename, rows in pairs(self._bp._rows) do
    if name == nil or name == ename then
      for i = #rows, 1, -1 do rows[i] = nil end
    end
  end
  return true
end

-- Kong's validate_plugin_config_schema(config, schema_def, extra_fields): a
-- plugin entry as the Admin API would insert it, validated in-process with
-- the plugin's schema definition (no gateway needed). Returns the entity with
-- defaults filled, or nil and Kong's field errors ({ config = { ... } }).
function helpers.validate_plugin_config_schema(config, schema_def, extra_fields)
  local entity = require("tollgate.entities").get("plugins")
  assert(entity:new_subschema(schema_def.name, schema_def))
  local row = { name = schema_def.name, config = config }
  for k, v in pairs(extra_fields or {}) do row[k] = v end
  row = entity:process_auto_fields(row, "insert")
  local ok, errs = entity:validate(row)
  if not ok then return nil, errs end
  return row
end

-- Kong's get_db_utils. Only strategy "off" exists so far: the blueprints
-- build the declarative config that start_kong writes.
function helpers.get_db_utils(strategy, tables, plugins)
  strategy = strategy or "off"
  if strategy ~= "off" then
    error("spec.helpers: database strategy '" .. tostring(strategy)
          .. "' is not implemented yet (DB-less 'off' only)", 2)
  end
  current_bp = blueprints.new(helpers)
  local db = setmetatable({ strategy = "off", _bp = current_bp }, db_mt)
  return current_bp, db
end

-- Writes the current blueprints as declarative files into `dir`; returns
-- their paths joined with commas (the declarative_config value).
function helpers.make_declarative_files(dir, bp)
  bp = bp or current_bp or blueprints.new(helpers)
  pl_dir.makepath(dir)
  return table.concat(blueprints.write(bp, dir), ",")
end

-- Start / stop ----------------------------------------------------------------

local function conf_value(v)
  if v == true then return "on" end
  if v == false then return "off" end
  if type(v) == "table" then return table.concat(v, ",") end
  return tostring(v)
end

-- Writes a tollgate.conf from a table of Kong keys; returns the path.
function helpers.write_conf(path, conf)
  local keys = {}
  for k in pairs(conf) do
    if not HARNESS_KEYS[k] then keys[#keys + 1] = k end
  end
  table.sort(keys)
  local lines = { "# written by spec/helpers.lua" }
  for _, k in ipairs(keys) do
    lines[#lines + 1] = k .. " = " .. conf_value(conf[k])
  end
  assert(pl_file.write(path, table.concat(lines, "\n") .. "\n"))
  return path
end

local running = {} -- prefix -> { conf, conf_path, fg_pid }

function helpers.get_running_conf(prefix)
  local r = running[prefix or helpers.test_conf.prefix]
  return r and r.conf
end

-- The error log of an instance (Kong's default: <prefix>/logs/error.log).
function helpers.error_log_path(prefix)
  local r = running[prefix or helpers.test_conf.prefix]
  local p = r and r.conf.proxy_error_log
  prefix = prefix or helpers.test_conf.prefix
  if p and p ~= "off" then
    return p:sub(1, 1) == "/" and p or (prefix .. "/" .. p)
  end
  return prefix .. "/logs/error.log"
end

function helpers.clean_logfile(path)
  path = path or helpers.error_log_path()
  local f = io.open(path, "w")
  if f then f:close() end
end

local function read_error_log(prefix)
  local s = pl_file.read(helpers.error_log_path(prefix))
  if not s then return "(no error log)" end
  if #s > 8000 then s = "...\n" .. s:sub(-8000) end
  return s
end

local function kill_stale(prefix)
  local pid = helpers.get_pid(prefix)
  if pid and pid_alive(pid) then
    ffi.C.kill(pid, 9)
    pcall(helpers.wait_until, function() return not pid_alive(pid) end, 5)
  end
end

local function wait_ready(conf, prefix, fg_pid, timeout)
  local deadline = socket.gettime() + timeout
  local host, port
  if conf.status_listen and conf.status_listen ~= "off" then
    host, port = conf.status_listen:match("^%[?([^%]%s]+)%]?:(%d+)")
  end
  while socket.gettime() < deadline do
    if fg_pid and not pid_alive(fg_pid) then
      return nil, "tollgate exited during start"
    end
    if host then
      local c = http.new(host, tonumber(port), 1000)
      local res = c:get("/status/ready")
      c:close()
      if res and res.status == 200 then return true end
      -- Kong answers 503 on a node whose configuration is empty: it is up
      if res and res.status == 503 and (res:read_body() or ""):find("empty configuration", 1, true) then
        return true
      end
    else
      local phost, pport = tostring(conf.proxy_listen):match("^%[?([^%]%s,]+)%]?:(%d+)")
      if phost == "0.0.0.0" then phost = "127.0.0.1" end
      if phost and can_connect(phost, tonumber(pport)) then return true end
    end
    socket.sleep(0.05)
  end
  return nil, "tollgate not ready after " .. timeout .. " seconds"
end

-- Kong's start_kong(env): `env` is a table of tollgate.conf keys (Kong's
-- names), merged over helpers.test_conf. With database = off and no
-- declarative_config, the blueprints of the last get_db_utils() are written
-- into the prefix and loaded. Returns true, or nil and the reason (with the
-- end of the error log).
function helpers.start_kong(env, tables, preserve_prefix, fixtures)
  env = env or {}
  local conf = {}
  for k, v in pairs(helpers.test_conf) do conf[k] = v end
  for k, v in pairs(env) do conf[k] = v end
  local prefix = conf.prefix
  if not pl_path.isabs(prefix) then prefix = pl_path.abspath(prefix) end
  conf.prefix = prefix

  kill_stale(prefix)
  if not preserve_prefix and pl_path.isdir(prefix) then pl_dir.rmtree(prefix) end
  pl_dir.makepath(prefix)

  if env.mock_upstream ~= false then
    local ok, err = helpers.start_mock_upstream()
    if not ok then return nil, err end
  end
  conf.mock_upstream = nil

  if conf.database == "off" and conf.declarative_config == nil then
    if conf.declarative_config_string then
      local path = prefix .. "/declarative_config.json"
      pl_file.write(path, conf.declarative_config_string)
      conf.declarative_config = path
    else
      conf.declarative_config = helpers.make_declarative_files(prefix .. "/declarative")
    end
  end

  local conf_path = helpers.write_conf(prefix .. "/spec_tollgate.conf", conf)
  running[prefix] = { conf = conf, conf_path = conf_path }

  local cmd = "start -c " .. shell_quote(conf_path) .. " -p " .. shell_quote(prefix)
  local fg_pid
  if conf.nginx_daemon == "off" or conf.nginx_daemon == false then
    local f = io.popen(shell_quote(helpers.bin_path) .. " " .. cmd .. " >"
                       .. shell_quote(prefix .. "/foreground.log") .. " 2>&1 & echo $!")
    fg_pid = tonumber(f:read("*l"))
    f:close()
    running[prefix].fg_pid = fg_pid
  else
    local ok, err, out = helpers.kong_exec(cmd)
    if not ok then
      return nil, "tollgate start failed: " .. (err or "") .. (out or "") .. "\n"
                  .. read_error_log(prefix)
    end
  end
  local ok, err = wait_ready(conf, prefix, fg_pid, tonumber(os.getenv("TOLLGATE_SPEC_START_TIMEOUT")) or 60)
  if not ok then
    local fg = fg_pid and (pl_file.read(prefix .. "/foreground.log") or "") or ""
    return nil, err .. "\n" .. fg .. read_error_log(prefix)
  end
  return true
end

-- Kong's stop_kong(prefix, preserve_prefix): `tollgate stop`, then waits for
-- the process to exit (killing it after `timeout` seconds, which is a
-- failure). Returns true, or nil and the reason with the error log.
function helpers.stop_kong(prefix, preserve_prefix, preserve_dc, signal, timeout)
  prefix = prefix or helpers.test_conf.prefix
  local pid = helpers.get_pid(prefix)
  local r = running[prefix]
  pid = pid or (r and r.fg_pid)
  local verb = signal == "SIGQUIT" and "quit" or "stop"
  local ok, err = helpers.kong_exec(verb .. " -p " .. shell_quote(prefix))
  local result, reason = true, nil
  if pid then
    local gone = pcall(helpers.wait_until, function() return not pid_alive(pid) end, timeout or 30)
    if not gone then
      ffi.C.kill(pid, 9)
      result, reason = nil, "tollgate (pid " .. pid .. ") did not exit after stop"
    end
  elseif not ok then
    result, reason = nil, "tollgate stop failed: " .. tostring(err)
  end
  if not result then
    io.stderr:write("---- error log of ", prefix, " ----\n", read_error_log(prefix), "\n")
  end
  running[prefix] = nil
  helpers.stop_mock_upstream()
  if not preserve_prefix and result then
    -- keep the prefix (logs) for a failed stop so it can be read
    pl_dir.rmtree(prefix)
  end
  return result, reason
end

helpers.start_gateway = helpers.start_kong
helpers.stop_gateway = helpers.stop_kong

function helpers.restart_kong(env, tables)
  helpers.stop_kong(env and env.prefix, true)
  return helpers.start_kong(env, tables, true)
end

-- Reloads the running instance on `prefix` after rewriting its declarative
-- files from the current blueprints (and conf changes in `env`).
function helpers.reload_kong(env, prefix)
  prefix = prefix or helpers.test_conf.prefix
  local r = assert(running[prefix], "no running instance on " .. prefix)
  for k, v in pairs(env or {}) do r.conf[k] = v end
  if env == nil or env.declarative_config == nil then
    if pl_path.isdir(prefix .. "/declarative") then pl_dir.rmtree(prefix .. "/declarative") end
    r.conf.declarative_config = helpers.make_declarative_files(prefix .. "/declarative")
  end
  helpers.write_conf(r.conf_path, r.conf)
  return helpers.kong_exec("reload -c " .. shell_quote(r.conf_path) .. " -p " .. shell_quote(prefix))
end

-- Assertions ------------------------------------------------------------------

local function headers_lookup(headers, name)
  if not headers then return nil end
  local v = headers[name]
  if v ~= nil then return v end
  name = name:lower()
  for k, x in pairs(headers) do
    if type(k) == "string" and k:lower() == name then return x end
  end
end

-- assert.res_status(expected, res): checks the status, returns the body.
local function res_status(state, args)
  local expected, res = args[1], args[2]
  if type(res) ~= "table" then
    table.insert(args, 1, "no response (" .. tostring(res) .. ")")
    args.n = 3
    return false
  end
  local body = res:read_body() or ""
  if res.status ~= expected then
    table.insert(args, 1, body)
    table.insert(args, 1, res.status)
    table.insert(args, 1, expected)
    args.n = 3
    return false
  end
  return true, { body }
end
say:set("assertion.res_status.negative", "Invalid response status code.\nStatus expected:\n%s\n"
        .. "Status received:\n%s\nBody:\n%s")
say:set("assertion.res_status.positive", "Invalid response status code.\nStatus not expected:\n%s")
luassert:register("assertion", "res_status", res_status,
                  "assertion.res_status.negative", "assertion.res_status.positive")

local function modifier_response(state, args)
  local res = args[1]
  assert(type(res) == "table" and type(res.read_body) == "function",
         "response modifier requires a response object")
  rawset(state, "tg_response", res)
  rawset(state, "tg_request", nil)
  return state
end
luassert:register("modifier", "response", modifier_response)

-- The request the mock upstream saw, from its JSON answer.
local function modifier_request(state, args)
  local res = args[1]
  assert(type(res) == "table" and type(res.read_body) == "function",
         "request modifier requires a response object")
  local body = res:read_body()
  local json = cjson.decode(body or "")
  assert(type(json) == "table" and json.headers,
         "request modifier: the response is not the mock upstream's echo: " .. tostring(body))
  rawset(state, "tg_request", json)
  rawset(state, "tg_response", nil)
  return state
end
luassert:register("modifier", "request", modifier_request)

local function target_of(state)
  local req = rawget(state, "tg_request")
  if req then return req.headers, "request" end
  local res = rawget(state, "tg_response")
  if res then return res.headers, "response" end
  error("header assertion needs assert.response(res) or assert.request(res) first")
end

local function assert_header(state, args)
  local name = args[1]
  local headers, kind = target_of(state)
  local value = headers_lookup(headers, name)
  table.insert(args, 1, kind)
  args.n = 2
  if value == nil then return false end
  return true, { value }
end
say:set("assertion.tg_header.negative", "Expected header in %s:\n%s")
say:set("assertion.tg_header.positive", "Expected no header in %s:\n%s")
luassert:register("assertion", "header", assert_header,
                  "assertion.tg_header.negative", "assertion.tg_header.positive")

local function assert_status(state, args)
  local res = rawget(state, "tg_response")
  assert(res, "status assertion needs assert.response(res)")
  table.insert(args, 2, res.status)
  args.n = 2
  return res.status == args[1]
end
say:set("assertion.tg_status.negative", "Expected status %s, got %s")
say:set("assertion.tg_status.positive", "Expected a status other than %s, got %s")
luassert:register("assertion", "status", assert_status,
                  "assertion.tg_status.negative", "assertion.tg_status.positive")

local function assert_jsonbody(state, args)
  local res = rawget(state, "tg_response")
  local req = rawget(state, "tg_request")
  if req then return true, { req } end
  assert(res, "jsonbody assertion needs assert.response(res)")
  local body = res:read_body()
  local json = cjson.decode(body or "")
  args[1] = body
  args.n = 1
  if json == nil then return false end
  return true, { json }
end
say:set("assertion.tg_jsonbody.negative", "Expected a JSON body, got:\n%s")
say:set("assertion.tg_jsonbody.positive", "Expected a body that is not JSON, got:\n%s")
luassert:register("assertion", "jsonbody", assert_jsonbody,
                  "assertion.tg_jsonbody.negative", "assertion.tg_jsonbody.positive")

local function assert_queryparam(state, args)
  local req = rawget(state, "tg_request")
  assert(req, "queryparam assertion needs assert.request(res)")
  local name = args[1]
  for pair in (req.query or ""):gmatch("[^&]+") do
    local k, v = pair:match("^([^=]*)=?(.*)$")
    if k == name then return true, { v } end
  end
  args[2] = req.query
  args.n = 2
  return false
end
say:set("assertion.tg_queryparam.negative", "Expected query parameter %s in: %s")
say:set("assertion.tg_queryparam.positive", "Expected no query parameter %s in: %s")
luassert:register("assertion", "queryparam", assert_queryparam,
                  "assertion.tg_queryparam.negative", "assertion.tg_queryparam.positive")

-- assert.logfile(path).has.line(pattern, plain, timeout)
local function modifier_logfile(state, args)
  rawset(state, "tg_logfile", args[1] or helpers.error_log_path())
  return state
end
luassert:register("modifier", "logfile", modifier_logfile)

local function assert_line(state, args)
  local pattern, plain, timeout = args[1], args[2], args[3] or 2
  local path = rawget(state, "tg_logfile") or helpers.error_log_path()
  local found = false
  local deadline = socket.gettime() + timeout
  repeat
    local s = pl_file.read(path) or ""
    for line in s:gmatch("[^\n]+") do
      if line:find(pattern, 1, plain) then found = true break end
    end
    -- a negative assertion ("has.no.line") only waits when a timeout is given
    if found or (not state.mod and not args[3]) then break end
    socket.sleep(0.05)
  until socket.gettime() > deadline
  args[2] = path
  args.n = 2
  return found
end
say:set("assertion.tg_line.negative", "Expected line %q in log file %s")
say:set("assertion.tg_line.positive", "Expected no line %q in log file %s")
luassert:register("assertion", "line", assert_line,
                  "assertion.tg_line.negative", "assertion.tg_line.positive")

return helpers
