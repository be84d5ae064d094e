-- kong.tools.time: Kong 3.10's time helpers (re-exported by kong.tools.utils).
-- Uses the ngx API when it is installed (a worker's plugins), else the clock.

local ffi = require "ffi"
local util = require "tollgate.c.util"

local C = ffi.C
local tonumber, floor = tonumber, math.floor

pcall(ffi.cdef, [[
struct tg_kong_timespec { long tv_sec; long tv_nsec; };
int clock_gettime(int clk_id, struct tg_kong_timespec *tp);
]])

local ts = ffi.new("struct tg_kong_timespec[1]")

local function clock(id)
  C.clock_gettime(id, ts)
  return tonumber(ts[0].tv_sec), tonumber(ts[0].tv_nsec)
end

local function ngx_api()
  return rawget(_G, "ngx")
end

local _M = {}

-- nginx's time units, largest first (ngx_parse_time with seconds)
local UNITS = {
  y = 365 * 24 * 3600, M = 30 * 24 * 3600, w = 7 * 24 * 3600, d = 24 * 3600,
  h = 3600, m = 60, s = 1,
}
local ORDER = { y = 7, M = 6, w = 5, d = 4, h = 3, m = 2, s = 1 }

--- Seconds of an nginx time string ("10", "1h 30m", "2d"), as nginx parses
-- its directives; errors "bad argument #1 'str'" on anything else.
function _M.nginx_conf_time_to_seconds(str)
  if type(str) ~= "string" or str == "" then
    error("bad argument #1 'str'", 2)
  end
  local total, last, i, n = 0, 8, 1, #str
  while i <= n do
    local digits = str:match("^%d+", i)
    if not digits then
      error("bad argument #1 'str'", 2)
    end
    i = i + #digits
    local unit = str:sub(i, i)
    if unit == "" then
      unit = "s" -- a bare number (last) is seconds
    elseif UNITS[unit] then
      i = i + 1
      if unit == "m" and str:sub(i, i) == "s" then
        error("bad argument #1 'str'", 2) -- milliseconds: not in seconds
      end
    else
      error("bad argument #1 'str'", 2)
    end
    if ORDER[unit] >= last then
      error("bad argument #1 'str'", 2) -- units largest first, each once
    end
    last = ORDER[unit]
    total = total + tonumber(digits) * UNITS[unit]
    while str:sub(i, i) == " " do
      i = i + 1
    end
  end
  return total
end

--- The wall clock in nanoseconds.
function _M.time_ns()
  local s, ns = clock(0) -- CLOCK_REALTIME
  return s * 1e9 + ns
end

local function now()
  local ngx = ngx_api()
  if ngx and ngx.now then
    return ngx.now()
  end
  return floor(util.now() * 1000) / 1000
end

local function update_time()
  local ngx = ngx_api()
  if ngx and ngx.update_time then
    ngx.update_time()
  end
end

--- The current time in seconds (millisecond resolution), refreshed first.
function _M.get_updated_now()
  update_time()
  return now()
end

--- The (cached) current time in milliseconds.
function _M.get_now_ms()
  return now() * 1000
end

--- The current time in milliseconds, refreshed first.
function _M.get_updated_now_ms()
  update_time()
  return now() * 1000
end

--- The request's start time in milliseconds (needs a request).
function _M.get_start_time_ms()
  local ngx = ngx_api()
  if not (ngx and ngx.req and ngx.req.start_time) then
    error("no request found", 2)
  end
  return ngx.req.start_time() * 1000
end

--- The monotonic clock in milliseconds.
function _M.get_updated_monotonic_ms()
  update_time()
  local s, ns = clock(1) -- CLOCK_MONOTONIC
  return s * 1000 + floor(ns / 1e6)
end

return _M
