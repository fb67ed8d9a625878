/* A Fluent Bit output plugin (Go-proxy ABI) for testing `host-harness fluent-bit output`,
 * written in C against the ABI description only. Each instance reads its properties:
 *   retry_first  (default 1): return FLB_RETRY from this many first flushes of the instance
 *   fail_all     (default 0): return FLB_ERROR from every flush
 *   stack_bytes  (default 0): touch this many bytes of stack in each flush
 *   out          (optional): at exit append "instance=<id> records=<n> bytes=<n> flushes=<n>
 *                 tag=<tag> bad=<n>" to this file
 *   id           (default "?"): printed with the line above
 * Records are counted by walking the msgpack minimally: a chunk is arrays of 2 one after
 * another, the first element an array (current layout) or a time (legacy); group markers
 * (EventTime seconds 0xFFFFFFFF/0xFFFFFFFE) are not counted. Flushes of one instance may run
 * concurrently (workers): the counters are atomic. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FLB_ERROR 0
#define FLB_OK 1
#define FLB_RETRY 2

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
struct flb_plugin_proxy_context { void *remote_context; void *proxy; };
struct flbgo_output_plugin { char *name; struct flb_api *api; void *o_ins; struct flb_plugin_proxy_context *context; };

struct ctx {
    struct flb_api *api;
    void *o_ins;
    long retry_first, fail_all, stack_bytes;
    long flushes, records, bytes, bad, markers;
    char id[64], out[512], tag[128];
};

static int registered, inits, exits, pre_runs, pre_exits;
static const char desc[] = "harness probe output";

static long prop_long(struct flbgo_output_plugin *p, const char *key, long dflt)
{
    const char *v = p->api->output_get_property(key, p->o_ins);
    return v ? strtol(v, NULL, 10) : dflt;
}

int FLBPluginRegister(struct flb_plugin_proxy_def *def)
{
    def->type = 2;
    def->proxy = 11;
    def->flags = 0;
    def->name = strdup("probe_out");
    def->description = (char *) desc;
    def->event_type = 0;
    registered++;
    return 0;
}

int FLBPluginInit(void *plugin)
{
    struct flbgo_output_plugin *p = plugin;
    struct ctx *c = calloc(1, sizeof *c);
    const char *v;
    c->api = p->api;
    c->o_ins = p->o_ins;
    c->retry_first = prop_long(p, "retry_first", 1);
    c->fail_all = prop_long(p, "fail_all", 0);
    c->stack_bytes = prop_long(p, "stack_bytes", 0);
    v = p->api->output_get_property("ID", p->o_ins);
    snprintf(c->id, sizeof c->id, "%s", v ? v : "?");
    v = p->api->output_get_property("out", p->o_ins);
    snprintf(c->out, sizeof c->out, "%s", v ? v : "");
    if (p->api->output_get_property("match", p->o_ins) != NULL) {
        return 0; /* core keys must be invisible */
    }
    if (p->api->output_log_check(p->o_ins, 3)) {
        p->api->log_print(3, __FILE__, __LINE__, "[probe_out] init instance %s (%d so far)", c->id, inits);
    }
    p->context->remote_context = c;
    inits++;
    return 1;
}

int FLBPluginOutputPreRun(int hot_reload) { (void) hot_reload; pre_runs++; return 0; }
void FLBPluginOutputPreExit(int by_hot_reload) { (void) by_hot_reload; pre_exits++; }

static const uint8_t *skip(const uint8_t *p, const uint8_t *end, int depth);

static const uint8_t *skip_n(const uint8_t *p, const uint8_t *end, uint64_t n, int depth)
{
    while (p && n--) p = skip(p, end, depth + 1);
    return p;
}

static uint64_t be(const uint8_t *p, int n) { uint64_t v = 0; while (n--) v = (v << 8) | *p++; return v; }

