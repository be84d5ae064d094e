-- keys: Kong 3.10's key entity (JWK or PEM).
local typedefs = require "kong.db.schema.typedefs"
local Schema = require "tollgate.schema"

local KEY_FORMATS = { "jwk", "pem" }

return {
  name = "keys",
  primary_key = { "id" },
  cache_key = { "kid", "set" },
  endpoint_key = "name",
  workspaceable = true,
  ttl = false,
  fields = {
    { id = typedefs.uuid },
    { set = { type = "foreign", required = false, reference = "key_sets", on_delete = "cascade",
              description = "The id (an UUID) of the key-set with which to associate the key." } },
    { name = { type = "string", required = false, unique = true,
               description = "The name to associate with the given keys." } },
    { kid = { type = "string", required = true, unique = false,
              description = "A unique identifier for a key." } },
    { jwk = { type = "string", referenceable = true, encrypted = true,
              description = "A JSON Web Key represented as a string." } },
    { pem = typedefs.pem },
    { tags = typedefs.tags },
    { created_at = typedefs.auto_timestamp_s },
    { updated_at = typedefs.auto_timestamp_s },
  },
  entity_checks = {
    { mutually_exclusive = KEY_FORMATS },
    { at_least_one_of = KEY_FORMATS },
    { custom_entity_check = {
        field_sources = { "jwk", "pem", "kid" },
        fn = function(entity)
          if type(entity.jwk) == "string" then
            local ok, jwk = pcall(require("cjson").decode, entity.jwk)
            if not ok or type(jwk) ~= "table" then
              return nil, "could not json decode jwk string"
            end
            if jwk.kid ~= entity.kid then
              return nil, "kid in jwk.kid must be equal to keys.kid"
            end
            local schema = Schema.new(typedefs.jwk)
            local _, err = schema:validate(jwk, true)
            if err then
              return nil, schema:errors_to_string(err)
            end
          end
          if type(entity.pem) == "table" and not (entity.pem.private_key or entity.pem.public_key) then
            return nil, "need to supply a PEM formatted public and/or private key."
          end
          return true
        end,
    } },
  },
}
