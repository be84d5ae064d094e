return {
  name = "bench-headers",
  fields = {
    { config = { type = "record", fields = {} } },
  },
}
