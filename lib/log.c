/*
 * Line-per-event logger. Formats into a stack buffer, escapes control characters, and emits the
 * line with one write(2).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "abacus/log.h"

#define LOG_LINE_MAX 2048

static const char *const LEVEL_NAMES[] = {"debug", "info", "warn", "error"};

void ab_log_init(struct ab_log *log, enum ab_log_level level, int fd, const struct ab_clock *clock)
{
    log->level = level;
    log->fd = fd;
    log->clock = clock;
}

int ab_log_level_parse(const char *name, enum ab_log_level *out)
{
    for (int i = 0; i < 4; i++) {
        if (strcmp(name, LEVEL_NAMES[i]) == 0) {
            *out = (enum ab_log_level)i;
            return 0;
        }
    }
    return -1;
}

/*
 * Copies src into dst[pos..cap) escaping control characters; returns the new position and sets
 * *cut when src did not fit whole.
 */
static size_t append_escaped(char *dst, size_t pos, size_t cap, const char *src, int *cut)
{
    static const char HEX[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)src;
    for (; *p != '\0' && pos + 4 < cap; p++) {
        if (*p == '\n') {
            dst[pos++] = '\\';
            dst[pos++] = 'n';
        } else if (*p < 0x20 || *p == 0x7f) {
            dst[pos++] = '\\';
            dst[pos++] = 'x';
            dst[pos++] = HEX[*p >> 4];
            dst[pos++] = HEX[*p & 0xf];
        } else {
            dst[pos++] = (char)*p;
        }
    }
    *cut = *p != '\0';
    return pos;
}

void ab_log_write(const struct ab_log *log, enum ab_log_level level, const char *event,
                  const char *fmt, ...)
{
    if (log == NULL || level < log->level)
        return;
    char text[LOG_LINE_MAX];
    text[0] = '\0';
    int text_cut = 0;
    if (fmt != NULL) {
        va_list ap;
        va_start(ap, fmt);
        text_cut = vsnprintf(text, sizeof(text), fmt, ap) >= (int)sizeof(text); // NOLINT(clang-analyzer-valist.Uninitialized): started just above
        va_end(ap);
    }
    char line[LOG_LINE_MAX + 64];
    size_t cap = sizeof(line) - 5; /* room for "...\n" */
    int n = ab_clock_format_rfc3339(ab_clock_now_ms(log->clock), line, (int)cap);
    size_t pos = (size_t)n;
    n = snprintf(line + pos, cap - pos, " %s ", LEVEL_NAMES[level]);
    pos += (size_t)n;
    int cut = 0;
    pos = append_escaped(line, pos, cap, event, &cut);
    if (text[0] != '\0' && !cut) {
        line[pos++] = ' ';
        pos = append_escaped(line, pos, cap, text, &cut);
        cut |= text_cut;
    }
    if (cut) {
        for (int i = 0; i < 3; i++)
            line[pos++] = '.';
    }
    line[pos++] = '\n';
    const char *p = line;
    while (pos > 0) {
        ssize_t w = write(log->fd, p, pos);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return;
        p += w;
        pos -= (size_t)w;
    }
}
