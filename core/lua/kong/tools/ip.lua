-- kong.tools.ip: Kong 3.10's IP and hostname helpers (re-exported by kong.tools.utils).
-- Addresses are validated with inet_pton, as Kong's (resty.ipmatcher).

local ffi = require "ffi"
local tstring = require "kong.tools.string"
local net = require "tollgate.schema.net"

local C = ffi.C
local type, tonumber, tostring, ipairs = type, tonumber, tostring, ipairs
local find = string.find

pcall(ffi.cdef, "int inet_pton(int af, const char *src, void *dst);")

local AF_INET, AF_INET6 = 2, 10
local addr_buf = ffi.new("unsigned char[16]")

local function parse_ipv4(s)
  return C.inet_pton(AF_INET, s, addr_buf) == 1
end

local function parse_ipv6(s)
  return C.inet_pton(AF_INET6, s, addr_buf) == 1
end

local _M = {}

-- "<ip>/<prefix>" with 0 <= prefix <= max (decimal digits only, no leading +)
local function split_cidr(s, max)
  local ip, prefix = tstring.split_once(s, "/")
  if not prefix or not prefix:match("^%d+$") or (#prefix > 1 and prefix:sub(1, 1) == "0") then
    return nil
  end
  prefix = tonumber(prefix)
  if prefix > max then
    return nil
  end
  return ip
end

local function check(input, f1, f2, cidr_max)
  if type(input) ~= "string" then
    return false
  end
  if cidr_max then
    input = split_cidr(input, cidr_max)
    if not input then
      return false
    end
  end
  return f1(input) or (f2 ~= nil and f2(input)) or false
end

function _M.is_valid_ipv4(s) return check(s, parse_ipv4) end
function _M.is_valid_ipv6(s) return check(s, parse_ipv6) end
function _M.is_valid_ip(s) return check(s, parse_ipv4, parse_ipv6) end
function _M.is_valid_cidr_v4(s) return check(s, parse_ipv4, nil, 32) end
function _M.is_valid_cidr_v6(s) return check(s, parse_ipv6, nil, 128) end
function _M.is_valid_cidr(s) return check(s, _M.is_valid_cidr_v4, _M.is_valid_cidr_v6) end
function _M.is_valid_ip_or_cidr_v4(s) return check(s, parse_ipv4, _M.is_valid_cidr_v4) end
function _M.is_valid_ip_or_cidr_v6(s) return check(s, parse_ipv6, _M.is_valid_cidr_v6) end
function _M.is_valid_ip_or_cidr(s) return check(s, _M.is_valid_ip, _M.is_valid_cidr) end

-- hostname_type, normalize_ipv4 and normalize_ipv6 follow Kong's rules in
-- tollgate.schema.net (the schema typedefs use them too):
--   hostname_type(name)       -> "ipv6" (more than one colon), "ipv4" (digits
--                                and dots) or "name"; by exclusion, not validation
--   normalize_ipv4("a.b.c.d[:port]") -> address without leading zeros, port | nil, err
--   normalize_ipv6("ipv6" | "[ipv6]" | "[ipv6]:port") -> fully expanded
--                                lowercase address, port | nil, err
_M.hostname_type = net.hostname_type
_M.normalize_ipv4 = net.normalize_ipv4
_M.normalize_ipv6 = net.normalize_ipv6

--- "name[:port]" -> name, port | nil, err (letters, digits, "-", ".", "_";
-- no label ending in "-", no empty label except a trailing dot)
function _M.check_hostname(address)
  local name = address
  local port = address:match(":(%d+)$")
  if port then
    name = name:sub(1, -(#port + 2))
    port = tonumber(port)
    if port > 65535 then
      return nil, "invalid port number"
    end
  end
  if not name:match("^[%w%-%._]+$") then
    return nil, "invalid hostname: " .. address
  end
  local labels, count = tstring.splitn(name, ".")
  for i, label in ipairs(labels) do
    if label:match("%-$") or (label == "" and i ~= count) then
      return nil, "invalid hostname: " .. address
    end
  end
  return name, port
end

--- { type = "ipv4"|"ipv6"|"name", host = normalised, port = number|nil } | nil, err
function _M.normalize_ip(address)
  local kind = _M.hostname_type(address)
  local host, port
  if kind == "ipv4" then
    host, port = _M.normalize_ipv4(address)
  elseif kind == "ipv6" then
    host, port = _M.normalize_ipv6(address)
  else
    host, port = _M.check_hostname(address)
  end
  if not host then
    return nil, port
  end
  return { type = kind, host = host, port = port }
end

--- An address for URLs: "[ipv6]:port", "host:port"; p1 a string or a table
-- from normalize_ip / socket.url, p2 the port; nil, err passes through.
function _M.format_host(p1, p2)
  local t = type(p1)
  if t == "nil" then
    return p1, p2
  end
  local host, port, kind
  if t == "table" then
    host, port = p1.host, p1.port or p2
    kind = p1.type or _M.hostname_type(host)
  elseif t == "string" then
    host, port = p1, p2
    kind = _M.hostname_type(host)
  else
    return nil, "cannot format type '" .. t .. "'"
  end
  local suffix = port and (":" .. tostring(port)) or ""
  if kind == "ipv6" and not find(host, "[", 1, true) then
    return "[" .. _M.normalize_ipv6(host) .. "]" .. suffix
  end
  return host .. suffix
end

return _M
