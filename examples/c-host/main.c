/*
 * c-host: a minimal iLogtail-style host for libPluginAdapter.so + libPluginBase.so.
 *
 * Usage: c-host [-v] LIBDIR CONFIG.json CONFIGNAME EXPECTED_LOGS TIMEOUT_SECS
 *
 * Loads the two libraries the way iLogtail does (adaptor first, RTLD_LAZY|RTLD_LOCAL, callbacks
 * registered, then the base), loads one pipeline config, runs it until EXPECTED_LOGS logs have
 * arrived through SendPb or TIMEOUT_SECS passed, then HoldOn(1). Logs are counted by walking the
 * LogGroup protobuf wire format by hand. Data directory: $C_HOST_DATA_DIR, else a new temp dir.
 * Exit code: 0 = exactly EXPECTED_LOGS logs in well-formed groups, 1 = otherwise, 2 = setup error.
 */
#define _POSIX_C_SOURCE 200809L
#include <dlfcn.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "plugin_adapter.h"
#include "plugin_base.h"

/* A pointer type for each export we dlsym, checked at compile time against the headers. */
#define EXPORT_FN(ret, name, args)                                                 \
    typedef ret(*name##_fn) args;                                                  \
    _Static_assert(_Generic(&name, name##_fn: 1, default: 0), #name " mismatch"); \
    static name##_fn p_##name;
EXPORT_FN(void, RegisterLogtailCallBack, (IsValidToSendFun, SendPbFun, PluginCtlCmdFun))
EXPORT_FN(void, RegisterLogtailCallBackV2, (IsValidToSendFun, SendPbFun, SendPbV2Fun, PluginCtlCmdFun))
EXPORT_FN(GoInt, InitPluginBaseV2, (GoString))
EXPORT_FN(GoInt, LoadConfig, (GoString, GoString, GoString, GoInt64, GoString))
EXPORT_FN(void, Resume, (void))
EXPORT_FN(void, HoldOn, (GoInt))

static const char LOGSTORE[] = "demo_logstore";
static int verbose;
static atomic_long logs_received, groups_received, bad_groups;

/* Reads a base-128 varint; returns 0 when it runs past `end` or is too long. */
static int read_varint(const uint8_t **p, const uint8_t *end, uint64_t *out) {
    uint64_t v = 0;
    for (int shift = 0; shift < 64 && *p < end; shift += 7) {
        uint8_t b = *(*p)++;
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *out = v;
            return 1;
        }
    }
    return 0;
}

/* Walks one message, calling `on_bytes` for each length-delimited field. 0 = malformed. */
typedef void (*field_fn)(void *ctx, uint64_t field, const uint8_t *data, size_t len);
static int walk(const uint8_t *p, const uint8_t *end, field_fn on_bytes, void *ctx) {
    uint64_t key, n;
    while (p < end) {
        if (!read_varint(&p, end, &key)) return 0;
        switch (key & 7) {
        case 0: if (!read_varint(&p, end, &n)) return 0; break;
        case 1: if (end - p < 8) return 0; p += 8; break;
        case 5: if (end - p < 4) return 0; p += 4; break;
        case 2:
            if (!read_varint(&p, end, &n) || n > (uint64_t)(end - p)) return 0;
            on_bytes(ctx, key >> 3, p, (size_t)n);
            p += n;
            break;
        default: return 0;
        }
    }
    return 1;
}

struct group { long logs; const uint8_t *tag, *category; size_t tag_len, category_len; };
static void on_group_field(void *ctx, uint64_t field, const uint8_t *data, size_t len) {
    struct group *g = ctx;
    if (field == 1) g->logs++;                                   /* Log */
    if (field == 2) { g->category = data; g->category_len = len; } /* Category */
    if (field == 6) { g->tag = data; g->tag_len = len; }           /* LogTag: keep the last */
}
struct tag { const uint8_t *key, *value; size_t key_len, value_len; };
static void on_tag_field(void *ctx, uint64_t field, const uint8_t *data, size_t len) {
    struct tag *t = ctx;
    if (field == 1) { t->key = data; t->key_len = len; }
    if (field == 2) { t->value = data; t->value_len = len; }
}

static const char *our_config; /* groups of other configs (built-in alarms, statistics) are not ours */

static int on_log_group(const char *config, int config_len, const char *pb, int pb_len, int lines) {
    if (config_len < 0 || (size_t)config_len != strlen(our_config) ||
        memcmp(config, our_config, (size_t)config_len) != 0) {
        if (verbose) printf("c-host: %d bytes from built-in config %.*s\n", pb_len, config_len, config);
        return 0; /* accepted: a real host routes these to their own logstores */
    }
    struct group g = {0};
    struct tag t = {0};
    const uint8_t *data = (const uint8_t *)pb;
    int ok = pb_len >= 0 && walk(data, data + pb_len, on_group_field, &g) && g.tag &&
             walk(g.tag, g.tag + g.tag_len, on_tag_field, &t) && t.key_len == 11 &&
             memcmp(t.key, "__pack_id__", 11) == 0 && t.value_len > 0 &&
             g.category_len == strlen(LOGSTORE) && memcmp(g.category, LOGSTORE, g.category_len) == 0;
    if (!ok) {
        atomic_fetch_add(&bad_groups, 1);
        fprintf(stderr, "c-host: bad LogGroup from config %.*s (%d bytes): malformed, wrong "
                "Category or no trailing __pack_id__ tag\n", config_len, config, pb_len);
    } else if (verbose) {
        printf("c-host: group from %.*s: %ld logs (lines=%d) pack_id=%.*s\n", config_len, config,
               g.logs, lines, (int)t.value_len, (const char *)t.value);
    }
    atomic_fetch_add(&groups_received, 1);
    atomic_fetch_add(&logs_received, g.logs);
    return 0; /* accepted: we are done with the buffer */
}

/* The host's callbacks, with the exact types from plugin_adapter.h. */
static int is_valid_to_send(long long logstoreKey) { (void)logstoreKey; return 0; }
static int send_pb(const char *configName, int configNameSize, const char *logstore,
                   int logstoreSize, char *pbBuffer, int pbSize, int lines) {
    (void)logstore; (void)logstoreSize;
    return on_log_group(configName, configNameSize, pbBuffer, pbSize, lines);
}
static int send_pb_v2(const char *configName, int configNameSize, const char *logstore,
                      int logstoreSize, char *pbBuffer, int pbSize, int lines,
                      const char *shardHash, int shardHashSize) {
    if (verbose && shardHashSize > 0) printf("c-host: shard hash %.*s\n", shardHashSize, shardHash);
    return send_pb(configName, configNameSize, logstore, logstoreSize, pbBuffer, pbSize, lines);
}
static int ctl_cmd(const char *configName, int configNameSize, int optId, const char *params,
                   int paramsLen) {
    if (verbose) printf("c-host: ctl cmd %d for %.*s: %.*s\n", optId, configNameSize, configName,
                        paramsLen, params);
    return 0;
}

static void *load(const char *dir, const char *file) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    void *lib = dlopen(path, RTLD_LAZY);
    if (!lib) fprintf(stderr, "c-host: cannot load library: %s\n", dlerror());
    return lib;
}
static void *sym(void *lib, const char *name) {
    void *p = dlsym(lib, name);
    if (!p) fprintf(stderr, "c-host: missing symbol %s\n", name);
    return p;
}
static GoString go_str(const char *s) { GoString g = {s, (ptrdiff_t)strlen(s)}; return g; }

static char *read_file(const char *path) {
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t len = 0, cap = 0, n;
    if (!f) return NULL;
    do {
        if (len + 4096 + 1 > cap) {
            char *bigger = realloc(buf, cap = 2 * cap + 4096 + 1);
            if (!bigger) { free(buf); fclose(f); return NULL; }
            buf = bigger;
        }
        n = fread(buf + len, 1, 4096, f);
        len += n;
    } while (n > 0);
    fclose(f);
    buf[len] = '\0';
    return buf;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "-v") == 0) { verbose = 1; argv++; argc--; }
    if (argc != 6) {
        fprintf(stderr, "usage: c-host [-v] LIBDIR CONFIG.json CONFIGNAME EXPECTED_LOGS TIMEOUT_SECS\n");
        return 2;
    }
    const char *libdir = argv[1], *config_path = argv[2], *config_name = argv[3];
    our_config = config_name;
    long expected = atol(argv[4]);
    double timeout = atof(argv[5]);

    /* 1. The adaptor, then the callbacks, as iLogtail's LogtailPlugin::LoadPluginBase does. */
    void *adaptor = load(libdir, "libPluginAdapter.so");
    if (!adaptor) return 2;
    if ((p_RegisterLogtailCallBackV2 = (RegisterLogtailCallBackV2_fn)dlsym(adaptor, "RegisterLogtailCallBackV2")))
        p_RegisterLogtailCallBackV2(is_valid_to_send, send_pb, send_pb_v2, ctl_cmd);
    else if ((p_RegisterLogtailCallBack = (RegisterLogtailCallBack_fn)sym(adaptor, "RegisterLogtailCallBack")))
        p_RegisterLogtailCallBack(is_valid_to_send, send_pb, ctl_cmd);
    else
        return 2;

    /* 2. The base and its exports. */
    void *base = load(libdir, "libPluginBase.so");
    if (!base) return 2;
    if (!(p_InitPluginBaseV2 = (InitPluginBaseV2_fn)sym(base, "InitPluginBaseV2")) ||
        !(p_LoadConfig = (LoadConfig_fn)sym(base, "LoadConfig")) ||
        !(p_Resume = (Resume_fn)sym(base, "Resume")) ||
        !(p_HoldOn = (HoldOn_fn)sym(base, "HoldOn")))
        return 2;

    /* 3. Init with a data directory (no JSON escaping: keep the path plain). */
    char tmp[] = "/tmp/c-host.XXXXXX", init[8192];
    const char *dir = getenv("C_HOST_DATA_DIR");
    if (!dir && !(dir = mkdtemp(tmp))) { perror("c-host: mkdtemp"); return 2; }
    if (strpbrk(dir, "\"\\")) { fprintf(stderr, "c-host: data dir must not contain \" or \\\n"); return 2; }
    snprintf(init, sizeof init,
             "{\"LogtailSysConfDir\":\"%s\",\"LoongCollectorConfDir\":\"%s\",\"LoongCollectorDataDir\":\"%s\","
             "\"LoongCollectorLogDir\":\"%s\",\"HostIP\":\"127.0.0.1\",\"Hostname\":\"c-host\"}",
             dir, dir, dir, dir);
    if (p_InitPluginBaseV2(go_str(init)) != 0) { fprintf(stderr, "c-host: InitPluginBaseV2 failed\n"); return 2; }

    /* 4. One config, then run it. */
    char *config = read_file(config_path);
    if (!config) { perror(config_path); return 2; }
    GoInt rc = p_LoadConfig(go_str("demo"), go_str(LOGSTORE), go_str(config_name), 1, go_str(config));
    free(config);
    if (rc != 0) { fprintf(stderr, "c-host: LoadConfig(%s) failed: %lld\n", config_name, rc); return 2; }
    p_Resume();

    double deadline = now() + timeout;
    struct timespec tick = {0, 10 * 1000 * 1000};
    while (atomic_load(&logs_received) < expected && now() < deadline) nanosleep(&tick, NULL);
    p_HoldOn(1);

    long logs = atomic_load(&logs_received), groups = atomic_load(&groups_received);
    long bad = atomic_load(&bad_groups);
    printf("c-host: received %ld logs in %ld groups\n", logs, groups);
    if (bad) fprintf(stderr, "c-host: %ld bad groups\n", bad);
    if (logs != expected) fprintf(stderr, "c-host: expected %ld logs\n", expected);
    return logs == expected && bad == 0 ? 0 : 1;
}
