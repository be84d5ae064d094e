-- tollgate.ngx_socket: ngx.socket.tcp cosockets over tollgate.c.socket and
-- the worker's event loop (tollgate.sched). OpenResty's API: connect (with
-- pools), sslhandshake, send, receive, receiveany, receiveuntil, close,
-- setkeepalive, getreusedtimes, settimeout(s), setoption.
--
-- Names resolve through resolve() alone: numeric addresses, "localhost" and
-- /etc/hosts. Other names are refused ("could not be resolved") until the
-- worker has a non-blocking resolver: getaddrinfo() would block the loop.
local S = require "tollgate.c.socket"
local CS = require "tollgate.c.sched"
local sched = require "tollgate.sched"

local new_wait = CS.new_wait
local park = sched.park
local check_yieldable = sched.check_yieldable
local type = type
local tostring = tostring
local tonumber = tonumber
local setmetatable = setmetatable
local concat = table.concat
local find = string.find
local sub = string.sub
local byte = string.byte
local now = os.time
local null = require("cjson.safe").null

local M = {}

-- ------------------------------------------------------------ resolving --

local hosts -- name -> address, from /etc/hosts, read once per worker

local function load_hosts()
  hosts = { localhost = "127.0.0.1" }
  local f = io.open("/etc/hosts", "r")
  if not f then
    return
  end
  for line in f:lines() do
    line = line:gsub("#.*", "")
    local addr, names = line:match("^%s*(%S+)%s+(.+)$")
    if addr then
      for name in names:gmatch("%S+") do
        name = name:lower()
        -- the first address of a name wins; IPv4 preferred for localhost
        if not hosts[name] then
          hosts[name] = addr
        end
      end
    end
  end
  f:close()
end

--- The one place names become addresses: returns an address or nil, err.
function M.resolve(host)
  if find(host, "^%d+%.%d+%.%d+%.%d+$") or find(host, ":", 1, true) then
    return host
  end
  if not hosts then
    load_hosts()
  end
  local addr = hosts[host:lower()]
  if addr then
    return addr
  end
  return nil, host .. " could not be resolved (3: Host not found)"
end

-- ---------------------------------------------------------------- pools --

local pools = {} -- name -> array of { sock = c sock, expires = s or nil, reused = n }

local function pool_take(name)
  local p = pools[name]
  if not p then
    return nil
  end
  local t = now()
  while #p > 0 do
    local e = table.remove(p)
    if e.expires and e.expires < t then
      e.sock:close()
    else
      -- closed by the peer while idle (or stray bytes): not reusable
      local data, err = e.sock:recv(1)
      if data == nil and err == "again" then
        return e
      end
      e.sock:close()
    end
  end
  return nil
end

-- -------------------------------------------------------------- sockets --

local tcp = {}
local tcp_mt = { __index = tcp }

function M.tcp()
  return setmetatable({
    connect_timeout = 60000, send_timeout = 60000, read_timeout = 60000,
    buf = "",
  }, tcp_mt)
end

local function close_sock(self)
  if self.sock then
    self.sock:close()
    self.sock = nil
  end
  self.buf = ""
  self.ssl = nil
end

-- Waits for `dir` ("r" or "w") with `ms` as the deadline: true, or nil, "timeout".
local function wait_io(self, dir, ms)
  local w = self.wait
  if not w then
    w = new_wait()
    self.wait = w
  end
  local res = park(w:fd(self.sock:fd(), dir, ms))
  if res == "timeout" then
    return nil, "timeout"
  end
  return true
end

function tcp:settimeout(ms)
  ms = tonumber(ms) or 0
  self.connect_timeout, self.send_timeout, self.read_timeout = ms, ms, ms
end

function tcp:settimeouts(c, s, r)
  self.connect_timeout = tonumber(c) or self.connect_timeout
  self.send_timeout = tonumber(s) or self.send_timeout
  self.read_timeout = tonumber(r) or self.read_timeout
end

function tcp:setoption()
  return true
end

