-- kong.tools.string: Kong 3.10's string helpers (re-exported by kong.tools.utils).

local type, tostring, tonumber, ipairs = type, tostring, tonumber, ipairs
local find, sub, byte, gsub, lower, fmt = string.find, string.sub, string.byte, string.gsub,
                                          string.lower, string.format
local huge = math.huge

local _M = {}

--- Penlight's stringx.join(sep, list) and stringx.split(s, sep, n).
_M.join = require("pl.stringx").join
_M.split = require("pl.stringx").split

local function split_once(value, delim, plain)
  if value == nil then
    return nil, nil
  elseif delim == nil then
    return value, nil
  elseif delim == "" then
    return "", value
  elseif value == "" then
    return "", nil
  end
  local s, e = find(value, delim, 1, plain)
  if not s then
    return value, nil
  end
  return sub(value, 1, s - 1), sub(value, e + 1)
end

--- Splits at the first plain `delim`: before, after (after is nil when absent).
function _M.split_once(value, delim)
  return split_once(value, delim, true)
end

--- As split_once, with a Lua pattern.
function _M.psplit_once(value, pattern)
  return split_once(value, pattern, false)
end

-- Kong's splitn: at most n parts (the last one holds the rest); an empty
-- delimiter splits between every character, with "" first and last.
local function splitn(value, delim, n, plain)
  local limit = n or huge
  if value == nil or limit < 1 then
    return {}, 0
  elseif delim == nil or limit == 1 then
    return { value }, 1
  elseif delim == "" then
    local parts = { "" }
    for i = 1, #value do
      if #parts == limit - 1 then
        parts[#parts + 1] = sub(value, i)
        return parts, #parts
      end
      parts[#parts + 1] = sub(value, i, i)
    end
    if #parts < limit then
      parts[#parts + 1] = ""
    end
    return parts, #parts
  elseif value == "" then
    return { "" }, 1
  end
  local parts, count, pos = {}, 0, 1
  while count < limit - 1 do
    local s, e = find(value, delim, pos, plain)
    if not s then
      break
    end
    count = count + 1
    parts[count] = sub(value, pos, s - 1)
    pos = e + 1
  end
  count = count + 1
  parts[count] = sub(value, pos)
  return parts, count
end

--- Splits on a plain delimiter into at most n parts: parts, count.
function _M.splitn(value, delim, n)
  return splitn(value, delim, n, true)
end

--- As splitn, with a Lua pattern.
function _M.psplitn(value, pattern, n)
  return splitn(value, pattern, n, false)
end

local function iterate(parts, count)
  local i = 0
  return function()
    i = i + 1
    if i <= count then
      return parts[i]
    end
  end
end

--- An iterator over splitn's parts.
function _M.isplitn(value, delim, n)
  return iterate(splitn(value, delim, n, true))
end

--- An iterator over psplitn's parts.
function _M.ipsplitn(value, pattern, n)
  return iterate(splitn(value, pattern, n, false))
end

local function is_space(b)
  return b == 32 or (b and b >= 9 and b <= 13)
end

--- Trims spaces, \t \n \v \f \r on both sides; nil gives "", non-strings
-- are converted with tostring.
function _M.strip(value)
  if value == nil then
    return ""
  end
  if type(value) ~= "string" then
    value = tostring(value) or ""
  end
  local s, e = 1, #value
  while s <= e and is_space(byte(value, s)) do
    s = s + 1
  end
  while e >= s and is_space(byte(value, e)) do
    e = e - 1
  end
  return sub(value, s, e)
end

-- the UTF-8 length of a sequence starting at i (Unicode 6.2 table 3-7), or nil
local function utf8_seq(str, i)
  local c = byte(str, i)
  if c < 0x80 then
    return 1
  end
  local c2, c3, c4 = byte(str, i + 1, i + 3)
  local function cont(x) return x and x >= 0x80 and x <= 0xBF end
  if c >= 0xC2 and c <= 0xDF then
    -- Kong's check accepts 0x7B..0xBF as the second byte here
    return c2 and c2 >= 0x7B and c2 <= 0xBF and 2 or nil
  elseif c == 0xE0 then
    return c2 and c2 >= 0xA0 and c2 <= 0xBF and cont(c3) and 3 or nil
  elseif (c >= 0xE1 and c <= 0xEC) or c == 0xEE or c == 0xEF then
    return cont(c2) and cont(c3) and 3 or nil
  elseif c == 0xED then
    return c2 and c2 >= 0x80 and c2 <= 0x9F and cont(c3) and 3 or nil
  elseif c == 0xF0 then
    return c2 and c2 >= 0x90 and c2 <= 0xBF and cont(c3) and cont(c4) and 4 or nil
  elseif c >= 0xF1 and c <= 0xF3 then
    return cont(c2) and cont(c3) and cont(c4) and 4 or nil
  elseif c == 0xF4 then
    return c2 and c2 >= 0x80 and c2 <= 0x8F and cont(c3) and cont(c4) and 4 or nil
  end
  return nil
end

--- true when tostring(val) is valid UTF-8, else false and the byte position
-- of the first invalid sequence.
function _M.validate_utf8(val)
  local str = tostring(val)
  local i, n = 1, #str
  while i <= n do
    local len = utf8_seq(str, i)
    if not len then
      return false, i
    end
    i = i + len
  end
  return true
end

--- Bytes as text in b (default), k, m or g units (KiB, MiB, GiB) with
-- `scale` decimals (2).
function _M.bytes_to_str(bytes, unit, scale)
  local u = lower(unit or "")
  if u == "" or u == "b" then
    return fmt("%d", bytes)
  end
  scale = scale or 2
  if type(scale) ~= "number" or scale < 0 then
    error("scale must be equal or greater than 0", 2)
  end
  local div = ({ k = 2 ^ 10, m = 2 ^ 20, g = 2 ^ 30 })[u]
  if not div then
    error("invalid unit '" .. unit .. "' (expected 'k/K', 'm/M', or 'g/G')", 2)
  end
  return fmt("%." .. scale .. "f %siB", bytes / div, u:upper())
end

local SIZE_SCALE = { k = 1024, K = 1024, m = 1048576, M = 1048576, g = 1073741824,
                     G = 1073741824 }

--- Bytes of an nginx size ("10", "8k", "2M", "1g"); unparsable numbers give 0.
function _M.parse_ngx_size(str)
  assert(type(str) == "string", "Parameter #1 must be a string")
  local scale = SIZE_SCALE[sub(str, -1)]
  local digits = str
  if scale then
    digits = sub(str, 1, -2)
  else
    scale = 1
  end
  return (tonumber(digits) or 0) * scale
end

local function b64_decoders()
  local ngx = rawget(_G, "ngx")
  local std = ngx and ngx.decode_base64 or require("tollgate.ngx_shim").decode_base64
  local url = function(s)
    if s:find("[+/=]") then
      return nil
    end
    local padded = s:gsub("%-", "+"):gsub("_", "/")
    local rem = #padded % 4
    if rem == 1 then
      return nil
    elseif rem > 0 then
      padded = padded .. ("="):rep(4 - rem)
    end
    return std(padded)
  end
  return std, url
end

local function decode_b64_string(s)
  local std, url = b64_decoders()
  return std(s) or url(s)
end

--- Decodes base64 (standard, else URL-safe) strings; a table's strings are
-- decoded in place; values that do not decode are returned unchanged.
function _M.try_decode_base64(value)
  if type(value) == "table" then
    for i, v in ipairs(value) do
      value[i] = type(v) == "string" and decode_b64_string(v) or v
    end
    return value
  elseif type(value) == "string" then
    return decode_b64_string(value) or value
  end
  return value
end

--- "-" replaced by "_".
function _M.replace_dashes(str)
  if not find(str, "-", 1, true) then
    return str
  end
  return (gsub(str, "%-", "_"))
end

--- Lowercased, "-" replaced by "_".
function _M.replace_dashes_lower(str)
  return _M.replace_dashes(lower(str))
end

return _M
