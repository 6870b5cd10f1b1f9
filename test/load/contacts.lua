-- contacts.lua: the wrk cross-check of `heed bench http --op appends`.
-- Each request records a call (POST /v1/contacts) to one of 100,000
-- numbers in turn, as the Go load generator does.
--
--   KEY=<business key> wrk -t1 -c64 -d10s -s test/load/contacts.lua http://127.0.0.1:18090
--
-- A business key comes from POST /v1/keys with the admin key heed serve
-- prints on its first start.
local key = os.getenv("KEY")
local counter = 0
local threads = 0

function setup(thread)
  thread:set("tid", threads)
  threads = threads + 1
end

function init(args)
  counter = (tid or 0) * 1000000
end

function request()
  counter = counter + 1
  local number = string.format("+86139%08d", counter % 100000)
  local body = '{"number":"' .. number .. '","line":"L1","channel":"call","purpose":"service","outcome":"answered"}'
  return wrk.format("POST", "/v1/contacts",
    {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. key}, body)
end

function done(summary, latency, requests)
  for _, p in ipairs({50, 90, 99, 99.9}) do
    io.write(string.format("p%g=%.2fms ", p, latency:percentile(p) / 1000))
  end
  io.write(string.format("max=%.2fms non2xx=%d\n", latency.max / 1000, summary.errors.status))
end
