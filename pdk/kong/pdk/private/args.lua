-- kong.pdk.private.args: query/form string decoding and encoding as
-- ngx.decode_args / ngx.encode_args do, and URI escaping.
local byte = string.byte
local char = string.char
local find = string.find
local sub = string.sub
local gsub = string.gsub
local format = string.format
local tonumber = tonumber
local tostring = tostring
local type = type
local pairs = pairs
local ipairs = ipairs
local concat = table.concat
local sort = table.sort
local error = error

local args = {}

local function hex_to_char(h)
  return char(tonumber(h, 16))
end

--- ngx.unescape_uri: %XX decoded, "+" becomes a space.
function args.unescape_uri(s)
  s = tostring(s)
  s = gsub(s, "+", " ")
  return (gsub(s, "%%(%x%x)", hex_to_char))
end

-- ngx.escape_uri (type 2, a URI component): unreserved kept, the rest %XX
local function esc_char(c)
  return format("%%%02X", byte(c))
end

function args.escape_uri(s, typ)
  s = tostring(s)
  if typ == 0 then
    -- a whole URI: keeps the reserved characters
    return (gsub(s, "[^%w%-%._~!#%$&'%(%)%*%+,/:;=%?@%[%]]", esc_char))
  end
  return (gsub(s, "[^%w%-%._~]", esc_char))
end

--- ngx.decode_args(str, max): repeated keys become lists, a key alone is
-- true, "a=" is "". Returns t, "truncated" past max (100 by default, 0: all).
function args.decode(str, max)
  if max == nil then
    max = 100
  end
  local t = {}
  local n = 0
  local len = #str
  local pos = 1
  while pos <= len do
    local amp = find(str, "&", pos, true)
    local piece
    if amp then
      piece, pos = sub(str, pos, amp - 1), amp + 1
    else
      piece, pos = sub(str, pos), len + 1
    end
    if piece ~= "" then
      if max > 0 and n >= max then
        return t, "truncated"
      end
      local eq = find(piece, "=", 1, true)
      local k, v
      if eq then
        k, v = args.unescape_uri(sub(piece, 1, eq - 1)), args.unescape_uri(sub(piece, eq + 1))
      else
        k, v = args.unescape_uri(piece), true
      end
      if k ~= "" then
        n = n + 1
        local cur = t[k]
        if cur == nil then
          t[k] = v
        elseif type(cur) == "table" then
          cur[#cur + 1] = v
        else
          t[k] = { cur, v }
        end
      end
    end
  end
  return t
end

local function encode_pair(out, k, v)
  if v == true then
    out[#out + 1] = args.escape_uri(k)
  elseif v == false then
    return
  else
    out[#out + 1] = args.escape_uri(k) .. "=" .. args.escape_uri(v)
  end
end

--- ngx.encode_args(t): keys in sorted order (deterministic), lists as
-- repeated keys, true as a bare key, false left out.
function args.encode(t)
  if type(t) ~= "table" then
    error("bad argument #1 to 'encode_args' (table expected, got " .. type(t) .. ")", 2)
  end
  local keys = {}
  for k in pairs(t) do
    local tk = type(k)
    if tk ~= "string" and tk ~= "number" then
      error("attempt to use " .. tk .. " as query arg key", 2)
    end
    keys[#keys + 1] = tostring(k)
  end
  sort(keys)
  local out = {}
  for _, ks in ipairs(keys) do
    local v = t[ks]
    if v == nil then
      v = t[tonumber(ks)]
    end
    local tv = type(v)
    if tv == "table" then
      for _, vv in ipairs(v) do
        encode_pair(out, ks, vv)
      end
    elseif tv == "string" or tv == "number" or tv == "boolean" then
      encode_pair(out, ks, v)
    else
      error("attempt to use " .. tv .. " as query arg value", 2)
    end
  end
  return concat(out, "&")
end

--- A simple multipart/form-data parser: name -> value (repeated names as
-- lists); file parts give their content. Returns nil, err on bad input.
function args.multipart(body, content_type)
  local boundary = content_type:match(";%s*[Bb][Oo][Uu][Nn][Dd][Aa][Rr][Yy]=\"([^\"]+)\"")
                   or content_type:match(";%s*[Bb][Oo][Uu][Nn][Dd][Aa][Rr][Yy]=([^;%s]+)")
  if not boundary then
    return nil, "no boundary"
  end
  local delim = "--" .. boundary
  local t = {}
  local pos = find(body, delim, 1, true)
  if not pos then
    return nil, "no boundary in body"
  end
  pos = pos + #delim
  while true do
    if sub(body, pos, pos + 1) == "--" then
      break -- closing delimiter
    end
    local hstart = find(body, "\r\n", pos, true)
    if not hstart then
      return nil, "truncated part"
    end
    local hend = find(body, "\r\n\r\n", hstart, true)
    local head
    if sub(body, hstart, hstart + 3) == "\r\n\r\n" then
      head, hend = "", hstart
    elseif hend then
      head = sub(body, hstart + 2, hend - 1)
    else
      return nil, "truncated part headers"
    end
    local nxt = find(body, "\r\n" .. delim, hend + 4, true)
    if not nxt then
      return nil, "missing closing boundary"
    end
    local value = sub(body, hend + 4, nxt - 1)
    local name
    for line in (head .. "\r\n"):gmatch("(.-)\r\n") do
      local hn, hv = line:match("^([^:]+):%s*(.*)$")
      if hn and hn:lower() == "content-disposition" then
        name = hv:match(";%s*name=\"([^\"]*)\"") or hv:match(";%s*name=([^;%s]+)")
      end
    end
    if name then
      local cur = t[name]
      if cur == nil then
        t[name] = value
      elseif type(cur) == "table" then
        cur[#cur + 1] = value
      else
        t[name] = { cur, value }
      end
    end
    pos = nxt + 2 + #delim
  end
  return t
end

--- kong.request.get_body / kong.service.response.get_body: decodes `body`
-- as `mime` ("application/x-www-form-urlencoded", "application/json" or
-- "multipart/form-data"; content_type carries the multipart boundary).
-- get_raw returns the body or nil, err. Returns value, err, mime.
-- `level`: where errors about max_args point.
function args.decode_body(mime, content_type, get_raw, max_args, level)
  if mime == "application/x-www-form-urlencoded" and max_args ~= nil then
    if type(max_args) ~= "number" then
      error("max_args must be a number", level)
    elseif max_args < 1 then
      error("max_args must be >= 1", level)
    elseif max_args > 1000 then
      error("max_args must be <= 1000", level)
    end
  end
  local body, err = get_raw()
  if not body then
    return nil, err, mime
  end
  if mime == "application/x-www-form-urlencoded" then
    return args.decode(body, max_args or 100), nil, mime
  elseif mime == "application/json" then
    local json = require("cjson.safe").decode(body)
    if type(json) ~= "table" then
      return nil, "invalid json body", mime
    end
    return json, nil, mime
  end
  local t = args.multipart(body, content_type)
  if not t then
    return nil, "unable to decode multipart body", mime
  end
  return t, nil, mime
end

return args