/* Skips one msgpack object; NULL when malformed or truncated. */
static const uint8_t *skip(const uint8_t *p, const uint8_t *end, int depth)
{
    uint8_t b;
    uint64_t n;
#define NEED(k) do { if ((uint64_t) (end - p) < (uint64_t) (k)) return NULL; } while (0)
    if (depth > 64) return NULL;
    NEED(1);
    b = *p++;
    if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3) return p;
    if ((b & 0xe0) == 0xa0) { n = b & 0x1f; NEED(n); return p + n; }
    if ((b & 0xf0) == 0x90) return skip_n(p, end, b & 0x0f, depth);
    if ((b & 0xf0) == 0x80) return skip_n(p, end, 2 * (uint64_t) (b & 0x0f), depth);
    switch (b) {
    case 0xcc: case 0xd0: NEED(1); return p + 1;
    case 0xcd: case 0xd1: NEED(2); return p + 2;
    case 0xce: case 0xd2: case 0xca: NEED(4); return p + 4;
    case 0xcf: case 0xd3: case 0xcb: NEED(8); return p + 8;
    case 0xd9: case 0xc4: NEED(1); n = p[0]; NEED(1 + n); return p + 1 + n;
    case 0xda: case 0xc5: NEED(2); n = be(p, 2); NEED(2 + n); return p + 2 + n;
    case 0xdb: case 0xc6: NEED(4); n = be(p, 4); NEED(4 + n); return p + 4 + n;
    case 0xd4: NEED(2); return p + 2;
    case 0xd5: NEED(3); return p + 3;
    case 0xd6: NEED(5); return p + 5;
    case 0xd7: NEED(9); return p + 9;
    case 0xd8: NEED(17); return p + 17;
    case 0xc7: NEED(2); n = p[0]; NEED(2 + n); return p + 2 + n;
    case 0xc8: NEED(3); n = be(p, 2); NEED(3 + n); return p + 3 + n;
    case 0xc9: NEED(5); n = be(p, 4); NEED(5 + n); return p + 5 + n;
    case 0xdc: NEED(2); n = be(p, 2); return skip_n(p + 2, end, n, depth);
    case 0xdd: NEED(4); n = be(p, 4); return skip_n(p + 4, end, n, depth);
    case 0xde: NEED(2); n = be(p, 2); return skip_n(p + 2, end, 2 * n, depth);
    case 0xdf: NEED(4); n = be(p, 4); return skip_n(p + 4, end, 2 * n, depth);
    default: return NULL;
    }
#undef NEED
}

/* 1 when the record at p is a group marker. */
static int is_marker(const uint8_t *p, const uint8_t *end)
{
    uint32_t sec;
    if (end - p < 12 || p[0] != 0x92 || p[1] != 0x92 || p[2] != 0xd7 || p[3] != 0x00) return 0;
    sec = (uint32_t) be(p + 4, 4);
    return sec == 0xFFFFFFFFu || sec == 0xFFFFFFFEu;
}

int FLBPluginFlushCtx(void *remote, const void *data, size_t size, char *tag)
{
    struct ctx *c = remote;
    const uint8_t *p = data, *end = p + size;
    volatile char pad[256];
    long i;
    long n = __atomic_add_fetch(&c->flushes, 1, __ATOMIC_SEQ_CST);
    long records = 0, markers = 0;
    for (i = 0; i < (long) sizeof pad; i++) pad[i] = (char) i;
    if (c->stack_bytes > 0) {
        volatile char *big = __builtin_alloca((size_t) c->stack_bytes);
        for (i = 0; i < c->stack_bytes; i += 64) big[i] = 1;
    }
    if (n <= c->retry_first) return FLB_RETRY;
    if (c->fail_all) return FLB_ERROR;
    if (n == c->retry_first + 1) snprintf(c->tag, sizeof c->tag, "%s", tag);
    while (p < end) {
        const uint8_t *next = skip(p, end, 0);
        if (next == NULL) { __atomic_add_fetch(&c->bad, 1, __ATOMIC_SEQ_CST); break; }
        if (!is_marker(p, end)) records++; else markers++;
        p = next;
    }
    __atomic_add_fetch(&c->records, records, __ATOMIC_SEQ_CST);
    __atomic_add_fetch(&c->markers, markers, __ATOMIC_SEQ_CST);
    __atomic_add_fetch(&c->bytes, (long) size, __ATOMIC_SEQ_CST);
    return FLB_OK;
}

int FLBPluginExitCtx(void *remote)
{
    struct ctx *c = remote;
    if (c->out[0]) {
        FILE *f = fopen(c->out, "a");
        if (f) {
            fprintf(f, "instance=%s records=%ld bytes=%ld flushes=%ld tag=%s bad=%ld markers=%ld "
                       "registered=%d inits=%d pre_runs=%d pre_exits=%d exits=%d\n",
                    c->id, c->records, c->bytes, c->flushes, c->tag, c->bad, c->markers,
                    registered, inits, pre_runs, pre_exits, exits + 1);
            fclose(f);
        }
    }
    exits++;
    free(c);
    return FLB_OK;
}

void FLBPluginUnregister(struct flb_plugin_proxy_def *def)
{
    free(def->name);
    def->name = NULL;
}
