/*
 * Logging: one line per event, written with a single write(2) so lines from several threads never
 * interleave. Format (logfmt): `2026-11-24T12:46:02.123Z info listening addr=127.0.0.1:8080`,
 * i.e. time, level, event name, then the caller's key=value text. Control characters in the text
 * are escaped so an event is always exactly one line. Not a metrics or audit facility.
 */
#ifndef ABACUS_LOG_H
#define ABACUS_LOG_H

#include "abacus/clock.h"

enum ab_log_level {
    AB_LOG_DEBUG = 0,
    AB_LOG_INFO = 1,
    AB_LOG_WARN = 2,
    AB_LOG_ERROR = 3,
};

struct ab_log {
    enum ab_log_level level;      /* events below this level are dropped */
    int fd;                       /* where lines go; 2 (stderr) in the binary */
    const struct ab_clock *clock; /* timestamps */
};

void ab_log_init(struct ab_log *log, enum ab_log_level level, int fd, const struct ab_clock *clock);

/* "debug", "info", "warn", "error" -> level; returns 0, or -1 for anything else. */
int ab_log_level_parse(const char *name, enum ab_log_level *out);

/*
 * Writes one line: the event name (a short snake_case word, e.g. "listening") and the formatted
 * key=value text (may be NULL). Lines longer than 2 KiB are truncated and end in "...".
 */
void ab_log_write(const struct ab_log *log, enum ab_log_level level, const char *event,
                  const char *fmt, ...) __attribute__((format(printf, 4, 5)));

#define AB_LOG_D(log, ...) ab_log_write((log), AB_LOG_DEBUG, __VA_ARGS__)
#define AB_LOG_I(log, ...) ab_log_write((log), AB_LOG_INFO, __VA_ARGS__)
#define AB_LOG_W(log, ...) ab_log_write((log), AB_LOG_WARN, __VA_ARGS__)
#define AB_LOG_E(log, ...) ab_log_write((log), AB_LOG_ERROR, __VA_ARGS__)

#endif
