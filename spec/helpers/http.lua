-- spec/helpers/http.lua: a small HTTP/1.1 client over LuaSocket for specs,
-- plus a raw-socket helper for hostile input.
--
--   local c = http.new("127.0.0.1", 9000, 5000)   -- timeout in ms
--   local res = c:get("/path", { headers = {...}, query = {...} })
--   res.status, res.headers["content-type"], res:read_body()
--
-- Responses are read whole (keepalive friendly); `headers` is case-insensitive
-- and a repeated header is a list of its values.
local socket = require "socket"
local cjson = require "cjson.safe"

local _M = {}

local function lower_index(t, k)
  if type(k) == "string" then
    return rawget(t, k:lower())
  end
end

-- A case-insensitive header table: keys are stored lowercased.
function _M.headers_table()
  return setmetatable({}, {
    __index = lower_index,
    __newindex = function(t, k, v) rawset(t, type(k) == "string" and k:lower() or k, v) end,
  })
end

local function url_escape(s)
  return (tostring(s):gsub("[^%w%-%._~]", function(c) return string.format("%%%02X", c:byte()) end))
end
_M.url_escape = url_escape

function _M.encode_args(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  local out = {}
  for _, k in ipairs(keys) do
    local v = t[k]
    if type(v) == "table" then
      for _, x in ipairs(v) do out[#out + 1] = url_escape(k) .. "=" .. url_escape(x) end
    elseif v == true then
      out[#out + 1] = url_escape(k)
    else
      out[#out + 1] = url_escape(k) .. "=" .. url_escape(v)
    end
  end
  return table.concat(out, "&")
end

local client = {}
client.__index = client

-- timeout: milliseconds (Kong's helpers take ms).
function _M.new(host, port, timeout)
  local self = setmetatable({ host = host, port = port, timeout = (timeout or 10000) / 1000 }, client)
  return self
end

function client:connect()
  if self.sock then return true end
  local sock = socket.tcp()
  sock:settimeout(self.timeout)
  local ok, err = sock:connect(self.host, self.port)
  if not ok then
    sock:close()
    return nil, "connect to " .. self.host .. ":" .. self.port .. " failed: " .. tostring(err)
  end
  sock:setoption("tcp-nodelay", true)
  self.sock = sock
  return true
end

function client:close()
  if self.sock then
    self.sock:close()
    self.sock = nil
  end
  return true
end

function client:receive(pattern)
  local data, err, partial = self.sock:receive(pattern)
  if not data then
    return nil, err, partial
  end
  return data
end

-- Reads one response head (skipping 100 Continue unless want_interim);
-- returns status, reason, version, headers.
function client:read_head()
  local line, err = self:receive("*l")
  if not line then return nil, "reading status line: " .. tostring(err) end
  local version, status, reason = line:match("^(HTTP/%d%.%d) (%d%d%d) ?(.*)$")
  if not version then return nil, "bad status line: " .. line end
  local headers = _M.headers_table()
  local raw = {}
  while true do
    local h, herr = self:receive("*l")
    if not h then return nil, "reading headers: " .. tostring(herr) end
    if h == "" then break end
    local name, value = h:match("^([^:]+):%s*(.-)%s*$")
    if name then
      raw[#raw + 1] = { name, value }
      local cur = headers[name]
      if cur == nil then
        headers[name] = value
      elseif type(cur) == "table" then
        cur[#cur + 1] = value
      else
        headers[name] = { cur, value }
      end
    end
  end
  return tonumber(status), reason, version, headers, raw
end

local function header_has(v, token)
  if type(v) == "table" then v = table.concat(v, ",") end
  if not v then return false end
  for t in v:gmatch("[^,%s]+") do
    if t:lower() == token then return true end
  end
  return false
end
_M.header_has = header_has

function client:read_chunked()
  local parts = {}
  while true do
    local line, err = self:receive("*l")
    if not line then return nil, "reading chunk size: " .. tostring(err) end
    local size = tonumber(line:match("^%s*(%x+)"), 16)
    if not size then return nil, "bad chunk size line: " .. line end
    if size == 0 then
      repeat
        line, err = self:receive("*l")
        if not line then return nil, "reading trailers: " .. tostring(err) end
      until line == ""
      return table.concat(parts)
    end
    local data, derr = self:receive(size)
    if not data then return nil, "reading chunk: " .. tostring(derr) end
    parts[#parts + 1] = data
    self:receive("*l")
  end
end

local response = {}
response.__index = response

function response:read_body()
  return self.body, self.body_err
end

-- opts: method, path, headers, body (string, or table encoded per
-- Content-Type: JSON by default for tables), query (table or string).
function client:send(opts)
  opts = opts or {}
  local method = (opts.method or "GET"):upper()
  local path = opts.path or "/"
  if opts.query then
    local q = type(opts.query) == "table" and _M.encode_args(opts.query) or opts.query
    if q ~= "" then path = path .. (path:find("?", 1, true) and "&" or "?") .. q end
  end
  local headers = _M.headers_table()
  for k, v in pairs(opts.headers or {}) do headers[k] = v end
  local body = opts.body
  if opts.chunks then -- a list of strings sent as chunks of a chunked body
    local framed = {}
    for _, c in ipairs(opts.chunks) do
      if #c > 0 then framed[#framed + 1] = string.format("%x\r\n%s\r\n", #c, c) end
    end
    framed[#framed + 1] = "0\r\n\r\n"
    body = table.concat(framed)
    headers["transfer-encoding"] = "chunked"
  elseif type(body) == "table" then
    local ct = headers["content-type"] or "application/json"
    headers["content-type"] = ct
    if ct:find("x-www-form-urlencoded", 1, true) then
      body = _M.encode_args(body)
    else
      body = assert(cjson.encode(body))
    end
  end
  if headers["host"] == nil then
    headers["host"] = self.host_header or (self.host .. ":" .. self.port)
  end
  if body and headers["content-length"] == nil and headers["transfer-encoding"] == nil then
    headers["content-length"] = tostring(#body)
  end
  local lines = { method .. " " .. path .. " HTTP/1.1" }
  local names = {}
  for k in pairs(headers) do names[#names + 1] = k end
  table.sort(names)
  for _, k in ipairs(names) do
    local v = headers[k]
    if type(v) == "table" then
      for _, x in ipairs(v) do lines[#lines + 1] = k .. ": " .. tostring(x) end
    elseif v ~= false then
      lines[#lines + 1] = k .. ": " .. tostring(v)
    end
  end
  local req = table.concat(lines, "\r\n") .. "\r\n\r\n"

  for attempt = 1, 2 do
    local reused = self.sock ~= nil
    local ok, err = self:connect()
    if not ok then return nil, err end
    local sent, serr = self.sock:send(req)
    if sent and body then
      -- with Transfer-Encoding: chunked the body is already framed (opts.chunks,
      -- or framed by the caller)
      sent, serr = self.sock:send(body)
    end
    if not sent then
      self:close()
      if not (reused and attempt == 1) then return nil, "send failed: " .. tostring(serr) end
    else
      local res, rerr = self:read_response(method, opts)
      if res or not (reused and attempt == 1) then return res, rerr end
      -- a kept-alive connection closed under us: retry once on a new one
    end
  end
  return nil, "unreachable"
end

function client:read_response(method, opts)
  local status, reason, version, headers, raw
  repeat
    status, reason, version, headers, raw = self:read_head()
    if not status then
      self:close()
      return nil, reason
    end
  until not (status >= 100 and status < 200 and status ~= 101)
  local res = setmetatable({ status = status, reason = reason, version = version,
                             headers = headers, raw_headers = raw }, response)
  local body, berr
  if method == "HEAD" or status == 204 or status == 304 or status == 101 then
    body = ""
  elseif header_has(headers["transfer-encoding"], "chunked") then
    body, berr = self:read_chunked()
  elseif headers["content-length"] then
    local n = tonumber(type(headers["content-length"]) == "table" and headers["content-length"][1]
                       or headers["content-length"])
    if n and n > 0 then
      local data, err, partial = self:receive(n)
      body, berr = data or partial, err
    else
      body = ""
    end
  else
    local data, err, partial = self:receive("*a")
    body, berr = data or partial, (err ~= "closed" and err or nil)
    self:close()
  end
  res.body, res.body_err = body, berr
  if status == 101 then
    res.socket = self.sock -- the caller owns the tunnel now
    self.sock = nil
  elseif berr or header_has(headers["connection"], "close") or version == "HTTP/1.0" then
    self:close()
  end
  return res
end

for _, m in ipairs({ "get", "post", "put", "patch", "delete", "head", "options" }) do
  client[m] = function(self, path, opts)
    local o = {}
    for k, v in pairs(opts or {}) do o[k] = v end
    o.method, o.path = m:upper(), path
    return self:send(o)
  end
end

-- The raw-socket helper: connects, sends `data` (a string or a list of strings
-- sent with `pause` seconds between them), then reads until the peer closes or
-- `timeout` seconds pass. Returns the bytes received and whether the peer
-- closed the connection ("closed") or not ("timeout").
function _M.raw(host, port, data, timeout, pause)
  local sock = socket.tcp()
  sock:settimeout(timeout or 5)
  local ok, err = sock:connect(host, port)
  if not ok then return nil, err end
  if type(data) == "string" then data = { data } end
  for i, piece in ipairs(data) do
    if i > 1 and pause then socket.sleep(pause) end
    local sent, serr = sock:send(piece)
    if not sent then
      -- the server may close early (e.g. 414 while we still send); keep what it said
      if serr ~= "closed" then break end
      break
    end
  end
  local out = {}
  local state = "timeout"
  local deadline = socket.gettime() + (timeout or 5)
  while socket.gettime() < deadline do
    sock:settimeout(math.max(0.01, deadline - socket.gettime()))
    local chunk, rerr, partial = sock:receive(8192)
    chunk = chunk or partial
    if chunk and #chunk > 0 then out[#out + 1] = chunk end
    if rerr == "closed" then state = "closed" break end
    if rerr == "timeout" then break end
    if rerr then state = "closed" break end
  end
  sock:close()
  return table.concat(out), state
end

-- Parses the first response out of raw bytes: status, headers, body (the rest).
function _M.parse_raw(data)
  local head, rest = data:match("^(.-)\r\n\r\n(.*)$")
  if not head then return nil end
  local status = tonumber(head:match("^HTTP/%d%.%d (%d%d%d)"))
  local headers = _M.headers_table()
  for name, value in head:gmatch("\r\n([^:\r\n]+):%s*([^\r\n]*)") do
    headers[name] = value
  end
  return status, headers, rest
end

return _M
