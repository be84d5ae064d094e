-- tollgate.schema.net: host, IP and CIDR parsing for the schema typedefs
-- (the rules of Kong's kong.tools.ip, written here).

local tonumber, fmt, gsub, rep = tonumber, string.format, string.gsub, string.rep

local _M = {}

function _M.hostname_type(name)
  local remainder, colons = gsub(name, ":", "")
  if colons > 1 then
    return "ipv6"
  end
  if remainder:match("^[%d%.]+$") then
    return "ipv4"
  end
  return "name"
end

local function check_port(port)
  if port == nil or port == "" then
    return nil
  end
  port = tonumber(port)
  if not port or port > 65535 then
    return nil, "invalid port number"
  end
  return port
end

function _M.normalize_ipv4(address)
  local a, b, c, d, port
  if address:find(":", 1, true) then
    a, b, c, d, port = address:match("^(%d%d?%d?)%.(%d%d?%d?)%.(%d%d?%d?)%.(%d%d?%d?):(%d+)$")
  else
    a, b, c, d = address:match("^(%d%d?%d?)%.(%d%d?%d?)%.(%d%d?%d?)%.(%d%d?%d?)$")
  end
  if not a then
    return nil, "invalid ipv4 address: " .. address
  end
  a, b, c, d = tonumber(a), tonumber(b), tonumber(c), tonumber(d)
  if a > 255 or b > 255 or c > 255 or d > 255 then
    return nil, "invalid ipv4 address: " .. address
  end
  local p, err = check_port(port)
  if err then
    return nil, err
  end
  return fmt("%d.%d.%d.%d", a, b, c, d), p
end

function _M.normalize_ipv6(address)
  local inner, rest = address:match("^(%b[])(.-)$")
  local port
  if inner then
    inner = inner:sub(2, -2)
    if rest ~= "" then
      port = rest:match("^:(%d+)$")
      if not port then
        return nil, "invalid ipv6 address"
      end
      local err
      port, err = check_port(port)
      if err then
        return nil, err
      end
    end
  else
    inner = address
  end
  if inner:sub(1, 1) == ":" then
    inner = "0" .. inner
  end
  if inner:sub(-1) == ":" then
    inner = inner .. "0"
  end
  if inner:find("::", 1, true) then
    local _, count = gsub(inner, ":", "")
    inner = gsub(inner, "::", ":" .. rep("0:", 8 - count), 1)
  end
  local groups = {}
  for g in (inner .. ":"):gmatch("([^:]*):") do
    if not g:match("^%x%x?%x?%x?$") then
      return nil, "invalid ipv6 address: " .. address
    end
    groups[#groups + 1] = rep("0", 4 - #g) .. g:lower()
  end
  if #groups ~= 8 then
    return nil, "invalid ipv6 address: " .. address
  end
  return table.concat(groups, ":"), port
end

function _M.check_hostname(address)
  local name, port = address:match("^([^:]+):?(%d*)$")
  if not name or not name:match("^[%w_%-%.%*]+$") or name:find("..", 1, true) then
    return nil, "invalid hostname: " .. address
  end
  local p, err = check_port(port)
  if err then
    return nil, err
  end
  return name, p
end

local verify = {
  ipv4 = _M.normalize_ipv4,
  ipv6 = _M.normalize_ipv6,
  name = _M.check_hostname,
}

--- Parses "host[:port]": { type = "ipv4"|"ipv6"|"name", host, port } or nil, err.
function _M.normalize_ip(address)
  local t = _M.hostname_type(address)
  local host, port = verify[t](address)
  if not host then
    return nil, port
  end
  return { type = t, host = host, port = port }
end

function _M.is_valid_ipv4(s)
  local host, port = _M.normalize_ipv4(s)
  return host ~= nil and port == nil and not s:find(":", 1, true)
end

function _M.is_valid_ipv6(s)
  if s:find("[", 1, true) then
    return false
  end
  return _M.hostname_type(s) == "ipv6" and _M.normalize_ipv6(s) ~= nil
end

function _M.is_valid_ip(s)
  return _M.is_valid_ipv4(s) or _M.is_valid_ipv6(s)
end

local function split_cidr(s, max)
  local ip, bits = s:match("^(.-)/(%d+)$")
  if not ip then
    return nil
  end
  bits = tonumber(bits)
  if bits > max then
    return nil
  end
  return ip
end

function _M.is_valid_cidr_v4(s)
  local ip = split_cidr(s, 32)
  return ip ~= nil and _M.is_valid_ipv4(ip)
end

function _M.is_valid_cidr_v6(s)
  local ip = split_cidr(s, 128)
  return ip ~= nil and _M.is_valid_ipv6(ip)
end

function _M.is_valid_ip_or_cidr_v4(s)
  return _M.is_valid_ipv4(s) or _M.is_valid_cidr_v4(s)
end

function _M.is_valid_ip_or_cidr(s)
  return _M.is_valid_ip(s) or _M.is_valid_cidr_v4(s) or _M.is_valid_cidr_v6(s)
end

--- UTF-8 validity: true, or false and the 1-based position of the first bad byte.
function _M.validate_utf8(s)
  local i, n = 1, #s
  while i <= n do
    local c = s:byte(i)
    local len
    if c < 0x80 then len = 1
    elseif c >= 0xC2 and c <= 0xDF then len = 2
    elseif c >= 0xE0 and c <= 0xEF then len = 3
    elseif c >= 0xF0 and c <= 0xF4 then len = 4
    else return false, i end
    for j = i + 1, i + len - 1 do
      local cc = s:byte(j)
      if not cc or cc < 0x80 or cc > 0xBF then
        return false, i
      end
    end
    i = i + len
  end
  return true
end

return _M