function tcp:connect(host, port, opts)
  check_yieldable(2)
  if type(host) ~= "string" then
    error("bad argument #1 to 'connect' (string expected, got " .. type(host) .. ")", 2)
  end
  if type(port) == "table" then
    opts, port = port, nil
  end
  if self.sock then
    close_sock(self)
  end
  local unix = sub(host, 1, 5) == "unix:"
  if not unix then
    port = tonumber(port)
    if not port or port < 0 or port > 65535 then
      return nil, "bad port number: " .. tostring(port)
    end
  end
  local name = opts and opts.pool or (unix and host or host .. ":" .. port)
  self.pool = name
  self.pool_size = opts and opts.pool_size
  local e = pool_take(name)
  if e then
    self.sock, self.reused, self.ssl = e.sock, e.reused + 1, e.ssl
    return 1
  end
  local sock, err, addr
  if unix then
    sock, err = S.tcp("unix")
    addr = sub(host, 6)
  else
    addr, err = M.resolve(host)
    if not addr then
      return nil, err
    end
    sock, err = S.tcp(find(addr, ":", 1, true) and "inet6" or "inet")
  end
  if not sock then
    return nil, err
  end
  self.sock, self.reused = sock, 0
  local rc
  rc, err = sock:connect(addr, port)
  if rc == "again" then
    local ok, terr = wait_io(self, "w", self.connect_timeout)
    if not ok then
      close_sock(self)
      return nil, terr
    end
    rc, err = sock:connect_result()
  end
  if not rc then
    close_sock(self)
    return nil, err
  end
  return 1
end

function tcp:sslhandshake(reused_session, server_name, verify)
  check_yieldable(2)
  if not self.sock then
    return nil, "closed"
  end
  if self.ssl then
    return true -- a pooled connection keeps its TLS session
  end
  local ok, err = self.sock:ssl_init(server_name, verify)
  if not ok then
    return nil, err
  end
  while true do
    local dir
    ok, err, dir = self.sock:ssl_handshake()
    if ok then
      break
    end
    if err ~= "again" then
      close_sock(self)
      return nil, "handshake failed: " .. tostring(err)
    end
    local w, terr = wait_io(self, dir, self.connect_timeout)
    if not w then
      close_sock(self)
      return nil, terr
    end
  end
  self.ssl = true
  if reused_session == false then
    return true
  end
  return true
end

