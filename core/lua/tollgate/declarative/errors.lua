-- tollgate.declarative.errors: Kong's declarative error shapes.
--
--   errors.new(fields, input)  -> { code = 14, name = "invalid declarative configuration",
--                                   message = "declarative config is invalid: {...}",
--                                   fields = fields, flattened_errors = {...} }
--   errors.text(err_t)         -> `kong config parse` text ("Failed parsing:\n" ...)

local Schema = require "tollgate.schema"
local serialize = require "tollgate.declarative.serialize"

local type, pairs, ipairs, concat, tostring = type, pairs, ipairs, table.concat, tostring

local _M = {
  CODE = 14,
  NAME = "invalid declarative configuration",
}

local function pl_pretty(t)
  local ok, pretty = pcall(require, "pl.pretty")
  if ok then
    return pretty.write(t, "")
  end
  return serialize.canonical_json(t)
end

-- Kong's pretty_print_error (keys sorted here, so the text is deterministic).
local function pretty_print(err_t, item, indent)
  indent = indent or ""
  local out = {}
  for _, k in ipairs(serialize.sorted_keys(err_t)) do
    local v = err_t[k]
    local key = type(k) == "number" and ("- in entry " .. k .. " of '" .. tostring(item) .. "'")
                or ("in '" .. tostring(k) .. "'")
    if type(v) == "table" then
      out[#out + 1] = indent .. key .. ":"
      out[#out + 1] = pretty_print(v, k, indent .. "  ")
    else
      out[#out + 1] = indent .. key .. ": " .. tostring(v)
    end
  end
  return concat(out, "\n")
end
_M.pretty_print = pretty_print

-- Which child arrays an entity may nest, and the foreign key they point back with.
local CHILDREN = {
  services = { routes = "service", plugins = "service" },
  routes = { plugins = "route" },
  consumers = { plugins = "consumer" },
  upstreams = { targets = "upstream" },
  certificates = { snis = "certificate" },
  key_sets = { keys = "set" },
}
_M.CHILDREN = CHILDREN

local function singular(noun)
  return noun:sub(-1) == "s" and noun:sub(1, -2) or noun
end

local function join(ns, field)
  if type(ns) == "string" and ns ~= "" then
    return ns .. "." .. tostring(field)
  end
  return tostring(field)
end

local function categorize(errs, ns, out)
  out = out or {}
  for _, field in ipairs(serialize.sorted_keys(errs)) do
    local err = errs[field]
    if field == "@entity" then
      for _, m in ipairs(type(err) == "table" and err or { err }) do
        out[#out + 1] = { type = "entity", message = m }
      end
    elseif type(err) == "string" then
      out[#out + 1] = { type = "field", field = join(ns, field), message = err }
    elseif type(err) == "table" then
      categorize(err, join(ns, field), out)
    end
  end
  return out
end

local function add_entity_errors(entity_type, entity, err_t, out)
  if type(err_t) == "string" then
    err_t = { ["@entity"] = err_t }
  elseif type(err_t) ~= "table" or next(err_t) == nil then
    return
  end
  if type(entity) ~= "table" then
    return
  end
  err_t = Schema.deep_copy(err_t)
  entity = Schema.deep_copy(entity)
  local pk = (type(entity.id) == "string" and require("tollgate.uuid").is_valid(entity.id))
             and { id = entity.id } or nil
  for child, fk in pairs(CHILDREN[entity_type] or {}) do
    local items = entity[child]
    if type(items) == "table" then
      local child_errs = err_t[child]
      entity[child] = nil
      err_t[child] = nil
      if type(child_errs) == "table" then
        for i, item in ipairs(items) do
          if type(item) == "table" and item[fk] == nil then
            item[fk] = pk
          end
          add_entity_errors(child, item, child_errs[i], out)
        end
      end
    end
  end
  if next(err_t) == nil then
    return
  end
  local tags = entity.tags
  if type(tags) == "table" then
    for _, t in ipairs(tags) do
      if type(t) ~= "string" then tags = nil break end
    end
  else
    tags = nil
  end
  out[#out + 1] = {
    entity_name = type(entity.name) == "string" and entity.name ~= "" and entity.name or nil,
    entity_id = pk and pk.id or nil,
    entity_tags = tags,
    entity_type = singular(entity_type),
    entity = entity,
    errors = categorize(err_t),
  }
end

--- Kong's flattened_errors (POST /config?flatten_errors=1) from the nested
-- error table and the input it describes.
function _M.flatten(fields, input)
  local out = setmetatable({}, Schema.array_mt)
  if type(input) ~= "table" then
    return out
  end
  for _, entity_type in ipairs(serialize.sorted_keys(fields)) do
    local section = fields[entity_type]
    local entities = input[entity_type]
    if type(section) == "table" and type(entities) == "table" then
      for _, i in ipairs(serialize.sorted_keys(section)) do
        add_entity_errors(entity_type, entities[i], section[i], out)
      end
    end
  end
  return out
end

function _M.new(fields, input)
  return {
    code = _M.CODE,
    name = _M.NAME,
    message = "declarative config is invalid: " .. pl_pretty(fields),
    fields = fields,
    flattened_errors = _M.flatten(fields, input),
  }
end

function _M.text(err_t)
  if type(err_t) == "string" then
    return "Failed parsing:\n" .. err_t
  end
  local fields = err_t.fields or err_t
  if type(fields.error) == "string" and next(fields, next(fields)) == nil
     and next(fields) == "error" then
    return "Failed parsing:\n" .. fields.error
  end
  return "Failed parsing:\n" .. pretty_print(fields)
end

return _M
