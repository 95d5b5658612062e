-- wrk script for bench_wasm.py: POST requests whose body is $EMBER_WRK_BODY,
-- then the totals and latency quantiles of perf/edge/wrk_report.lua
-- ($EMBER_WRK_REPORT), which bench_edge.py's parser reads.
wrk.method = "POST"
wrk.body = os.getenv("EMBER_WRK_BODY")
wrk.headers["Content-Type"] = "application/octet-stream"
dofile(os.getenv("EMBER_WRK_REPORT"))
