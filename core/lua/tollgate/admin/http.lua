-- tollgate.admin.http: request and response helpers for the Admin and status APIs.
--
-- Requests arrive from core/admin.c as plain tables (method, path, query,
-- headers, body); handlers answer `status, headers, body`. JSON bodies are
-- encoded with sorted keys (tollgate.declarative.serialize), so arrays must
-- carry Schema.array_mt to encode as [] when empty.

local cjson = require "cjson.safe"
local Schema = require "tollgate.schema"
local serialize = require "tollgate.declarative.serialize"

local byte, char, sub, gsub, find, lower = string.byte, string.char, string.sub, string.gsub,
                                           string.find, string.lower
local concat, tonumber, type, setmetatable = table.concat, tonumber, type, setmetatable

local _M = {
  null = Schema.null,
  array_mt = Schema.array_mt,
  JSON_TYPE = "application/json; charset=utf-8",
}

function _M.array(t)
  return setmetatable(t or {}, Schema.array_mt)
end

function _M.json(v)
  return serialize.canonical_json(v)
end

--- Percent-decoding (ngx.unescape_uri): "%XX" decoded, "+" kept.
function _M.unescape_uri(s)
  return (gsub(s, "%%(%x%x)", function(h) return char(tonumber(h, 16)) end))
end

--- ngx.escape_uri: everything but unreserved characters is %XX-encoded.
function _M.escape_uri(s)
  return (gsub(s, "[^%w%-%._~]", function(c) return ("%%%02X"):format(byte(c)) end))
end

local function form_unescape(s)
  return _M.unescape_uri((gsub(s, "+", " ")))
end

