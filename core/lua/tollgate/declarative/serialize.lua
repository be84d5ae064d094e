-- tollgate.declarative.serialize: canonical JSON (sorted keys, for hashes)
-- and a small deterministic YAML emitter (for exports).

local cjson = require "cjson"

local null = ngx and ngx.null or cjson.null
local type, pairs, tostring, concat, sort = type, pairs, tostring, table.concat, table.sort
local array_mt = require("tollgate.schema").array_mt
local cjson_array_mt = cjson.array_mt
local empty_array_mt = cjson.empty_array_mt

local _M = {}

local function is_array(t)
  local mt = getmetatable(t)
  if mt ~= nil and (mt == array_mt or mt == cjson_array_mt or mt == empty_array_mt) then
    return true
  end
  local n = 0
  for k in pairs(t) do
    if type(k) ~= "number" then
      return false
    end
    n = n + 1
  end
  return n > 0 and n == #t
end
_M.is_array = is_array

local function sorted_keys(t)
  local keys = {}
  for k in pairs(t) do
    keys[#keys + 1] = k
  end
  sort(keys, function(a, b)
    local ta, tb = type(a), type(b)
    if ta ~= tb then
      return ta == "number"
    end
    return a < b
  end)
  return keys
end
_M.sorted_keys = sorted_keys

local function number_text(v)
  if v == math.floor(v) and v > -1e15 and v < 1e15 then
    return string.format("%d", v)
  end
  return string.format("%.14g", v)
end

--- JSON with object keys sorted, so equal values give equal text.
function _M.canonical_json(v)
  local out = {}
  local function emit(x)
    local t = type(x)
    if x == null or x == nil then
      out[#out + 1] = "null"
    elseif t == "boolean" then
      out[#out + 1] = x and "true" or "false"
    elseif t == "number" then
      out[#out + 1] = number_text(x)
    elseif t == "string" then
      out[#out + 1] = cjson.encode(x)
    elseif t == "table" then
      if is_array(x) then
        out[#out + 1] = "["
        for i = 1, #x do
          if i > 1 then out[#out + 1] = "," end
          emit(x[i])
        end
        out[#out + 1] = "]"
      elseif next(x) == nil then
        out[#out + 1] = "{}"
      else
        out[#out + 1] = "{"
        for i, k in ipairs(sorted_keys(x)) do
          if i > 1 then out[#out + 1] = "," end
          out[#out + 1] = cjson.encode(tostring(k))
          out[#out + 1] = ":"
          emit(x[k])
        end
        out[#out + 1] = "}"
      end
    else
      out[#out + 1] = cjson.encode(tostring(x))
    end
  end
  emit(v)
  return concat(out)
end

-- YAML scalars that must be quoted to stay strings.
local function yaml_string(s)
  if s == "" or s:find("^[%s%-?:,%[%]{}#&*!|>'\"%%@`~]") or s:find("[:#]%s") or s:find(":$")
     or s:find("%s$") or s:find("[\r\n\t\"\\]") or s:find("[%z\1-\31\127]")
     or tonumber(s) ~= nil
     or ({ ["true"] = 1, ["false"] = 1, ["null"] = 1, ["yes"] = 1, ["no"] = 1, ["on"] = 1,
           ["off"] = 1, ["~"] = 1, ["True"] = 1, ["False"] = 1, ["Null"] = 1,
           ["NULL"] = 1, ["TRUE"] = 1, ["FALSE"] = 1, ["Yes"] = 1, ["No"] = 1 })[s] then
    return cjson.encode(s):gsub("\\/", "/")
  end
  return s
end

local function scalar(v)
  if v == null or v == nil then
    return "null"
  elseif type(v) == "boolean" then
    return v and "true" or "false"
  elseif type(v) == "number" then
    return number_text(v)
  end
  return yaml_string(tostring(v))
end

--- YAML block text of a table (keys sorted; `first_keys` are emitted first
-- at the top level, in that order).
function _M.yaml(doc, first_keys)
  local out = {}
  local function emit(v, indent)
    local pad = string.rep("  ", indent)
    if is_array(v) then
      for _, item in ipairs(v) do
        if type(item) == "table" and next(item) ~= nil then
          local sub = {}
          local saved = out
          out = sub
          emit(item, indent + 1)
          out = saved
          -- put the first line of the item after "- "
          sub[1] = pad .. "- " .. sub[1]:sub(#pad + 3)
          for _, line in ipairs(sub) do out[#out + 1] = line end
        elseif type(item) == "table" then
          out[#out + 1] = pad .. "- " .. (is_array(item) and "[]" or "{}")
        else
          out[#out + 1] = pad .. "- " .. scalar(item)
        end
      end
      return
    end
    local keys = sorted_keys(v)
    if indent == 0 and first_keys then
      local rest, seen = {}, {}
      for _, k in ipairs(first_keys) do
        if v[k] ~= nil then rest[#rest + 1] = k; seen[k] = true end
      end
      for _, k in ipairs(keys) do
        if not seen[k] then rest[#rest + 1] = k end
      end
      keys = rest
    end
    for _, k in ipairs(keys) do
      local x = v[k]
      local key = yaml_string(tostring(k))
      if type(x) == "table" and next(x) ~= nil then
        out[#out + 1] = pad .. key .. ":"
        emit(x, is_array(x) and indent or indent + 1)
      elseif type(x) == "table" then
        out[#out + 1] = pad .. key .. ": " .. (is_array(x) and "[]" or "{}")
      else
        out[#out + 1] = pad .. key .. ": " .. scalar(x)
      end
    end
  end
  emit(doc, 0)
  return concat(out, "\n") .. "\n"
end

return _M
