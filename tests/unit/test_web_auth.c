/*
 * Unit tests of web/auth.c: argon2id password hashes (libsodium, at least the interactive
 * limits), login and user bodies, the session cookie out of a Cookie header, random tokens, and
 * the failed-login throttle with explicit times.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <sodium.h>
#include "web_int.h"

static void test_password_hash(void **state)
{
    (void)state;
    assert_true(sodium_init() >= 0);
    char a[WEB_HASH_MAX], b[WEB_HASH_MAX];
    struct ab_errinfo ei;
    assert_int_equal(web_password_hash("correct horse battery", a, &ei), AB_OK);
    assert_int_equal(web_password_hash("correct horse battery", b, &ei), AB_OK);
    assert_non_null(strstr(a, "$argon2id$"));
    assert_string_not_equal(a, b); /* a random salt each time */
    assert_null(strstr(a, "correct horse"));
    /* at least the interactive limits: no rehash needed at those costs */
    assert_int_equal(crypto_pwhash_str_needs_rehash(a, crypto_pwhash_OPSLIMIT_INTERACTIVE,
                                                    crypto_pwhash_MEMLIMIT_INTERACTIVE),
                     0);
    assert_true(web_password_verify(a, "correct horse battery"));
    assert_true(web_password_verify(b, "correct horse battery"));
    assert_false(web_password_verify(a, "correct horse batterY"));
    assert_false(web_password_verify(a, ""));
    assert_false(web_password_verify("", "correct horse battery"));
    assert_false(web_password_verify("$argon2id$garbage", "x"));
}

static void test_roles(void **state)
{
    (void)state;
    assert_int_equal(web_role_parse("admin"), WEB_ROLE_ADMIN);
    assert_int_equal(web_role_parse("editor"), WEB_ROLE_EDITOR);
    assert_int_equal(web_role_parse("viewer"), WEB_ROLE_VIEWER);
    assert_int_equal(web_role_parse("Admin"), WEB_ROLE_NONE);
    assert_int_equal(web_role_parse(NULL), WEB_ROLE_NONE);
    assert_true(WEB_ROLE_VIEWER < WEB_ROLE_EDITOR && WEB_ROLE_EDITOR < WEB_ROLE_ADMIN);
    assert_string_equal(web_role_name(WEB_ROLE_EDITOR), "editor");
}

static void test_login_body(void **state)
{
    (void)state;
    struct ab_errinfo ei;
    const char *email = NULL, *password = NULL;
    json_t *in = json_pack("{s:s, s:s}", "email", "a@b.c", "password", "pw");
    assert_int_equal(web_validate_login(in, &email, &password, &ei), AB_OK);
    assert_string_equal(email, "a@b.c");
    assert_string_equal(password, "pw");
    json_decref(in);
    in = json_pack("{s:s}", "email", "a@b.c");
    assert_int_equal(web_validate_login(in, &email, &password, &ei), AB_ERR_INVALID_FIELD);
    assert_string_equal(ei.field, "password");
    json_decref(in);
    in = json_pack("{s:i, s:s}", "email", 3, "password", "x");
    assert_int_equal(web_validate_login(in, &email, &password, &ei), AB_ERR_INVALID_FIELD);
    assert_string_equal(ei.field, "email");
    json_decref(in);
}

static void test_user_body(void **state)
{
    (void)state;
    struct ab_errinfo ei;
    json_t *out = NULL;
    json_t *in = json_pack("{s:s, s:s}", "email", "x@y.z", "password", "twelve chars");
    assert_int_equal(web_validate_user(in, &out, &ei), AB_OK);
    assert_string_equal(json_string_value(json_object_get(out, "role")), "viewer");
    json_decref(out);
    json_decref(in);
    static const struct {
        const char *body, *field;
    } BAD[] = {
        {"{\"email\":\"no-at\",\"password\":\"twelve chars\"}", "email"},
        {"{\"email\":\"<a>@b.c\",\"password\":\"twelve chars\"}", "email"},
        {"{\"email\":\"a@b.c\",\"password\":\"short\"}", "password"},
        {"{\"email\":\"a@b.c\",\"password\":\"twelve chars\",\"role\":\"root\"}", "role"},
        {"{\"email\":\"a@b.c\",\"password\":\"twelve chars\",\"admin\":true}", "admin"},
    };
    for (size_t i = 0; i < sizeof(BAD) / sizeof(BAD[0]); i++) {
        in = json_loads(BAD[i].body, 0, NULL);
        out = (json_t *)1;
        assert_int_equal(web_validate_user(in, &out, &ei), AB_ERR_INVALID_FIELD);
        assert_null(out);
        assert_string_equal(ei.field, BAD[i].field);
        json_decref(in);
    }
}

