-- kong.tools.queue_schema: the `queue` record log plugins put in their
-- config schema ({ queue = queue_schema }); Kong 3.10's fields and defaults.
return require("kong.db.schema.typedefs").queue
