#!/usr/bin/env python3
"""Writes the small, curated seed corpus under corpus/<target>/ (deterministic; re-run after
changing the seeds here, then commit). libFuzzer's own growth goes to a scratch copy (run.sh)."""
import json
import os
import shutil
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# ---- config_parse -------------------------------------------------------------------------
def configs():
    for src in ["examples/pipelines/quickstart.json", "examples/pipelines/processor-chain.json",
                "examples/pipelines/broken.json", "examples/c-host/demo.json"]:
        path = os.path.join(ROOT, src)
        if os.path.exists(path):
            with open(path, "rb") as f:
                yield os.path.basename(src), f.read()

    def cfg(processors, **extra):
        c = {"inputs": [{"type": "service_mock", "detail": {"MaxLogCount": 3}}],
             "processors": processors, "flushers": [{"type": "flusher_stdout"}]}
        c.update({k.rstrip("_"): v for k, v in extra.items()})
        return json.dumps(c, separators=(",", ":"))

    p = lambda t, d=None: {"type": t, "detail": d or {}}
    yield "regex.json", cfg([p("processor_regex", {"SourceKey": "content", "Regex": r"(\w+) (\d+)",
                                                  "Keys": ["word", "num"], "KeepSource": True})])
    yield "json.json", cfg([p("processor_json", {"SourceKey": "content", "ExpandConnector": "_",
                                                "ExpandArray": True, "Prefix": "j_"})])
    yield "split_char.json", cfg([p("processor_split_char", {"SourceKey": "content", "SplitSep": ",",
                                                            "SplitKeys": ["a", "b"], "QuoteFlag": True,
                                                            "Quote": "\""})])
    yield "split_log.json", cfg([p("processor_split_log_regex", {"SplitRegex": "^\\d+", "SplitKey": "content"}),
                                 p("processor_split_log_string", {"SplitSep": "\n"})])
    yield "time.json", cfg([p("processor_gotime", {"SourceKey": "t", "SourceFormat": "2006-01-02",
                                                  "DestKey": "d", "DestFormat": "15:04"}),
                            p("processor_strptime", {"SourceKey": "t", "Format": "%Y-%m-%d",
                                                    "AdjustUTCOffset": True, "UTCOffset": 3600})])
    yield "misc.json", cfg([p("processor_rename", {"SourceKeys": ["a"], "DestKeys": ["b"]}),
                            p("processor_desensitize", {"SourceKey": "c", "Method": "const",
                                                       "Match": "regex", "ReplaceString": "***",
                                                       "RegexBegin": "pwd=", "RegexContent": "[^,]+"}),
                            p("processor_filter_regex", {"Include": {"level": "^(error|warn)$"}}),
                            p("processor_filter_key_regex", {"Exclude": ["^debug"]}),
                            p("processor_drop", {"DropKeys": ["x"]}),
                            {"type": "processor_add_fields/id#3", "detail": {"Fields": {"e": "1"}},
                             "MaxRetries": 2}],
                           global_={"InputIntervalMs": 10},
                           aggregators=[p("aggregator_default", {"MaxLogCount": 2, "Topic": "t"})],
                           extensions=[])
    yield "metric.json", json.dumps({"global": {"EnableTimestampNanosecond": True},
                                     "inputs": [{"type": "metric_mock/cpu",
                                                 "detail": {"Tags": {"h": "w"}, "Fields": {"v": "1"}}}]})
    yield "empty.json", "{}"


# ---- protobuf_decode ------------------------------------------------------------------------
def varint(v):
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def field(tag, wire, payload):
    key = varint((tag << 3) | wire)
    if wire == 0:
        return key + varint(payload)
    if wire == 2:
        return key + varint(len(payload)) + payload
    if wire == 5:
        return key + struct.pack("<I", payload)
    if wire == 1:
        return key + struct.pack("<Q", payload)
    raise ValueError(wire)


def pair(k, v):
    return field(1, 2, k) + field(2, 2, v)


def log(time, contents, time_ns=None, values=()):
    b = field(1, 0, time)
    for k, v in contents:
        b += field(2, 2, pair(k, v))
    for v in values:
        b += field(3, 2, v)
    if time_ns is not None:
        b += field(4, 5, time_ns)
    return b


def group(logs, topic=None, tags=(), category=b"store", source=b"1.2.3.4", uuid=None):
    b = b"".join(field(1, 2, l) for l in logs)
    if category is not None:
        b += field(2, 2, category)
    if topic is not None:
        b += field(3, 2, topic)
    if source is not None:
        b += field(4, 2, source)
    if uuid is not None:
        b += field(5, 2, uuid)
    for k, v in tags:
        b += field(6, 2, pair(k, v))
    return b


def protobufs():
    l1 = log(1700000000, [(b"content", b"GET / 200"), (b"empty", b"")], time_ns=123)
    l2 = log(5, [])
    yield "group_basic.pb", group([l1, l2], topic=b"t", tags=[(b"__pack_id__", b"ABC-1")])
    yield "group_empty.pb", b""
    yield "group_many_tags.pb", group([log(1, [(b"k", b"v")])],
                                      tags=[(b"host", b"h1"), (b"", b""), (b"__pack_id__", b"0-0")],
                                      uuid=b"uuid", category=None, source=None)
    yield "group_unknown_fields.pb", (group([log(2, [(b"a", b"b")], values=[b"x"])]) +
                                      field(7, 0, 300) + field(8, 1, 1) + field(9, 5, 7))
    yield "group_big_time.pb", group([log(0xFFFFFFFF, [(b"k" * 130, b"v" * 200)], time_ns=999999999)])
    yield "log_basic.pb", l1
    yield "log_values.pb", log(7, [(b"a", b"1"), (b"a", b"2")], values=[b"v1", b"v2"])


# ---- tags_parse -----------------------------------------------------------------------------
def tags():
    yield "basic.txt", "k1~=~v1^^^k2~=~v2"
    yield "edge.txt", "^^^a^^^b~=~^^^"
    yield "no_value.txt", "__path__~=~/var/log/a.log^^^flag^^^x~=~y~=~z"
    yield "carets.txt", "a^^^^^b~~=~c^~=~^^^~=~"
    yield "empty.txt", ""


def main():
    shutil.rmtree(os.path.join(HERE, "corpus"), ignore_errors=True)
    for name, data in configs():
        write("config_parse", name, data)
    for name, data in protobufs():
        write("protobuf_decode", name, data)
    for name, data in tags():
        write("tags_parse", name, data)


if __name__ == "__main__":
    main()