--- ngx.decode_args: "a=1&b&c=2&c=3" -> { a = "1", b = true, c = { "2", "3" } }.
function _M.decode_args(s)
  local args = {}
  if type(s) ~= "string" or s == "" then
    return args
  end
  for pair in s:gmatch("[^&]+") do
    local eq = find(pair, "=", 1, true)
    local k, v
    if eq then
      k, v = form_unescape(sub(pair, 1, eq - 1)), form_unescape(sub(pair, eq + 1))
    else
      k, v = form_unescape(pair), true
    end
    if k ~= "" then
      local old = args[k]
      if old == nil then
        args[k] = v
      elseif type(old) == "table" then
        old[#old + 1] = v
      else
        args[k] = { old, v }
      end
    end
  end
  return args
end

--- The first value of a query argument (repeated arguments give their first).
function _M.first(v)
  if type(v) == "table" then
    return v[1]
  end
  return v
end

---------------------------------------------------------------------------
-- base64 (RFC 4648; decoding accepts missing padding and the URL-safe alphabet)

local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
local B64_DEC = {}
for i = 1, 64 do
  B64_DEC[byte(B64, i)] = i - 1
end
B64_DEC[byte("-")] = 62
B64_DEC[byte("_")] = 63

function _M.encode_base64(s, no_padding)
  local out = {}
  for i = 1, #s, 3 do
    local a, b, c = byte(s, i, i + 2)
    local n = a * 65536 + (b or 0) * 256 + (c or 0)
    local c1 = math.floor(n / 262144) % 64
    local c2 = math.floor(n / 4096) % 64
    local c3 = math.floor(n / 64) % 64
    local c4 = n % 64
    out[#out + 1] = sub(B64, c1 + 1, c1 + 1) .. sub(B64, c2 + 1, c2 + 1)
                    .. (b and sub(B64, c3 + 1, c3 + 1) or (no_padding and "" or "="))
                    .. (c and sub(B64, c4 + 1, c4 + 1) or (no_padding and "" or "="))
  end
  return concat(out)
end

--- Returns nil when `s` is not base64.
function _M.decode_base64(s)
  if type(s) ~= "string" then
    return nil
  end
  s = gsub(s, "=+$", "")
  if #s % 4 == 1 then
    return nil
  end
  local out = {}
  for i = 1, #s, 4 do
    local n, count = 0, 0
    for j = i, i + 3 do
      local ch = byte(s, j)
      if ch then
        local v = B64_DEC[ch]
        if not v then
          return nil
        end
        n = n * 64 + v
        count = count + 1
      else
        n = n * 64
      end
    end
    local a = math.floor(n / 65536) % 256
    local b = math.floor(n / 256) % 256
    local c = n % 256
    if count == 4 then
      out[#out + 1] = char(a, b, c)
    elseif count == 3 then
      out[#out + 1] = char(a, b)
    else
      out[#out + 1] = char(a)
    end
  end
  return concat(out)
end

---------------------------------------------------------------------------
-- responses

--- A response: `body` a table (JSON), a string (sent as is) or nil.
function _M.response(status, body, headers)
  headers = headers or {}
  local text = ""
  if type(body) == "table" then
    text = _M.json(body)
    headers["Content-Type"] = headers["Content-Type"] or _M.JSON_TYPE
  elseif type(body) == "string" then
    text = body
  end
  return { status = status, headers = headers, body = text }
end

--- Kong's endpoint helpers: a string message becomes { message = ... }.
function _M.message(status, msg)
  return _M.response(status, { message = msg })
end

function _M.not_found(msg)
  return _M.message(404, msg or "Not found")
end

function _M.method_not_allowed()
  return _M.message(405, "Method not allowed")
end

---------------------------------------------------------------------------
-- request bodies (Kong's api_helpers.before_filter and parse_params)

local NEEDS_BODY = { PUT = true, POST = true, PATCH = true }

--- Parses the request body into req.params (merged over the query
-- arguments, as lapis does) and req.json. Returns a response on refusal.
function _M.parse_body(req, accepts_yaml)
  req.params = {}
  for k, v in pairs(req.args) do
    req.params[k] = v
  end
  if not NEEDS_BODY[req.method] then
    return nil
  end
  local ct = req.headers["content-type"]
  if not ct then
    return nil
  end
  if find(ct, ",", 1, true) then
    return _M.message(400, "Multiple Content-Type headers not allowed")
  end
  local lct = lower(ct)
  local is_json = sub(lct, 1, 16) == "application/json"
  local is_form = sub(lct, 1, 33) == "application/x-www-form-urlencoded"
  local is_multipart = sub(lct, 1, 19) == "multipart/form-data"
  local is_yaml = accepts_yaml and (sub(lct, 1, 16) == "application/yaml"
                                    or sub(lct, 1, 9) == "text/yaml")
  if not (is_json or is_form or is_multipart or is_yaml) then
    return _M.response(415, nil)
  end
  if is_json then
    if req.body == "" then
      return nil
    end
    local v = cjson.decode(req.body)
    if type(v) ~= "table" then
      return _M.message(400, "Cannot parse JSON body")
    end
    req.json = v
    if not serialize.is_array(v) then
      for k, x in pairs(v) do
        req.params[k] = x
      end
    end
  elseif is_form then
    for k, x in pairs(_M.decode_args(req.body)) do
      req.params[k] = x
    end
  elseif is_multipart then
    local boundary = ct:match("boundary=\"?([^\";]+)\"?")
    if boundary then
      local delim = "--" .. boundary
      local body = req.body
      local pos = find(body, delim, 1, true)
      while pos do
        local start = pos + #delim
        if sub(body, start, start + 1) == "--" then
          break
        end
        local nxt = find(body, "\r\n" .. delim, start, true)
        local part = sub(body, start + 2, (nxt or #body + 1) - 1)
        local head, value = part:match("^(.-)\r\n\r\n(.*)$")
        local name = head and head:match("[Nn][Aa][Mm][Ee]=\"([^\"]+)\"")
        if name then
          req.params[name] = value
        end
        pos = nxt and nxt + 2
      end
    end
  end
  return nil
end

---------------------------------------------------------------------------
-- route patterns ("/services/:services/routes")

--- Compiles { pattern = methods } into a list matched by _M.match.
function _M.compile(routes)
  local list = {}
  for pattern, methods in pairs(routes) do
    local segs, rank = {}, {}
    for seg in pattern:gmatch("[^/]+") do
      local p = seg:match("^:(.+)$")
      segs[#segs + 1] = p and { param = p } or { lit = seg }
      rank[#rank + 1] = p and "0" or "1"
    end
    list[#list + 1] = { pattern = pattern, segs = segs, rank = concat(rank), methods = methods }
  end
  table.sort(list, function(a, b) return a.pattern < b.pattern end)
  return list
end

function _M.split_path(path)
  local segs = {}
  for seg in path:gmatch("[^/]+") do
    segs[#segs + 1] = seg
  end
  return segs
end

--- The best route for the path segments (a literal segment beats a
-- parameter at the same place): route, raw params; or nil.
function _M.match(compiled, segs)
  local best, best_params
  for _, r in ipairs(compiled) do
    if #r.segs == #segs then
      local params = {}
      local ok = true
      for i, s in ipairs(r.segs) do
        if s.lit then
          if s.lit ~= segs[i] then ok = false break end
        else
          params[s.param] = segs[i]
        end
      end
      if ok and (not best or r.rank > best.rank) then
        best, best_params = r, params
      end
    end
  end
  return best, best_params
end

--- Path parameters percent-decoded.
function _M.unescape_params(raw)
  local params = {}
  for k, v in pairs(raw) do
    params[k] = _M.unescape_uri(v)
  end
  return params
end

return _M
