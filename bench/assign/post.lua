-- wrk script: POST /v1/assign for one unit and every running experiment.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"unit":"user-12345","attributes":{"country":"FR","age":31,"plan":"pro"}}'
