-- wrk script: POST the JSON in the BODY environment variable. Headers given
-- with -H (the Authorization bearer) are kept.
wrk.method = "POST"
wrk.body = os.getenv("BODY")
wrk.headers["Content-Type"] = "application/json"
