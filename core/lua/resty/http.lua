-- resty.http: an HTTP/1.1 client on ngx.socket.tcp, with the API of
-- lua-resty-http that plugins use: new, connect (host/port/options or an
-- options table), set_timeout(s), request, send_request, read_response,
-- request_uri, parse_uri, get_reused_times, set_keepalive, close; responses
-- with status, reason, headers, has_body, read_body and body_reader
-- (Content-Length, chunked, or until close).
local ngx_socket = require "tollgate.ngx_socket"

local type = type
local tostring = tostring
local tonumber = tonumber
local pairs = pairs
local ipairs = ipairs
local setmetatable = setmetatable
local concat = table.concat
local lower = string.lower
local upper = string.upper
local find = string.find
local sub = string.sub
local fmt = string.format
local encode_args = require("kong.pdk.private.args").encode

local _M = { _VERSION = "0.17.2" }
local mt = { __index = _M }

local USER_AGENT = "lua-resty-http/" .. _M._VERSION .. " (Lua) ngx_lua/10026"
local DEFAULT_PORTS = { http = 80, https = 443 }

-- headers readable by any case (res.headers["content-type"])
local function headers_new()
  local canon = {}
  return setmetatable({}, {
    __index = function(t, k)
      if type(k) ~= "string" then return nil end
      local c = canon[lower(k)]
      if c then return rawget(t, c) end
      return nil
    end,
    __newindex = function(t, k, v)
      local lk = lower(k)
      local c = canon[lk]
      if c and c ~= k then
        rawset(t, c, nil)
      end
      canon[lk] = k
      rawset(t, k, v)
    end,
  })
end
_M.headers_new = headers_new

function _M.new()
  local sock = ngx_socket.tcp()
  return setmetatable({ sock = sock, keepalive = true }, mt)
end

function _M.set_timeout(self, ms)
  self.sock:settimeout(ms)
end

function _M.set_timeouts(self, connect, send, read)
  self.sock:settimeouts(connect, send, read)
end

function _M.set_proxy_options()
  return nil, "proxies are not supported"
end

--- parse_uri(uri[, query_in_path = true]) -> { scheme, host, port, path, query }
function _M.parse_uri(_, uri, query_in_path)
  if query_in_path == nil then
    query_in_path = true
  end
  local scheme, rest = uri:match("^(%a[%w+.-]*)://(.*)$")
  if not scheme then
    return nil, "bad uri: " .. tostring(uri)
  end
  scheme = lower(scheme)
  if scheme ~= "http" and scheme ~= "https" then
    return nil, "bad uri: " .. tostring(uri)
  end
  local authority, path = rest:match("^([^/?#]*)(.*)$")
  authority = authority:gsub("^.*@", "") -- userinfo is dropped
  local host, port
  if sub(authority, 1, 1) == "[" then
    host, port = authority:match("^(%[[^%]]+%])(.*)$")
  else
    host, port = authority:match("^([^:]*)(.*)$")
  end
  if not host or host == "" then
    return nil, "bad uri: " .. tostring(uri)
  end
  port = port ~= "" and tonumber(sub(port, 2)) or DEFAULT_PORTS[scheme]
  if not port then
    return nil, "bad uri: " .. tostring(uri)
  end
  path = path:gsub("#.*$", "")
  local query = ""
  local q = find(path, "?", 1, true)
  if q then
    query = sub(path, q + 1)
    path = sub(path, 1, q - 1)
  end
  if path == "" then
    path = "/"
  end
  if query_in_path and query ~= "" then
    return { scheme, host, port, path .. "?" .. query }
  end
  return { scheme, host, port, path, query }
end

--- connect(host, port[, options]) or connect(options): options as
-- lua-resty-http's (scheme, host, port, pool, pool_size, backlog, ssl_verify,
-- ssl_server_name, ssl_reused_session).
function _M.connect(self, host, port, options)
  local opts
  if type(host) == "table" then
    opts = host
    host, port = opts.host, opts.port
  else
    opts = options or {}
    if type(port) == "table" then
      opts, port = port, nil
    end
  end
  local scheme = opts.scheme or "http"
  if sub(host or "", 1, 5) ~= "unix:" then
    port = tonumber(port) or DEFAULT_PORTS[scheme]
  end
  local host_bare = host and host:gsub("^%[(.*)%]$", "%1") or host
  self.host, self.port, self.scheme = host, port, scheme
  self.keepalive = true
  local pool = opts.pool
  if not pool and scheme == "https" then
    pool = fmt("%s:%s:%s:%s", host, tostring(port), tostring(opts.ssl_server_name or host),
               tostring(opts.ssl_verify ~= false))
  end
  local ok, err = self.sock:connect(host_bare, port, {
    pool = pool, pool_size = opts.pool_size, backlog = opts.backlog,
  })
  if not ok then
    return nil, err
  end
  if scheme == "https" and self.sock:getreusedtimes() == 0 then
    local sess
    sess, err = self.sock:sslhandshake(opts.ssl_reused_session, opts.ssl_server_name or host_bare,
                                       opts.ssl_verify ~= false)
    if not sess then
      self.sock:close()
      return nil, err
    end
    return true, nil, sess
  end
  return true
