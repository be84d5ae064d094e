-- tollgate.declarative: Kong's declarative config (format 3.0) for the control thread.
--
--   local declarative = require "tollgate.declarative"
--   local config, err_t = declarative.load_files({ "kong.yaml", "teams/" }, opts)
--   local config, err_t = declarative.load_string(body, opts)   -- POST /config
--   local text = declarative.error_text(err_t)                   -- `config parse`
--   local yaml = declarative.export(config)                      -- GET /config
--   local body = declarative.error_body(err_t, flatten)          -- POST /config 400 body
--
-- opts: workspace (default "default", for sources without `_workspace`),
--       plugins (array or set of enabled plugin names; nil = any plugin whose
--       schema module loads), plugin_schema(name) -> definition (optional).
--
-- config = { hash, workspaces = { row, ... }, entities = { services = { row, ... }, ... },
--            meta = { _format_version = "3.0", _transform = bool } }
-- Rows have the Admin API's shape: foreign keys as { id = ... }, absent values
-- as cjson.null, `ws_id` on workspaced rows, created_at/updated_at in seconds
-- (targets: milliseconds precision, as Kong).
--
-- Ids (KONG_COMPAT.md "Ids when none are given"): UUIDv5(UUIDv5(ns, entity), key)
-- with ns = fd02801f-0957-4a15-a55a-c8d9606f30b5 and Kong's keys: cache-key
-- entities "<entity>:<ws>:<field>:..." (ws is "*" in the default workspace,
-- the workspace id elsewhere), else the endpoint key (name, username, ...;
-- outside the default workspace ":<ws_id>" is appended unless the key is
-- unique across workspaces). tollgate extensions, so that ids are stable:
-- certificates and CA certificates use "<sha256 of cert PEM>:<ws>", entities
-- with no key "<workspace name>:<n>:<path>" (n = the source's rank among the
-- sources of that workspace, path = e.g. "services.1.routes.2").
-- Workspaces: the default one is 0dc6f45b-8f8d-40d2-a504-473544ee190b, others
-- UUIDv5(UUIDv5(ns, "workspaces"), "workspaces:*:<name>") (Kong's cache-key rule).
--
-- Timestamps: created_at is the time a row id was first loaded by this
-- process, updated_at the time its content last changed; reloading the same
-- file keeps both. The hash is the md5 of the canonical JSON of all rows
-- without their timestamps, so a reformatted file keeps its hash.

local cjson = require "cjson"
local Schema = require "tollgate.schema"
local entities = require "tollgate.entities"
local uuid = require "tollgate.uuid"
local errors = require "tollgate.declarative.errors"
local serialize = require "tollgate.declarative.serialize"
local util = require "tollgate.c.util"
local net = require "tollgate.schema.net"

local null = Schema.null
local type, pairs, ipairs, tostring, next = type, pairs, ipairs, tostring, next
local concat, sort = table.concat, table.sort
local unpack = unpack or table.unpack

local _M = {
  DEFAULT_WORKSPACE_ID = "0dc6f45b-8f8d-40d2-a504-473544ee190b",
  FORMAT_VERSIONS = { "1.1", "2.1", "3.0" },
}

-- Top-level sections, parents before children.
local TOP = { "consumers", "certificates", "ca_certificates", "snis", "services", "routes",
              "upstreams", "targets", "key_sets", "keys", "vaults", "plugins" }
local CHILDREN = errors.CHILDREN
local CHILD_ORDER = {
  services = { "routes", "plugins" }, routes = { "plugins" }, consumers = { "plugins" },
  upstreams = { "targets" }, certificates = { "snis" }, key_sets = { "keys" },
}
local META = { _format_version = true, _transform = true, _comment = true, _ignore = true,
               _workspace = true }

local function md5_hex(s)
  return util.hex(util.md5(s))
end

---------------------------------------------------------------------------
-- parsing

local function convert_nulls(v, from)
  if type(v) ~= "table" then
    return v
  end
  for k, x in pairs(v) do
    if x == from then
      v[k] = null
    else
      convert_nulls(x, from)
    end
  end
  return v
end

-- Decodes with `decode` (which may raise); a table or nil, err.
local function decode_object(decode, text, nullv)
  local ok, doc = pcall(decode, text)
  if not ok then
    return nil, tostring(doc)
  end
  if type(doc) ~= "table" then
    return nil, "expected an object"
  end
  return nullv and convert_nulls(doc, nullv) or doc
end

local function parse_yaml(text)
  local lyaml = require "lyaml"
  return decode_object(lyaml.load, text, lyaml.null)
end

local function parse_json(text)
  return decode_object(cjson.decode, text)
end

-- Kong's unserialize: by extension, or JSON then YAML for a string.
local function unserialize(text, filename)
  local doc, err
  local tried = false
  if filename == nil or filename:match("json$") then
    tried = true
    doc, err = parse_json(text)
  end
  if type(doc) ~= "table" and (filename == nil or filename:match("ya?ml$")) then
    tried = true
    doc, err = parse_yaml(text)
  end
  if type(doc) ~= "table" then
    if not tried then
      err = "unknown file type: " .. tostring(filename) .. ". (Accepted types: json, yaml)"
    else
      err = "failed parsing declarative configuration" .. (err and (": " .. err) or "")
    end
    return nil, err
  end
  return doc
end

---------------------------------------------------------------------------
-- error tables

local function errs_at(errs, path)
  local t = errs
  for i = 1, #path do
    local k = path[i]
    if type(t[k]) ~= "table" then
      t[k] = {}
    end
    t = t[k]
  end
  return t
end

local function set_err(errs, path, value)
  local parent = errs_at(errs, { unpack(path, 1, #path - 1) })
  local k = path[#path]
  if type(value) == "table" and type(parent[k]) == "table" then
    for kk, vv in pairs(value) do
      parent[k][kk] = vv
    end
  else
    parent[k] = value
  end
end

local function path_text(path)
  local parts = {}
  for i, p in ipairs(path) do
    parts[i] = tostring(p)
  end
  return concat(parts, ".")
end

---------------------------------------------------------------------------
-- plugins and vaults subschemas

local function plugin_enabled(opts, name)
  local set = opts.plugins
  if set == nil then
    return true
  end
  if set[name] then
    return true
  end
  for _, n in ipairs(set) do
    if n == name then
      return true
    end
  end
  return false
end

local function ensure_plugin_subschema(opts, name)
  if type(name) ~= "string" or not plugin_enabled(opts, name) then
    return
  end
  local plugins = entities.get("plugins")
  if plugins.subschemas and plugins.subschemas[name] then
    return
  end
  local def
  if opts.plugin_schema then
    def = opts.plugin_schema(name)
  end
  if not def then
    -- tollgate.plugins finds bundled and custom schemas (kong.plugins.<name>.schema)
    local ok, loader = pcall(require, "tollgate.plugins")
    local mod, err
    if ok then
      mod, err = loader.schema(name)
      if not mod and not err:find("^no configuration schema found") then
        error("error loading plugin schemas: on plugin '" .. name .. "': " .. err, 0)
      end
    else
      ok, mod = pcall(require, "kong.plugins." .. name .. ".schema")
      mod = ok and mod or nil
    end
    if type(mod) == "table" then
      def = mod
    elseif opts.plugins == nil then
      return -- not installed: refused as not enabled
    end
  end
  if def then
    local ok, err = plugins:new_subschema(name, def)
    if not ok then
      error("plugin '" .. name .. "' schema: " .. tostring(err), 0)
    end
  else
    -- enabled, but its schema is not loadable here: config accepted as given
    plugins.subschemas = plugins.subschemas or {}
    plugins.subschemas[name] = Schema.new({ name = name,
                                            fields = { { config = { type = "json" } } } }, true)
  end
end

---------------------------------------------------------------------------
-- ids

local function ws_key(item)
  return item.ws.id == _M.DEFAULT_WORKSPACE_ID and "*" or item.ws.id
end

local function cache_key(name, schema, item)
  local raw = item.raw
  local ck = { name, ws_key(item) }
  for _, k in ipairs(schema.cache_key) do
    local v = raw[k]
    if schema.fields[k].auto then
      return nil
    elseif type(v) == "string" then
      ck[#ck + 1] = v
    elseif v == nil then
      if item.parent and k == item.fk then
        ck[#ck + 1] = item.parent.id
      elseif schema.fields[k].required then
        return nil
      else
        ck[#ck + 1] = ""
      end
    end
  end
  return concat(ck, ":")
end

local function generate_id(item)
  local name, schema, raw = item.entity, item.schema, item.raw
  if raw.id ~= nil then
    return raw.id
  end
  local key
  if schema.cache_key then
    key = cache_key(name, schema, item)
  elseif schema.endpoint_key and raw[schema.endpoint_key] ~= nil
         and type(raw[schema.endpoint_key]) == "string" then
    local field = schema.fields[schema.endpoint_key]
    key = raw[schema.endpoint_key]
    if not field.unique then
      local fk = item.parent and item.parent.id or ""
      key = key .. ":" .. fk .. ":" .. ws_key(item)
    elseif ws_key(item) ~= "*" and not field.unique_across_ws then
      key = key .. ":" .. item.ws.id
    end
  elseif (name == "certificates" or name == "ca_certificates") and type(raw.cert) == "string" then
    key = util.hex(util.sha256(raw.cert)) .. ":" .. ws_key(item)
  end
  if not key then
    key = item.ws.name .. ":" .. item.rank .. ":" .. path_text(item.path)
  end
  return uuid.entity_id(name, key)
end

---------------------------------------------------------------------------
-- walking the sources

local function new_state(opts)
  return {
    opts = opts,
    items = {},          -- every entity, parents before children
    errs = {},
    workspaces = {},     -- by name
    ws_list = {},
    ranks = {},          -- per workspace name, sources seen
  }
end

local function workspace(st, name)
  local ws = st.workspaces[name]
  if not ws then
    local id = name == "default" and _M.DEFAULT_WORKSPACE_ID
               or uuid.entity_id("workspaces", "workspaces:*:" .. name)
    ws = { id = id, name = name }
    st.workspaces[name] = ws
    st.ws_list[#st.ws_list + 1] = ws
  end
  return ws
end

local function collect(st, src, entity, list, path, parent, fk)
  if type(list) ~= "table" or (next(list) ~= nil and not Schema.is_sequence(list)) then
    set_err(src.errs, path, "expected an array")
    return
  end
  for i, raw in ipairs(list) do
    local ipath = { unpack(path) }
    ipath[#ipath + 1] = i
    if type(raw) ~= "table" then
      set_err(src.errs, ipath, "expected a record")
    else
      local item = {
        entity = entity, schema = entities.get(entity), raw = raw, path = ipath,
        parent = parent, fk = fk, ws = src.ws, rank = src.rank, src = src,
      }
      if entity == "plugins" then
        ensure_plugin_subschema(st.opts, raw.name)
      end
      item.id = generate_id(item)
      st.items[#st.items + 1] = item
      for _, child in ipairs(CHILD_ORDER[entity] or {}) do
        if raw[child] ~= nil and raw[child] ~= null
           and not (entity == "certificates" and child == "snis" and type(raw[child]) == "table"
                    and type(raw[child][1]) == "string") then
          local cpath = { unpack(ipath) }
          cpath[#cpath + 1] = child
          collect(st, src, child, raw[child], cpath, item, CHILDREN[entity][child])
        end
      end
    end
  end
end

local function check_top(src, doc)
  local e = src.errs
  local v = doc._format_version
  if v == nil or v == null then
    e._format_version = Schema.validation_errors.REQUIRED
  elseif type(v) ~= "string" then
    e._format_version = Schema.validation_errors.STRING
  else
    local ok = false
    for _, f in ipairs(_M.FORMAT_VERSIONS) do
      if v == f then ok = true end
    end
    if not ok then
      e._format_version = "expected one of: " .. concat(_M.FORMAT_VERSIONS, ", ")
    end
  end
  if doc._transform ~= nil and type(doc._transform) ~= "boolean" then
    e._transform = Schema.validation_errors.BOOLEAN
  end
  if doc._comment ~= nil and type(doc._comment) ~= "string" then
    e._comment = Schema.validation_errors.STRING
  end
  if doc._workspace ~= nil then
    local ws_schema = entities.get("workspaces")
    local ok, err = ws_schema:validate_field(ws_schema.fields.name, doc._workspace)
    if not ok then
      e._workspace = err
    end
  end
  for k in pairs(doc) do
    if type(k) ~= "string" then
      e[tostring(k)] = Schema.validation_errors.UNKNOWN
    elseif not META[k] and not CHILDREN[k] and not (function()
      for _, t in ipairs(TOP) do if t == k then return true end end
    end)() then
      e[k] = Schema.validation_errors.UNKNOWN
    end
  end
end

-- Kong's migration of pre-3.0 route paths: a regex-looking path gets "~".
local function migrate_paths(doc)
  local v = doc._format_version
  if v ~= "1.1" and v ~= "2.1" then
    return
  end
  local function routes(list)
    for _, r in ipairs(type(list) == "table" and list or {}) do
      if type(r) == "table" and type(r.paths) == "table" then
        for i, p in ipairs(r.paths) do
          if type(p) == "string" and not p:match("^[%w%.%-_~/%%]*$") then
            r.paths[i] = "~" .. p
          end
        end
      end
    end
  end
  routes(doc.routes)
  for _, s in ipairs(type(doc.services) == "table" and doc.services or {}) do
    if type(s) == "table" then
      routes(s.routes)
    end
  end
  doc._format_version = "3.0"
end

---------------------------------------------------------------------------
-- validation

local function find_ref(st, ws, entity, key)
  local schema = entities.get(entity)
  local ekey = schema.endpoint_key
  local across = ekey and schema.fields[ekey].unique_across_ws
  local bk = st.by_key[across and "*" or ws.id]
  local found = bk and bk[entity] and bk[entity][key]
  if found then
    return found
  end
  found = st.by_id[entity] and st.by_id[entity][key]
  if found and (not schema.workspaceable or found.ws == ws) then
    return found
  end
  return nil
end

local function index_items(st)
  st.by_id, st.by_key, st.key_errs = {}, {}, {}
  for _, item in ipairs(st.items) do
    local schema, name = item.schema, item.entity
    local ekey = schema.endpoint_key
    local failed = false
    if ekey and schema.fields[ekey].unique then
      local key = item.raw[ekey]
      if key ~= nil and key ~= null and type(key) ~= "table" then
        local wsk = (schema.fields[ekey].unique_across_ws or not schema.workspaceable) and "*"
                    or item.ws.id
        st.by_key[wsk] = st.by_key[wsk] or {}
        st.by_key[wsk][name] = st.by_key[wsk][name] or {}
        local bucket = st.by_key[wsk][name]
        if bucket[key] then
          failed = true
          st.key_errs[#st.key_errs + 1] = { item = item,
            msg = "uniqueness violation: '" .. name .. "' entity with " .. ekey ..
                  " set to '" .. tostring(key) .. "' already declared" }
        else
          bucket[key] = item
        end
      end
    end
    if type(item.id) == "string" then
      st.by_id[name] = st.by_id[name] or {}
      if not failed and st.by_id[name][item.id] then
        st.key_errs[#st.key_errs + 1] = { item = item,
          msg = "uniqueness violation: '" .. name .. "' entity with primary key set to '" ..
                item.id .. "' already declared" }
      else
        st.by_id[name][item.id] = st.by_id[name][item.id] or item
      end
    end
  end
end

-- Builds the input row of an item: children removed, foreign keys as { id }.
local function item_input(st, item)
  local schema, raw = item.schema, item.raw
  local input, ferrs = {}, {}
  local children = CHILDREN[item.entity] or {}
  for k, v in pairs(raw) do
    if k == "_comment" then
      if type(v) ~= "string" then ferrs[k] = Schema.validation_errors.STRING end
    elseif k == "_ignore" then
      if type(v) ~= "table" then ferrs[k] = Schema.validation_errors.ARRAY end
    elseif children[k] and not (item.entity == "certificates" and k == "snis") then
      -- nested entities, handled on their own
    else
      input[k] = v
    end
  end
  input.id = item.id
  if item.entity == "certificates" then
    input.snis = nil
  end
  item.refs = {}
  for fname, field in schema:each_field() do
    if field.type == "foreign" then
      local v = input[fname]
      if item.parent then
        if v ~= nil and v ~= null then
          ferrs[fname] = Schema.validation_errors.EQ:format("null")
        end
        if fname == item.fk then
          input[fname] = { id = item.parent.id }
        end
      elseif v ~= nil and v ~= null then
        if type(v) ~= "string" then
          ferrs[fname] = Schema.validation_errors.STRING
        else
          local target = find_ref(st, item.ws, field.reference, v)
          item.refs[fname] = { value = v, target = target, reference = field.reference }
          input[fname] = { id = target and target.id or v }
          if not target and not uuid.is_valid(v) then
            input[fname] = { id = uuid.entity_id(field.reference, "unresolved:" .. v) }
          end
        end
      end
    end
  end
  return input, ferrs
end

local function validate_items(st)
  for _, item in ipairs(st.items) do
    local input, ferrs = item_input(st, item)
    local row, perr = item.schema:process_auto_fields(input, "insert")
    local ok, verr = true, nil
    if row then
      ok, verr = item.schema:validate(row)
    else
      ok, verr = false, perr
    end
    if item.entity == "plugins" and type(item.raw.name) == "string"
       and not plugin_enabled(st.opts, item.raw.name) then
      -- its schema may be known to this lua_State (loaded for another config)
      ferrs.name = item.schema.subschema_error:format(item.raw.name)
      if type(verr) == "table" then
        verr.config = nil
      end
    end
    if not ok or next(ferrs) then
      local e = verr or {}
      for k, v in pairs(ferrs) do
        e[k] = v
      end
      set_err(item.src.errs, item.path, e)
    elseif item.entity == "ca_certificates" then
      row.cert_digest = require("tollgate.entities.ca_certificates").digest(row.cert) or null
    end
    item.row = row
  end
end

local function check_references(st)
  for _, ke in ipairs(st.key_errs) do
    set_err(ke.item.src.errs, ke.item.path, ke.msg)
  end
  for _, item in ipairs(st.items) do
    for fname, ref in pairs(item.refs or {}) do
      if not ref.target then
        local schema = item.schema
        local at = (schema.endpoint_key and type(item.raw[schema.endpoint_key]) == "string"
                    and item.raw[schema.endpoint_key]) or item.id
        local section = errs_at(item.src.errs, { item.entity })
        section[at] = section[at] or {}
        local list = section[at]
        list[#list + 1] = "invalid reference '" .. fname .. ": " .. ref.value ..
                          "' (no such entry in '" .. ref.reference .. "')"
      else
        item.row[fname] = { id = ref.target.id }
      end
    end
  end
end

local function check_unique_fields(st)
  local seen = {}
  for _, item in ipairs(st.items) do
    local schema, row = item.schema, item.row
    for fname, field in schema:each_field() do
      local v = row[fname]
      if field.unique and fname ~= schema.endpoint_key and v ~= nil and v ~= null then
        local key = (schema.workspaceable and not field.unique_across_ws)
                    and (item.ws.id .. ":" .. tostring(type(v) == "table" and v.id or v))
                    or tostring(v)
        local bucket = item.entity .. "\0" .. fname
        seen[bucket] = seen[bucket] or {}
        if seen[bucket][key] then
          local at = schema.endpoint_key and row[schema.endpoint_key] ~= null
                     and row[schema.endpoint_key] or item.id
          errs_at(item.src.errs, { item.entity })[at] = "uniqueness violation: '" ..
            item.entity .. "' entity with " .. fname .. " set to '" .. tostring(v) ..
            "' already declared"
        else
          seen[bucket][key] = true
        end
      end
    end
  end
end

local function check_route_conflicts(st)
  local routes, owners = {}, {}
  for _, item in ipairs(st.items) do
    if item.entity == "routes" then
      local r = Schema.deep_copy(item.row)
      r.ws_id = item.ws.id
      routes[#routes + 1] = r
      owners[#owners + 1] = item
    end
  end
  if #routes < 2 then
    return
  end
  local ok, router = pcall(require, "tollgate.c.router")
  if not ok then
    error("tollgate.c.router is not available: cannot check routes for conflicts (" ..
          tostring(router) .. ")", 0)
  end
  local i, j, msg = router.find_conflict(routes)
  if i then
    -- the router's message names both routes and their workspaces
    local b = owners[j] or owners[i]
    set_err(b.src.errs, b.path, { ["@entity"] = { tostring(msg) } })
  end
end

---------------------------------------------------------------------------
-- output rows

local stamps = {}   -- id -> { created_at, updated_at, digest }: stable timestamps

local function stamp(row, now, ms)
  local copy = Schema.deep_copy(row)
  copy.created_at, copy.updated_at = nil, nil
  local digest = md5_hex(serialize.canonical_json(copy))
  local s = stamps[row.id]
  if not s then
    s = { created_at = now, updated_at = now, digest = digest }
    stamps[row.id] = s
  elseif s.digest ~= digest then
    s.updated_at, s.digest = now, digest
  end
  local function fmt(t)
    return ms and math.floor(t * 1000) / 1000 or math.floor(t)
  end
  row.created_at, row.updated_at = fmt(s.created_at), fmt(s.updated_at)
  return digest
end

local function target_with_port(t)
  local p = net.normalize_ip(t)
  if p and not p.port then
    if p.type == "ipv6" then
      local bare = t:match("^%[(.*)%]$") or t
      return "[" .. bare .. "]:8000"
    end
    return t .. ":8000"
  end
  return t
end

local function build(st, now)
  local out = { workspaces = {}, entities = {} }
  for _, name in ipairs(entities.ORDER) do
    if name ~= "workspaces" then
      out.entities[name] = setmetatable({}, Schema.array_mt)
    end
  end
  local digests = {}
  if not st.workspaces.default then
    workspace(st, "default")
  end
  local ws_schema = entities.get("workspaces")
  for _, ws in ipairs(st.ws_list) do
    local row = ws_schema:process_auto_fields({ id = ws.id, name = ws.name }, "insert")
    stamp(row, now)
    out.workspaces[#out.workspaces + 1] = row
  end
  local cert_snis = {}
  for _, item in ipairs(st.items) do
    local row = item.row
    if item.schema.workspaceable then
      row.ws_id = item.ws.id
    end
    if item.entity == "targets" and type(row.target) == "string" then
      row.target = target_with_port(row.target)
    elseif item.entity == "snis" and type(row.certificate) == "table" then
      local l = cert_snis[row.certificate.id] or {}
      l[#l + 1] = row.name
      cert_snis[row.certificate.id] = l
    end
    stamp(row, now, item.entity == "targets")
    local list = out.entities[item.entity]
    list[#list + 1] = row
  end
  for _, row in ipairs(out.entities.certificates) do
    local names = cert_snis[row.id]
    if names then
      sort(names)
      row.snis = setmetatable(names, Schema.array_mt)
    else
      row.snis = setmetatable({}, Schema.array_mt)
    end
  end
  -- the hash covers every row (timestamps left out) in a fixed entity order
  for _, name in ipairs(entities.ORDER) do
    for _, row in ipairs(name == "workspaces" and out.workspaces or out.entities[name]) do
      local copy = Schema.deep_copy(row)
      copy.created_at, copy.updated_at = nil, nil
      digests[#digests + 1] = name .. ":" .. md5_hex(serialize.canonical_json(copy))
    end
  end
  out.hash = md5_hex(concat(digests, "\n"))
  return out
end

---------------------------------------------------------------------------
-- public API

local function fail(fields, input)
  return nil, errors.new(fields, input)
end

-- sources: array of { doc = table, name = string|nil }
local function load_docs(sources, opts)
  opts = opts or {}
  local st = new_state(opts)
  local transform = true
  for _, src in ipairs(sources) do
    local doc = src.doc
    src.errs = {}
    check_top(src, doc)
    if next(src.errs) then
      return fail(src.errs, doc)
    end
    migrate_paths(doc)
    local ws_name = doc._workspace or opts.workspace or "default"
    src.ws = workspace(st, ws_name)
    st.ranks[ws_name] = (st.ranks[ws_name] or 0) + 1
    src.rank = st.ranks[ws_name]
    if doc._transform == false then
      transform = false
    end
  end
  for _, src in ipairs(sources) do
    for _, name in ipairs(TOP) do
      local list = src.doc[name]
      if list ~= nil and list ~= null then
        collect(st, src, name, list, { name })
      end
    end
  end
  local function first_error()
    for _, src in ipairs(sources) do
      if next(src.errs) then
        local _, err_t = fail(src.errs, src.doc)
        err_t.source = src.name
        if #sources > 1 then
          err_t.sources = #sources
        end
        return err_t
      end
    end
  end
  index_items(st)
  local err_t
  validate_items(st)
  err_t = first_error()
  if err_t then
    return nil, err_t
  end
  check_references(st)
  err_t = first_error()
  if err_t then
    return nil, err_t
  end
  check_unique_fields(st)
  err_t = first_error()
  if err_t then
    return nil, err_t
  end
  check_route_conflicts(st)
  err_t = first_error()
  if err_t then
    return nil, err_t
  end
  local config = build(st, util.now())
  config.meta = { _format_version = "3.0", _transform = transform }
  return config
end

local function parse_error(err, name)
  local err_t = errors.new({ error = err }, nil)
  err_t.source = name
  return nil, err_t
end

function _M.load_string(str, opts)
  if type(str) ~= "string" then
    return parse_error("expected a string")
  end
  local doc, err = unserialize(str, opts and opts.filename)
  if not doc then
    return parse_error(err)
  end
  return load_docs({ { doc = doc } }, opts)
end

--- Loads already-decoded documents (e.g. a POST /config JSON body).
function _M.load_tables(docs, opts)
  local sources = {}
  for i, d in ipairs(docs) do
    sources[i] = { doc = Schema.deep_copy(d) }
  end
  return load_docs(sources, opts)
end

local function list_dir(dir)
  local files = {}
  local p = io.popen("ls -1 '" .. dir:gsub("'", "'\\''") .. "' 2>/dev/null")
  if p then
    for name in p:lines() do
      if name:match("%.ya?ml$") or name:match("%.json$") then
        files[#files + 1] = dir:gsub("/$", "") .. "/" .. name
      end
    end
    p:close()
  end
  sort(files)
  return files
end

local function is_dir(path)
  local f = io.open(path, "r")
  if not f then
    return false
  end
  local _, _, code = f:read(1)
  f:close()
  return code == 21 -- EISDIR
end

function _M.load_files(files, opts)
  if type(files) == "string" then
    files = { files }
  end
  local paths = {}
  for _, f in ipairs(files) do
    if is_dir(f) then
      for _, p in ipairs(list_dir(f)) do
        paths[#paths + 1] = p
      end
    else
      paths[#paths + 1] = f
    end
  end
  if #paths == 0 then
    return parse_error("no declarative configuration file found")
  end
  local sources = {}
  for _, path in ipairs(paths) do
    local fh, ferr = io.open(path, "rb")
    if not fh then
      return parse_error(ferr, path)
    end
    local text = fh:read("*a")
    fh:close()
    local doc, err = unserialize(text, path)
    if not doc then
      return parse_error(err, path)
    end
    sources[#sources + 1] = { doc = doc, name = path }
  end
  return load_docs(sources, opts)
end

--- The 400 body of POST /config: Kong's { code, name, message, fields }, plus
-- flattened_errors when `flatten` (POST /config?flatten_errors=1).
function _M.error_body(err_t, flatten)
  return {
    code = err_t.code,
    name = err_t.name,
    message = err_t.message,
    fields = err_t.fields,
    flattened_errors = flatten and err_t.flattened_errors or nil,
  }
end

function _M.error_text(err_t)
  local text = errors.text(err_t)
  if type(err_t) == "table" and err_t.sources and err_t.source then
    text = text:gsub("^Failed parsing:\n", "Failed parsing:\nin file '" .. err_t.source .. "':\n")
  end
  return text
end

---------------------------------------------------------------------------
-- export

local EXPORT_ORDER = { "services", "routes", "consumers", "plugins", "upstreams", "targets",
                       "certificates", "snis", "ca_certificates", "keys", "key_sets", "vaults" }

local function export_row(schema, row)
  local out = {}
  for k, v in pairs(row) do
    local field = schema.fields[k]
    if v == null or k == "ws_id" then
      -- left out
    elseif field and field.type == "foreign" and type(v) == "table" then
      out[k] = v.id
    else
      out[k] = v
    end
  end
  return out
end

--- YAML of one workspace's rows (opts.workspace, default "default"), flat
-- with foreign keys as ids, `_format_version: "3.0"` and `_transform: false`.
function _M.export(config, opts)
  local ws_name = opts and opts.workspace or "default"
  local ws_id
  for _, ws in ipairs(config.workspaces) do
    if ws.name == ws_name then ws_id = ws.id end
  end
  local doc = { _format_version = "3.0", _transform = false }
  if ws_name ~= "default" then
    doc._workspace = ws_name
  end
  for _, name in ipairs(EXPORT_ORDER) do
    local schema = entities.get(name)
    local rows = {}
    for _, row in ipairs(config.entities[name] or {}) do
      if not schema.workspaceable or row.ws_id == ws_id then
        local r = export_row(schema, row)
        if name == "certificates" then
          r.snis = nil
        end
        rows[#rows + 1] = r
      end
    end
    if #rows > 0 then
      doc[name] = rows
    end
  end
  return serialize.yaml(doc, { "_format_version", "_transform", "_workspace" })
end

_M.parse_error_text = errors.text
_M.TOP_LEVEL = TOP

return _M