local function flatten(t, out)
  for i = 1, #t do
    local v = t[i]
    local tv = type(v)
    if tv == "table" then
      flatten(v, out)
    elseif tv == "string" or tv == "number" then
      out[#out + 1] = tostring(v)
    elseif tv == "boolean" then
      out[#out + 1] = v and "true" or "false"
    elseif v == nil or v == null then
      out[#out + 1] = "nil"
    else
      error("bad argument #1 to 'send' (bad data type " .. tv .. " found)", 3)
    end
  end
  return out
end

function tcp:send(data)
  check_yieldable(2)
  if not self.sock then
    return nil, "closed"
  end
  local td = type(data)
  if td == "table" then
    data = concat(flatten(data, {}))
  elseif td == "number" or td == "boolean" then
    data = tostring(data)
  elseif td ~= "string" then
    error("bad argument #1 to 'send' (string, number, boolean, nil, or array table expected, got "
          .. td .. ")", 2)
  end
  local from, len = 1, #data
  while from <= len do
    local n, err, dir = self.sock:send(data, from)
    if n then
      from = from + n
    elseif err == "again" then
      local ok, terr = wait_io(self, dir or "w", self.send_timeout)
      if not ok then
        return nil, terr
      end
    else
      close_sock(self)
      return nil, err
    end
  end
  return len
end

-- The next bytes from the peer, or nil, err ("closed", "timeout", ...).
local function recv_more(self)
  while true do
    local data, err, dir = self.sock:recv(65536)
    if data then
      return data
    end
    if err ~= "again" then
      return nil, err
    end
    local ok, terr = wait_io(self, dir or "r", self.read_timeout)
    if not ok then
      return nil, terr
    end
  end
end

-- Reads more into self.buf: true, or nil, err.
local function fill(self)
  local data, err = recv_more(self)
  if not data then
    return nil, err
  end
  self.buf = self.buf .. data
  return true
end

-- Reads until self.buf holds `n` bytes (n = nil: until the peer closes),
-- collecting pieces so that large reads stay linear. true, or nil, err.
local function fill_to(self, n)
  local parts, have = { self.buf }, #self.buf
  local ok, err = true, nil
  while not n or have < n do
    local data
    data, err = recv_more(self)
    if not data then
      ok = nil
      break
    end
    parts[#parts + 1] = data
    have = have + #data
  end
  self.buf = concat(parts)
  return ok, err
end

-- A read error other than a timeout closes the socket, as OpenResty's.
local function read_failed(self, err)
  local partial = self.buf
  if err ~= "timeout" then
    close_sock(self)
  else
    self.buf = ""
  end
  return nil, err, partial
end

function tcp:receive(pattern, prefix)
  check_yieldable(2)
  if not self.sock then
    return nil, "closed"
  end
  if pattern == nil then
    pattern = "*l"
  end
  local data
  if type(pattern) == "number" then
    local n = pattern
    if n < 0 then
      error("bad argument #1 to 'receive' (bad pattern argument)", 2)
    end
    if #self.buf < n then
      local ok, err = fill_to(self, n)
      if not ok then
        return read_failed(self, err)
      end
    end
    data = sub(self.buf, 1, n)
    self.buf = sub(self.buf, n + 1)
  elseif pattern == "*l" or pattern == "*L" then
    local i
    while true do
      i = find(self.buf, "\n", 1, true)
      if i then break end
      local ok, err = fill(self)
      if not ok then
        return read_failed(self, err)
      end
    end
    data = sub(self.buf, 1, i - 1)
    self.buf = sub(self.buf, i + 1)
    data = data:gsub("\r", "")
    if pattern == "*L" then
      data = data .. "\n"
    end
  elseif pattern == "*a" then
    local _, err = fill_to(self, nil)
    if err ~= "closed" then
      return read_failed(self, err)
    end
    data = self.buf
    self.buf = ""
  else
    error("bad argument #1 to 'receive' (bad pattern argument)", 2)
  end
  if prefix then
    data = prefix .. data
  end
  return data
end

function tcp:receiveany(max)
  check_yieldable(2)
  if not self.sock then
    return nil, "closed"
  end
  max = tonumber(max)
  if not max or max <= 0 then
    error("bad argument #1 to 'receiveany' (bad max argument)", 2)
  end
  if #self.buf == 0 then
    local ok, err = fill(self)
    if not ok then
      return read_failed(self, err)
    end
  end
  local data = sub(self.buf, 1, max)
  self.buf = sub(self.buf, max + 1)
  return data
end

--- An iterator reading up to `pattern`: it() returns the data before the
-- pattern; it(size) returns at most size bytes at a time, then nil at the
-- pattern.
function tcp:receiveuntil(pattern, opts)
  if type(pattern) ~= "string" or pattern == "" then
    return nil, "pattern is empty"
  end
  local inclusive = opts and opts.inclusive
  local plen = #pattern
  local ended = false
  return function(size)
    check_yieldable(2)
    if not self.sock then
      return nil, "closed"
    end
    if ended then
      ended = false
      return nil
    end
    while true do
      local i = find(self.buf, pattern, 1, true)
      if i then
        local before = sub(self.buf, 1, i - 1)
        if size and #before > size then
          self.buf = sub(self.buf, size + 1)
          return sub(before, 1, size)
        end
        self.buf = sub(self.buf, i + plen)
        if inclusive then
          before = before .. pattern
        end
        if size then
          ended = true
        end
        return before
      end
      -- bytes that cannot start the pattern can go out already
      local safe = #self.buf - plen + 1
      if size and safe >= size then
        local out = sub(self.buf, 1, size)
        self.buf = sub(self.buf, size + 1)
        return out
      end
      local ok, err = fill(self)
      if not ok then
        return read_failed(self, err)
      end
    end
  end
end

function tcp:close()
  if not self.sock then
    return nil, "closed"
  end
  close_sock(self)
  return 1
end

function tcp:getreusedtimes()
  if not self.sock then
    return nil, "closed"
  end
  return self.reused or 0
end

function tcp:setkeepalive(timeout, size)
  if not self.sock then
    return nil, "closed"
  end
  if #self.buf > 0 then
    close_sock(self)
    return nil, "unread data in buffer"
  end
  local name = self.pool
  size = tonumber(size) or self.pool_size or 30
  timeout = tonumber(timeout) or 60000
  local p = pools[name]
  if not p then
    p = {}
    pools[name] = p
  end
  if #p >= size then
    local old = table.remove(p, 1)
    old.sock:close()
  end
  p[#p + 1] = { sock = self.sock, reused = self.reused or 0, ssl = self.ssl,
                expires = timeout > 0 and now() + timeout / 1000 or nil }
  self.sock, self.ssl, self.buf = nil, nil, ""
  return 1
end

--- How many idle connections a pool holds (specs).
function M.pool_count(name)
  local p = pools[name]
  return p and #p or 0
end

function M.connect(host, port, opts)
  local s = M.tcp()
  local ok, err = s:connect(host, port, opts)
  if not ok then
    return nil, err
  end
  return s
end

local _ = byte
return M
