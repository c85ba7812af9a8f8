/*
 * A full disk for the collector's disk-full test, with nothing in the collector: preloaded
 * (LD_PRELOAD) into the abacus process that tests/integration/it_collect.c starts, it makes the
 * writes SQLite does (pwrite64, write) to files below $ABACUS_TEST_DISK_FULL_DIR fail with ENOSPC,
 * as a full file system does, while the file $ABACUS_TEST_DISK_FULL_FLAG exists. Every other
 * write goes through untouched. Built for the tests only; never linked into abacus.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off);
ssize_t write(int fd, const void *buf, size_t n);

/* 1 when the disk is "full" for fd: the flag file exists and fd is a file below the dir. */
static int full(int fd)
{
    const char *flag = getenv("ABACUS_TEST_DISK_FULL_FLAG");
    const char *dir = getenv("ABACUS_TEST_DISK_FULL_DIR");
    if (flag == NULL || dir == NULL || access(flag, F_OK) != 0)
        return 0;
    char link[64], path[PATH_MAX];
    snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
    ssize_t len = readlink(link, path, sizeof(path) - 1);
    if (len <= 0)
        return 0;
    path[len] = '\0';
    size_t dlen = strlen(dir);
    return strncmp(path, dir, dlen) == 0 && path[dlen] == '/';
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off)
{
    static ssize_t (*real)(int, const void *, size_t, off_t);
    if (real == NULL)
        real = (ssize_t (*)(int, const void *, size_t, off_t))dlsym(RTLD_NEXT, "pwrite64");
    if (full(fd)) {
        errno = ENOSPC;
        return -1;
    }
    return real(fd, buf, n, off);
}

ssize_t write(int fd, const void *buf, size_t n)
{
    static ssize_t (*real)(int, const void *, size_t);
    if (real == NULL)
        real = (ssize_t (*)(int, const void *, size_t))dlsym(RTLD_NEXT, "write");
    if (fd > 2 && full(fd)) {
        errno = ENOSPC;
        return -1;
    }
    return real(fd, buf, n);
}
