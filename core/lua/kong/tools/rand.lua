-- kong.tools.rand: Kong 3.10's random helpers (re-exported by kong.tools.utils).

local util = require "tollgate.c.util"

local byte, char = string.byte, string.char
local random = math.random

local _M = {}

local function urandom(n)
  local f = io.open("/dev/urandom", "rb")
  if not f then
    return nil
  end
  local s = f:read(n)
  f:close()
  if s and #s == n then
    return s
  end
  return nil
end

--- n bytes from a CSPRNG: /dev/urandom when `use_urandom`, else (or when
-- that fails) OpenSSL's RAND_bytes.
-- @treturn string|nil the bytes
-- @treturn string an error
function _M.get_rand_bytes(n, use_urandom)
  if use_urandom then
    local s = urandom(n)
    if s then
      return s
    end
  end
  local ok, s = pcall(util.random_bytes, n)
  if not ok then
    return nil, "could not get random bytes (reason:" .. tostring(s) .. ") "
  end
  return s
end

local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

--- A random 32-character string of [A-Za-z0-9] (24 random bytes in base64,
-- with '/' and '+' replaced by a random upper- and lowercase letter).
function _M.random_string()
  local bytes = assert(_M.get_rand_bytes(24, true))
  local out = {}
  for i = 1, 24, 3 do
    local a, b, c = byte(bytes, i, i + 2)
    local n = a * 65536 + b * 256 + c
    for shift = 18, 0, -6 do
      local idx = math.floor(n / 2 ^ shift) % 64 + 1
      local ch = B64:sub(idx, idx)
      if ch == "/" then
        ch = char(random(65, 90))
      elseif ch == "+" then
        ch = char(random(97, 122))
      end
      out[#out + 1] = ch
    end
  end
  return table.concat(out)
end

return _M
