/* The README's C SDK example, compiled by every build so that it stays true. */
#include <stdio.h>
#include <abacus/client.h>

int main(int argc, char **argv)
{
    struct ab_client_options opts = {.base_url = argc > 1 ? argv[1] : "http://127.0.0.1:8081"};
    struct ab_client *c;
    if (ab_client_open(&opts, &c, NULL, 0) != 0)
        return 1;
    const char *attrs[] = {"country", "FR", NULL};
    struct ab_client_assignment a;
    ab_client_assign(c, "checkout-button", "user-42", attrs, &a);
    printf("%s (%s)\n", a.variant, a.reason);
    ab_client_close(c);
    return 0;
}
