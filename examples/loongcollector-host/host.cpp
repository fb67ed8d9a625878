// host: drives libGoPluginAdapter.so + libGoPluginBase.so as LoongCollector 3.x (main, data through
// ProcessPipelineEventGroup) does; contract: the 3.x ABI description (loongcollector.md §1-3, 5.1, 6).
//   host LIBDIR MODIFY_CYCLES LOGS_PER_CYCLE TIMEOUT_SECS        data dir: $HOST_DATA_DIR, else mkdtemp
// Main thread: load, Init, add demo/2, stage+unload other/2, add second/2; MODIFY_CYCLES times, after each
// LOGS_PER_CYCLE logs fed into demo: LoadPipeline(demo/2) while the old one runs, Stop(demo/2, 0),
// Start(demo/2); second is removed (Stop(second/2, 1)) once fed; exit: StopAllPipelines(1), (0), a last
// monitor pull, StopBuiltInModules(). Threads: a processor feeding hand-made PipelineEventGroups (never
// while its pipeline is being stopped), a self monitor (GetGoAlarms, GetGoMetrics), a container manager.
// Exit 0 iff every fed log arrived, pack-id sequences are gap-free, every pull parsed and the flusher_sls
// in_events_total of demo summed over all pulls equals the logs fed into demo; 1 otherwise; 2 = setup.
#include <dlfcn.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "plugin_adapter.h"  // IsValidToSendFun, SendPbFun, SendPbV2Fun
#include "plugin_base.h"     // GoString, GoSlice, GoInt, GoInt64

namespace lc {  // the host's own copies (core/go_pipeline/LogtailPlugin.h); layouts of ABI §3.1
struct InnerKeyValue { char *key, *value; };
struct InnerPluginMetric { InnerKeyValue **keyValues; int count; };
struct InnerPluginMetrics { InnerPluginMetric **metrics; int count; };
struct InnerGoAlarm { char *alarmType, *alarmLevel, *alarmMessage, *projectName, *category, *config; int count; };
struct InnerGoAlarms { InnerGoAlarm **alarms; int count; };
static_assert(sizeof(InnerPluginMetric) == 16 && sizeof(InnerGoAlarm) == 56, "ABI §3.1 layouts (LP64)");
using PluginAdapterVersionFun = int (*)();
using RegisterLogtailCallBackV2Fun = void (*)(IsValidToSendFun, SendPbFun, SendPbV2Fun);  // 3.2+: 3 arguments
using RegisterLogtailCallBackFun = void (*)(IsValidToSendFun, SendPbFun);
using InitPluginBaseFun = GoInt (*)();
using InitPluginBaseV2Fun = GoInt (*)(GoString cfg);
using LoadGlobalConfigFun = GoInt (*)(GoString);
using LoadPipelineFun = GoInt (*)(GoString project, GoString logstore, GoString config, GoInt64 key, GoString json);
using UnloadPipelineFun = GoInt (*)(GoString config);
using StopAllPipelinesFun = void (*)(GoInt withInput);
using StopFun = void (*)(GoString config, GoInt removed);
using StopBuiltInModulesFun = void (*)();
using StartFun = void (*)(GoString config);
using GetContainerMetaFun = void *(*)(GoString containerId);
using GetContainersFun = char *(*)();
using ProcessPipelineEventGroupFun = GoInt (*)(GoString config, GoSlice pb, GoString packId);
using GetGoMetricsFun = InnerPluginMetrics *(*)(GoString metricType);
using GetGoAlarmsFun = InnerGoAlarms *(*)();
}  // namespace lc
static struct {
    lc::InitPluginBaseV2Fun InitV2; lc::InitPluginBaseFun Init; lc::LoadGlobalConfigFun LoadGlobalConfig;
    lc::LoadPipelineFun Load; lc::UnloadPipelineFun Unload; lc::StopAllPipelinesFun StopAll; lc::StopFun Stop;
    lc::StopBuiltInModulesFun StopBuiltIn; lc::StartFun Start; lc::GetContainerMetaFun GetContainerMeta;
    lc::GetContainersFun GetAll, GetDiff; lc::ProcessPipelineEventGroupFun Process; lc::GetGoMetricsFun Metrics;
    lc::GetGoAlarmsFun Alarms;
} B;

