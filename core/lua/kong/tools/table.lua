-- kong.tools.table: Kong 3.10's table helpers (re-exported by kong.tools.utils).

local type, pairs, ipairs, next, select = type, pairs, ipairs, next, select
local getmetatable, setmetatable, tostring = getmetatable, setmetatable, tostring
local floor = math.floor
local unpack = unpack or table.unpack
local is_array_fast = require "table.isarray"
local clone = require "table.clone"

local _M = {}

--- A read-only empty table.
_M.EMPTY = require("pl.tablex").readonly({})

--- Packs the arguments with their count in `n` (nil-safe).
function _M.pack(...)
  return { n = select("#", ...), ... }
end

--- Unpacks `t` from i (1) to j (t.n, else #t).
function _M.unpack(t, i, j)
  return unpack(t, i or 1, j or t.n or #t)
end

-- ngx.null when the ngx API is present, else cjson's null (the same value)
local function null_value()
  local ngx = rawget(_G, "ngx")
  return ngx and ngx.null or require("cjson").null
end

local function copy_into(dst, src, skip_null)
  if src then
    local null = skip_null and null_value()
    for k, v in pairs(src) do
      if not (skip_null and dst[k] ~= nil and v == null) then
        dst[k] = v
      end
    end
  end
  return dst
end

--- A new table with the keys of t1, then those of t2 (shallow).
function _M.table_merge(t1, t2)
  return copy_into(copy_into({}, t1), t2)
end

--- As table_merge, but a null in t2 does not replace a value of t1.
function _M.null_aware_table_merge(t1, t2)
  return copy_into(copy_into({}, t1), t2, true)
end

--- true when some value of arr equals val.
function _M.table_contains(arr, val)
  if arr then
    for _, v in pairs(arr) do
      if v == val then
        return true
      end
    end
  end
  return false
end

-- keys 1..n, no holes
local function strict_array(t)
  local count, max = 0, 0
  for k in pairs(t) do
    if type(k) ~= "number" or k < 1 or floor(k) ~= k then
      return false
    end
    count = count + 1
    if k > max then
      max = k
    end
  end
  return count == max
end

-- keys 1..n, as numbers or numeric strings
local function lapis_array(t)
  if type(t) ~= "table" then
    return false
  end
  local n = 0
  for _ in pairs(t) do
    n = n + 1
    if t[n] == nil and t[tostring(n)] == nil then
      return false
    end
  end
  return true
end

--- Whether `t` is an array; mode "strict" (default), "fast" (OpenResty's
-- table.isarray) or "lapis" (numeric string keys count).
function _M.is_array(t, mode)
  if type(t) ~= "table" then
    return false
  end
  if mode == "lapis" then
    return lapis_array(t)
  elseif mode == "fast" then
    return is_array_fast(t)
  end
  return strict_array(t)
end

_M.is_lapis_array = lapis_array

--- Deep copy; keys copied too; metatables copied unless copy_mt == false.
function _M.deep_copy(orig, copy_mt)
  if type(orig) ~= "table" then
    return orig
  end
  if copy_mt == nil then
    copy_mt = true
  end
  local out = {}
  for k, v in next, orig do
    out[_M.deep_copy(k)] = _M.deep_copy(v, copy_mt)
  end
  if copy_mt then
    setmetatable(out, _M.deep_copy(getmetatable(orig)))
  end
  return out
end

--- One level copy (no metatable); non-tables returned as they are.
function _M.shallow_copy(orig)
  if type(orig) == "table" then
    return clone(orig)
  end
  return orig
end

--- A new table, t1 deep-copied with t2 merged in recursively (t2 wins).
function _M.deep_merge(t1, t2)
  local out = _M.deep_copy(t1)
  for k, v in pairs(t2) do
    if type(v) == "table" and type(out[k]) == "table" then
      out[k] = _M.deep_merge(out[k], v)
    else
      out[k] = _M.deep_copy(v)
    end
  end
  return out
end

--- Deep copy copying each table once (shared references and cycles kept).
function _M.cycle_aware_deep_copy(orig, remove_metatables, deep_copy_keys, cache)
  if type(orig) ~= "table" then
    return orig
  end
  cache = cache or {}
  if cache[orig] then
    return cache[orig]
  end
  local out = clone(orig)
  cache[orig] = out
  for k, v in pairs(orig) do
    if type(v) == "table" then
      out[k] = _M.cycle_aware_deep_copy(v, remove_metatables, deep_copy_keys, cache)
    end
    if deep_copy_keys and type(k) == "table" then
      local nk = _M.cycle_aware_deep_copy(k, remove_metatables, deep_copy_keys, cache)
      out[nk], out[k] = out[k], nil
    end
  end
  if not remove_metatables then
    local mt = getmetatable(orig)
    if mt then
      setmetatable(out, mt)
    end
  end
  return out
end

--- cycle_aware_deep_copy(t1) with t2 merged in recursively (t2 wins).
function _M.cycle_aware_deep_merge(t1, t2, remove_metatables, deep_copy_keys, cache)
  cache = cache or {}
  local out = _M.cycle_aware_deep_copy(t1, remove_metatables, deep_copy_keys, cache)
  for k, v in pairs(t2) do
    if type(v) ~= "table" then
      out[k] = v
    elseif type(out[k]) == "table" then
      out[k] = _M.cycle_aware_deep_merge(out[k], v, remove_metatables, deep_copy_keys, cache)
    else
      out[k] = _M.cycle_aware_deep_copy(v, remove_metatables, deep_copy_keys, cache)
    end
  end
  return out
end

--- The arrays given, one after the other, in a new array (up to the first nil argument).
function _M.concat(...)
  local out, n = {}, 0
  for _, t in ipairs({ ... }) do
    for _, v in ipairs(t) do
      n = n + 1
      out[n] = v
    end
  end
  return out
end

local error_list_mt = {}

--- Adds error v under k; a second error for k turns the value into a list.
function _M.add_error(errors, k, v)
  errors = errors or {}
  local cur = errors[k]
  if cur == nil then
    errors[k] = v
    return errors
  end
  if getmetatable(cur) ~= error_list_mt then
    cur = setmetatable({ cur }, error_list_mt)
    errors[k] = cur
  end
  cur[#cur + 1] = v
  return errors
end

--- t[path[1]][path[2]]..., or nil when a step is missing.
function _M.table_path(t, path)
  local cur = t
  for _, key in ipairs(path) do
    cur = cur[key]
    if cur == nil then
      return nil
    end
  end
  return cur
end

return _M
