-- kong.tools.http: Kong 3.10's HTTP helpers (re-exported by kong.tools.utils).
-- Functions that read the request (check_https, get_header,
-- calculate_resource_ttl) need the ngx API of a worker.

local tstring = require "kong.tools.string"
local EMPTY = require("kong.tools.table").EMPTY
local url = require "socket.url"

local type, pairs, ipairs, tostring, tonumber = type, pairs, ipairs, tostring, tonumber
local sort, concat = table.sort, table.concat
local fmt, lower = string.format, string.lower
local max = math.max

local function ngx_api()
  return rawget(_G, "ngx")
end

local function null()
  local ngx = ngx_api()
  return ngx and ngx.null or require("cjson").null
end

local _M = {}

_M.CONTENT_TYPES = {
  CONTENT_TYPE = "Content-Type",
  CONTENT_TYPE_POST = "application/x-www-form-urlencoded",
  CONTENT_TYPE_JSON = "application/json",
  CONTENT_TYPE_FORM_DATA = "multipart/form-data",
}

-- numbers first, then the other keys, each group sorted
local function key_order(a, b)
  local ta, tb = type(a), type(b)
  if ta == tb then
    return a < b
  end
  return ta == "number"
end

local function sorted_keys(t)
  local keys = {}
  for k in pairs(t) do
    keys[#keys + 1] = k
  end
  sort(keys, key_order)
  return keys
end

local function pair(key, value, raw)
  if not raw then
    key = url.escape(key)
  end
  if value == nil then
    return key
  end
  if not raw then
    value = url.escape(value)
  end
  return key .. "=" .. value
end

local function encode_nested(prefix, t, raw, no_indexes, out)
  for _, k in ipairs(sorted_keys(t)) do
    local v = t[k]
    local key
    if type(k) == "number" then
      key = no_indexes and (prefix .. "[]") or (prefix .. "[" .. tostring(k) .. "]")
    else
      key = prefix .. "." .. tostring(k)
    end
    if type(v) == "table" then
      encode_nested(key, v, raw, no_indexes, out)
    else
      out[#out + 1] = pair(key, v, raw)
    end
  end
end

--- A query string from a table (Kong's encoding: sorted keys, percent-encoded
-- unless `raw`, nested tables as `a[1]` / `a.b` (`a[]` with
-- `no_array_indexes`), null as "key=", "" as a bare key).
function _M.encode_args(args, raw, no_array_indexes)
  local out = {}
  local nullv = null()
  for _, k in ipairs(sorted_keys(args)) do
    local v = args[k]
    if type(v) == "table" then
      encode_nested(k, v, raw, no_array_indexes, out)
    elseif v == nullv then
      out[#out + 1] = pair(k, "")
    else
      v = tostring(v)
      if v ~= "" then
        out[#out + 1] = pair(k, v, raw)
      else
        out[#out + 1] = k
      end
    end
  end
  return concat(out, "&")
end

-- { ["1"] = "a", ["2"] = "b" } -> { "a", "b" }; nil unless keys are 1..n
local function as_array(t)
  local nums, n = {}, 0
  for k in pairs(t) do
    local num = tonumber(k)
    if not num then
      return nil
    end
    n = n + 1
    nums[n] = num
  end
  sort(nums)
  local out = {}
  for i = 1, n do
    if nums[i] ~= i then
      return nil
    end
    local v = t[tostring(i)]
    if v == nil then
      v = t[i]
    end
    out[i] = v
  end
  return out
end

--- Form arguments as Kong's Admin API reads them: numeric-keyed tables to
-- arrays, "" to null, "true"/"false" to booleans.
function _M.decode_args(args)
  local out = {}
  local nullv = null()
  for k, v in pairs(args) do
    if type(v) == "table" then
      v = as_array(v) or v
    elseif v == "" then
      v = nullv
    elseif v == "true" then
      v = true
    elseif v == "false" then
      v = false
    end
    out[k] = v
  end
  return out
end

--- Whether the request is https, or (allow_terminated, from a trusted peer)
-- arrived with X-Forwarded-Proto: https; nil, err for several values.
function _M.check_https(trusted_ip, allow_terminated)
  local ngx = ngx_api()
  if lower(ngx.var.scheme or "") == "https" then
    return true
  end
  if not allow_terminated or not trusted_ip then
    return false
  end
  local proto = ngx.var.http_x_forwarded_proto
  if not proto then
    return false
  end
  if proto:find(",", 1, true) then
    return nil, "Only one X-Forwarded-Proto header allowed"
  end
  return lower(proto) == "https"
end

-- RFC 2616 token: no controls, no bytes >= 0x80, no separators
local function bad_token_char(s)
  return s:find("[%z\1-\31\127-\255 \t()<>@,;:\\\"/?={}%[%]]") ~= nil
end

--- token | nil, err
function _M.validate_http_token(token)
  if token == nil or token == "" then
    return nil, "no token provided"
  end
  if not bad_token_char(token) then
    return token
  end
  return nil, "contains one or more invalid characters. ASCII control characters (0-31;127), "
              .. "space, tab and the characters ()<>@,;:\\\"/?={}[] are not allowed."
end

--- name | nil, err (A-Z, a-z, 0-9, "-" and "_")
function _M.validate_header_name(name)
  if name == nil or name == "" then
    return nil, "no header name provided"
  end
  if name:match("^[%w_-]+$") then
    return name
  end
  return nil, "bad header name '" .. name .. "', allowed characters are A-Z, a-z, 0-9, '_', and '-'"
end

_M.validate_cookie_name = _M.validate_http_token

local EXIT_OVERRIDES = { [405] = "Method not allowed", [500] = "An unexpected error occurred",
                         [502] = "Bad gateway" }
local EXIT_DEFAULTS = { [401] = "Unauthorized", [404] = "Not found",
                        [503] = "Service unavailable" }

--- The body kong.response.exit would send for `status` and `message`: nil
-- for 204; fixed messages for 405, 500 and 502; defaults for 401, 404, 503;
-- a non-table message wrapped as { message = ... }.
function _M.get_default_exit_body(status, message)
  if type(status) ~= "number" then
    error("code must be a number", 2)
  elseif status < 100 or status > 599 then
    error(fmt("code must be a number between %u and %u", 100, 599), 2)
  end
  if status == 204 then
    return nil
  end
  local body = EXIT_OVERRIDES[status] or message or EXIT_DEFAULTS[status]
  if body ~= nil and type(body) ~= "table" then
    body = { message = body }
  end
  return body
end

local MIME_TYPES = {
  ["application/grpc"] = "",
  ["text/html"] = "text/html; charset=utf-8",
  ["application/json"] = "application/json; charset=utf-8",
  ["text/plain"] = "text/plain; charset=utf-8",
  ["application/xml"] = "application/xml; charset=utf-8",
  application = "application/json; charset=utf-8",
  text = "text/plain; charset=utf-8",
  default = "application/json; charset=utf-8",
}

local TEMPLATES = {
  ["application/grpc"] = "",
  ["text/html"] = "<!doctype html>\n<html>\n  <head>\n    <meta charset=\"utf-8\">\n"
    .. "    <title>Error</title>\n  </head>\n  <body>\n    <h1>Error</h1>\n    <p>%s.</p>\n"
    .. "    <p>request_id: %s</p>\n  </body>\n</html>\n",
  ["application/json"] = "{\n  \"message\":\"%s\",\n  \"request_id\":\"%s\"\n}",
  ["text/plain"] = "%s\nrequest_id: %s\n",
  ["application/xml"] = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<error>\n"
    .. "  <message>%s</message>\n  <requestid>%s</requestid>\n</error>\n",
}

-- error_template_<format> from kong.configuration, read once (false: none)
local custom_templates = setmetatable({}, {
  __index = function(self, format)
    local k = rawget(_G, "kong")
    local path = type(k) == "table" and type(k.configuration) == "table"
                 and k.configuration["error_template_" .. format]
    local text = false
    if path then
      local f = io.open(path, "rb")
      if f then
        text = f:read("*a") or false
        f:close()
      end
    end
    rawset(self, format, text)
    return text
  end,
})

local MEDIA_CHARS = "[%w!#$&^_+.-]"

-- "type/subtype;params" -> media type, q (Kong's Accept grammar)
local function parse_accept_item(item)
  local params = tstring.splitn(item, ";")
  local media = tstring.strip(params[1])
  local range = "^(" .. "[%w]" .. MEDIA_CHARS .. "+)$"
  local typ, sub = media:match("^([^/]+)/(.+)$")
  if not typ then
    return nil
  end
  local function part_ok(p)
    return p == "*" or p:match(range) ~= nil
  end
  typ, sub = tstring.strip(typ), tstring.strip(sub)
  if not part_ok(typ) or not part_ok(sub) then
    return nil
  end
  local q
  for i = 2, #params do
    local p = tstring.strip(params[i])
    local qv = p:match("^[qQ]%s*=%s*(.-)$")
    if qv and (qv:match("^1%.?0?0?0?$") or qv:match("^0%.?%d?%d?%d?$")) then
      q = qv
    elseif p:match("^[%w]" .. MEDIA_CHARS .. "+=") or p:match("^[%w]" .. MEDIA_CHARS .. "+$") then
      -- another parameter
    else
      break
    end
  end
  return typ .. "/" .. sub, q
end

--- The response Content-Type for an Accept header (string or table): the
-- known MIME type of the highest-quality entry; JSON by default.
function _M.get_response_type(accept)
  local content_type = MIME_TYPES.default
  if type(accept) == "table" then
    accept = tstring.join(",", accept)
  end
  if accept ~= nil then
    local best = 0
    for item in tstring.isplitn(accept, ",") do
      local media, q = parse_accept_item(tstring.strip(item))
      if media then
        q = tonumber(q) or 1
        if q > best then
          best = q
          content_type = _M.get_mime_type(media) or content_type
        end
      end
    end
  end
  return content_type
end

--- The response MIME type for a content type ("text/*" -> text/plain, "*/*"
-- -> JSON); unknown ones give the default unless use_default is false (then
-- nil, "could not find MIME type").
function _M.get_mime_type(content_header, use_default)
  if use_default == nil then
    use_default = true
  end
  local media = tstring.split_once(tstring.strip(content_header), ";")
  local parts, count = tstring.splitn(media, "/", 3)
  local mime
  if count > 1 then
    if parts[2] == "*" then
      mime = parts[1] == "*" and MIME_TYPES.default or MIME_TYPES[parts[1]]
    else
      mime = MIME_TYPES[media]
    end
  end
  if mime or use_default then
    return mime or MIME_TYPES.default
  end
  return nil, "could not find MIME type"
end

--- The error page template (message, request id) for a MIME type; a custom
-- error_template_<format> from the configuration wins.
function _M.get_error_template(mime_type)
  for _, f in ipairs({ { "application/json", "json" }, { "text/html", "html" },
                       { "application/xml", "xml" }, { "text/plain", "plain" } }) do
    if mime_type == f[1] or mime_type == MIME_TYPES[f[1]] then
      return custom_templates[f[2]] or TEMPLATES[f[1]]
    end
  end
  if mime_type == "application/grpc" or mime_type == MIME_TYPES["application/grpc"] then
    return TEMPLATES["application/grpc"]
  end
  return nil, "no template found for MIME type " .. (mime_type or "empty")
end

--- The first value of request header `name` (cached in ctx when given).
function _M.get_header(name, ctx)
  local ngx = ngx_api()
  local headers
  if ctx then
    headers = ctx.cached_request_headers
    if not headers then
      headers = ngx.req.get_headers()
      ctx.cached_request_headers = headers
    end
  else
    local v = ngx.var["http_" .. tstring.replace_dashes(name)]
    if not v or not v:find(", ", 1, true) then
      return v
    end
    headers = ngx.req.get_headers()
  end
  local v = headers[name]
  if type(v) == "table" then
    return v[1]
  end
  return v
end

--- "public, max-age=3600" -> { public = true, ["max-age"] = 3600 } (names
-- lowercased, numeric values as numbers); nil -> an empty read-only table.
function _M.parse_directive_header(h)
  if not h then
    return EMPTY
  end
  if type(h) == "table" then
    h = concat(h, ", ")
  end
  local t = {}
  for item in h:gmatch("[^,]+") do
    local name, value = item:match("^%s*([^=]+)=(.+)$")
    if not name then
      name = item:match("^%s*([^=]+)")
    end
    if name then
      t[lower(name)] = tonumber(value) or value or true
    end
  end
  return t
end

local MONTHS = { Jan = 1, Feb = 2, Mar = 3, Apr = 4, May = 5, Jun = 6, Jul = 7, Aug = 8,
                 Sep = 9, Oct = 10, Nov = 11, Dec = 12 }

-- days since 1970-01-01 of a civil date
local function days_from_civil(y, m, d)
  y = m <= 2 and y - 1 or y
  local era = math.floor(y / 400)
  local yoe = y - era * 400
  local mp = (m + 9) % 12
  local doy = math.floor((153 * mp + 2) / 5) + d - 1
  local doe = yoe * 365 + math.floor(yoe / 4) - math.floor(yoe / 100) + doy
  return era * 146097 + doe - 719468
end

-- an HTTP date (RFC 1123, RFC 850 or asctime) -> seconds since the epoch
local function parse_http_time(s)
  local ngx = ngx_api()
  if ngx and ngx.parse_http_time then
    return ngx.parse_http_time(s)
  end
  local d, mon, y, hh, mm, ss = s:match("^%a+, (%d%d?) (%a%a%a) (%d%d%d%d) (%d%d):(%d%d):(%d%d) GMT$")
  if not d then
    d, mon, y, hh, mm, ss = s:match("^%a+, (%d%d)%-(%a%a%a)%-(%d%d) (%d%d):(%d%d):(%d%d) GMT$")
    if y then
      y = tonumber(y) + (tonumber(y) < 70 and 2000 or 1900)
    end
  end
  if not d then
    mon, d, hh, mm, ss, y = s:match("^%a+ (%a%a%a) +(%d%d?) (%d%d):(%d%d):(%d%d) (%d%d%d%d)$")
  end
  if not d or not MONTHS[mon] then
    return nil
  end
  return days_from_civil(tonumber(y), MONTHS[mon], tonumber(d)) * 86400
         + tonumber(hh) * 3600 + tonumber(mm) * 60 + tonumber(ss)
end

--- Seconds a response may be cached: s-maxage, else max-age of the parsed
-- Cache-Control, else the response's Expires minus now; never negative.
function _M.calculate_resource_ttl(res_cc)
  local ttl = res_cc and (res_cc["s-maxage"] or res_cc["max-age"])
  if not ttl then
    local ngx = ngx_api()
    local expires = ngx and ngx.var and ngx.var.sent_http_expires
    if type(expires) == "table" then
      expires = expires[#expires]
    end
    local at = expires and parse_http_time(tostring(expires))
    if at then
      ttl = at - (ngx.time and ngx.time() or os.time())
    end
  end
  return ttl and max(ttl, 0) or 0
end

return _M
