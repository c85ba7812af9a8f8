/*
 * The baseline of bench/http_ceiling: the least a libh2o 2.2 evloop server can do per request.
 * One thread, one listener, one handler that answers every request with a fixed 80-byte JSON
 * body. Abacus's /healthz is measured against it in the same run. Usage: h2o_minimal PORT
 * [BYTES]: with BYTES, the fixed body is a JSON object of that many bytes instead (bench/assign's
 * floor for an answer as large as POST /v1/assign's: the HTTP and kernel cost of that answer,
 * with no work). Stops on SIGTERM/SIGINT.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <h2o.h>

static const char BODY[] =
    "{\"status\":\"ok\",\"service\":\"baseline\",\"note\":\"fixed body of the HTTP ceiling run\"}";
static volatile sig_atomic_t stop_requested;
static h2o_iovec_t body = {(char *)BODY, sizeof(BODY) - 1};
static h2o_accept_ctx_t accept_ctx;

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    (void)self;
    req->res.status = 200;
    req->res.reason = "OK";
    req->res.content_length = body.len;
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
                   H2O_STRLIT("application/json"));
    h2o_send_inline(req, body.base, body.len);
    return 0;
}

static void on_accept(h2o_socket_t *listener, const char *err)
{
    if (err != NULL)
        return;
    h2o_socket_t *sock = h2o_evloop_socket_accept(listener);
    if (sock != NULL)
        h2o_accept(&accept_ctx, sock);
}

int main(int argc, char **argv)
{
    if (argc != 2 && argc != 3) {
        fprintf(stderr, "usage: h2o_minimal PORT [BYTES]\n");
        return 2;
    }
    _Static_assert(sizeof(BODY) - 1 == 80, "the baseline body is 80 bytes");
    if (argc == 3) { /* {"pad":"xx...x"} of BYTES bytes */
        long n = strtol(argv[2], NULL, 10);
        if (n < 12 || n > 1 << 20) {
            fprintf(stderr, "h2o_minimal: BYTES must be 12 to 1048576\n");
            return 2;
        }
        body.len = (size_t)n;
        if ((body.base = malloc(body.len)) == NULL) {
            fprintf(stderr, "h2o_minimal: out of memory\n");
            return 1;
        }
        memset(body.base, 'x', body.len);
        memcpy(body.base, "{\"pad\":\"", 8);
        memcpy(body.base + body.len - 2, "\"}", 2);
    }
    signal(SIGPIPE, SIG_IGN);
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    h2o_globalconf_t config;
    h2o_context_t ctx;
    h2o_config_init(&config);
    h2o_hostconf_t *host =
        h2o_config_register_host(&config, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    h2o_pathconf_t *path = h2o_config_register_path(host, "/", 0);
    h2o_create_handler(path, sizeof(h2o_handler_t))->on_req = on_req;
    h2o_context_init(&ctx, h2o_evloop_create(), &config);
    accept_ctx.ctx = &ctx;
    accept_ctx.hosts = config.hosts;

    struct sockaddr_in addr = {0};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons((uint16_t)strtol(argv[1], NULL, 10));
    int one = 1;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        bind(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0 || listen(fd, SOMAXCONN) != 0) {
        perror("h2o_minimal: listen");
        return 1;
    }
    h2o_socket_t *listener = h2o_evloop_socket_create(ctx.loop, fd, H2O_SOCKET_FLAG_DONT_READ);
    h2o_socket_read_start(listener, on_accept);
    while (!stop_requested)
        h2o_evloop_run(ctx.loop, 50);
    if (body.base != BODY)
        free(body.base);
    return 0;
}
