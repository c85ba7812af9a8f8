/*
 * The pure parts of browser authentication (see web_int.h): login and user bodies, roles,
 * argon2id password hashes through libsodium, random tokens, reading the session cookie out of a
 * Cookie header, and the failed-login throttle. No SQLite and no sockets: the users and sessions
 * tables are user_store.c's, the HTTP glue (web_begin, the session routes) api.c's and
 * user_api.c's.
 */
#include <ctype.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include "web_int.h"

enum web_role web_role_parse(const char *s)
{
    if (s == NULL)
        return WEB_ROLE_NONE;
    if (strcmp(s, "admin") == 0)
        return WEB_ROLE_ADMIN;
    if (strcmp(s, "editor") == 0)
        return WEB_ROLE_EDITOR;
    if (strcmp(s, "viewer") == 0)
        return WEB_ROLE_VIEWER;
    return WEB_ROLE_NONE;
}

const char *web_role_name(enum web_role r)
{
    switch (r) {
    case WEB_ROLE_ADMIN:
        return "admin";
    case WEB_ROLE_EDITOR:
        return "editor";
    case WEB_ROLE_VIEWER:
        return "viewer";
    default:
        return "none";
    }
}

/* The string field of in, or NULL with ei set (missing, not a string, empty, too long, NUL). */
static const char *get_string(const json_t *in, const char *field, size_t max,
                              struct ab_errinfo *ei)
{
    const json_t *v = json_object_get(in, field);
    if (!json_is_string(v)) {
        ab_fail(ei, AB_ERR_INVALID_FIELD, field, "is required (a string)");
        return NULL;
    }
    size_t len = json_string_length(v);
    const char *s = json_string_value(v);
    if (len == 0 || len > max || memchr(s, '\0', len) != NULL) {
        ab_fail(ei, AB_ERR_INVALID_FIELD, field, "must be 1 to %zu bytes without NUL", max);
        return NULL;
    }
    return s;
}

enum ab_err web_validate_login(const json_t *in, const char **email, const char **password,
                               struct ab_errinfo *ei)
{
    if (!json_is_object(in))
        return ab_fail(ei, AB_ERR_INVALID_FIELD, "body", "must be a JSON object");
    if ((*email = get_string(in, "email", WEB_EMAIL_MAX, ei)) == NULL ||
        (*password = get_string(in, "password", WEB_PASSWORD_MAX, ei)) == NULL)
        return AB_ERR_INVALID_FIELD;
    return AB_OK;
}

/* local@domain: printable ASCII without spaces, one @, something on both sides. */
static int valid_email(const char *s, size_t len)
{
    const char *at = memchr(s, '@', len);
    if (at == NULL || at == s || at == s + len - 1 || memchr(at + 1, '@', len - (size_t)(at - s) - 1))
        return 0;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] <= ' ' || (unsigned char)s[i] >= 0x7f || s[i] == '<' ||
            s[i] == '>' || s[i] == '"')
            return 0;
    return 1;
}

enum ab_err web_validate_user(const json_t *in, json_t **out, struct ab_errinfo *ei)
{
    *out = NULL;
    if (!json_is_object(in))
        return ab_fail(ei, AB_ERR_INVALID_FIELD, "body", "must be a JSON object");
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)in, key, v)
    {
        if (strcmp(key, "email") != 0 && strcmp(key, "password") != 0 &&
            strcmp(key, "role") != 0)
            return ab_fail(ei, AB_ERR_INVALID_FIELD, key[0] != '\0' ? key : "\"\"",
                           "unknown field (email, password, role)"); /* "" names an empty one */
    }
    const char *email = get_string(in, "email", WEB_EMAIL_MAX, ei);
    if (email == NULL)
        return AB_ERR_INVALID_FIELD;
    if (!valid_email(email, strlen(email)))
        return ab_fail(ei, AB_ERR_INVALID_FIELD, "email", "must be an address like a@b.c");
    const char *password = get_string(in, "password", WEB_PASSWORD_MAX, ei);
    if (password == NULL)
        return AB_ERR_INVALID_FIELD;
    if (strlen(password) < WEB_PASSWORD_MIN)
        return ab_fail(ei, AB_ERR_INVALID_FIELD, "password", "must be at least %d bytes",
                       WEB_PASSWORD_MIN);
    const json_t *role = json_object_get(in, "role");
    const char *r = "viewer";
    if (role != NULL) {
        if (!json_is_string(role) || web_role_parse(json_string_value(role)) == WEB_ROLE_NONE)
            return ab_fail(ei, AB_ERR_INVALID_FIELD, "role", "must be admin, editor or viewer");
        r = json_string_value(role);
    }
    *out = json_pack("{s:s, s:s, s:s}", "email", email, "password", password, "role", r);
    return AB_OK;
}

