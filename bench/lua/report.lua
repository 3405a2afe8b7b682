-- Shared by every script: numbers the threads (tid) and prints one JSON line at the end,
-- so bench/api_bench.py reads wrk's figures without parsing its text report.
local threads = {}

function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

function done(summary, latency, requests)
  local max_index = -1
  for _, t in ipairs(threads) do
    local m = t:get("max_index")
    if m and m > max_index then max_index = m end
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"connect_errors":%d,"read_errors":%d,' ..
    '"write_errors":%d,"status_errors":%d,"timeouts":%d,"p50_us":%d,"p90_us":%d,' ..
    '"p99_us":%d,"mean_us":%.1f,"max_us":%d,"max_index":%d}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.mean,
    latency.max, max_index))
end

-- Helpers of the request scripts.
function use_token(token)
  wrk.headers["Authorization"] = "Bearer " .. token
  wrk.headers["Content-Type"] = "application/json"
end

-- Request k of thread t gets index base + t + stride*k, so threads and runs never collide
-- (stride = the number of threads); the highest one is reported for the next run's base.
local index_base, index_stride, index_k

function start_indexes(base, stride)
  index_base, index_stride, index_k = tonumber(base), tonumber(stride), 0
end

function next_index()
  local index = index_base + tid + index_stride * index_k
  index_k = index_k + 1
  max_index = index
  return index
end
