-- tollgate.admin.entities: the entity endpoints of Kong's Admin API, DB-less.
--
-- Generated from the entity schemas as Kong's kong/api/endpoints.lua does
-- (/services, /services/{services}, /routes/{routes}/service,
-- /services/{services}/routes, /services/{services}/routes/{routes}, ...),
-- with Kong's custom routes for targets, certificates, consumers and tags.
-- Reads come from the running config (tollgate.state); writes answer 405 with
-- the off strategy's messages ("cannot create 'services' entities when not
-- using a database"), as Kong does without a database.
--
-- Handlers get `self` = { params = { services = "<unescaped key>", ... },
-- raw = { services = "<key as written>" }, args = query args, req = the request,
-- ws = workspace row, prefix = "" or "/<workspace>" } and return a response
-- from tollgate.admin.http.

local http = require "tollgate.admin.http"
local entities = require "tollgate.entities"
local uuid = require "tollgate.uuid"

local fmt, floor, min = string.format, math.floor, math.min
local type, ipairs, pairs, tonumber, tostring = type, ipairs, pairs, tonumber, tostring
local sort, concat = table.sort, table.concat
local null = http.null

local _M = {}

local PAGE_SIZE, MAX_PAGE_SIZE = 100, 1000

local function state()
  return require "tollgate.state"
end

---------------------------------------------------------------------------
-- reads over the running config

local function all_rows(name)
  local config = state().config
  if not config then
    return {}
  end
  if name == "workspaces" then
    return config.workspaces or {}
  end
  return config.entities and config.entities[name] or {}
end
_M.all_rows = all_rows

local function in_ws(schema, row, ws_id)
  return not schema.workspaceable or row.ws_id == ws_id
end

local function by_id(a, b)
  return a.id < b.id
end

