-- The schema engine: Kong's DSL, rules and messages.
require "spec.fixtures.declarative.unit_env"

local Schema = require "tollgate.schema"
local typedefs = require "kong.db.schema.typedefs"
local null = Schema.null

local function check(def, input)
  local s = assert(Schema.new(def))
  local row = assert(s:process_auto_fields(input, "insert"))
  local ok, errs = s:validate(row)
  return ok, errs, row
end

local function one(fdef, value)
  local _, errs = check({ fields = { { f = fdef } } }, { f = value })
  return errs and errs.f
end

describe("schema engine", function()
  describe("field types", function()
    it("refuses values of the wrong type with Kong's messages", function()
      assert.equal("expected a string", one({ type = "string" }, 1))
      assert.equal("expected an integer", one({ type = "integer" }, 1.5))
      assert.equal("expected a number", one({ type = "number" }, "1"))
      assert.equal("expected a boolean", one({ type = "boolean" }, "true"))
      assert.equal("expected an array", one({ type = "array", elements = { type = "string" } },
                                             { a = 1 }))
      assert.equal("expected a set", one({ type = "set", elements = { type = "string" } }, "x"))
      assert.equal("expected a map", one({ type = "map", keys = { type = "string" },
                                           values = { type = "string" } }, "x"))
      assert.equal("expected a record", one({ type = "record", fields = {} }, "x"))
    end)

    it("refuses empty strings unless len_min says otherwise", function()
      assert.equal("length must be at least 1", one({ type = "string" }, ""))
      assert.is_nil(one({ type = "string", len_min = 0 }, ""))
    end)

    it("accepts integral numbers as integers and refuses infinities", function()
      assert.is_nil(one({ type = "integer" }, 3))
      assert.equal("expected an integer", one({ type = "integer" }, math.huge))
    end)

    it("reports element errors by index", function()
      local err = one({ type = "array", elements = { type = "integer" } }, { 1, "x", 3, "y" })
      assert.same({ [2] = "expected an integer", [4] = "expected an integer" }, err)
    end)

    it("validates map keys and values", function()
      assert.equal("expected an integer",
        one({ type = "map", keys = { type = "string" }, values = { type = "integer" } }, { a = "b" }))
    end)

    it("nests record errors", function()
      local err = one({ type = "record", fields = { { a = { type = "integer", required = true } },
                                                    { b = { type = "string" } } } }, { b = 1 })
      assert.same({ a = "required field missing", b = "expected a string" }, err)
    end)

    it("validates foreign keys as primary keys", function()
      assert.same({ id = "expected a valid UUID" },
                  one({ type = "foreign", reference = "services" }, { id = "nope" }))
      assert.is_nil(one({ type = "foreign", reference = "services" },
                        { id = "0dc6f45b-8f8d-40d2-a504-473544ee190b" }))
    end)
  end)

  describe("validators", function()
    it("apply Kong's messages", function()
      assert.equal("expected one of: a, b", one({ type = "string", one_of = { "a", "b" } }, "c"))
      assert.equal("must not be one of: a, b",
                   one({ type = "string", not_one_of = { "a", "b" } }, "a"))
      assert.equal("value should be between 1 and 5", one({ type = "integer", between = { 1, 5 } }, 9))
      assert.equal("length must be 2", one({ type = "string", len_eq = 2 }, "abc"))
      assert.equal("length must be at most 2", one({ type = "string", len_max = 2 }, "abc"))
      assert.equal("length must be at least 4", one({ type = "string", len_min = 4 }, "abc"))
      assert.equal("invalid value: abc", one({ type = "string", match = "^%d+$" }, "abc"))
      assert.equal("invalid value: 123", one({ type = "string", not_match = "^%d+$" }, "123"))
      assert.equal("should start with: /", one({ type = "string", starts_with = "/" }, "x"))
      assert.equal("expected a valid UUID", one({ type = "string", uuid = true }, "1234"))
      assert.equal("value must be null", one({ type = "string", eq = null }, "x"))
      assert.equal("value must be 3", one({ type = "integer", eq = 3 }, 4))
      assert.equal("value must be greater than 3", one({ type = "integer", gt = 3 }, 3))
      assert.equal("expected a valid timestamp", one({ type = "integer", timestamp = true }, -1))
      assert.equal("expected to contain: x",
                   one({ type = "array", elements = { type = "string" }, contains = "x" }, { "y" }))
    end)

    it("use the err of match_all, match_none and match_any", function()
      assert.equal("no digits", one({ type = "string",
        match_none = { { pattern = "%d", err = "no digits" } } }, "a1"))
      assert.equal("letters only", one({ type = "string",
        match_all = { { pattern = "^%a+$", err = "letters only" } } }, "a1"))
      assert.equal("a or b", one({ type = "string",
        match_any = { patterns = { "^a", "^b" }, err = "a or b" } }, "c"))
    end)

    it("run custom validators, with a generic message when they give none", function()
      assert.equal("nope", one({ type = "string", custom_validator = function()
        return nil, "nope" end }, "x"))
      assert.equal("failed validating: x", one({ type = "string", custom_validator = function()
        return nil end }, "x"))
    end)

    it("report sets drawn from mutually exclusive subsets", function()
      assert.equal("these sets are mutually exclusive: ('http', 'https'), ('tcp', 'tls', 'udp')",
        one({ type = "set", elements = { type = "string" },
              mutually_exclusive_subsets = { { "http", "https" }, { "tcp", "tls", "udp" } } },
            { "http", "tcp" }))
    end)
  end)

  describe("presence and defaults", function()
    it("reports required and unknown fields", function()
      local _, errs = check({ fields = { { a = { type = "string", required = true } } } },
                            { b = "x" })
      assert.same({ a = "required field missing", b = "unknown field" }, errs)
    end)

    it("fills defaults, nulls and nested record defaults", function()
      local ok, _, row = check({ fields = {
        { a = { type = "integer", default = 5 } },
        { b = { type = "string" } },
        { c = { type = "record", required = true, fields = {
            { d = { type = "boolean", default = true } } } } },
        { e = { type = "array", elements = { type = "string" }, default = { "x" } } },
      } }, {})
      assert.is_true(ok)
      assert.equal(5, row.a)
      assert.equal(null, row.b)
      assert.same({ d = true }, row.c)
      assert.same({ "x" }, row.e)
    end)

    it("removes duplicates from sets", function()
      local _, _, row = check({ fields = { { s = { type = "set", elements = { type = "string" } } } } },
                              { s = { "a", "b", "a" } })
      assert.same({ "a", "b" }, row.s)
    end)

    it("fills auto uuids and timestamps", function()
      local _, _, row = check({ fields = { { id = typedefs.uuid },
                                           { created_at = typedefs.auto_timestamp_s } } }, {})
      assert.truthy(row.id:match("^%x+%-%x+%-4%x+%-%x+%-%x+$"))
      assert.equal(math.floor(row.created_at), row.created_at)
      assert.truthy(row.created_at > 1600000000)
    end)
  end)

  describe("entity checks", function()
    local function entity(checks, input, fields)
      local _, errs = check({ fields = fields or {
        { a = { type = "string" } }, { b = { type = "string" } }, { c = { type = "integer" } },
      }, entity_checks = checks }, input)
      return errs
    end

    it("at_least_one_of", function()
      assert.same({ ["@entity"] = { "at least one of these fields must be non-empty: 'a', 'b'" } },
                  entity({ { at_least_one_of = { "a", "b" } } }, {}))
      assert.is_nil(entity({ { at_least_one_of = { "a", "b" } } }, { b = "x" }))
    end)

    it("only_one_of", function()
      assert.same({ ["@entity"] = { "exactly one of these fields must be non-empty: 'a', 'b'" } },
                  entity({ { only_one_of = { "a", "b" } } }, { a = "x", b = "y" }))
    end)

    it("mutually_exclusive and mutually_required", function()
      assert.same({ ["@entity"] = { "only one or none of these fields must be set: 'a', 'b'" } },
                  entity({ { mutually_exclusive = { "a", "b" } } }, { a = "x", b = "y" }))
      assert.same({ ["@entity"] = { "all or none of these fields must be set: 'a', 'b'" } },
                  entity({ { mutually_required = { "a", "b" } } }, { a = "x" }))
      assert.is_nil(entity({ { mutually_required = { "a", "b" } } }, {}))
    end)

    it("distinct", function()
      assert.same({ ["@entity"] = { "values of these fields must be distinct: 'a', 'b'" } },
                  entity({ { distinct = { "a", "b" } } }, { a = "x", b = "x" }))
    end)

    it("conditional puts the field error in place and names the condition", function()
      local errs = entity({ { conditional = { if_field = "a", if_match = { eq = "on" },
                                              then_field = "c", then_match = { required = true } } } },
                          { a = "on" })
      assert.same({ c = "required field missing",
                    ["@entity"] = { "failed conditional validation given value of field 'a'" } }, errs)
      errs = entity({ { conditional = { if_field = "a", if_match = { eq = "on" },
                                        then_field = "c", then_match = { between = { 1, 2 } } } } },
                    { a = "on", c = 7 })
      assert.same({ c = "value should be between 1 and 2",
                    ["@entity"] = { "failed conditional validation given value of field 'a'" } }, errs)
      assert.is_nil(entity({ { conditional = { if_field = "a", if_match = { eq = "on" },
                                               then_field = "c", then_match = { required = true } } } },
                           { a = "off" }))
    end)

    it("conditional_at_least_one_of with a custom message", function()
      local errs = entity({ { conditional_at_least_one_of = {
        if_field = "a", if_match = { eq = "on" }, then_at_least_one_of = { "b", "c" },
        then_err = "need %s" } } }, { a = "on" })
      assert.same({ ["@entity"] = { "need 'b', 'c'" } }, errs)
    end)

    it("custom_entity_check sees only its fields and reports its message", function()
      local seen
      local errs = entity({ { custom_entity_check = { field_sources = { "a" }, fn = function(e)
        seen = e
        return nil, "bad a"
      end } } }, { a = "x", b = "y" })
      assert.same({ ["@entity"] = { "bad a" } }, errs)
      assert.same({ a = "x" }, seen)
    end)

    it("mutually_exclusive_sets", function()
      local errs = entity({ { mutually_exclusive_sets = { set1 = { "a" }, set2 = { "b", "c" } } } },
                          { a = "x", b = "y" })
      assert.same({ ["@entity"] = { "these sets are mutually exclusive: ('a'), ('b')" } }, errs)
    end)
  end)

  describe("shorthand fields and subschemas", function()
    it("expands the service url shorthand", function()
      local s = require("tollgate.entities").get("services")
      local row = s:process_auto_fields({ url = "https://example.com:8443/p" }, "insert")
      assert.equal("https", row.protocol)
      assert.equal("example.com", row.host)
      assert.equal(8443, row.port)
      assert.equal("/p", row.path)
      assert.is_nil(row.url)
      row = s:process_auto_fields({ url = "https://example.com" }, "insert")
      assert.equal(443, row.port)
      assert.equal(null, row.path)
    end)

    it("refuses an unknown subschema with the schema's message", function()
      local p = require("tollgate.entities").get("plugins")
      local _, errs = p:validate(p:process_auto_fields({ name = "nope" }, "insert"))
      assert.same({ name = "plugin 'nope' not enabled; add it to the 'plugins' configuration property" },
                  errs)
    end)

    it("specialises an abstract field with a subschema", function()
      local s = assert(Schema.new_entity({ name = "things", primary_key = { "id" }, subschema_key = "kind",
        fields = { { id = typedefs.uuid }, { kind = { type = "string", required = true } },
                   { config = { type = "record", abstract = true } } } }))
      assert(s:new_subschema("k1", { fields = { { config = { type = "record", fields = {
        { n = { type = "integer", default = 1 } } } } } } }))
      local row = s:process_auto_fields({ kind = "k1" }, "insert")
      assert.same({ n = 1 }, row.config)
      assert.is_true(s:validate(row))
      assert.same({ config = { m = "unknown field" } },
                  select(2, s:validate(s:process_auto_fields({ kind = "k1", config = { m = 1 } },
                                                             "insert"))))
      local ok, err = s:new_subschema("k2", { fields = { { other = { type = "string" } } } })
      assert.is_nil(ok)
      assert.equal("error in definition of 'k2': other: cannot create a new field", err)
    end)
  end)

  describe("typedefs", function()
    it("validate hosts, ports, paths and names as Kong does", function()
      assert.equal("must not have a port", one(typedefs.host, "example.com:80"))
      assert.equal("invalid value: exa mple", one(typedefs.host, "exa mple"))
      assert.is_nil(one(typedefs.host, "10.0.0.1"))
      assert.equal("value should be between 0 and 65535", one(typedefs.port, 70000))
      assert.equal("should start with: /", one(typedefs.path, "x"))
      assert.equal("must not have empty segments", one(typedefs.path, "/a//b"))
      assert.equal("invalid url-encoded value: '%zz'", one(typedefs.path, "/a%zz"))
      assert.equal("invalid value 'a b': it must only contain alphanumeric and '., -, _, ~' characters",
                   one(typedefs.name, "a b"))
      assert.equal("bad header name 'a b', allowed characters are A-Z, a-z, 0-9, '_', and '-'",
                   one(typedefs.header_name, "a b"))
      assert.equal("not an ip address: 300.1.1.1", one(typedefs.ip, "300.1.1.1"))
      assert.is_nil(one(typedefs.ip, "::1"))
      assert.equal("invalid ip or cidr range: '10.0.0.0/33'", one(typedefs.ip_or_cidr, "10.0.0.0/33"))
      assert.is_nil(one(typedefs.cidr, "10.0.0.0/8"))
      assert.equal("missing host in url", one(typedefs.url, "http:///x"))
      assert.equal("must not be an IP", one(typedefs.sni, "10.0.0.1"))
      assert.equal("wildcard must be leftmost or rightmost character",
                   one(typedefs.wildcard_host, "a.*.com"))
      assert.same({ [1] = "invalid tag 'a/b': expected printable ascii (except `,` and `/`) or valid utf-8 sequences" },
                  one(typedefs.tags, { "a/b" }))
    end)

    it("are callable to add attributes", function()
      local f = typedefs.port { default = 80 }
      assert.equal(80, f.default)
      assert.same({ 0, 65535 }, f.between)
      assert.is_nil(typedefs.port.default)
    end)

    it("give plugin schemas Kong's protocols and no_consumer", function()
      local _, _, row = check({ fields = { { protocols = typedefs.protocols_http } } }, {})
      assert.same({ "grpc", "grpcs", "http", "https" }, row.protocols)
      assert.equal("value must be null", one(typedefs.no_consumer,
                   { id = "0dc6f45b-8f8d-40d2-a504-473544ee190b" }))
    end)

    it("raise on unknown typedefs", function()
      assert.has_error(function() return typedefs.nonexistent end,
                       "schema typedef error: definition nonexistent does not exist")
    end)
  end)

  it("formats errors as Kong's errors_to_string", function()
    local s = assert(Schema.new({ fields = { { a = { type = "string" } } } }))
    assert.equal("Validation error: x; a: expected a string",
                 s:errors_to_string({ ["@entity"] = { "x" }, a = "expected a string" }))
  end)
end)
