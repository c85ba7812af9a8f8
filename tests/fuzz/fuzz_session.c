/*
 * libFuzzer target: what the session routes parse from untrusted bytes (web/auth.c): the login
 * body {"email","password"}, the user body {"email","password","role"}, and the session cookie
 * out of a Cookie header. The first byte picks one, the rest is the input. Checks, beyond not
 * crashing or leaking: a refused body names a field and yields nothing; an accepted login gives
 * non-empty strings within the limits; an accepted user body is normalized idempotently with a
 * known role; a cookie value found is non-empty, fits the buffer, is made of cookie-octets only
 * (no NUL, ';', space...) and occurs in the header right after "abacus_session=".
 */
#undef NDEBUG /* the checks below are the point of the target */
#include <assert.h>
#include <stdint.h>
#include <string.h>
#include "abacus/json.h"
#include "web_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_cookie(const char *in, size_t len)
{
    char out[80];
    if (web_cookie_get(in, len, WEB_SESSION_COOKIE, out, sizeof(out)) != 0)
        return;
    size_t n = strlen(out);
    assert(n > 0 && n < sizeof(out) && strchr(out, ';') == NULL);
    for (size_t i = 0; i < n; i++)
        assert(out[i] > ' ' && out[i] < 0x7f && out[i] != '"' && out[i] != ',');
    static const char NAME[] = WEB_SESSION_COOKIE "=";
    int found = 0;
    for (size_t i = 0; i + sizeof(NAME) - 1 + n <= len && !found; i++)
        found = memcmp(in + i, NAME, sizeof(NAME) - 1) == 0 &&
                memcmp(in + i + sizeof(NAME) - 1, out, n) == 0;
    assert(found);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    unsigned pick = data[0] % 3;
    const char *in = (const char *)data + 1;
    size_t len = size - 1;
    if (pick == 2) {
        fuzz_cookie(in, len);
        return 0;
    }
    json_t *doc = NULL;
    struct ab_errinfo ei;
    struct ab_json_limits lim = {WEB_BODY_MAX, 32};
    if (ab_json_parse(in, len, &lim, &doc, &ei) != AB_OK) {
        assert(doc == NULL && ei.field[0] != '\0');
        return 0;
    }
    if (pick == 0) {
        const char *email = NULL, *password = NULL;
        enum ab_err rc = web_validate_login(doc, &email, &password, &ei);
        if (rc == AB_OK)
            assert(email != NULL && password != NULL && strlen(email) > 0 &&
                   strlen(email) <= WEB_EMAIL_MAX && strlen(password) > 0 &&
                   strlen(password) <= WEB_PASSWORD_MAX);
        else
            assert(rc == AB_ERR_INVALID_FIELD && ei.field[0] != '\0' && ei.message[0] != '\0');
    } else {
        json_t *out = (json_t *)1;
        enum ab_err rc = web_validate_user(doc, &out, &ei);
        if (rc != AB_OK) {
            assert(rc == AB_ERR_INVALID_FIELD && out == NULL && ei.field[0] != '\0');
        } else {
            assert(web_role_parse(json_string_value(json_object_get(out, "role"))) !=
                   WEB_ROLE_NONE);
            assert(strlen(json_string_value(json_object_get(out, "password"))) >=
                   WEB_PASSWORD_MIN);
            json_t *again = NULL;
            assert(web_validate_user(out, &again, &ei) == AB_OK && json_equal(out, again));
            json_decref(again);
            json_decref(out);
        }
    }
    json_decref(doc);
    return 0;
}
