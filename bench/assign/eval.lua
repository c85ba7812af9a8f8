-- wrk script: POST /api/eval/{clientKey} (GrowthBook remote evaluation) for one user's attributes.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"attributes":{"id":"user-12345","country":"FR","age":31,"plan":"pro"}}'
