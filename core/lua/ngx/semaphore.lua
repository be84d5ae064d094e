-- ngx.semaphore: lua-resty-core's semaphore (new, post, wait with a timeout,
-- count) on the worker's event loop; implemented in tollgate.sched.
return require("tollgate.sched").semaphore