end

function _M.get_reused_times(self)
  return self.sock:getreusedtimes()
end

function _M.close(self)
  return self.sock:close()
end

function _M.set_keepalive(self, ...)
  if self.keepalive ~= true or self.body_pending then
    local ok, err = self.sock:close()
    if not ok then
      return nil, err
    end
    return 2, "connection must be closed"
  end
  return self.sock:setkeepalive(...)
end

-- ---------------------------------------------------------------- sending --

local function encode_query(q)
  if type(q) == "table" then
    return encode_args(q)
  end
  return q and tostring(q) or ""
end

local function format_request(self, params)
  local method = upper(params.method or "GET")
  local path = params.path or "/"
  local query = encode_query(params.query)
  if query ~= "" then
    path = path .. (find(path, "?", 1, true) and "&" or "?") .. query
  end
  local version = params.version or 1.1
  local headers = headers_new()
  for k, v in pairs(params.headers or {}) do
    headers[k] = v
  end
  if not headers["Host"] then
    local h = self.host or "localhost"
    local port = self.port
    if port and port ~= DEFAULT_PORTS[self.scheme or "http"] and sub(h, 1, 5) ~= "unix:" then
      h = h .. ":" .. port
    end
    headers["Host"] = h
  end
  if not headers["User-Agent"] then
    headers["User-Agent"] = USER_AGENT
  end
  local body = params.body
  if type(body) == "string" or type(body) == "table" then
    if not headers["Content-Length"] then
      local n = 0
      if type(body) == "string" then
        n = #body
      else
        for _, part in ipairs(body) do n = n + #tostring(part) end
      end
      headers["Content-Length"] = n
    end
  elseif type(body) == "function" then
    if not headers["Content-Length"] then
      headers["Transfer-Encoding"] = "chunked"
    end
  elseif method == "POST" or method == "PUT" or method == "PATCH" then
    if not headers["Content-Length"] then
      headers["Content-Length"] = 0
    end
  end
  local lines = { method, " ", path, " HTTP/", fmt("%.1f", version), "\r\n" }
  for k, v in pairs(headers) do
    if type(v) == "table" then
      for _, one in ipairs(v) do
        lines[#lines + 1] = k .. ": " .. tostring(one) .. "\r\n"
      end
    else
      lines[#lines + 1] = k .. ": " .. tostring(v) .. "\r\n"
    end
  end
  lines[#lines + 1] = "\r\n"
  return concat(lines), headers, method
end

function _M.send_request(self, params)
  params = params or {}
  local req, headers, method = format_request(self, params)
  self.method = method
  local conn = headers["Connection"]
  if type(conn) == "string" and find(lower(conn), "close", 1, true) then
    self.keepalive = false
  end
  local ok, err = self.sock:send(req)
  if not ok then
    return nil, err
  end
  local body = params.body
  if type(body) == "string" or type(body) == "table" then
    ok, err = self.sock:send(body)
    if not ok then
      return nil, err
    end
  elseif type(body) == "function" then
    local chunked = headers["Transfer-Encoding"] == "chunked"
    while true do
      local chunk, cerr = body()
      if cerr then
        return nil, cerr
      end
      if chunk == nil then
        break
      end
      if #chunk > 0 then
        ok, err = self.sock:send(chunked and { fmt("%x\r\n", #chunk), chunk, "\r\n" } or chunk)
        if not ok then
          return nil, err
        end
      end
    end
    if chunked then
      ok, err = self.sock:send("0\r\n\r\n")
      if not ok then
        return nil, err
      end
    end
  end
  return true
end

-- --------------------------------------------------------------- reading --

local function read_headers(sock)
  local headers = headers_new()
  while true do
    local line, err = sock:receive("*l")
    if not line then
      return nil, err
    end
    if line == "" then
      break
    end
    local k, v = line:match("^([^:%s]+)%s*:%s*(.-)%s*$")
    if k then
      local cur = headers[k]
      if cur == nil then
        headers[k] = v
      elseif type(cur) == "table" then
        cur[#cur + 1] = v
      else
        headers[k] = { cur, v }
      end
    end
  end
  return headers
end

local function header_has(v, token)
  if type(v) == "table" then
    v = concat(v, ",")
  end
  return type(v) == "string" and find("," .. lower(v):gsub("%s", "") .. ",", "," .. token .. ",",
                                      1, true) ~= nil
end

-- Body readers: reader(max) returns the next piece, or nil at the end (or
-- nil, err).
-- At most `max` (when given) of the `left` bytes still due.
local function read_part(sock, left, max)
  return sock:receive((max and max > 0 and max < left) and max or left)
end

local function chunked_reader(self, sock)
  local left, done = 0, false -- bytes left in the current chunk
  return function(max)
    if done then
      return nil
    end
    if left == 0 then
      local line, err = sock:receive("*l")
      if not line then
        return nil, err
      end
      local size = tonumber(line:match("^%s*(%x+)"), 16)
      if not size then
        return nil, "bad chunk size: " .. line
      end
      if size == 0 then
        -- trailers up to the empty line
        repeat
          line, err = sock:receive("*l")
          if not line then
            return nil, err
          end
        until line == ""
        done = true
        self.body_pending = false
        return nil
      end
      left = size
    end
    local data, err = read_part(sock, left, max)
    if not data then
      return nil, err
    end
    left = left - #data
    if left == 0 then
      local _, cerr = sock:receive(2) -- the chunk's CRLF
      if cerr then
        return nil, cerr
      end
    end
    return data
  end
end

local function length_reader(self, sock, length)
  local left = length
  return function(max)
    if left <= 0 then
      self.body_pending = false
      return nil
    end
    local data, err = read_part(sock, left, max)
    if not data then
      return nil, err
    end
    left = left - #data
    if left <= 0 then
      self.body_pending = false
    end
    return data
  end
end

local function close_reader(self, sock)
  local done = false
  return function(max)
    if done then
      return nil
    end
    local data, err, partial = sock:receive(max and max > 0 and max or "*a")
    if not data then
      if err == "closed" then
        done = true
        self.body_pending = false
        if partial and #partial > 0 then
          return partial
        end
        return nil
      end
      return nil, err
    end
    if not max or max <= 0 then
      done = true
      self.body_pending = false
    end
    return data
  end
end

local function read_body(res)
  local reader = res.body_reader
  if not reader then
    return nil, "no body to be read"
  end
  local parts = {}
  while true do
    local data, err = reader()
    if err then
      return nil, err
    end
    if not data then
      break
    end
    parts[#parts + 1] = data
  end
  return concat(parts)
end

function _M.read_response(self, params)
  params = params or {}
  local sock = self.sock
  local status, version, reason, headers
  repeat
    local line, err = sock:receive("*l")
    if not line then
      return nil, err
    end
    version, status, reason = line:match("^HTTP/(%d+%.%d+)%s+(%d%d%d)%s*(.*)$")
    if not status then
      return nil, "bad status line: " .. line
    end
    status = tonumber(status)
    headers, err = read_headers(sock)
    if not headers then
      return nil, err
    end
  until status >= 200 or status == 101
  version = tonumber(version)
  local conn = headers["Connection"]
  if version == 1.1 then
    if header_has(conn, "close") then self.keepalive = false end
  elseif not header_has(conn, "keep-alive") then
    self.keepalive = false
  end
  local method = params.method and upper(params.method) or self.method or "GET"
  local has_body = method ~= "HEAD" and status ~= 204 and status ~= 304 and status >= 200
  local res = {
    status = status, reason = reason, headers = headers, has_body = has_body,
    read_body = read_body,
    read_trailers = function() end,
  }
  if has_body then
    self.body_pending = true
    local te = headers["Transfer-Encoding"]
    local cl = tonumber(type(headers["Content-Length"]) == "table"
                        and headers["Content-Length"][1] or headers["Content-Length"])
    if te and header_has(te, "chunked") then
      res.body_reader = chunked_reader(self, sock)
    elseif cl then
      res.body_reader = length_reader(self, sock, cl)
    else
      self.keepalive = false
      res.body_reader = close_reader(self, sock)
    end
  else
    self.body_pending = false
  end
  return res
end

function _M.request(self, params)
  params = params or {}
  local ok, err = self:send_request(params)
  if not ok then
    return nil, err
  end
  return self:read_response(params)
end

--- One request with its own connection; the body is read into res.body and
-- the connection pooled (params.keepalive ~= false) or closed.
function _M.request_uri(self, uri, params)
  params = params or {}
  local parsed, err = self:parse_uri(uri, false)
  if not parsed then
    return nil, err
  end
  local scheme, host, port, path, query = parsed[1], parsed[2], parsed[3], parsed[4], parsed[5]
  local ok
  ok, err = self:connect {
    scheme = scheme, host = host, port = port,
    ssl_verify = params.ssl_verify, ssl_server_name = params.ssl_server_name,
    pool = params.pool, pool_size = params.pool_size,
  }
  if not ok then
    return nil, err
  end
  local req = {}
  for k, v in pairs(params) do
    req[k] = v
  end
  if not req.path then
    req.path = path
  end
  if not req.query and query ~= "" then
    req.query = query
  end
  local res
  res, err = self:request(req)
  if not res then
    self:close()
    return nil, err
  end
  if res.has_body then
    local body
    body, err = res:read_body()
    if not body then
      self:close()
      return nil, err
    end
    res.body = body
  end
  if params.keepalive == false then
    self:close()
  else
    self:set_keepalive(params.keepalive_timeout, params.keepalive_pool)
  end
  return res
end

return _M