using Clock = std::chrono::steady_clock;
static double ms_since(Clock::time_point t) { return std::chrono::duration<double, std::milli>(Clock::now() - t).count(); }
static GoString gs(const std::string &s) { return GoString{s.data(), (ptrdiff_t)s.size()}; }
static void sleep_ms(int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

// ---- shared state: on the heap, never freed (base threads may still call back while the process exits) ----
struct Gate { bool open = false; int inflight = 0, gen = 0; long fed = 0, limit = 0; };  // per /2 pipeline
struct State {
    std::mutex mu;  // guards all but the atomics; cv: any change of it
    std::condition_variable cv;
    Gate demo, second;
    bool quit = false, monitor_quit = false, containers_quit = false;
    std::vector<uint8_t> seen;                        // per fed log sequence: how often it arrived
    std::map<std::string, std::set<uint64_t>> packs;  // __pack_id__ prefix -> sequences
    long dup_packs = 0, dup_logs = 0, received = 0;
    std::atomic<long> bad{0}, other_groups{0}, nonzero{0}, pulls{0}, parse_fail{0}, alarms{0};
    std::atomic<unsigned long long> metric_in{0};
    std::atomic<const char *> phase{"setup"};
};
static State &S = *new State;
static long demo_total, second_total;  // demo: log sequences [0, demo_total), second: the next second_total

// ---- protobuf: an encoder for PipelineEventGroup, a walker for sls_logs.LogGroup ----
static void put_varint(std::string &b, uint64_t v) { for (; v >= 0x80; v >>= 7) b += char(v | 0x80); b += char(v); }
static void put_bytes(std::string &b, int field, std::string_view v) {
    put_varint(b, uint64_t(field) << 3 | 2), put_varint(b, v.size()), b.append(v.data(), v.size());
}
static std::string pair_msg(std::string_view k, std::string_view v) { std::string e; put_bytes(e, 1, k), put_bytes(e, 2, v); return e; }
template <class F> static bool walk(std::string_view m, F &&on_bytes) {  // calls on_bytes(field, bytes)
    auto p = (const uint8_t *)m.data(), e = p + m.size();
    auto varint = [&](uint64_t &v) {
        for (int s = (v = 0); s < 64 && p < e; s += 7) if (v |= uint64_t(*p & 0x7f) << s, !(*p++ & 0x80)) return true;
        return false;
    };
    for (uint64_t key, n; p < e;) {
        if (!varint(key)) return false;
        switch (key & 7) {
        case 0: if (!varint(n)) return false; break;
        case 1: if (e - p < 8) return false; p += 8; break;
        case 5: if (e - p < 4) return false; p += 4; break;
        case 2: if (!varint(n) || n > uint64_t(e - p)) return false; on_bytes(key >> 3, std::string_view((const char *)p, n)); p += n; break;
        default: return false;
        }
    }
    return true;
}
static bool parse_u64(std::string_view s, uint64_t &v, int base = 10) {  // all of s, no sign or space
    std::string t(s);
    char *end;
    return errno = 0, v = strtoull(t.c_str(), &end, base), !t.empty() && isalnum((unsigned char)t[0]) && !errno && !*end;
}
// the host's FNV-1a-64 (HashUtil.cpp: bytes read as plain char) as ToHexString(int64): uppercase, no 0 padding
static std::string pack_id_of(const std::string &source) {
    uint64_t h = 0xcbf29ce484222325ULL;
    for (char c : source) h = (h ^ uint64_t(int64_t(c))) * 0x100000001b3ULL;
    char buf[24];
    return snprintf(buf, sizeof buf, "%llX", (unsigned long long)h), buf;
}

// ---- SendPb(V2): walks the LogGroup in place; each log carries its sequence (key "n", or in "content") ----
static int on_log_group(const char *cfg, int cfg_n, const char *ls, int ls_n, const char *pb, int pb_n) {
    std::string_view name(cfg, cfg && cfg_n > 0 ? size_t(cfg_n) : 0), logstore(ls, ls && ls_n > 0 ? size_t(ls_n) : 0);
    bool demo = name == "demo";
    if (!demo && name != "second") {
        bool suffixed = name.size() > 2 && (name.substr(name.size() - 2) == "/1" || name.substr(name.size() - 2) == "/2");
        if (suffixed) fprintf(stderr, "host: !! SendPb for %.*s: not the real config name\n", int(name.size()), name.data()), S.bad++;
        else S.other_groups++;  // built-in configs (logtail_containers, ...): a real host sends them elsewhere
        return 0;
    }
    std::vector<uint64_t> seqs;
    std::string pack;
    bool fields_ok = true;  // (nested messages)
    bool ok = pb && pb_n >= 0 && walk(std::string_view(pb, size_t(pb_n)), [&](uint64_t f, std::string_view v) {
        std::string_view n, content;
        auto pair = [&](std::string_view m, std::string_view &k, std::string_view &val) {  // {Key=1, Value=2}
            fields_ok &= walk(m, [&](uint64_t pf, std::string_view x) { (pf == 1 ? k : val) = x; });
        };
        if (f == 1) {  // Log {Contents=2}
            fields_ok &= walk(v, [&](uint64_t lf, std::string_view c) {
                std::string_view k, val;
                if (lf == 2) pair(c, k, val), (k == "n" ? n : k == "content" ? content : k) = val;
            });
            if (n.empty() && content.find(' ') != content.npos) n = content.substr(content.find(' ') + 1);
            uint64_t seq;
            if (parse_u64(n, seq)) seqs.push_back(seq); else fields_ok = false;
        } else if (f == 6) {  // LogTag
            std::string_view k, val;
            if (pair(v, k, val), k == "__pack_id__") pack = std::string(val);
        }
    }) && fields_ok;
    size_t dash = pack.rfind('-');
    uint64_t pseq = 0;
    if (!ok || dash == 0 || dash == pack.npos || !parse_u64(pack.substr(dash + 1), pseq, 16) ||
        (!logstore.empty() && logstore != (demo ? "demo_logstore" : "second_logstore"))) {
        fprintf(stderr, "host: !! bad LogGroup for %.*s (%d bytes, logstore %.*s, pack id %s): malformed, a log without "
                "sequence or no __pack_id__\n", int(name.size()), name.data(), pb_n, int(logstore.size()), logstore.data(), pack.c_str());
        return S.bad++, 0;
    }
    std::lock_guard<std::mutex> lk(S.mu);
    if (!S.packs[pack.substr(0, dash)].insert(pseq).second) S.dup_packs++;
    for (uint64_t seq : seqs) {
        if (seq < uint64_t(demo ? 0 : demo_total) || seq >= uint64_t(demo ? demo_total : demo_total + second_total)) {
            fprintf(stderr, "host: !! log %llu came out of %s\n", (unsigned long long)seq, demo ? "demo" : "second"), S.bad++;
        } else if (S.seen[seq]++) S.dup_logs++;
    }
    S.received += long(seqs.size());
    S.cv.notify_all();
    return 0;  // queued; the buffer stays the base's
}
static int is_valid_to_send(long long) { return 0; }
static int send_pb(const char *c, int cn, const char *l, int ln, char *pb, int pbn, int) { return on_log_group(c, cn, l, ln, pb, pbn); }
static int send_pb_v2(const char *c, int cn, const char *l, int ln, char *pb, int pbn, int, const char *, int) { return on_log_group(c, cn, l, ln, pb, pbn); }

// ---- JSON, as much as the host needs: the members of one object (nested values checked, not kept) ----
using Members = std::map<std::string, std::pair<char, std::string>>;  // key -> (kind s/n/l/o/a, text)
struct Json {
    const char *p, *e;
    void ws() { while (p < e && strchr(" \t\r\n", *p) && *p) ++p; }
    bool str(std::string *out) {
        if (p >= e || *p++ != '"') return false;
        for (const char *esc; p < e; ++p) {
            if (*p == '"') return ++p, true;
            if ((unsigned char)*p < 0x20) return false;
            if (*p != '\\') { *out += *p; continue; }
            if (++p >= e || !*p || !(esc = strchr("\"\\/bfnrtu", *p))) return false;
            if (*p == 'u') { if (e - p < 5) return false; p += 4, *out += '?'; }
            else *out += "\"\\/\b\f\n\r\t"[esc - "\"\\/bfnrtu"];
        }
        return false;
    }
    bool value(std::string &out, char &kind, Members *obj = nullptr) {
        ws();
        if (p >= e) return false;
        if (*p == '"') return kind = 's', str(&out);
        if (*p == '{' || *p == '[') {
            char close = *p == '{' ? '}' : ']';
            kind = *p++ == '{' ? 'o' : 'a', ws();
            if (p < e && *p == close) return ++p, true;
            for (std::string k, v;; k.clear(), v.clear()) {
                char vk;
                if (close == '}' && (ws(), !str(&k) || (ws(), p >= e || *p++ != ':'))) return false;
                if (!value(v, vk)) return false;
                if (obj && close == '}') obj->emplace(k, std::make_pair(vk, v));  // the first of a key wins
                ws();
                if (p >= e || (*p != ',' && *p != close)) return false;
                if (*p++ == close) return true;
            }
        }
        for (const char *lit : {"true", "false", "null"})
            if (size_t(e - p) >= strlen(lit) && !memcmp(p, lit, strlen(lit))) return kind = 'l', p += strlen(lit), true;
        std::string t(p, size_t(std::min<ptrdiff_t>(e - p, 64)));
        char *end;
        if (strtod(t.c_str(), &end), end == t.c_str() || !(isdigit((unsigned char)t[0]) || t[0] == '-')) return false;
        return kind = 'n', out.assign(t.c_str(), size_t(end - t.c_str())), p += end - t.c_str(), true;
    }
    static bool object(const std::string &s, Members *obj) {
        Json j{s.data(), s.data() + s.size()};
        std::string out;
        char kind = 0;
        return j.value(out, kind, obj) && (j.ws(), j.p == j.e) && kind == 'o';
    }
};

// ---- self monitor and container manager (ABI §3.1, §3.2, §6) ----
static void fail_pull(const char *what, const std::string &detail) { S.parse_fail++, fprintf(stderr, "host: !! %s: %s\n", what, detail.c_str()); }
static std::vector<std::map<std::string, std::string>> pull_metrics(const std::string &type) {  // LogtailPlugin::GetGoMetrics
    std::vector<std::map<std::string, std::string>> list;
    lc::InnerPluginMetrics *metrics = B.Metrics(gs(type));
    if (!metrics) return list;
    for (int i = 0; i < metrics->count; ++i) {
        std::map<std::string, std::string> item;
        if (lc::InnerPluginMetric *m = metrics->metrics[i]) {
            for (int j = 0; j < m->count; ++j)
                if (lc::InnerKeyValue *kv = m->keyValues[j]) {
                    item.emplace(std::string(kv->key), std::string(kv->value));
                    free(kv->key), free(kv->value), free(kv);
                }
            free(m->keyValues), free(m);
        }
        list.push_back(std::move(item));
    }
    free(metrics->metrics), free(metrics);
    return list;
}
static void pull_all_metrics() {
    S.pulls++;
    for (auto &rec : pull_metrics("cpp_provided"))  // the host stoi()s these
        for (auto &[k, v] : rec) { uint64_t n; if (!parse_u64(v[0] == '-' ? v.substr(1) : v, n)) fail_pull("cpp_provided: not an integer", k + "=" + v); }
    for (auto &rec : pull_metrics("direct")) {
        Members labels, counters, gauges;
        if (!rec.count("labels") || !rec.count("counters") || !rec.count("gauges")) {  // std::out_of_range in the host
            fail_pull("direct: a record without labels, counters or gauges", std::to_string(rec.size()) + " keys");
            continue;
        }
        if (!Json::object(rec["labels"], &labels) || !Json::object(rec["counters"], &counters) || !Json::object(rec["gauges"], &gauges)) {
            fail_pull("direct: not JSON objects", rec["labels"] + " " + rec["counters"] + " " + rec["gauges"]);
            continue;
        }
        for (auto &[k, v] : counters) {  // decimal strings (host: stod)
            char *end = nullptr;
            if (v.first == 's' && !v.second.empty()) strtod(v.second.c_str(), &end);
            if (!end || *end) fail_pull("direct: counter not a decimal string", k + "=" + v.second);
        }
        for (auto &[k, v] : gauges) if (v.first != 's' && v.first != 'n') fail_pull("direct: gauge neither string nor number", k);
        auto label = [&](const char *k) { auto it = labels.find(k); return it != labels.end() && it->second.first == 's' ? it->second.second : ""; };
        uint64_t n;
        if (label("plugin_type") == "flusher_sls" && label("pipeline_name") == "demo" && counters.count("in_events_total") &&
            parse_u64(counters["in_events_total"].second, n))
            S.metric_in += n;
    }
}
static void pull_alarms() {  // SelfMonitorServer: NULL strings read as "", empty alarmType dropped
    lc::InnerGoAlarms *alarms = B.Alarms();
    if (!alarms) return;
    for (int i = 0; i < alarms->count; ++i) {
        lc::InnerGoAlarm *a = alarms->alarms[i];
        if (!a) continue;
        std::string s[6];
        char **f[] = {&a->alarmType, &a->alarmLevel, &a->alarmMessage, &a->projectName, &a->category, &a->config};
        for (int j = 0; j < 6; ++j) s[j] = *f[j] ? *f[j] : "", free(*f[j]);
        int count = std::max(a->count, 1);
        free(a);
        if (!s[0].empty() && S.alarms++ < 20)
            fprintf(stderr, "host: alarm %s level %s x%d config %s: %s\n", s[0].c_str(), s[1].c_str(), count, s[5].c_str(), s[2].c_str());
    }
    free(alarms->alarms), free(alarms);
}
static void pull_containers(lc::GetContainersFun fn, const char *name) {
    char *res = fn();
    if (!res) return fail_pull(name, "NULL (the host crashes)");
    std::string json(res);
    free(res);
    if (!json.empty() && !Json::object(json, nullptr)) fail_pull(name, "not a JSON object: " + json.substr(0, 200));
}
template <class F> static auto locked(F f) { std::lock_guard<std::mutex> lk(S.mu); return f(); }
static bool wait_quit(bool &flag, int ms) {
    std::unique_lock<std::mutex> lk(S.mu);
    return S.cv.wait_for(lk, std::chrono::milliseconds(ms), [&] { return flag; });
}
static void quit(bool &flag) { locked([&] { flag = true, S.cv.notify_all(); }); }
static void monitor() {  // alarms every 200 ms, metrics every 500 ms (the host: 3 s, 60 s)
    for (int tick = 0; !wait_quit(S.monitor_quit, 100); ++tick) {
        if (tick % 2 == 0) pull_alarms();
        if (tick % 5 == 0) pull_all_metrics();
    }
    pull_all_metrics(), pull_alarms();  // the last round, when SelfMonitorServer stops
}
static void containers() {  // ContainerManager: diff every second, all now and then
    pull_containers(B.GetAll, "GetAllContainers");
    for (int tick = 1; !wait_quit(S.containers_quit, 1000); ++tick) {
        pull_containers(B.GetDiff, "GetDiffContainers");
        if (tick % 5 == 0) pull_containers(B.GetAll, "GetAllContainers");
    }
}

// ---- processor thread: groups of 50 logs; none while its pipeline is being stopped (pop disabled) ----
static std::string event_group(long first, long n, const std::string &word, const std::string &source) {
    std::string logs, g;
    auto now = std::chrono::system_clock::now().time_since_epoch();
    uint64_t ts = uint64_t(std::chrono::duration_cast<std::chrono::nanoseconds>(now).count());
    for (long seq = first; seq < first + n; ++seq) {
        std::string ev;
        put_varint(ev, 1 << 3), put_varint(ev, ts + uint64_t(seq - first));  // Timestamp (ns)
        put_bytes(ev, 2, pair_msg("content", word + " " + std::to_string(seq)));
        put_bytes(logs, 1, ev);  // LogEvents.Events
    }
    put_bytes(g, 1, pair_msg("25", source));  // Metadata[SOURCE_ID]
    put_bytes(g, 2, pair_msg("__topic__", "loongcollector-host"));
    put_bytes(g, 3, logs);
    return g;
}
static bool feed(Gate &gate, const std::string &name, long first, long total) {  // false: all fed (or quit)
    if (gate.fed >= total) return false;  // (fed changes only on this thread)
    long n;
    int gen;
    {
        std::unique_lock<std::mutex> lk(S.mu);
        S.cv.wait(lk, [&] { return (gate.open && gate.fed < gate.limit) || S.quit; });
        if (S.quit) return false;
        n = std::min({50L, total - gate.fed, gate.limit - gate.fed}), gate.inflight++, gen = gate.gen;
    }
    // a source per pipeline instance: its own pack-id prefix, whose sequences can then be checked
    std::string source = "/var/log/" + name + ".log#" + std::to_string(gen), pack = pack_id_of(source);
    std::string pb = event_group(first + gate.fed, n, name == "demo" ? "word" : name, source);
    GoInt rc = B.Process(gs(name + "/2"), GoSlice{pb.data(), GoInt(pb.size()), GoInt(pb.size())}, gs(pack));
    locked([&] { gate.inflight--, gate.fed += rc == 0 ? n : 0, S.cv.notify_all(); });
    if (rc != 0) S.nonzero++, sleep_ms(20);  // retried
    return true;
}
static void processor() {
    for (bool more = true; more;) {
        more = feed(S.demo, "demo", 0, demo_total);
        if (locked([] { return S.second.open; })) more |= feed(S.second, "second", demo_total, second_total);
        more &= !locked([] { return S.quit; });
    }
}
static void close_gate(Gate &g) {
    std::unique_lock<std::mutex> lk(S.mu);
    g.open = false;
    S.cv.wait(lk, [&] { return g.inflight == 0; });  // wait for the in-flight Process of this pipeline
}
static void open_gate(Gate &g, long limit) { locked([&] { g.open = true, g.gen++, g.limit = limit, S.cv.notify_all(); }); }
static bool wait_until(Clock::time_point deadline, std::function<bool()> done) {
    std::unique_lock<std::mutex> lk(S.mu);
    return S.cv.wait_until(lk, deadline, done);
}

// ---- configs as CollectionPipeline emits them (toStyledString) ----
static std::string pipeline(const char *processor) {
    return std::string("{\n   \"aggregators\" : [ { \"detail\" : {}, \"type\" : \"aggregator_default/4\" } ],\n"
                       "   \"flushers\" : [ { \"detail\" : {}, \"type\" : \"flusher_sls/5\" } ],\n   \"global\" : {\n"
                       "      \"DefaultLogQueueSize\" : 10,\n      \"EnableProcessorTag\" : true,\n"
                       "      \"EnableTimestampNanosecond\" : false,\n      \"UsingOldContentTag\" : false\n   },\n"
                       "   \"processors\" : [\n      ") + processor + "\n   ]\n}\n";
}
static const char *REGEX_A = R"J({ "detail" : { "Keys" : [ "word", "n" ], "Regex" : "(\\w+) (\\d+)", "SourceKey" : "content" }, "type" : "processor_regex/3" })J";
static const char *REGEX_B = R"J({ "detail" : { "Keys" : [ "word", "n" ], "Regex" : "(\\w+)\\s+(\\d+)", "SourceKey" : "content" }, "type" : "processor_regex/3" })J";
static const char *ADD_FIELDS = R"J({ "detail" : { "Fields" : { "cfg" : "second" } }, "type" : "processor_add_fields/3" })J";

static bool sym(void *lib, const char *name, void **slot, std::string *missing) {  // dlerror() set = missing
    dlerror();
    *slot = dlsym(lib, name);
    if (!dlerror() && *slot) return true;
    if (missing) *missing += (missing->empty() ? "" : ", ") + std::string(name);
    return *slot = nullptr, false;
}
#define FAIL(...) return fprintf(stderr, "host: " __VA_ARGS__), fputc('\n', stderr), 2

int main(int argc, char **argv) {
    setvbuf(stdout, nullptr, _IOLBF, 0);  // ordered with stderr when both go to one file
    if (argc != 5) FAIL("usage: host LIBDIR MODIFY_CYCLES LOGS_PER_CYCLE TIMEOUT_SECS");
    std::string libdir = argv[1], missing;
    long cycles = atol(argv[2]), per_cycle = atol(argv[3]);
    double timeout_s = atof(argv[4]);
    if (cycles < 0 || per_cycle <= 0 || timeout_s <= 0) FAIL("bad arguments");
    demo_total = (cycles + 1) * per_cycle, second_total = std::max(50L, per_cycle / 4);
    S.seen.assign(size_t(demo_total + second_total), 0);
    auto t0 = Clock::now(), deadline = t0 + std::chrono::milliseconds(long(timeout_s * 1000));
    std::thread([timeout_s] {  // a hung call fails the run (not the CI job's timeout)
        sleep_ms(int(timeout_s * 2000) + 30000);
        fprintf(stderr, "host: !! hung in %s; giving up\n", S.phase.load()), fflush(stderr), _exit(1);
    }).detach();

    // 1-2. LogtailPlugin::LoadPluginBase (ABI §1)
    void *adapter = dlopen((libdir + "/libGoPluginAdapter.so").c_str(), RTLD_LAZY);
    if (!adapter) FAIL("%s", dlerror());
    lc::PluginAdapterVersionFun version;
    lc::RegisterLogtailCallBackV2Fun reg2;  // the host's 3-argument type: the base's has a 4th argument
    lc::RegisterLogtailCallBackFun reg;
    if (!sym(adapter, "PluginAdapterVersion", (void **)&version, nullptr)) FAIL("the adapter misses PluginAdapterVersion");
    int v = version();
    if (v / 100 != 2 && v / 100 != 3) FAIL("adapter version %d not accepted", v);
    if (sym(adapter, "RegisterLogtailCallBackV2", (void **)&reg2, nullptr)) reg2(is_valid_to_send, send_pb, send_pb_v2);
    else if (sym(adapter, "RegisterLogtailCallBack", (void **)&reg, nullptr)) reg(is_valid_to_send, send_pb);
    else FAIL("the adapter misses RegisterLogtailCallBackV2 and RegisterLogtailCallBack");
    void *base = dlopen((libdir + "/libGoPluginBase.so").c_str(), RTLD_LAZY);
    if (!base) FAIL("%s", dlerror());
    if (!sym(base, "InitPluginBaseV2", (void **)&B.InitV2, nullptr) && !sym(base, "InitPluginBase", (void **)&B.Init, nullptr))
        missing = "InitPluginBaseV2 (and InitPluginBase)";
    const std::pair<const char *, void **> mandatory[] = {  // in the host's order
        {"LoadGlobalConfig", (void **)&B.LoadGlobalConfig}, {"LoadPipeline", (void **)&B.Load},
        {"UnloadPipeline", (void **)&B.Unload}, {"StopAllPipelines", (void **)&B.StopAll}, {"Stop", (void **)&B.Stop},
        {"StopBuiltInModules", (void **)&B.StopBuiltIn}, {"Start", (void **)&B.Start},
        {"GetContainerMeta", (void **)&B.GetContainerMeta}, {"GetAllContainers", (void **)&B.GetAll},
        {"GetDiffContainers", (void **)&B.GetDiff}, {"ProcessPipelineEventGroup", (void **)&B.Process},
        {"GetGoMetrics", (void **)&B.Metrics}, {"GetGoAlarms", (void **)&B.Alarms}};
    for (auto &[name, slot] : mandatory) sym(base, name, slot, &missing);
    if (!missing.empty()) FAIL("the base misses %s", missing.c_str());

    // 3. InitPluginBaseV2 with the host's global JSON (ABI §4.1)
    char tmp[] = "/tmp/loongcollector-host.XXXXXX", *env = getenv("HOST_DATA_DIR");
    std::string dir = env && *env ? env : mkdtemp(tmp) ? tmp : "";
    if (dir.empty()) FAIL("mkdtemp: %s", strerror(errno));
    if (dir.find_first_of("\"\\") != dir.npos) FAIL("the data dir must not contain \" or \\");
    if (dir.back() != '/') dir += '/';
    for (const char *sub : {"", "conf", "log", "thirdparty"}) mkdir((dir + sub).c_str(), 0755);
    std::string cfg = "{\n";
    for (auto [k, val] : std::map<std::string, std::string>{{"EnableSlsMetricsFormat", "true"}, {"HostIP", "\"127.0.0.1\""},
             {"Hostname", "\"loongcollector-host\""}, {"LoongCollectorConfDir", "\"" + dir + "conf/\""},
             {"LoongCollectorLogConfDir", "\"" + dir + "conf/\""}, {"LoongCollectorPrometheusAuthorizationPath", "\"" + dir + "conf/\""},
             {"LoongCollectorDataDir", "\"" + dir + "\""}, {"LoongCollectorLogDir", "\"" + dir + "log/\""},
             {"LoongCollectorThirdPartyDir", "\"" + dir + "thirdparty/\""}, {"LoongCollectorGoCheckPointDir", "\"" + dir + "checkpoint/\""},
             {"LoongCollectorGoCheckPointFile", "\"go_plugin_checkpoint\""}, {"LoongCollectorPluginLogName", "\"go_plugin.LOG\""},
             {"LoongCollectorVersionTag", "\"loongcollector_version\""}})
        cfg += (cfg.size() > 2 ? ",\n   \"" : "   \"") + k + "\" : " + val;
    cfg += "\n}\n";
    GoInt rc = B.InitV2 ? B.InitV2(gs(cfg)) : B.Init();
    if (rc != 0) FAIL("InitPluginBase%s returned %lld", B.InitV2 ? "V2" : "", rc);
    printf("host: adapter version %d, data dir %s\n", v, dir.c_str());
    std::thread mon(monitor), cont(containers);

    // 4. add demo (only /2: a native input feeds the Go processors), stage + unload other, add second
    bool ok = true, timed_out = false, second_removed = false;
    auto load = [&](const std::string &name, GoInt64 key, const std::string &json) {
        std::string real = name.substr(0, name.find('/'));
        GoInt r = B.Load(gs("loongcollector-host-project"), gs(real + "_logstore"), gs(name), key, gs(json));
        if (r != 0) fprintf(stderr, "host: !! LoadPipeline(%s) returned %lld\n", name.c_str(), r), ok = false;
        return r == 0;
    };
    if (S.phase = "add demo", !load("demo/2", 7, pipeline(REGEX_A))) return 2;
    B.Start(gs("demo/2")), open_gate(S.demo, std::min(demo_total, per_cycle * 3 / 2));  // half a cycle ahead
    std::thread feeder(processor);
    S.phase = "stage + unload other";
    if (load("other/2", 8, pipeline(REGEX_B)) && (rc = B.Unload(gs("other/2"))) != 0)
        fprintf(stderr, "host: !! UnloadPipeline(other/2) returned %lld\n", rc), ok = false;
    if (S.phase = "add second", !load("second/2", 9, pipeline(ADD_FIELDS))) return 2;
    B.Start(gs("second/2")), open_gate(S.second, second_total);

    // 6. modify cycles spread over the feeding; second is removed once it is fed
    double stop_max = 0, start_max = 0;
    auto timed = [](double &max, auto call) { auto t = Clock::now(); call(); return max = std::max(max, ms_since(t)); };
    auto stop = [&](Gate &g, const char *name, GoInt removed) { close_gate(g), timed(stop_max, [&] { B.Stop(gs(name), removed); }); };
    auto second_fed = [&] { return S.second.fed >= second_total; };
    for (long k = 1; k <= cycles && !timed_out; ++k) {
        if ((timed_out = !wait_until(deadline, [&] { return S.demo.fed >= k * per_cycle; }))) break;
        S.phase = "modify demo";
        load("demo/2", 7, pipeline(k % 2 ? REGEX_B : REGEX_A));
        stop(S.demo, "demo/2", 0);
        timed(start_max, [] { B.Start(gs("demo/2")); });
        open_gate(S.demo, std::min(demo_total, k * per_cycle + per_cycle * 3 / 2));
        if (!second_removed && wait_until(Clock::now(), second_fed)) S.phase = "remove second", stop(S.second, "second/2", 1), second_removed = true;
    }
    // 9. everything fed and arrived (or the timeout), then Application::Exit
    S.phase = "waiting for the logs";
    timed_out |= !wait_until(deadline, second_fed);
    if (!second_removed) S.phase = "remove second", stop(S.second, "second/2", 1);
    timed_out |= !wait_until(deadline, [&] { return S.demo.fed >= demo_total && S.received >= demo_total + second_total; });
    if (timed_out) fprintf(stderr, "host: !! timed out after %.0f s\n", timeout_s);
    double stopall1 = 0, stopall0 = 0;
    S.phase = "StopAllPipelines(1)", timed(stopall1, [] { B.StopAll(1); });
    S.phase = "stopping the processor thread", quit(S.quit), feeder.join();
    S.phase = "StopAllPipelines(0)", timed(stopall0, [] { B.StopAll(0); });
    S.phase = "the last monitor pull", quit(S.monitor_quit), mon.join();
    S.phase = "StopBuiltInModules", B.StopBuiltIn();
    quit(S.containers_quit), cont.join();

    std::lock_guard<std::mutex> lk(S.mu);
    long missing_logs = std::count(S.seen.begin(), S.seen.end(), 0), gaps = 0;
    for (auto &[prefix, seqs] : S.packs)  // sequences 1 (or 0) .. max, each once
        gaps += long(*seqs.rbegin() - std::min<uint64_t>(*seqs.begin(), 1) + 1 - seqs.size());
    long fed = S.demo.fed + S.second.fed;
    printf("host: fed %ld logs (demo %ld, second %ld), received %ld, missing %ld, duplicate logs %ld, duplicate packs %ld, "
           "gaps %ld in %zu pack-id prefixes, bad groups %ld, other groups %ld, non-zero Process %ld, metrics in_events_total "
           "(demo, flusher_sls) %llu, pulls %ld, parse failures %ld, alarms %ld, Stop max %.0f ms, Start max %.0f ms, "
           "StopAllPipelines(1) %.0f ms, StopAllPipelines(0) %.0f ms, %.1f s\n",
           fed, S.demo.fed, S.second.fed, S.received, missing_logs, S.dup_logs, S.dup_packs, gaps, S.packs.size(), S.bad.load(),
           S.other_groups.load(), S.nonzero.load(), S.metric_in.load(), S.pulls.load(), S.parse_fail.load(), S.alarms.load(),
           stop_max, start_max, stopall1, stopall0, ms_since(t0) / 1000);
    if (S.dup_logs || S.dup_packs) fprintf(stderr, "host: !! duplicates (tolerated: delivery is at least once)\n");
    if (S.metric_in != uint64_t(S.demo.fed))
        fprintf(stderr, "host: !! the metrics count %llu logs into demo's flusher_sls, %ld were fed\n", S.metric_in.load(), S.demo.fed);
    ok = ok && !timed_out && fed == demo_total + second_total && S.received >= fed && missing_logs == 0 && gaps == 0 &&
         S.bad == 0 && S.parse_fail == 0 && S.metric_in == uint64_t(S.demo.fed);
    printf("host: %s\n", ok ? "ok" : "FAILED");
    return fflush(stdout), ok ? 0 : 1;
}