static void test_cookie(void **state)
{
    (void)state;
    char v[80];
    const char *h = "theme=dark; abacus_session=abc123;  x=1";
    assert_int_equal(web_cookie_get(h, strlen(h), "abacus_session", v, sizeof(v)), 0);
    assert_string_equal(v, "abc123");
    h = "abacus_session=last ";
    assert_int_equal(web_cookie_get(h, strlen(h), "abacus_session", v, sizeof(v)), 0);
    assert_string_equal(v, "last");
    h = "xabacus_session=no; abacus_session2=no";
    assert_int_equal(web_cookie_get(h, strlen(h), "abacus_session", v, sizeof(v)), -1);
    h = "abacus_session=";
    assert_int_equal(web_cookie_get(h, strlen(h), "abacus_session", v, sizeof(v)), -1);
    h = "abacus_session=0123456789";
    assert_int_equal(web_cookie_get(h, strlen(h), "abacus_session", v, 10), -1); /* too long */
    assert_int_equal(web_cookie_get(h, 18, "abacus_session", v, sizeof(v)), 0); /* length wins */
    assert_string_equal(v, "012");
    /* only cookie-octets: a NUL, a quote or a space inside refuses the value */
    static const char NUL[] = "abacus_session=\0\0ab";
    assert_int_equal(web_cookie_get(NUL, sizeof(NUL) - 1, "abacus_session", v, sizeof(v)), -1);
    h = "abacus_session=\"quoted\"";
    assert_int_equal(web_cookie_get(h, strlen(h), "abacus_session", v, sizeof(v)), -1);
    h = "abacus_session=a b";
    assert_int_equal(web_cookie_get(h, strlen(h), "abacus_session", v, sizeof(v)), -1);
}

static void test_token(void **state)
{
    (void)state;
    char a[65], b[65];
    web_token_new(a);
    web_token_new(b);
    assert_int_equal(strlen(a), 64);
    assert_int_equal(strspn(a, "0123456789abcdef"), 64);
    assert_string_not_equal(a, b);
}

static void test_throttle(void **state)
{
    (void)state;
    struct web_throttle *t = calloc(1, sizeof(*t));
    web_throttle_init(t, 900000);
    int64_t now = 1700000000000;
    for (int i = 0; i < 5; i++) {
        assert_int_equal(web_throttle_wait_s(t, "email:a@b.c", 5, now), 0);
        web_throttle_fail(t, "email:a@b.c", now);
    }
    assert_int_equal(web_throttle_wait_s(t, "email:a@b.c", 5, now), 900);
    assert_int_equal(web_throttle_wait_s(t, "email:a@b.c", 5, now + 600000), 300);
    assert_int_equal(web_throttle_wait_s(t, "email:other@b.c", 5, now), 0);
    assert_int_equal(web_throttle_wait_s(t, "email:a@b.c", 5, now + 900000), 0); /* window over */
    web_throttle_fail(t, "email:x@b.c", now);
    web_throttle_clear(t, "email:x@b.c");
    for (int i = 0; i < 4; i++)
        web_throttle_fail(t, "email:x@b.c", now);
    assert_int_equal(web_throttle_wait_s(t, "email:x@b.c", 5, now), 0); /* cleared: 4 < 5 */
    /* many keys: the table stays bounded and a fresh key is still counted */
    char key[64];
    for (int i = 0; i < 3 * WEB_THROTTLE_SLOTS; i++) {
        snprintf(key, sizeof(key), "ip:10.0.%d.%d", i / 256, i % 256);
        web_throttle_fail(t, key, now + 1);
    }
    for (int i = 0; i < 3; i++)
        web_throttle_fail(t, "ip:192.0.2.1", now + 2);
    assert_true(web_throttle_wait_s(t, "ip:192.0.2.1", 3, now + 2) > 0);
    web_throttle_dispose(t);
    free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_password_hash), cmocka_unit_test(test_roles),
        cmocka_unit_test(test_login_body),    cmocka_unit_test(test_user_body),
        cmocka_unit_test(test_cookie),        cmocka_unit_test(test_token),
        cmocka_unit_test(test_throttle),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