enum ab_err web_password_hash(const char *password, char out[WEB_HASH_MAX], struct ab_errinfo *ei)
{
    _Static_assert(crypto_pwhash_STRBYTES <= WEB_HASH_MAX, "hash buffer");
    if (crypto_pwhash_str_alg(out, password, strlen(password), crypto_pwhash_OPSLIMIT_INTERACTIVE,
                              crypto_pwhash_MEMLIMIT_INTERACTIVE,
                              crypto_pwhash_ALG_ARGON2ID13) != 0)
        return ab_fail(ei, AB_ERR_INTERNAL, NULL, "cannot hash the password (out of memory)");
    return AB_OK;
}

int web_password_verify(const char *hash, const char *password)
{
    if (hash == NULL || memchr(hash, '\0', WEB_HASH_MAX) == NULL)
        return 0;
    return crypto_pwhash_str_verify(hash, password, strlen(password)) == 0;
}

int web_cookie_get(const char *header, size_t len, const char *name, char *out, size_t outlen)
{
    size_t nlen = strlen(name);
    size_t i = 0;
    while (i < len) {
        while (i < len && (header[i] == ' ' || header[i] == ';' || header[i] == '\t'))
            i++;
        size_t start = i;
        while (i < len && header[i] != ';')
            i++;
        /* header[start..i) is one "name=value" pair */
        if (i - start > nlen && memcmp(header + start, name, nlen) == 0 &&
            header[start + nlen] == '=') {
            size_t vstart = start + nlen + 1, vlen = i - vstart;
            while (vlen > 0 && (header[vstart + vlen - 1] == ' ' ||
                                header[vstart + vlen - 1] == '\t'))
                vlen--;
            if (vlen == 0 || vlen >= outlen)
                return -1;
            for (size_t k = 0; k < vlen; k++) {
                unsigned char c = (unsigned char)header[vstart + k];
                if (c < 0x21 || c > 0x7e || c == '"' || c == ',' || c == '\\')
                    return -1; /* not a cookie-octet (RFC 6265 section 4.1.1) */
            }
            memcpy(out, header + vstart, vlen);
            out[vlen] = '\0';
            return 0;
        }
    }
    return -1;
}

void web_token_new(char out[65])
{
    unsigned char raw[32];
    randombytes_buf(raw, sizeof(raw));
    sodium_bin2hex(out, 65, raw, sizeof(raw));
}

/* ---------------------------------------------------------------- throttle */

void web_throttle_init(struct web_throttle *t, int64_t window_ms)
{
    memset(t->slots, 0, sizeof(t->slots));
    t->window_ms = window_ms;
    pthread_mutex_init(&t->lock, NULL);
}

void web_throttle_dispose(struct web_throttle *t)
{
    if (t != NULL)
        pthread_mutex_destroy(&t->lock);
}

/* FNV-1a of key, for the slot to start probing at. */
static size_t slot_of(const char *key)
{
    uint64_t h = 1469598103934665603ULL;
    for (const char *p = key; *p != '\0'; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    return (size_t)(h % WEB_THROTTLE_SLOTS);
}

#define PROBES 16

/* The slot of key, or NULL; with create, a free, expired or the oldest of PROBES slots. */
static struct web_throttle_slot *find(struct web_throttle *t, const char *key, int64_t now,
                                      int create)
{
    size_t at = slot_of(key);
    struct web_throttle_slot *victim = NULL;
    for (size_t i = 0; i < PROBES; i++) {
        struct web_throttle_slot *s = &t->slots[(at + i) % WEB_THROTTLE_SLOTS];
        if (s->window_start != 0 && strcmp(s->key, key) == 0) {
            if (now - s->window_start >= t->window_ms) {
                s->window_start = now; /* the window passed: count anew */
                s->failures = 0;
            }
            return s;
        }
        int expired = s->window_start == 0 || now - s->window_start >= t->window_ms;
        if (expired) {
            if (victim == NULL || victim->window_start != 0)
                victim = s; /* a free slot beats any other; the first expired one will do */
        } else if (victim == NULL ||
                   (victim->window_start != 0 && s->window_start < victim->window_start)) {
            victim = s; /* else the oldest live window is given up */
        }
    }
    if (!create)
        return NULL;
    snprintf(victim->key, sizeof(victim->key), "%s", key);
    victim->window_start = now;
    victim->failures = 0;
    return victim;
}

int64_t web_throttle_wait_s(struct web_throttle *t, const char *key, int limit, int64_t now)
{
    pthread_mutex_lock(&t->lock);
    const struct web_throttle_slot *s = find(t, key, now, 0);
    int64_t wait = 0;
    if (s != NULL && s->failures >= limit)
        wait = (s->window_start + t->window_ms - now + 999) / 1000;
    pthread_mutex_unlock(&t->lock);
    return wait > 0 ? wait : 0;
}

void web_throttle_fail(struct web_throttle *t, const char *key, int64_t now)
{
    pthread_mutex_lock(&t->lock);
    struct web_throttle_slot *s = find(t, key, now, 1);
    s->failures++;
    pthread_mutex_unlock(&t->lock);
}

void web_throttle_clear(struct web_throttle *t, const char *key)
{
    pthread_mutex_lock(&t->lock);
    struct web_throttle_slot *s = find(t, key, 0, 0);
    if (s != NULL)
        s->window_start = 0;
    pthread_mutex_unlock(&t->lock);
}
