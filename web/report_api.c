/*
 * The nightly reports for signed-in users: GET /api/v1/reports lists the complete reports under
 * DATA_DIR/reports (a YYYY-MM-DD directory with its report.json, which the report writes last),
 * newest first, and GET /reports/{date}/report.html|json|csv serves one file. Both need a viewer
 * session or an admin key (web_begin). The report's HTML runs its inline script in a sandbox
 * (its own CSP), so it can read nothing of this origin. The reports are written by the analysis
 * (`abacus report`, the scheduler); this file only reads them.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "abacus/mem.h"
#include "api.h"

#define REPORT_FILE_MAX ((off_t)256 << 20) /* largest report file served, bytes */

#define REPORT_CSP                                                                                 \
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:; "   \
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'; sandbox allow-scripts"

/* 1 when s is YYYY-MM-DD (digits and dashes in place; the calendar is the writer's business). */
static int is_date(const char *s)
{
    if (s == NULL || strlen(s) != 10)
        return 0;
    for (int i = 0; i < 10; i++) {
        int dash = i == 4 || i == 7;
        if (dash ? s[i] != '-' : (s[i] < '0' || s[i] > '9'))
            return 0;
    }
    return 1;
}

static int cmp_desc(const void *a, const void *b)
{
    return strcmp(*(char *const *)b, *(char *const *)a);
}

static void handle_list(struct ab_http_req *req, void *data)
{
    struct web *w = data;
    struct web_actor who;
    if (web_begin(req, w, &who, WEB_ROLE_VIEWER) == NULL)
        return;
    char dir[4096];
    snprintf(dir, sizeof(dir), "%s/reports", w->data_dir);
    char **dates = NULL;
    size_t n = 0;
    DIR *d = opendir(dir);
    for (struct dirent *e = d != NULL ? readdir(d) : NULL; e != NULL; e = readdir(d)) {
        char path[4400];
        snprintf(path, sizeof(path), "%s/%s/report.json", dir, e->d_name);
        if (!is_date(e->d_name) || access(path, F_OK) != 0)
            continue;
        dates = ab_mem_realloc(dates, (n + 1) * sizeof(char *));
        dates[n++] = ab_mem_strdup(e->d_name);
    }
    if (d != NULL)
        closedir(d);
    if (n > 0)
        qsort(dates, n, sizeof(char *), cmp_desc);
    json_t *list = json_array();
    for (size_t i = 0; i < n; i++) {
        char html[64], js[64], csv[64];
        snprintf(html, sizeof(html), "/reports/%s/report.html", dates[i]);
        snprintf(js, sizeof(js), "/reports/%s/report.json", dates[i]);
        snprintf(csv, sizeof(csv), "/reports/%s/report.csv", dates[i]);
        json_array_append_new(list, json_pack("{s:s, s:s, s:s, s:s}", "date", dates[i], "html",
                                              html, "json", js, "csv", csv));
        free(dates[i]);
    }
    free(dates);
    ab_http_send_json(req, 200, json_pack("{s:o}", "reports", list));
}

static void handle_file(struct ab_http_req *req, void *data)
{
    struct web *w = data;
    struct web_actor who;
    if (web_begin(req, w, &who, WEB_ROLE_VIEWER) == NULL)
        return;
    const char *date = ab_http_param(req, "date"), *file = ab_http_param(req, "file");
    const char *type = NULL;
    if (strcmp(file, "report.html") == 0)
        type = "text/html; charset=utf-8";
    else if (strcmp(file, "report.json") == 0)
        type = "application/json";
    else if (strcmp(file, "report.csv") == 0)
        type = "text/csv; charset=utf-8; header=present";
    if (!is_date(date) || type == NULL) {
        ab_http_send_error(req, AB_ERR_NOT_FOUND, "report",
                           "no such report file (/reports/YYYY-MM-DD/report.html|json|csv)");
        return;
    }
    char path[4400];
    snprintf(path, sizeof(path), "%s/reports/%s/%s", w->data_dir, date, file);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > REPORT_FILE_MAX) {
        int missing = fd < 0 && errno == ENOENT;
        if (fd >= 0)
            close(fd);
        if (missing)
            ab_http_send_error(req, AB_ERR_NOT_FOUND, "date", "no report for %s", date);
        else
            ab_http_send_error(req, AB_ERR_IO, NULL, "the report for %s cannot be read", date);
        return;
    }
    char *buf = ab_mem_calloc(1, (size_t)st.st_size + 1);
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    if (got != (size_t)st.st_size) {
        ab_http_send_error(req, AB_ERR_IO, NULL, "the report for %s cannot be read", date);
    } else {
        ab_http_add_header(req, "Content-Security-Policy", REPORT_CSP);
        ab_http_add_header(req, "X-Content-Type-Options", "nosniff");
        ab_http_add_header(req, "Cache-Control", "private, no-cache");
        ab_http_send(req, 200, type, buf, got);
    }
    free(buf);
}

enum ab_err web_report_mount(struct web *w, struct ab_http_server *srv, struct ab_errinfo *ei)
{
    enum ab_err rc = ab_http_route(srv, "GET", "/api/v1/reports", handle_list, w, 0, ei);
    if (rc == AB_OK)
        rc = ab_http_route(srv, "GET", "/reports/{date}/{file}", handle_file, w, 0, ei);
    return rc;
}
