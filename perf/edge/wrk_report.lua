-- wrk script for bench_edge.py: plain GET requests (wrk's default), and at
-- the end the totals and the latency quantiles (microseconds) in lines that
-- bench_edge.py parses. The quantile grid (0.1 % steps, then 99.95 and 99.99)
-- is what the latency CDF plot is drawn from.
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "EDGE requests=%d duration_us=%d connect=%d read=%d write=%d status=%d timeout=%d\n",
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout))
  for i = 1, 999 do
    io.write(string.format("EDGE_Q %.1f %d\n", i / 10, latency:percentile(i / 10)))
  end
  io.write(string.format("EDGE_Q 99.95 %d\n", latency:percentile(99.95)))
  io.write(string.format("EDGE_Q 99.99 %d\n", latency:percentile(99.99)))
end
