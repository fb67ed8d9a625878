/* A Fluent Bit input plugin (Go-proxy ABI) for testing `host-harness fluent-bit input`.
 * Each collect returns a malloc'd buffer with two records: one current layout
 * [[EventTime(1700000000, 999999999), {}], {"message": "hello", "n": <call>}] and one legacy
 * [1700000001, {"message": "legacy"}], preceded by a group start marker. Properties:
 *   empty_every (default 0): every Nth call returns *size = 0
 *   malformed   (default 0): append a truncated map32 to every buffer
 * No cleanup callback: the host frees with libc free. Pause/Resume are counted and logged. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct flb_plugin_proxy_def {
    int type; int proxy; int flags; char *name; char *description; int event_type; void *config_map;
};
struct flb_api {
    const char *(*output_get_property)(const char *, void *);
    const char *(*input_get_property)(const char *, void *);
    void *(*output_get_cmt_instance)(void *);
    void *(*input_get_cmt_instance)(void *);
    void (*log_print)(int, const char *, int, const char *, ...);
    int (*input_log_check)(void *, int);
    int (*output_log_check)(void *, int);
};
struct flb_plugin_input_proxy_context { int coll_fd; void *remote_context; void *proxy; };
struct flbgo_input_plugin { char *name; struct flb_api *api; void *i_ins; struct flb_plugin_input_proxy_context *context; };

struct ctx { struct flb_api *api; void *i_ins; long calls, empty_every, malformed; };
static struct ctx *the_ctx;
static int paused;

int FLBPluginRegister(struct flb_plugin_proxy_def *def)
{
    def->type = 1;
    def->proxy = 11;
    def->name = "probe_in";
    def->description = "harness probe input";
    return 0;
}

int FLBPluginInit(void *plugin)
{
    struct flbgo_input_plugin *p = plugin;
    struct ctx *c = calloc(1, sizeof *c);
    const char *v;
    c->api = p->api;
    c->i_ins = p->i_ins;
    v = p->api->input_get_property("empty_every", p->i_ins);
    c->empty_every = v ? strtol(v, NULL, 10) : 0;
    v = p->api->input_get_property("Malformed", p->i_ins);
    c->malformed = v ? strtol(v, NULL, 10) : 0;
    if (p->api->input_get_property("tag", p->i_ins) != NULL) return 0; /* core key */
    p->context->remote_context = c;
    the_ctx = c;
    return 1;
}

static size_t put(uint8_t *b, size_t at, const void *src, size_t n) { memcpy(b + at, src, n); return at + n; }

int FLBPluginInputCallbackCtx(void *remote, void **data, size_t *size)
{
    struct ctx *c = remote;
    uint8_t *b;
    size_t at = 0;
    static const uint8_t marker[] = { 0x92, 0x92, 0xd7, 0x00, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0x80, 0x80 };
    static const uint8_t rec1_head[] = { 0x92, 0x92, 0xd7, 0x00, 0x65, 0x53, 0xf1, 0x00, 0x3b, 0x9a, 0xc9, 0xff, 0x80,
                                         0x82, 0xa7, 'm', 'e', 's', 's', 'a', 'g', 'e', 0xa5, 'h', 'e', 'l', 'l', 'o',
                                         0xa1, 'n', 0xcd };
    static const uint8_t rec2[] = { 0x92, 0xce, 0x65, 0x53, 0xf1, 0x01, 0xdf, 0, 0, 0, 1,
                                    0xa7, 'm', 'e', 's', 's', 'a', 'g', 'e', 0xa6, 'l', 'e', 'g', 'a', 'c', 'y' };
    static const uint8_t bad[] = { 0x92, 0xce, 0, 0, 0, 1, 0xdf, 0xff, 0xff, 0xff, 0xff };
    c->calls++;
    if (paused) c->api->log_print(1, __FILE__, __LINE__, "collect called while paused (call %ld)", c->calls);
    if (c->empty_every > 0 && c->calls % c->empty_every == 0) {
        *size = 0;
        return 0;
    }
    b = malloc(256);
    at = put(b, at, marker, sizeof marker);
    at = put(b, at, rec1_head, sizeof rec1_head);
    b[at++] = (uint8_t) (c->calls >> 8);
    b[at++] = (uint8_t) c->calls;
    at = put(b, at, rec2, sizeof rec2);
    if (c->malformed) at = put(b, at, bad, sizeof bad);
    *data = b;
    *size = at;
    return 0;
}

void FLBPluginInputPause(void) { paused = 1; the_ctx->api->log_print(3, __FILE__, __LINE__, "paused"); }
void FLBPluginInputResume(void) { paused = 0; the_ctx->api->log_print(3, __FILE__, __LINE__, "resumed"); }
int FLBPluginExit(void) { free(the_ctx); the_ctx = NULL; return 1; }
