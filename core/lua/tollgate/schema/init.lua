-- tollgate.schema: the one schema engine (Kong's schema DSL).
--
-- Entity schemas, plugin schema.lua files and records are written exactly as
-- for Kong (fields = { { name = { type = ..., ... } }, ... }, entity_checks,
-- shorthand_fields, subschemas). Errors are Kong's nested error tables with
-- Kong's messages; `process_auto_fields` fills defaults and auto fields.
--
--   local Schema = require "tollgate.schema"
--   local s = assert(Schema.new(definition))
--   local row = s:process_auto_fields(input, "insert")
--   local ok, errs = s:validate(row)

local cjson = require "cjson"

local null = ngx and ngx.null or cjson.null
local array_mt = cjson.array_mt or {}
local type, pairs, ipairs, next, tostring = type, pairs, ipairs, next, tostring
local setmetatable, getmetatable = setmetatable, getmetatable
local floor, max = math.floor, math.max
local concat, insert, sort = table.concat, table.insert, table.sort
local fmt = string.format

local Schema = {}
Schema.__index = Schema
Schema.null = null
Schema.array_mt = array_mt

local validation_errors = {
  ERROR = "Validation error: %s",
  ARRAY = "expected an array",
  SET = "expected a set",
  MAP = "expected a map",
  RECORD = "expected a record",
  STRING = "expected a string",
  NUMBER = "expected a number",
  BOOLEAN = "expected a boolean",
  INTEGER = "expected an integer",
  FUNCTION = "expected a function",
  EQ = "value must be %s",
  NE = "value must not be %s",
  GT = "value must be greater than %s",
  BETWEEN = "value should be between %d and %d",
  LEN_EQ = "length must be %d",
  LEN_MIN = "length must be at least %d",
  LEN_MAX = "length must be at most %d",
  MATCH = "invalid value: %s",
  NOT_MATCH = "invalid value: %s",
  MATCH_ALL = "invalid value: %s",
  MATCH_NONE = "invalid value: %s",
  MATCH_ANY = "invalid value: %s",
  STARTS_WITH = "should start with: %s",
  CONTAINS = "expected to contain: %s",
  ONE_OF = "expected one of: %s",
  NOT_ONE_OF = "must not be one of: %s",
  IS_REGEX = "not a valid regex: %s",
  TIMESTAMP = "expected a valid timestamp",
  UUID = "expected a valid UUID",
  VALIDATION = "failed validating: %s",
  BAD_INPUT = "expected an input table",
  REQUIRED = "required field missing",
  NO_FOREIGN_DEFAULT = "will not generate a default value for a foreign field",
  UNKNOWN = "unknown field",
  IMMUTABLE = "immutable field cannot be updated",
  REQUIRED_FOR_ENTITY_CHECK = "field required for entity check",
  ENTITY_CHECK = "failed entity check: %s(%s)",
  ENTITY_CHECK_N_FIELDS = "entity check requires %d fields",
  CHECK = "entity check failed",
  CONDITIONAL = "failed conditional validation given value of field '%s'",
  AT_LEAST_ONE_OF = "at least one of these fields must be non-empty: %s",
  CONDITIONAL_AT_LEAST_ONE_OF = "at least one of these fields must be non-empty: %s",
  ONLY_ONE_OF = "exactly one of these fields must be non-empty: %s",
  DISTINCT = "values of these fields must be distinct: %s",
  MUTUALLY_REQUIRED = "all or none of these fields must be set: %s",
  MUTUALLY_EXCLUSIVE = "only one or none of these fields must be set: %s",
  MUTUALLY_EXCLUSIVE_SETS = "these sets are mutually exclusive: %s",
  SCHEMA_NO_DEFINITION = "expected a definition table",
  SCHEMA_NO_FIELDS = "error in schema definition: no 'fields' table",
  SCHEMA_BAD_REFERENCE = "schema refers to an invalid foreign entity: %s",
  SCHEMA_CANNOT_VALIDATE = "error in schema prevents from validating this field",
  SCHEMA_TYPE = "invalid type: %s",
  NOT_PK = "not a primary key",
  MISSING_PK = "missing primary key",
  SUBSCHEMA_UNKNOWN = "unknown type: %s",
  SUBSCHEMA_BAD_PARENT = "error in definition of '%s': entities of type '%s' cannot have subschemas",
  SUBSCHEMA_UNDEFINED_FIELD = "error in definition of '%s': %s: abstract field was not specialized",
  SUBSCHEMA_BAD_TYPE = "error in definition of '%s': %s: cannot change type in a specialized field",
  SUBSCHEMA_BAD_FIELD = "error in definition of '%s': %s: cannot create a new field",
  SUBSCHEMA_ABSTRACT_FIELD = "error in schema definition: abstract field was not specialized",
  TRANSFORMATION_ERROR = "transformation failed: %s",
  JSON_ENCODE_ERROR = "value could not be JSON-encoded: %s",
  JSON_DECODE_ERROR = "value could not be JSON-decoded: %s",
}
Schema.validation_errors = validation_errors

Schema.valid_types = {
  array = true, set = true, string = true, number = true, boolean = true,
  integer = true, foreign = true, map = true, record = true, ["function"] = true,
  json = true,
}

-- Entity schemas by name, for foreign fields (filled by Schema.new of named schemas).
local registry = {}
Schema.registry = registry

---------------------------------------------------------------------------
-- helpers

local function deep_copy(v, seen)
  if type(v) ~= "table" then
    return v
  end
  seen = seen or {}
  if seen[v] then
    return seen[v]
  end
  local c = {}
  seen[v] = c
  for k, x in pairs(v) do
    c[deep_copy(k, seen)] = deep_copy(x, seen)
  end
  return setmetatable(c, getmetatable(v))
end
Schema.deep_copy = deep_copy

local function is_nonempty(v)
  return not (v == nil or v == null or (type(v) == "table" and next(v) == nil) or v == "")
end

local function is_sequence(t)
  if type(t) ~= "table" then
    return false
  end
  local m, c = 0, 0
  for k in pairs(t) do
    c = c + 1
    if t[c] == nil then
      return false
    end
    if type(k) ~= "number" or k < 0 or floor(k) ~= k then
      return false
    end
    m = max(m, k)
  end
  return c == m
end
Schema.is_sequence = is_sequence

local function quoted_list(words)
  local out = {}
  for i = 1, #words do
    local w = words[i]
    if type(w) == "table" then
      out[i] = "(" .. quoted_list(w) .. ")"
    else
      out[i] = "'" .. tostring(w) .. "'"
    end
  end
  return concat(out, ", ")
end

-- "a.b.c" paths into nested tables.
local function get_field(tbl, name)
  if tbl == nil or tbl == null then
    return nil
  end
  local dot = name:find(".", 1, true)
  if not dot then
    return tbl[name]
  end
  return get_field(tbl[name:sub(1, dot - 1)], name:sub(dot + 1))
end

local function set_field(tbl, name, value)
  local dot = name:find(".", 1, true)
  if not dot then
    tbl[name] = value
    return
  end
  local head = name:sub(1, dot - 1)
  if type(tbl[head]) ~= "table" then
    tbl[head] = {}
  end
  set_field(tbl[head], name:sub(dot + 1), value)
end

local function get_schema_field(schema, name)
  if schema == nil then
    return nil
  end
  local dot = name:find(".", 1, true)
  if not dot then
    return schema.fields[name]
  end
  local f = schema.fields[name:sub(1, dot - 1)]
  return get_schema_field(f, name:sub(dot + 1))
end

local function length_validator(key, cmp)
  return function(value, n)
    local len = type(value) == "table" and #value or #value
    if cmp(len, n) then
      return true
    end
    return nil, validation_errors[key]:format(n)
  end
end

---------------------------------------------------------------------------
-- field validators, run in Kong's order

local validators = {}
Schema.validators = validators

function validators.between(value, limits)
  if value < limits[1] or value > limits[2] then
    return nil, validation_errors.BETWEEN:format(limits[1], limits[2])
  end
  return true
end

function validators.eq(value, wanted)
  if value == wanted then
    return true
  end
  return nil, validation_errors.EQ:format(wanted == null and "null" or tostring(wanted))
end

function validators.ne(value, wanted)
  if value ~= wanted then
    return true
  end
  return nil, validation_errors.NE:format(wanted == null and "null" or tostring(value))
end

function validators.gt(value, limit)
  if value > limit then
    return true
  end
  return nil, validation_errors.GT:format(tostring(limit))
end

validators.len_eq = length_validator("LEN_EQ", function(l, n) return l == n end)
validators.len_min = length_validator("LEN_MIN", function(l, n) return l >= n end)
validators.len_max = length_validator("LEN_MAX", function(l, n) return l <= n end)

function validators.match(value, pattern)
  if not value:match(pattern) then
    return nil, validation_errors.MATCH:format(value)
  end
  return true
end

function validators.not_match(value, pattern)
  if value:match(pattern) then
    return nil, validation_errors.NOT_MATCH:format(value)
  end
  return true
end

function validators.match_all(value, list)
  for i = 1, #list do
    if not value:match(list[i].pattern) then
      return nil, list[i].err
    end
  end
  return true
end

function validators.match_none(value, list)
  for i = 1, #list do
    if value:match(list[i].pattern) then
      return nil, list[i].err
    end
  end
  return true
end

function validators.match_any(value, arg)
  for i = 1, #arg.patterns do
    if value:match(arg.patterns[i]) then
      return true
    end
  end
  return nil, arg.err
end

function validators.starts_with(value, expected)
  if value:sub(1, #expected) ~= expected then
    return nil, validation_errors.STARTS_WITH:format(expected)
  end
  return true
end

local function is_one_of(value, options)
  for i = 1, #options do
    if value == options[i] then
      return true
    end
  end
  return false
end

local function option_list(options)
  local names = {}
  for i = 1, #options do
    names[i] = tostring(options[i])
  end
  return concat(names, ", ")
end

function validators.one_of(value, options)
  if is_one_of(value, options) then
    return true
  end
  return nil, validation_errors.ONE_OF:format(option_list(options))
end

function validators.not_one_of(value, options)
  if is_one_of(value, options) then
    return nil, validation_errors.NOT_ONE_OF:format(option_list(options))
  end
  return true
end

function validators.timestamp(value)
  return value > 0 or nil
end

local UUID_PATTERN = "^%x%x%x%x%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$"

function validators.uuid(value)
  return (#value == 36 and value:find(UUID_PATTERN) ~= nil) or nil
end

function validators.is_regex(value)
  local ok, router = pcall(require, "tollgate.c.router")
  if not ok then
    error("tollgate.c.router is not available: cannot validate regexes")
  end
  return router.regex_error(value) == nil
end

function validators.contains(array, wanted)
  for i = 1, #array do
    if array[i] == wanted then
      return true
    end
  end
  return nil, validation_errors.CONTAINS:format(wanted)
end

function validators.mutually_exclusive_subsets(value, subsets)
  local owner = {}
  for i = 1, #subsets do
    for j = 1, #subsets[i] do
      owner[subsets[i][j]] = subsets[i]
    end
  end
  local seen, member_of = {}, {}
  for i = 1, #value do
    local s = owner[value[i]]
    if s and not seen[s] then
      seen[s] = true
      member_of[#member_of + 1] = s
    end
  end
  if #member_of <= 1 then
    return true
  end
  return nil, validation_errors.MUTUALLY_EXCLUSIVE_SETS:format(quoted_list(member_of))
end

function validators.custom_validator(value, fn)
  return fn(value)
end

Schema.validators_order = {
  "eq", "ne", "not_one_of", "one_of",
  "gt", "timestamp", "uuid", "is_regex", "between",
  "len_eq", "len_min", "len_max",
  "starts_with", "not_match", "match_none", "match", "match_all", "match_any",
  "contains",
  "custom_validator", "mutually_exclusive_subsets",
}

---------------------------------------------------------------------------
-- entity checkers

local function count_nonempty(entity, names)
  local n = 0
  for i = 1, #names do
    if is_nonempty(get_field(entity, names[i])) then
      n = n + 1
    end
  end
  return n
end

local checkers = {}
Schema.entity_checkers = checkers

checkers.at_least_one_of = {
  run_with_missing_fields = true,
  run_with_invalid_fields = true,
  fn = function(entity, names)
    if count_nonempty(entity, names) > 0 then
      return true
    end
    return nil, quoted_list(names)
  end,
}

checkers.conditional_at_least_one_of = {
  run_with_missing_fields = true,
  run_with_invalid_fields = true,
  field_sources = { "if_field", "then_at_least_one_of", "else_then_at_least_one_of" },
  required_fields = { if_field = true },
  fn = function(entity, arg, schema)
    local if_value = get_field(entity, arg.if_field)
    if if_value == nil then
      return true
    end
    local mt = { __index = get_schema_field(schema, arg.if_field) }
    local names, custom = arg.then_at_least_one_of, arg.then_err
    if not Schema.validate_field(schema, setmetatable(arg.if_match, mt), if_value) then
      if arg.else_match == nil then
        return true
      end
      if not Schema.validate_field(schema, setmetatable(arg.else_match, mt), if_value) then
        return true
      end
      names, custom = arg.else_then_at_least_one_of, arg.else_then_err
    end
    if count_nonempty(entity, names) > 0 then
      return true
    end
    local list = quoted_list(names)
    return nil, list, custom and custom:format(list) or nil
  end,
}

checkers.only_one_of = {
  run_with_missing_fields = false,
  run_with_invalid_fields = true,
  fn = function(entity, names)
    if count_nonempty(entity, names) == 1 then
      return true
    end
    return nil, quoted_list(names)
  end,
}

checkers.distinct = {
  run_with_missing_fields = false,
  run_with_invalid_fields = true,
  fn = function(entity, names)
    local seen = {}
    for i = 1, #names do
      local v = get_field(entity, names[i])
      if is_nonempty(v) then
        if seen[v] then
          return nil, quoted_list(names)
        end
        seen[v] = true
      end
    end
    return true
  end,
}

checkers.conditional = {
  run_with_missing_fields = false,
  run_with_invalid_fields = true,
  field_sources = { "if_field", "then_field" },
  required_fields = { if_field = true },
  fn = function(entity, arg, schema, errors)
    local if_value = get_field(entity, arg.if_field)
    local then_value = get_field(entity, arg.then_field)
    if then_value == nil then
      then_value = null
    end
    setmetatable(arg.if_match, { __index = get_schema_field(schema, arg.if_field) })
    if not Schema.validate_field(schema, arg.if_match, if_value) then
      return true
    end
    if arg.then_match.required == true and then_value == null then
      set_field(errors, arg.then_field, validation_errors.REQUIRED)
      return nil, arg.if_field
    end
    setmetatable(arg.then_match, { __index = get_schema_field(schema, arg.then_field) })
    local ok, err = Schema.validate_field(schema, arg.then_match, then_value)
    if not ok then
      set_field(errors, arg.then_field, err)
      return nil, arg.if_field, arg.then_err and arg.then_err:format(arg.if_field) or nil
    end
    return true
  end,
}

checkers.custom_entity_check = {
  run_with_missing_fields = false,
  run_with_invalid_fields = false,
  field_sources = { "field_sources" },
  required_fields = { field_sources = true },
  fn = function(entity, arg)
    return arg.fn(entity)
  end,
}

checkers.mutually_required = {
  run_with_missing_fields = true,
  fn = function(entity, names)
    local n = count_nonempty(entity, names)
    if n == 0 or n == #names then
      return true
    end
    return nil, quoted_list(names)
  end,
}

checkers.mutually_exclusive = {
  run_with_missing_fields = true,
  fn = function(entity, names)
    if count_nonempty(entity, names) <= 1 then
      return true
    end
    return nil, quoted_list(names)
  end,
}

checkers.mutually_exclusive_sets = {
  run_with_missing_fields = true,
  field_sources = { "set1", "set2" },
  required_fields = { set1 = true, set2 = true },
  fn = function(entity, args)
    local a, b = {}, {}
    for _, n in ipairs(args.set1) do
      if is_nonempty(get_field(entity, n)) then a[#a + 1] = n end
    end
    for _, n in ipairs(args.set2) do
      if is_nonempty(get_field(entity, n)) then b[#b + 1] = n end
    end
    if #a > 0 and #b > 0 then
      return nil, fmt("(%s), (%s)", quoted_list(a), quoted_list(b))
    end
    return true
  end,
}

---------------------------------------------------------------------------
-- validation

local field_schemas = setmetatable({}, { __mode = "k" })

local function get_field_schema(field)
  local s = field_schemas[field]
  if not s then
    s = assert(Schema.new(field, true))
    field_schemas[field] = s
  end
  return s
end

local function get_subschema(self, input)
  if not (self.subschemas and self.subschema_key) then
    return nil
  end
  local key = input[self.subschema_key]
  if type(key) == "string" then
    return self.subschemas[key]
  end
  if type(key) == "table" then
    for i = 1, #key do
      local s = self.subschemas[key[i]]
      if s then
        return s
      end
    end
  end
  return nil
end

local function resolve_field(self, k, field, subschema)
  field = field or self.fields[tostring(k)]
  if not field then
    return nil, validation_errors.UNKNOWN
  end
  if subschema then
    local sf = subschema.fields[k]
    if sf then
      field = sf
    end
  end
  return field
end

local function validate_elements(self, field, value)
  field.elements.required = true
  local errs, ok = {}, true
  for i = 1, #value do
    local vok, err = self:validate_field(field.elements, value[i])
    if not vok then
      errs[i] = err
      ok = false
    end
  end
  if ok then
    return true
  end
  return nil, errs
end

local function foreign_pk(field)
  local s = field.schema or registry[field.reference]
  return s and s.primary_key or { "id" }, s
end

function Schema:validate_primary_key(pk, ignore_others)
  local errors, pk_set = {}, {}
  for _, k in ipairs(self.primary_key) do
    pk_set[k] = true
    local field = self.fields[k]
    local v = type(pk) == "table" and pk[k] or nil
    if not v then
      errors[k] = validation_errors.REQUIRED
    elseif (field.required or field.auto) and v == null then
      errors[k] = validation_errors.REQUIRED
    else
      local _, err = self:validate_field(field, v)
      if err then
        errors[k] = err
      end
    end
  end
  if not ignore_others and type(pk) == "table" then
    for k in pairs(pk) do
      if not pk_set[k] then
        errors[k] = validation_errors.NOT_PK
      end
    end
  end
  if next(errors) then
    return nil, errors
  end
  return true
end

function Schema:validate_field(field, value)
  if value == null then
    if field.ne == null then
      return nil, field.err or validation_errors.NE:format("null")
    end
    if field.eq ~= nil and field.eq ~= null then
      return nil, validation_errors.EQ:format(tostring(field.eq))
    end
    if field.required then
      return nil, validation_errors.REQUIRED
    end
    return true
  end

  if field.eq == null then
    return nil, field.err or validation_errors.EQ:format("null")
  end

  if field.abstract then
    return nil, validation_errors.SUBSCHEMA_ABSTRACT_FIELD
  end

  local ftype = field.type
  if ftype == "array" or ftype == "set" then
    if not is_sequence(value) then
      return nil, validation_errors[ftype:upper()]
    end
    local ok, err = validate_elements(self, field, value)
    if not ok then
      return nil, err
    end

  elseif ftype == "map" then
    if type(value) ~= "table" then
      return nil, validation_errors.MAP
    end
    field.keys = field.keys or { type = "string" }
    field.values = field.values or { type = "any" }
    field.keys.required = true
    field.values.required = true
    for k, v in pairs(value) do
      local ok, err = self:validate_field(field.keys, k)
      if not ok then
        return nil, err
      end
      ok, err = self:validate_field(field.values, v)
      if not ok then
        return nil, err
      end
    end

  elseif ftype == "record" then
    if type(value) ~= "table" then
      return nil, validation_errors.RECORD
    end
    local fs = get_field_schema(field)
    local copy = fs:process_auto_fields(value, "insert")
    local ok, err = fs:validate(copy)
    if not ok then
      return nil, err
    end

  elseif ftype == "foreign" then
    local pk, fschema = foreign_pk(field)
    local probe = fschema or { primary_key = pk, fields = { id = { type = "string", uuid = true } } }
    local ok, errs = Schema.validate_primary_key(setmetatable(probe, Schema), value, true)
    if not ok then
      return nil, errs
    end

  elseif ftype == "integer" then
    if not (type(value) == "number" and value == floor(value)
            and value ~= 1 / 0 and value ~= -1 / 0) then
      return nil, validation_errors.INTEGER
    end

  elseif ftype == "string" then
    if type(value) ~= "string" then
      return nil, validation_errors.STRING
    end
    if not field.len_min then
      field.len_min = 1
    end
    if field.referenceable and value:sub(1, 8) == "{vault:/" then
      return true
    end

  elseif ftype == "function" then
    if type(value) ~= "function" then
      return nil, validation_errors.FUNCTION
    end

  elseif ftype == "json" or ftype == "any" then
    -- any JSON value; validators only

  elseif ftype == "number" or ftype == "boolean" then
    if type(value) ~= ftype then
      return nil, validation_errors[ftype:upper()]
    end

  else
    return nil, validation_errors.SCHEMA_TYPE:format(tostring(ftype))
  end

  local order = Schema.validators_order
  for i = 1, #order do
    local k = order[i]
    if field[k] ~= nil then
      local ok, err = validators[k](value, field[k], field)
      if not ok then
        if not err then
          err = (validation_errors[k:upper()] or validation_errors.VALIDATION)
                :format(tostring(value))
        end
        return nil, field.err or err
      end
    end
  end
  return true
end

local function validate_fields(self, input)
  local errors = {}
  local subschema = get_subschema(self, input)
  for k, v in pairs(input) do
    local skip = (k == "updated_at") or (k == "ttl" and self.ttl)
    if not skip then
      local field, err = resolve_field(self, k, nil, subschema)
      if field then
        local _, ferr = self:validate_field(field, v)
        errors[k] = ferr
      else
        errors[k] = err
      end
    end
  end
  return errors
end

local function insert_entity_error(errors, err)
  errors["@entity"] = errors["@entity"] or {}
  insert(errors["@entity"], err)
end

local function pretty(v)
  local ok, pl_pretty = pcall(require, "pl.pretty")
  if ok then
    return (pl_pretty.write(v):gsub("%s+", " "))
  end
  return tostring(v)
end

local function run_entity_check(self, name, input, arg, full_check, errors)
  local checker = checkers[name]
  if not checker then
    insert_entity_error(errors, validation_errors.ENTITY_CHECK:format(name, "unknown check"))
    return
  end
  local check_input, to_check, required = {}, {}, {}
  if checker.field_sources then
    for _, source in ipairs(checker.field_sources) do
      local v = arg[source]
      local names = type(v) == "string" and { v } or (type(v) == "table" and v or {})
      for _, fname in ipairs(names) do
        to_check[#to_check + 1] = fname
        if checker.required_fields[source] then
          required[fname] = true
        end
      end
    end
  else
    for i = 1, #arg do
      to_check[i] = arg[i]
      required[arg[i]] = true
    end
  end

  local missing
  local all_nil, all_ok = true, true
  for _, fname in ipairs(to_check) do
    local value = get_field(input, fname)
    if value == nil then
      if not checker.run_with_missing_fields and not arg.run_with_missing_fields
         and required[fname] and not (get_schema_field(self, fname) or {}).nilable then
        missing = missing or {}
        missing[#missing + 1] = fname
      end
    else
      all_nil = false
    end
    if errors[fname] then
      all_ok = false
    end
    set_field(check_input, fname, value)
  end

  if not all_ok and not checker.run_with_invalid_fields and not arg.run_with_invalid_fields then
    return
  end
  if all_nil and not (checker.run_with_missing_fields and full_check) then
    return
  end
  if missing then
    for _, fname in ipairs(missing) do
      set_field(errors, fname, validation_errors.REQUIRED_FOR_ENTITY_CHECK)
    end
    return
  end

  local ok, err, custom = checker.fn(check_input, arg, self, errors)
  if ok then
    return
  end
  if custom then
    insert_entity_error(errors, custom)
    return
  end
  local efmt = validation_errors[name:upper()]
  err = efmt and efmt:format(err) or err
  if not err then
    err = validation_errors.ENTITY_CHECK:format(name, pretty({ [name] = arg }))
  end
  insert_entity_error(errors, err)
end

local function run_checks(self, input, full_check, checks, errors)
  for _, check in ipairs(checks or {}) do
    local name = next(check)
    local arg = check[name]
    if arg and arg ~= null then
      run_entity_check(self, name, input, arg, full_check, errors)
    end
  end
end

local function run_self_check(self, input, errors)
  for fname, field in self:each_field() do
    if input[fname] == nil and not field.nilable then
      errors[fname] = validation_errors.REQUIRED_FOR_ENTITY_CHECK
      return
    end
  end
  local ok, err = self.check(input)
  if ok then
    return
  end
  if type(err) == "string" then
    insert_entity_error(errors, err)
  elseif type(err) == "table" then
    for k, v in pairs(err) do
      if type(k) == "number" then
        insert_entity_error(errors, v)
      else
        errors[k] = v
      end
    end
  else
    insert_entity_error(errors, validation_errors.CHECK)
  end
end

--- Validates `input` (already through process_auto_fields for a full check).
-- @treturn true|nil
-- @treturn table Kong's error table: field name -> message or nested table,
-- cross-field errors under "@entity".
function Schema:validate(input, full_check)
  if full_check == nil then
    full_check = true
  end
  if type(input) ~= "table" then
    return nil, { ["@entity"] = { validation_errors.BAD_INPUT } }
  end
  if self.subschema_key then
    local key = input[self.subschema_key]
    if key == nil or key == null then
      return nil, { [self.subschema_key] = validation_errors.REQUIRED }
    end
    if not get_subschema(self, input) then
      local msg = self.subschema_error or validation_errors.SUBSCHEMA_UNKNOWN
      return nil, { [self.subschema_key] = msg:format(type(key) == "string" and key
                                                      or tostring(key[1])) }
    end
  end

  local errors = validate_fields(self, input)
  for name, field in self:each_field() do
    if field.required and (input[name] == null or (full_check and input[name] == nil)) then
      errors[name] = validation_errors.REQUIRED
    end
  end

  run_checks(self, input, full_check, self.entity_checks, errors)
  local subschema = get_subschema(self, input)
  if subschema then
    local proxy_fields = setmetatable({}, { __index = function(_, k)
      return subschema.fields[k] or self.fields[k]
    end })
    local proxy = setmetatable({ fields = proxy_fields }, { __index = self })
    run_checks(proxy, input, full_check, subschema.entity_checks, errors)
  end
  if self.check and full_check then
    run_self_check(self, input, errors)
  end

  if next(errors) then
    return nil, errors
  end
  return true
end

function Schema:validate_insert(input)
  return self:validate(input, true)
end

---------------------------------------------------------------------------
-- defaults and auto fields

local function make_array(a)
  if is_sequence(a) and getmetatable(a) == nil then
    return setmetatable(a, array_mt)
  end
  return a
end

local function make_set(s)
  if not is_sequence(s) then
    return s
  end
  local out, seen = {}, {}
  for i = 1, #s do
    local v = s[i]
    if not seen[v] then
      seen[v] = true
      out[#out + 1] = v
    end
  end
  return setmetatable(out, array_mt)
end

local function handle_missing_field(field, value)
  if field.default ~= nil then
    local copy = deep_copy(field.default)
    if (field.type == "array" or field.type == "set") and type(copy) == "table"
       and getmetatable(copy) == nil then
      setmetatable(copy, array_mt)
    end
    return copy
  end
  if field.nilable then
    return value
  end
  if field.required ~= true then
    return null
  end
  if field.abstract then
    return nil
  end
  if field.type == "record" then
    return get_field_schema(field):process_auto_fields({}, "insert")
  end
  return nil
end

local function adjust_field(field, value, context, nulls)
  if context == "select" and value == null and field.required == true then
    return handle_missing_field(field, value)
  end
  if field.abstract then
    return value
  end
  if field.type == "record" then
    local recurse
    if context == "update" then
      recurse = value ~= null and value ~= nil
    else
      recurse = value ~= null and (value ~= nil or field.required == true)
    end
    if recurse then
      value = value or handle_missing_field(field, value)
      if type(value) == "table" then
        return get_field_schema(field):process_auto_fields(value, context, nulls)
      end
    end
  elseif type(value) == "table" then
    local sub
    if field.type == "array" then
      value, sub = make_array(value), field.elements
    elseif field.type == "set" then
      value, sub = make_set(value), field.elements
    elseif field.type == "map" then
      sub = field.values
    end
    if sub then
      for k, v in pairs(value) do
        value[k] = adjust_field(sub, v, context, nulls)
      end
    end
  end
  if value == nil and context ~= "update" then
    return handle_missing_field(field, value)
  end
  return value
end

-- tollgate.c.util (clock, UUIDs), loaded when first needed.
local function util()
  return require "tollgate.c.util"
end

local function now_seconds()
  return util().now()
end

local function new_uuid()
  return util().uuid_v4()
end

--- Applies shorthand fields, fills defaults and auto fields (context
-- "insert", "update", "upsert" or "select"). Returns a copy; nil, errs when a
-- shorthand value is invalid.
function Schema:process_auto_fields(data, context, nulls)
  local is_select = context == "select"
  if not is_select then
    data = deep_copy(data)
  end

  if self.shorthand_fields then
    local errs
    for _, sf in ipairs(self.shorthand_fields) do
      local sname, sdata = next(sf)
      local value = data[sname]
      if value ~= nil then
        local _, err = self:validate_field(sdata, value)
        if err then
          errs = errs or {}
          errs[sname] = err
        else
          data[sname] = nil
          local new_values = sdata.func(value)
          for k, v in pairs(new_values or {}) do
            if type(v) == "table" and type(data[k]) == "table" then
              for kk, vv in pairs(v) do
                data[k][kk] = vv
              end
            elseif not sdata.deprecation or data[k] == nil or data[k] == null then
              data[k] = v
            end
          end
        end
      end
    end
    if errs then
      return nil, errs
    end
  end

  local now_s
  for key, field in self:each_field(data) do
    local value = data[key]
    if not is_select and field.auto then
      local creating = context == "insert" or context == "upsert"
      if field.uuid then
        if creating and value == nil then
          value = new_uuid()
        end
      elseif field.type == "string" then
        if creating and value == nil then
          value = (new_uuid():gsub("%-", ""))
        end
      elseif (key == "created_at" and creating and (value == nil or value == null))
          or (key == "updated_at" and (creating or context == "update")) then
        now_s = now_s or now_seconds()
        value = field.type == "integer" and floor(now_s) or floor(now_s * 1000) / 1000
      end
    end
    data[key] = adjust_field(field, value, context, nulls)
  end

  if is_select then
    for key in pairs(data) do
      local field = self.fields[key]
      if field then
        if data[key] == null and not nulls then
          data[key] = nil
        elseif field.type == "integer" and type(data[key]) == "number" then
          data[key] = floor(data[key])
        end
      elseif not (key == "ws_id" or (key == "ttl" and self.ttl)) then
        data[key] = nil
      end
    end
  end
  return data
end

---------------------------------------------------------------------------
-- construction

function Schema:each_field(values)
  local subschema = values and get_subschema(self, values)
  local i = 0
  return function()
    i = i + 1
    local item = self.fields[i]
    if not item then
      return nil
    end
    local key = next(item)
    return key, (resolve_field(self, key, item[key], subschema))
  end
end

local function index_record_fields(field)
  for _, item in ipairs(field.fields) do
    local k, f = next(item)
    field.fields[k] = f
    if f.type == "record" and f.fields then
      index_record_fields(f)
    end
  end
end

function Schema:errors_to_string(errors)
  if type(errors) ~= "table" or not next(errors) then
    return nil
  end
  local msgs = {}
  for _, e in ipairs(errors["@entity"] or {}) do
    msgs[#msgs + 1] = e
  end
  for i = 1, #errors do
    msgs[#msgs + 1] = errors[i]
  end
  local keys = {}
  for k in pairs(errors) do
    if type(k) == "string" and k ~= "@entity" then
      keys[#keys + 1] = k
    end
  end
  sort(keys)
  for _, k in ipairs(keys) do
    local e = errors[k]
    if type(e) == "table" then
      e = self:errors_to_string(e)
    end
    msgs[#msgs + 1] = k .. ": " .. e
  end
  return validation_errors.ERROR:format(concat(msgs, "; "))
end

--- Builds a schema from a Kong-style definition (copied; the definition is
-- left untouched).
function Schema.new(definition, is_subschema)
  if not definition then
    return nil, validation_errors.SCHEMA_NO_DEFINITION
  end
  if not definition.fields then
    return nil, validation_errors.SCHEMA_NO_FIELDS
  end
  local self = setmetatable(deep_copy(definition), Schema)
  for _, item in ipairs(self.fields) do
    local key, field = next(item)
    self.fields[key] = field
    if field.type == "record" and field.fields then
      index_record_fields(field)
    end
    if field.type == "foreign" and not field.reference then
      return nil, validation_errors.SCHEMA_BAD_REFERENCE:format(tostring(key))
    end
  end
  if self.cache_key then
    self.cache_key_set = {}
    for _, k in ipairs(self.cache_key) do
      self.cache_key_set[k] = true
    end
  end
  if self.name and not is_subschema and self.primary_key then
    registry[self.name] = self
  end
  return self
end

local function compatible_fields(f1, f2)
  if f1.type == "record" and f2.type == "json" then
    return true
  end
  if f1.type ~= f2.type then
    return false
  end
  if f1.type == "array" or f1.type == "set" then
    return f1.elements.type == f2.elements.type
  end
  if f1.type == "map" then
    return f1.keys.type == f2.keys.type and f1.values.type == f2.values.type
  end
  return true
end

-- Entities make their records required, so rows carry their full structure
-- (Kong's Entity.new); subschemas of entities likewise.
local function make_records_required(field)
  if field.required == nil then
    field.required = true
  end
  for _, item in ipairs(field.fields or {}) do
    local _, f = next(item)
    if f.type == "record" then
      make_records_required(f)
    end
  end
end

function Schema:new_subschema(key, definition)
  if not self.subschema_key then
    return nil, validation_errors.SUBSCHEMA_BAD_PARENT:format(key, tostring(self.name))
  end
  if self.is_entity then
    definition = deep_copy(definition)
    make_records_required(definition)
    definition.required = nil
  end
  local sub, err = Schema.new(definition, true)
  if not sub then
    return nil, err
  end
  local parent = {}
  for _, item in ipairs(self.fields) do
    local n, f = next(item)
    parent[n] = f
  end
  for fname, field in sub:each_field() do
    if not parent[fname] then
      return nil, validation_errors.SUBSCHEMA_BAD_FIELD:format(key, fname)
    end
    if not compatible_fields(parent[fname], field) then
      return nil, validation_errors.SUBSCHEMA_BAD_TYPE:format(key, fname)
    end
  end
  for fname, field in pairs(parent) do
    if field.abstract and field.required and not sub.fields[fname] then
      return nil, validation_errors.SUBSCHEMA_UNDEFINED_FIELD:format(key, fname)
    end
  end
  self.subschemas = self.subschemas or {}
  self.subschemas[key] = sub
  return true
end

--- An entity schema: Schema.new plus Kong's entity rules (records required).
function Schema.new_entity(definition)
  local self, err = Schema.new(definition)
  if not self then
    return nil, err
  end
  for _, item in ipairs(self.fields) do
    local _, field = next(item)
    if field.type == "record" and not field.abstract then
      make_records_required(field)
    end
  end
  self.is_entity = true
  return self
end

--- A callable definition: `def { required = true }` returns a copy of the
-- call's table completed with def's attributes (Kong's Schema.define).
function Schema.define(tbl)
  return setmetatable(tbl, {
    __call = function(t, arg)
      arg = arg or {}
      for k, v in pairs(t) do
        if arg[k] == nil then
          arg[k] = v
        end
      end
      return arg
    end,
  })
end

Schema.is_nonempty = is_nonempty
Schema.get_field = get_field

return Schema
