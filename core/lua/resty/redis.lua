-- resty.redis: a Redis client on ngx.socket.tcp, with lua-resty-redis's API:
-- new, connect (host, port[, options] or "unix:/path"), set_timeout(s),
-- set_keepalive, get_reused_times, close, every command as a method (a
-- generic dispatcher: red:get(k), red:hmset(k, tbl), red:auth(p),
-- red:select(db), ...), init_pipeline / commit_pipeline / cancel_pipeline,
-- read_reply, array_to_hash. Replies: status -> string, error -> false and
-- the message, integer -> number, bulk -> string or ngx.null, multi-bulk ->
-- table (ngx.null for nil elements).
local ngx_socket = require "tollgate.ngx_socket"
local null = require("cjson.safe").null

local type = type
local tostring = tostring
local tonumber = tonumber
local pairs = pairs
local setmetatable = setmetatable
local select = select
local concat = table.concat
local sub = string.sub
local byte = string.byte
local lower = string.lower

local _M = { _VERSION = "0.32" }

local mt = {}

function _M.new()
  return setmetatable({ sock = ngx_socket.tcp() }, mt)
end

function _M.set_timeout(self, ms)
  self.sock:settimeout(ms)
end

function _M.set_timeouts(self, connect, send, read)
  self.sock:settimeouts(connect, send, read)
end

function _M.connect(self, host, port_or_opts, opts)
  local port = port_or_opts
  if type(port_or_opts) == "table" then
    opts, port = port_or_opts, nil
  end
  opts = opts or {}
  self._subscribed = nil
  self._reqs = nil
  local ok, err = self.sock:connect(host, port, {
    pool = opts.pool, pool_size = opts.pool_size, backlog = opts.backlog,
  })
  if not ok then
    return nil, err
  end
  if opts.ssl and self.sock:getreusedtimes() == 0 then
    ok, err = self.sock:sslhandshake(false, opts.server_name, opts.ssl_verify)
    if not ok then
      self.sock:close()
      return nil, err
    end
  end
  return ok
end

function _M.set_keepalive(self, ...)
  if rawget(self, "_subscribed") then
    return nil, "subscribed state"
  end
  return self.sock:setkeepalive(...)
end

function _M.get_reused_times(self)
  return self.sock:getreusedtimes()
end

function _M.close(self)
  return self.sock:close()
end

-- ------------------------------------------------------------- protocol --

local function read_reply(self, sock)
  local line, err = sock:receive("*l")
  if not line then
    return nil, err
  end
  local prefix = byte(line)
  if prefix == 36 then -- $ bulk
    local size = tonumber(sub(line, 2))
    if not size then
      return nil, "bad reply"
    end
    if size < 0 then
      return null
    end
    local data
    data, err = sock:receive(size + 2)
    if not data then
      return nil, err
    end
    return sub(data, 1, -3)
  elseif prefix == 43 then -- + status
    return sub(line, 2)
  elseif prefix == 42 then -- * multi-bulk
    local n = tonumber(sub(line, 2))
    if not n then
      return nil, "bad reply"
    end
    if n < 0 then
      return null
    end
    local vals = {}
    for i = 1, n do
      local v, verr = read_reply(self, sock)
      if v == nil then
        return nil, verr
      end
      if v == false then
        vals[i] = { false, verr } -- an error inside an array
      else
        vals[i] = v
      end
    end
    return vals
  elseif prefix == 58 then -- : integer
    return tonumber(sub(line, 2))
  elseif prefix == 45 then -- - error
    return false, sub(line, 2)
  end
  return nil, "bad reply"
end

local function gen_req(args, n)
  local out = { "*", n, "\r\n" }
  for i = 1, n do
    local a = args[i]
    if type(a) ~= "string" then
      a = tostring(a)
    end
    out[#out + 1] = "$"
    out[#out + 1] = #a
    out[#out + 1] = "\r\n"
    out[#out + 1] = a
    out[#out + 1] = "\r\n"
  end
  return concat(out)
end

local function do_cmd(self, cmd, ...)
  local n = select("#", ...)
  local args = { cmd, ... }
  n = n + 1
  -- hmset(key, { field = value }) flattens its table
  if cmd == "hmset" and n == 3 and type(args[3]) == "table" then
    local t = args[3]
    args = { cmd, args[2] }
    for k, v in pairs(t) do
      args[#args + 1] = k
      args[#args + 1] = v
    end
    n = #args
  end
  local req = gen_req(args, n)
  local p = rawget(self, "_reqs")
  if p then
    p[#p + 1] = req
    return true
  end
  local sock = self.sock
  local ok, err = sock:send(req)
  if not ok then
    return nil, err
  end
  return read_reply(self, sock)
end

function _M.read_reply(self)
  if not rawget(self, "_subscribed") then
    return nil, "not subscribed"
  end
  local res, err = read_reply(self, self.sock)
  if res == nil then
    return nil, err
  end
  return res, err
end

local function subscribe_cmd(name)
  return function(self, ...)
    local res, err = do_cmd(self, name, ...)
    if not res then
      return nil, err
    end
    if name == "subscribe" or name == "psubscribe" then
      self._subscribed = true
    elseif type(res) == "table" and res[3] == 0 then
      self._subscribed = nil -- no channel left
    end
    -- replies to the other channels follow: read them too
    local results = { res }
    for _ = 2, select("#", ...) do
      results[#results + 1] = read_reply(self, self.sock)
    end
    if #results == 1 then
      return res
    end
    return results
  end
end
_M.subscribe = subscribe_cmd("subscribe")
_M.psubscribe = subscribe_cmd("psubscribe")
_M.unsubscribe = subscribe_cmd("unsubscribe")
_M.punsubscribe = subscribe_cmd("punsubscribe")

function _M.init_pipeline(self, n)
  self._reqs = {}
  local _ = n
end

function _M.cancel_pipeline(self)
  self._reqs = nil
end

function _M.commit_pipeline(self)
  local reqs = rawget(self, "_reqs")
  if not reqs then
    return nil, "no pipeline"
  end
  self._reqs = nil
  local sock = self.sock
  local ok, err = sock:send(concat(reqs))
  if not ok then
    return nil, err
  end
  local vals = {}
  for i = 1, #reqs do
    local res, rerr = read_reply(self, sock)
    if res == nil then
      return nil, rerr
    end
    if res == false then
      vals[i] = { false, rerr }
    else
      vals[i] = res
    end
  end
  return vals
end

function _M.array_to_hash(_, t)
  local h = {}
  for i = 1, #t, 2 do
    h[t[i]] = t[i + 1]
  end
  return h
end

-- Kept for compatibility: every name is a command already.
function _M.add_commands() end

-- Any other name is a command: red:hget(k, f) sends HGET k f.
mt.__index = function(_, name)
  local m = _M[name]
  if m ~= nil then
    return m
  end
  if type(name) ~= "string" then
    return nil
  end
  local cmd = lower(name)
  local f = function(self, ...)
    return do_cmd(self, cmd, ...)
  end
  _M[name] = f
  return f
end

return _M
