-- wrk script for benchmarks/run.sh: POST the bid request in the file named by $RTB_BODY to the target.
-- Read at the top level so that every wrk thread sends the same body.
local path = os.getenv("RTB_BODY") or "body.json"
local f = assert(io.open(path, "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-Openrtb-Version"] = "2.6"