-- The rows of `schema` in the workspace, sorted by id (Kong's LMDB key order).
local function list(schema, ws_id, filter)
  local out = {}
  for _, row in ipairs(all_rows(schema.name)) do
    if in_ws(schema, row, ws_id) and (not filter or filter(row)) then
      out[#out + 1] = row
    end
  end
  sort(out, by_id)
  return out
end

-- arguments.infer_value for an endpoint key given in a path
local function infer(value, field)
  if not field then
    return value
  end
  if field.type == "integer" or field.type == "number" then
    return tonumber(value) or value
  elseif field.type == "boolean" then
    if value == "true" then return true end
    if value == "false" then return false end
  end
  return value
end

--- A row by id, or by its endpoint key when `key` is not a UUID.
local function select(schema, key, ws_id)
  if type(key) == "table" then
    key = key.id
  end
  if type(key) ~= "string" then
    return nil
  end
  if uuid.is_valid(key) then
    for _, row in ipairs(all_rows(schema.name)) do
      if row.id == key and in_ws(schema, row, ws_id) then
        return row
      end
    end
    return nil
  end
  local ek = schema.endpoint_key
  if not ek then
    return nil
  end
  local field = schema.fields[ek]
  local across = field and field.unique_across_ws
  local value = infer(key, field)
  for _, row in ipairs(all_rows(schema.name)) do
    if row[ek] == value and (across or in_ws(schema, row, ws_id)) then
      return row
    end
  end
  return nil
end
_M.select = select

---------------------------------------------------------------------------
-- Kong's error tables

local function err_t(status, code, name, message, extra)
  local body = { code = code, name = name, message = message }
  for k, v in pairs(extra or {}) do
    body[k] = v
  end
  return http.response(status, body)
end

local function invalid_size(msg)
  return err_t(400, 9, "invalid size", msg)
end

local function invalid_offset(offset, why)
  return err_t(400, 7, "invalid offset", fmt("'%s' is not a valid offset: %s", offset, why))
end

local function invalid_options(errors)
  local keys = {}
  for k in pairs(errors) do keys[#keys + 1] = k end
  sort(keys)
  local buf = {}
  for _, k in ipairs(keys) do buf[#buf + 1] = k .. ": " .. errors[k] end
  local msg = #buf == 1 and fmt("invalid option (%s)", buf[1])
              or fmt("%d option violations (%s)", #buf, concat(buf, "; "))
  return err_t(400, 11, "invalid options", msg, { options = errors })
end

--- The off strategy's refusal: 405 with the operation-unsupported error.
local function unsupported(op, name, by)
  local msg = by and fmt("cannot %s '%s' entities by '%s' when not using a database", op, name, by)
              or fmt("cannot %s '%s' entities when not using a database", op, name)
  return err_t(405, 12, "operation unsupported", msg)
end
_M.unsupported = unsupported

-- The "by '<endpoint_key>'" part when the path names the entity by its key.
local function by_key(schema, key)
  if type(key) == "string" and not uuid.is_valid(key) and schema.endpoint_key then
    return schema.endpoint_key
  end
end

---------------------------------------------------------------------------
-- pagination and tags

local function page_size(args)
  local size = http.first(args.size)
  if size == nil then
    return PAGE_SIZE
  end
  size = tonumber(size)
  if not size then
    return nil, invalid_size("size must be a number")
  end
  if floor(size) ~= size or size < 1 or size > MAX_PAGE_SIZE then
    return nil, invalid_size("size must be an integer between 1 and " .. MAX_PAGE_SIZE)
  end
  return size
end

local TAG_CHARS = "^[\32-\43\45\46\48-\126\128-\244]+$"

local function split(s, sep)
  local out = {}
  for part in (s .. sep):gmatch("(.-)" .. sep:gsub("%p", "%%%0")) do
    out[#out + 1] = part
  end
  return out
end

-- `?tags=a,b` (and) or `?tags=a/b` (or): returns a filter function, nil, or
-- nil + an error response.
local function tags_filter(schema, args)
  local raw = args.tags
  if raw == nil then
    return nil
  end
  if not schema.fields.tags then
    return nil, invalid_options({ tags = fmt("cannot be used with '%s'", schema.name) })
  end
  raw = http.first(raw)
  if raw == true or raw == "" or raw == nil then
    return nil, invalid_options({ tags = "cannot be null" })
  end
  local tags, cond
  local body_and = raw:gsub(",$", "")
  local body_or = raw:gsub("/$", "")
  local function valid(list)
    for _, t in ipairs(list) do
      if not t:match(TAG_CHARS) then return false end
    end
    return true
  end
  if not raw:find("/", 1, true) and valid(split(body_and, ",")) then
    tags, cond = split(body_and, ","), "and"
  elseif not raw:find(",", 1, true) and valid(split(body_or, "/")) then
    tags, cond = split(body_or, "/"), "or"
  else
    return nil, invalid_options({ tags = "invalid filter syntax" })
  end
  if #tags > 5 then
    return nil, invalid_options({ tags = "cannot query more than 5 tags" })
  end
  return function(row)
    if type(row.tags) ~= "table" then
      return false
    end
    local have = {}
    for _, t in ipairs(row.tags) do have[t] = true end
    for _, t in ipairs(tags) do
      if cond == "or" and have[t] then return true end
      if cond == "and" and not have[t] then return false end
    end
    return cond == "and"
  end
end

-- One page of `rows` (sorted by id) after the offset token (base64 of the
-- last id returned, as Kong's token is the base64 of the last LMDB key).
local function paginate(rows, size, offset)
  local start = 1
  if offset ~= nil then
    local tok = http.decode_base64(tostring(offset))
    if not tok or offset == true then
      return nil, invalid_offset(tostring(offset), "bad base64 encoding")
    end
    start = #rows + 1
    for i, row in ipairs(rows) do
      if row.id > tok then
        start = i
        break
      end
    end
  end
  local data = http.array()
  for i = start, min(#rows, start + size - 1) do
    data[#data + 1] = rows[i]
  end
  local next_offset
  if start + size - 1 < #rows then
    next_offset = http.encode_base64(data[#data].id, true)
  end
  return data, nil, next_offset
end

local function api_name(schema)
  return schema.admin_api_name or schema.name
end

local function nested_name(schema)
  return schema.admin_api_nested_name or schema.admin_api_name or schema.name
end

local function page_body(data, offset, next_page)
  return http.response(200, { data = data, offset = offset, next = next_page or null })
end

---------------------------------------------------------------------------
-- generated endpoints (kong/api/endpoints.lua)

local function collection_get(schema)
  return function(self)
    local size, err = page_size(self.args)
    if not size then return err end
    local filter
    filter, err = tags_filter(schema, self.args)
    if err then return err end
    local data, offset
    data, err, offset = paginate(list(schema, self.ws.id, filter), size,
                                 http.first(self.args.offset))
    if not data then return err end
    local next_page
    if offset then
      local tags = self.args.tags and ("&tags=" .. http.escape_uri(http.first(self.args.tags))) or ""
      local sz = self.args.size and ("&size=" .. tostring(http.first(self.args.size))) or ""
      next_page = fmt("%s/%s?offset=%s%s%s", self.prefix, api_name(schema),
                      http.escape_uri(offset), tags, sz)
    end
    return page_body(data, offset, next_page)
  end
end

local function entity_get(schema)
  return function(self)
    local row = select(schema, self.params[schema.name], self.ws.id)
    if not row then return http.not_found() end
    return http.response(200, row)
  end
end

local function entity_write(schema, op)
  return function(self)
    local key = self.params[schema.name]
    return unsupported(op, schema.name, by_key(schema, key))
  end
end

-- /routes/{routes}/service
local function foreign_entity_endpoints(schema, fschema, fname)
  local function fk_of(self)
    local row = select(schema, self.params[schema.name], self.ws.id)
    if not row then return nil, http.not_found() end
    local fk = row[fname]
    return row, nil, (fk ~= nil and fk ~= null) and fk or nil
  end
  return {
    GET = function(self)
      local _, res, fk = fk_of(self)
      if res then return res end
      if not fk then return http.not_found() end
      local frow = select(fschema, fk, self.ws.id)
      if not frow then return http.not_found() end
      return http.response(200, frow)
    end,
    PUT = function(self)
      local _, res = fk_of(self)
      if res then return res end
      return unsupported("create or update", fschema.name)
    end,
    PATCH = function(self)
      local _, res, fk = fk_of(self)
      if res then return res end
      if not fk then return http.not_found() end
      return unsupported("update", fschema.name)
    end,
    DELETE = function(self)
      local _, res, fk = fk_of(self)
      if res then return res end
      if not fk then return http.not_found() end
      return http.method_not_allowed()
    end,
  }
end

-- /services/{services}/routes
local function nested_collection_endpoints(schema, fschema, fname)
  return {
    GET = function(self)
      local parent = select(fschema, self.params[fschema.name], self.ws.id)
      if not parent then return http.not_found() end
      local size, err = page_size(self.args)
      if not size then return err end
      local tfilter
      tfilter, err = tags_filter(schema, self.args)
      if err then return err end
      local rows = list(schema, self.ws.id, function(row)
        local fk = row[fname]
        return type(fk) == "table" and fk.id == parent.id and (not tfilter or tfilter(row))
      end)
      local data, offset
      data, err, offset = paginate(rows, size, http.first(self.args.offset))
      if not data then return err end
      local next_page = offset and fmt("%s/%s/%s/%s?offset=%s", self.prefix, api_name(fschema),
                                       self.raw[fschema.name], nested_name(schema),
                                       http.escape_uri(offset))
      return page_body(data, offset, next_page)
    end,
    POST = function(self)
      local parent = select(fschema, self.params[fschema.name], self.ws.id)
      if not parent then return http.not_found() end
      return unsupported("create", schema.name)
    end,
  }
end

-- /services/{services}/routes/{routes}: `schema` is the child (routes)
local function nested_entity_endpoints(schema, fschema, fname)
  local function lookup(self)
    local parent = select(fschema, self.params[fschema.name], self.ws.id)
    if not parent then return nil, http.not_found() end
    local row = select(schema, self.params[schema.name], self.ws.id)
    if not row then return nil, http.not_found() end
    local fk = row[fname]
    if type(fk) ~= "table" or fk.id ~= parent.id then return nil, http.not_found() end
    return row
  end
  local function write(op)
    return function(self)
      local _, res = lookup(self)
      if res then return res end
      return unsupported(op, schema.name, by_key(schema, self.params[schema.name]))
    end
  end
  return {
    GET = function(self)
      local row, res = lookup(self)
      if not row then return res end
      return http.response(200, row)
    end,
    PUT = function(self)
      local parent = select(fschema, self.params[fschema.name], self.ws.id)
      if not parent then return http.not_found() end
      return unsupported("create or update", schema.name, by_key(schema, self.params[schema.name]))
    end,
    PATCH = write("update"),
    DELETE = write("remove"),
  }
end

local function add(routes, path, methods)
  local r = routes[path]
  if not r then
    routes[path] = methods
    return
  end
  for m, fn in pairs(methods) do
    r[m] = fn
  end
end

local function generate(routes, schema)
  local name = api_name(schema)
  add(routes, "/" .. name, {
    GET = collection_get(schema),
    POST = function() return unsupported("create", schema.name) end,
  })
  add(routes, fmt("/%s/:%s", name, schema.name), {
    GET = entity_get(schema),
    PUT = entity_write(schema, "create or update"),
    PATCH = entity_write(schema, "update"),
    DELETE = entity_write(schema, "remove"),
  })
  for fname, field in schema:each_field() do
    if field.type == "foreign" then
      local fschema = entities.get(field.reference)
      add(routes, fmt("/%s/:%s/%s", name, schema.name, fname),
          foreign_entity_endpoints(schema, fschema, fname))
      add(routes, fmt("/%s/:%s/%s", api_name(fschema), fschema.name, nested_name(schema)),
          nested_collection_endpoints(schema, fschema, fname))
      add(routes, fmt("/%s/:%s/%s/:%s", api_name(fschema), fschema.name, nested_name(schema),
                      schema.name),
          nested_entity_endpoints(schema, fschema, fname))
    end
  end
end

---------------------------------------------------------------------------
-- custom routes (kong/api/routes/*.lua)

local function disabled()
  return { ANY = function() return http.not_found() end }
end

local function sort_targets(a, b)
  if a.created_at ~= b.created_at then
    return a.created_at < b.created_at
  end
  return a.id < b.id
end

-- Kong's page_for_upstream: newest first, one row per target address,
-- numeric offsets.
--
-- targets_slice(self, raw) -> data, next_offset, upstream | nil, error response
local function targets_slice(self, raw)
  local targets = entities.get("targets")
  local upstream = select(entities.get("upstreams"), self.params.upstreams, self.ws.id)
  if not upstream then return nil, http.not_found() end
  local size, err = page_size(self.args)
  if not size then return nil, err end
  local rows = list(targets, self.ws.id, function(row)
    return type(row.upstream) == "table" and row.upstream.id == upstream.id
  end)
  sort(rows, sort_targets)
  local active = rows
  if not raw then
    active = {}
    local seen = {}
    for i = #rows, 1, -1 do
      if not seen[rows[i].target] then
        seen[rows[i].target] = true
        active[#active + 1] = rows[i]
      end
    end
  end
  local offset = http.first(self.args.offset)
  local from = 0
  if offset ~= nil then
    from = tonumber(offset)
    if not from or from < 0 or floor(from) ~= from then
      return nil, invalid_offset(tostring(offset), "bad offset string")
    end
  end
  local data = http.array()
  for i = from + 1, from + size do
    if not active[i] then break end
    data[#data + 1] = active[i]
  end
  local next_offset
  if active[from + size + 1] then
    next_offset = tostring(from + size)
  end
  return data, next_offset, upstream
end

local function targets_page(self, raw)
  local data, next_offset = targets_slice(self, raw)
  if not data then return next_offset end
  local next_page = next_offset and fmt("%s/upstreams/%s%s?offset=%s", self.prefix,
                                        self.raw.upstreams, raw and "/targets/all" or "/targets",
                                        http.escape_uri(next_offset))
  return page_body(data, next_offset, next_page)
end

-- /upstreams/{u}/targets/{t}: the target by id or by address, newest first.
local function find_target(self)
  local upstream = select(entities.get("upstreams"), self.params.upstreams, self.ws.id)
  if not upstream then return nil, http.not_found() end
  local key = self.params.targets
  local rows = list(entities.get("targets"), self.ws.id, function(row)
    return type(row.upstream) == "table" and row.upstream.id == upstream.id
  end)
  sort(rows, sort_targets)
  for i = #rows, 1, -1 do
    local t = rows[i]
    if t.id == key or t.target == key then
      return t
    end
  end
  return nil, http.not_found()
end

-- PUT /upstreams/{u}/targets/{t}[/{address}]/healthy|unhealthy
local function target_health(self)
  local t, res = find_target(self)
  if not t then return res end
  local healthy = self.req.path:match("/healthy/?$") ~= nil
  local ok, err = require("tollgate.c.balancer").set_health(t.upstream.id, t.target,
                                                           self.params.address, healthy)
  if not ok then
    if err == "no balancer" then
      local u = select(entities.get("upstreams"), self.params.upstreams, self.ws.id)
      err = "Upstream " .. tostring(u and u.name) .. " has no balancer"
    end
    return http.message(400, err)
  end
  return http.response(204)
end

local HEALTH_STATES = { HEALTHY = true, UNHEALTHY = true }

-- Kong's getTargetStatus: one target of the balancer
local function target_status(h)
  local avail = h.available and h.weight or 0
  return {
    host = h.host, port = h.port, nodeWeight = h.weight,
    weight = { total = h.weight, available = avail, unavailable = h.weight - avail },
    addresses = h.addresses,
  }
end

-- GET /upstreams/{u}/health: the active targets with their health (Kong's
-- page_for_upstream_with_health, paged as /targets), or the balancer's with
-- ?balancer_health=1.
local function upstream_health(self)
  local rows, next_offset, upstream = targets_slice(self, false)
  if not rows then return next_offset end
  local node_id = require("tollgate.admin.kong").node_id()
  local info = require("tollgate.c.balancer").health(upstream.id)
  if tostring(http.first(self.args.balancer_health)) == "1" then
    local balancer_health = info and info.healthy and "HEALTHY" or "UNHEALTHY"
    local total, available = info and info.total or 0, info and info.available or 0
    local hosts = http.array()
    local names = {}
    for name in pairs(info and info.targets or {}) do names[#names + 1] = name end
    sort(names)
    for _, name in ipairs(names) do hosts[#hosts + 1] = target_status(info.targets[name]) end
    return http.response(200, {
      data = {
        health = info and info.used and balancer_health or "HEALTHCHECKS_OFF",
        balancer_health = balancer_health,
        id = upstream.id,
        details = {
          healthy = info and info.healthy or false,
          weight = { total = total, available = available, unavailable = total - available },
          hosts = hosts,
        },
      },
      next = null,
      node_id = node_id,
    })
  end
  local data = http.array()
  for _, row in ipairs(rows) do
    local t = {}
    for k, v in pairs(row) do t[k] = v end
    local h = info and info.targets[row.target]
    if h then
      t.health = "HEALTHCHECKS_OFF"
      for _, a in ipairs(h.addresses) do
        if a.health == "HEALTHY" then
          t.health = "HEALTHY"
          break
        elseif HEALTH_STATES[a.health] then
          t.health = a.health
        end
      end
      t.data = target_status(h)
    else
      t.health = "DNS_ERROR"
    end
    data[#data + 1] = t
  end
  local next_page = next_offset and fmt("%s/upstreams/%s/health?offset=%s", self.prefix,
                                        self.raw.upstreams, http.escape_uri(next_offset))
  return http.response(200, { data = data, offset = next_offset, next = next_page or null,
                              node_id = node_id })
end

-- /certificates/{certificates}: a key that is not a UUID names an SNI.
local function cert_key(self)
  local key = self.params.certificates
  if uuid.is_valid(key) then
    return key
  end
  local sni = select(entities.get("snis"), key, self.ws.id)
  if sni and type(sni.certificate) == "table" then
    return sni.certificate.id
  end
  if self.req.method ~= "PUT" then
    return nil, http.not_found("SNI not found")
  end
  return uuid.v4()
end

local function with_cert_key(fn)
  return function(self)
    local id, res = cert_key(self)
    if not id then return res end
    self.params.certificates = id
    return fn(self)
  end
end

local function tag_items(ws_id, only)
  local items = {}
  for _, name in ipairs(entities.ORDER) do
    local schema = entities.get(name)
    if schema.fields.tags then
      for _, row in ipairs(list(schema, ws_id)) do
        if type(row.tags) == "table" then
          for _, tag in ipairs(row.tags) do
            if not only or only == tag then
              items[#items + 1] = { tag = tag, entity_name = name, entity_id = row.id }
            end
          end
        end
      end
    end
  end
  return items
end

local function tags_page(self, only, link)
  local size, err = page_size(self.args)
  if not size then return err end
  local items = tag_items(self.ws.id, only)
  local offset = http.first(self.args.offset)
  local from = 0
  if offset ~= nil then
    local tok = http.decode_base64(tostring(offset))
    if not tok then
      return invalid_offset(tostring(offset), "bad base64 encoding")
    end
    from = tonumber(tok:match("^tags:(%d+)$") or "")
    if not from then
      return invalid_offset(tostring(offset), "bad offset string")
    end
  end
  local data = http.array()
  for i = from + 1, min(#items, from + size) do
    data[#data + 1] = items[i]
  end
  local next_offset
  if from + size < #items then
    next_offset = http.encode_base64("tags:" .. (from + size), true)
  end
  return page_body(data, next_offset,
                   next_offset and fmt("%s%s?offset=%s", self.prefix, link,
                                       http.escape_uri(next_offset)))
end

local function custom(routes)
  -- targets are reached through their upstream
  routes["/targets"] = disabled()
  routes["/targets/:targets"] = disabled()
  routes["/targets/:targets/upstream"] = disabled()
  routes["/snis/:snis/certificate"] = disabled()

  add(routes, "/upstreams/:upstreams/targets", {
    GET = function(self) return targets_page(self, false) end,
  })
  routes["/upstreams/:upstreams/targets/all"] = {
    GET = function(self) return targets_page(self, true) end,
  }
  routes["/upstreams/:upstreams/targets/:targets"] = {
    GET = function(self)
      local t, res = find_target(self)
      if not t then return res end
      return http.response(200, t)
    end,
    PATCH = function(self)
      local _, res = find_target(self)
      return res or unsupported("update", "targets")
    end,
    PUT = function(self)
      local _, res = find_target(self)
      return res or unsupported("update", "targets")
    end,
    DELETE = function(self)
      local _, res = find_target(self)
      return res or unsupported("remove", "targets")
    end,
  }
  if (state().conf or {}).role ~= "control_plane" then
    for _, p in ipairs({ "/healthy", "/unhealthy", "/:address/healthy", "/:address/unhealthy" }) do
      routes["/upstreams/:upstreams/targets/:targets" .. p] = { PUT = target_health }
    end
  end
  routes["/upstreams/:upstreams/health"] = { GET = upstream_health }

  for _, path in ipairs({ "/certificates/:certificates", "/certificates/:certificates/snis",
                          "/certificates/:certificates/snis/:snis" }) do
    local r = routes[path]
    for m, fn in pairs(r) do
      r[m] = with_cert_key(fn)
    end
  end

  local consumers_get = routes["/consumers"].GET
  routes["/consumers"].GET = function(self)
    local custom_id = self.args.custom_id
    if custom_id ~= nil and (type(custom_id) ~= "string" or custom_id == "") then
      return http.message(400, "custom_id must be an unempty string")
    end
    if custom_id then
      local schema = entities.get("consumers")
      local found = http.array()
      for _, row in ipairs(list(schema, self.ws.id)) do
        if row.custom_id == custom_id then
          found[1] = row
          break
        end
      end
      return http.response(200, { data = found, next = null })
    end
    return consumers_get(self)
  end

  routes["/tags"] = {
    GET = function(self) return tags_page(self, nil, "/tags") end,
  }
  routes["/tags/:tags"] = {
    GET = function(self)
      return tags_page(self, self.params.tags, "/tags/" .. self.raw.tags)
    end,
  }
end

--- Adds every entity route to `routes` (path pattern -> { METHOD = handler }).
function _M.routes(routes)
  for _, name in ipairs(entities.ORDER) do
    generate(routes, entities.get(name))
  end
  custom(routes)
  return routes
end

return _M
