-- spec/helpers/targets.lua: separate tg_echo_server processes as balancer
-- targets (each can be killed and restarted alone), and what the balancer
-- specs ask of the proxy and the Admin API.
--
--   local targets = require "spec.helpers.targets"
--   local port = targets.port(1)           -- TOLLGATE_SPEC_PORT + 6600 + 1
--   local pid = targets.start(port)        -- or { delay = 0.05 }, or { close = true }
--                                          -- (closes instead of answering)
--   targets.stop(pid)                      -- SIGKILL, waits until the port is closed
--   local by_port = targets.spread(100, "/path")  -- { [port] = answers }
local helpers = require "spec.helpers"
local cjson = require "cjson.safe"
local ffi = require "ffi"

local _M = {}

local BASE = (tonumber(os.getenv("TOLLGATE_SPEC_PORT")) or 9000) + 6600

function _M.port(i)
  return BASE + i
end

function _M.start(port, opts)
  opts = opts or {}
  local cmd = helpers.shell_quote(helpers.echo_server_bin)
              .. (opts.delay and (" -d " .. opts.delay) or "")
              .. (opts.close and " -z" or "")
              .. " " .. port .. " >/dev/null 2>&1 & echo $!"
  local f = io.popen(cmd)
  local pid = tonumber(f:read("*l"))
  f:close()
  helpers.wait_until(function() return helpers.can_connect("127.0.0.1", port) end, 10)
  return pid
end

function _M.stop(pid, port)
  if pid and helpers.pid_alive(pid) then
    ffi.C.kill(pid, 9)
    helpers.wait_until(function() return not helpers.pid_alive(pid) end, 10)
  end
  if port then
    helpers.wait_until(function() return not helpers.can_connect("127.0.0.1", port) end, 10)
  end
end

-- One request through the proxy: status, answering port (nil if none), response.
function _M.get(path, headers)
  local c = helpers.proxy_client(10000)
  local res, err = c:send { method = "GET", path = path, headers = headers }
  c:close()
  assert(res, err)
  return res.status, tonumber(res.headers["x-echo-server-port"]), res
end

-- n requests (a new connection each): { [port] = count, ["status:NNN"] = count }
function _M.spread(n, path, headers_fn)
  local out = {}
  for i = 1, n do
    local st, port = _M.get(path, headers_fn and headers_fn(i))
    local k = port or ("status:" .. st)
    out[k] = (out[k] or 0) + 1
  end
  return out
end

function _M.admin(method, path, body)
  local c = helpers.admin_client(10000)
  local res, err = c:send { method = method, path = path, body = body,
                            headers = body and { ["content-type"] = "application/json" } }
  c:close()
  assert(res, err)
  return res.status, cjson.decode(res.body or ""), res
end

-- { [target] = "HEALTHY" | "UNHEALTHY" | ... } from GET /upstreams/{u}/health
function _M.health(upstream)
  local st, body = _M.admin("GET", "/upstreams/" .. upstream .. "/health")
  assert(st == 200, "health: " .. tostring(st))
  local out = {}
  for _, t in ipairs(body.data) do out[t.target] = t.health end
  return out
end

function _M.wait_health(upstream, target, want, timeout)
  helpers.wait_until(function()
    return _M.health(upstream)[target] == want
  end, timeout or 15)
end

return _M
