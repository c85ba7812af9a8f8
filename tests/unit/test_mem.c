/* Unit tests of lib/mem.c: the wrappers allocate, copy and zero; out of memory aborts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>
#include "abacus/mem.h"

static void test_alloc_copy_zero(void **state)
{
    (void)state;
    unsigned char *p = ab_mem_calloc(64, 2);
    for (int i = 0; i < 128; i++)
        assert_int_equal(p[i], 0);
    memset(p, 7, 128);
    p = ab_mem_realloc(p, 4096);
    for (int i = 0; i < 128; i++)
        assert_int_equal(p[i], 7); /* growing keeps the contents */
    free(p);
    char *s = ab_mem_strdup("caf\xc3\xa9");
    assert_string_equal(s, "caf\xc3\xa9");
    free(s);
    free(ab_mem_calloc(0, 8)); /* zero objects is a valid request */
}

static void test_out_of_memory_aborts(void **state)
{
    (void)state;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int devnull = open("/dev/null", O_WRONLY);
        dup2(devnull, 2); /* the allocator's own complaint is expected */
        ab_mem_calloc(SIZE_MAX / 4, 4);
        _exit(0); /* reached only if it returned */
    }
    int status;
    waitpid(pid, &status, 0);
    assert_false(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_alloc_copy_zero),
        cmocka_unit_test(test_out_of_memory_aborts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
