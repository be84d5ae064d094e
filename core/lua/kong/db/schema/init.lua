-- kong.db.schema: Kong's module name for tollgate's one schema engine.
return require "tollgate.schema"
