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
                "examples/invalid/broken.json", "examples/c-host/demo.json"]:
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


# ---- processors -----------------------------------------------------------------------------
# Mirrors the reader of fuzz_targets/processors.rs: a time byte, then records of a header
# (bit 7 new event, bit 6 repeated value, bits 0-5 key), a length byte and the value.
KEYS = [b"content", b"msg", b"time", b"t", b"s_key", b"level", b"a", b"b", b"x", b"d", b"status",
        b"__tag__:path", b"p", b"new", b""]


def rec(key, value, new=False, repeat=None):
    if isinstance(value, str):
        value = value.encode()
    if repeat is not None:
        count, prefix, middle, suffix = repeat
        value = bytes([count, len(prefix), len(middle)]) + prefix + middle + suffix
    h = (0x80 if new else 0) | (0x40 if repeat is not None else 0)
    if isinstance(key, bytes) and key not in KEYS:
        head = bytes([h | 48, len(key)]) + key
    else:
        head = bytes([h | KEYS.index(key if isinstance(key, bytes) else key.encode())])
    assert len(value) < 255, value
    return head + bytes([len(value)]) + value


def events(time, *records):
    return bytes([time]) + b"".join(records)


def processor_inputs():
    yield "nginx.bin", events(1, rec("content", '10.0.0.1 - alice [10/Oct/2023:13:55:36 +0000] "GET /a" 200 512'),
                              rec("level", "error"),
                              rec("content", "k=1 x v=2", new=True), rec("a", ""))
    yield "json_flat.bin", events(1, rec("content", '{"level":"INFO","user":{"id":42,"roles":["a","b"]},"x":1.50}'),
                                  rec("s_key", '{"k1":{"k2":{"k3":"v"}},"k6":[{"x":"a"}],"e":"\u4f60\n"}'),
                                  rec("msg", '{"tags":["a",[1,2]],"events":[{"t":"c"}],"":null}'))
    yield "json_deep_objects.bin", events(0, rec("content", b"", repeat=(200, b'{"a":', b"1", b"}")))
    yield "json_deep_mixed.bin", events(0, rec("content", b"", repeat=(100, b'{"a":[', b"1", b"]}")),
                                        rec("msg", b"", repeat=(150, b'{"b":[{"c":', b"[]", b"}]}"), new=True))
    yield "json_deep_arrays.bin", events(0, rec("content", b"", repeat=(200, b"[", b"1", b"]")),
                                         rec("msg", b"", repeat=(200, b'{"a":', b'"x"', b""), new=True))
    yield "csv.bin", events(1, rec("content", 'a,"b""c",d,e'), rec("content", 'x|"y|z"|w', new=True),
                            rec("x", "p\x01'q''r'\x01s"))
    yield "multiline.bin", events(0, rec("content", "2023-10-10 13:55:36 ERROR x\n\tat y\n"
                                         "2023-10-10 13:55:37 INFO z\n\nab\nab\nabcd"),
                                  rec("msg", "one ab\nab two ab\nab"))
    yield "time.bin", events(2, rec("time", "2023-10-10 13:55:36"), rec("t", "10/Oct/2023:13:55:36 +0800"),
                             rec("time", "1700000000.123456", new=True), rec("t", "1700000000123456789"),
                             rec("content", "Oct  5 13:55:36 23 278 01 PM UTC \n\t% Mon 10/05/23 2023-10-05 13:55 01:55:36 PM 123"),
                             rec("t", "2019-07-05 19:28:01", new=True), rec("time", "1645595256807"))
    yield "desensitize.bin", events(1, rec("content", "pwd=secret,user=a,pwd=,pwd=x"),
                                    rec("msg", "card=4111 id:1234 card:"))
    yield "invalid_utf8.bin", events(3, rec("content", b'{"a":"\xff","\xfe":1}'),
                                     rec(b"\xfe\xffkey", b"\xc3(\x80"), rec("level", b"err\xffor"),
                                     rec("__tag__:path", "/var/log/a.log", new=True))
    yield "empty.bin", b""


def main():
    shutil.rmtree(os.path.join(HERE, "corpus"), ignore_errors=True)
    for name, data in configs():
        write("config_parse", name, data)
    for name, data in protobufs():
        write("protobuf_decode", name, data)
    for name, data in tags():
        write("tags_parse", name, data)
    for name, data in processor_inputs():
        write("processors", name, data)


if __name__ == "__main__":
    main()
