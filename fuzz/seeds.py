#!/usr/bin/env python3
"""Writes the seed inputs of every fuzz target into fuzz/corpus/<target>/, made from the
real examples: the contract's example event, the test events of tests/, both /ingest
body shapes, config.example.toml and the configs the config tests use, Retry-After
values and Discord 429 bodies. `scripts/fuzz.sh --seed` runs it; `cargo fuzz cmin`
then keeps the inputs that add coverage. Input layouts: src/fuzzing.rs."""

import hashlib, json, pathlib, re, struct

ROOT = pathlib.Path(__file__).resolve().parent.parent
CORPUS = ROOT / "fuzz" / "corpus"


def write(target, data):
    if isinstance(data, str):
        data = data.encode()
    d = CORPUS / target
    d.mkdir(parents=True, exist_ok=True)
    (d / ("seed-" + hashlib.sha1(data).hexdigest()[:16])).write_bytes(data)


def dumps(v):
    return json.dumps(v, ensure_ascii=False, separators=(",", ":"))


# --- events -------------------------------------------------------------------------
CONTRACT_EVENT = {
    "event": "tweet.detected", "monitor_id": "abc-123", "monitor_name": "Tech Leaders",
    "tweet_id": "1234567890", "author_username": "elonmusk", "tweet_text": "Just announced...",
    "tweet_url": "https://x.com/elonmusk/status/1234567890",
    "tweet_published_at": "2026-03-13T12:00:00Z", "detected_at": "2026-03-13T12:00:00.150Z",
    "latency_ms": 150,
}
HOSTILE_TEXT = ("<!channel> <!here> <!everyone> <@U123> <#C123> <!subteam^S1> "
                "<https://evil.example|click> @everyone @here @channel @Here <@&123> "
                "[https://x.com/safe](https://evil.example) &amp; &lt;b&gt; a&b<c>d "
                "zero\u200bwidth \u202eevil override\u202c \u2067isolate\u2069 "
                "\U0001F468\u200d\U0001F469\u200d\U0001F467 \U0001F1FA\U0001F1E6 *bold* _it_ ```block```\n"
                "> quote\n# heading \u202eunterminated")
EVENTS = [
    CONTRACT_EVENT,
    # tests/support/events.rs tweet_event("7")
    {"event": "tweet.detected", "monitor_id": "mon-tech", "monitor_name": "Tech Leaders",
     "tweet_id": "7", "author_username": "elonmusk", "tweet_text": "Tweet number 7",
     "tweet_url": "https://x.com/elonmusk/status/7", "tweet_published_at": "2026-03-13T12:00:00Z",
     "detected_at": "2026-03-13T12:00:00.150Z", "latency_ms": 150},
    # tests/chat_payloads.rs: hostile, rule, missing, degenerate
    {"event": "tweet.detected", "monitor_id": "m-<1>", "monitor_name": "Tech <Leaders> & @here",
     "tweet_id": "1234567891", "author_username": "@here", "tweet_text": HOSTILE_TEXT,
     "tweet_url": "https://x.com/here/status/1234567891?s=20&t=a|<!channel>",
     "tweet_published_at": "2026-03-13T12:00:00Z<script>", "detected_at": "2026-03-13T12:00:00.150Z",
     "latency_ms": -5},
    {"event": "tweet.detected", "rule_id": "rule-42", "rule_tag": "launches",
     "tweet_id": "1900000000000000001", "author_username": "sama",
     "tweet_text": "We are launching something new today.\nMore soon: https://t.co/abc123",
     "tweet_url": "https://x.com/sama/status/1900000000000000001",
     "tweet_published_at": "2026-03-13T12:00:00.000+01:00", "detected_at": "2026-03-13T11:00:02.300Z",
     "latency_ms": 2300},
    {"event": "tweet.detected", "tweet_id": 1234567890, "author_username": None, "tweet_text": "",
     "monitor_name": 42.5, "latency_ms": "150"},
    {},
    {"tweet_text": None, "author_username": 5, "tweet_url": ["x"], "latency_ms": {}},
    {"tweet_text": " \n ", "monitor_name": "", "rule_tag": "r"},
    {"tweet_text": "x", "author_username": "n" * 300, "monitor_name": "n" * 300,
     "latency_ms": 1e300, "tweet_id": "12ab"},
    {"tweet_text": "Tom & Jerry <3 caf\u00e9 \U0001F468\u200d\U0001F469 \u65e5\u672c\u8a9e " * 40},
    # routing: wildcards, stop, other event types
    {"event": "tweet.detected", "monitor_name": "Breaking news", "author_username": "@Sama",
     "tweet_id": "9", "tweet_text": "AI launch"},
    {"event": "tweet.deleted", "rule_tag": "rule-1", "author_username": "newsbot", "tweet_id": "10"},
    {"event": "monitor.error", "monitor_id": "m1", "author_username": "stopper"},
    {"event": "", "x": [1, 2, {"y": None}]},
]
RAW_FRAMES = [
    ' {"event":"tweet.detected", "monitor_name":"Tech","tweet_id":"1","author_username":"a","extra":{"x":[1,2]}}',
    "[1,2]", "42", "{nope", "", "\ufeff{}", '{"tweet_id":123,"author_username":null,"monitor_name":{"a":1}}',
    '{"tweet_id":"1","tweet_id":"2"}', '{"a":"\\ud800"}', '{"tweet_id":1e400}',
]
for e in EVENTS:
    for t in ("event_frame", "routing"):
        write(t, dumps(e))
for f in RAW_FRAMES:
    write("event_frame", f)

# --- /ingest ----------------------------------------------------------------------------
def webhook_body(e):
    e = dict(e)
    e["tweet_data"] = {"id": e.get("tweet_id"), "text": e.get("tweet_text"),
                       "author": {"username": e.get("author_username"), "followers_count": 1200},
                       "public_metrics": {"like_count": 3, "retweet_count": 1}}
    return dumps(e)

LEGACY = [
    {"type": "tweet", "monitor_id": "m1", "monitor_name": "Tech",
     "tweet": {"id": "7", "text": "hi", "author": {"username": "sama"}, "created_at": "2026-03-13T12:00:00Z"}},
    {"type": "tweet", "monitor_id": "m1", "monitor_name": "Tech",
     "tweet": {"id": 1234, "text": "hi", "author": {"username": "sama"}, "created_at": "2026-03-13T12:00:00Z"}},
    {"type": "tweet", "tweet": {"id_str": "5", "full_text": "x", "user": {"screen_name": "@a"}, "url": "https://x.com/a/status/5"}},
    {"type": "tweet", "tweet": {}},
    {"type": "tweet", "tweet": []},
]
BODIES = [webhook_body(CONTRACT_EVENT), webhook_body(EVENTS[1]), dumps(CONTRACT_EVENT)] + \
         [dumps(b) for b in LEGACY] + ["{oops", "[]"]
SECRET = "INGESTSECRET_5b7c"
for body in BODIES:
    for mode in (0, 1, 2, 4, 12):
        write("ingest", bytes([mode]) + f"{SECRET}\nsha256=00ff\n{body}".encode())
write("ingest", bytes([8]) + f"{SECRET}\nsha256=zz\n{BODIES[0]}".encode())
write("ingest", bytes([8]) + f"{SECRET}\n{SECRET}\n{BODIES[0]}".encode())

# --- chat -------------------------------------------------------------------------------
TEMPLATES = ["", "{author_username}: {tweet_url}", "{tweet_text}", "<!here> {tweet_text} <{tweet_url}|link>",
             "@{author_username} on {monitor_name} ({latency_ms} ms): {tweet_text}", "{tweet_url",
             "{author_usrname} wrote", "{{literal}} {tweet_id}", "**{monitor_name}** @everyone"]
for i, tpl in enumerate(TEMPLATES):
    for e in EVENTS[:5] + EVENTS[8:10]:
        if (len(tpl) + len(dumps(e))) % 2 == 0 or e is CONTRACT_EVENT:
            write("chat", tpl + "\n" + dumps(e))
    write("chat", tpl + "\n" + dumps(EVENTS[2]))
# MiniJinja templates, and bare expressions (which the entry point also renders as
# `{{ line }}` and inside a JSON body_template), on an event with a nested tweet_data.
DATA_EVENT = dict(CONTRACT_EVENT, tweet_text=HOSTILE_TEXT, tweet_data={
    "lang": "<!channel>", "is_retweet": False,
    "author": {"name": "@here", "followers_count": 1200},
    "entities": {"mentions": ["<@U999>", "@everyone"], "urls": ["[x](https://evil.example)"]}})
JINJA_TEMPLATES = [
    "{{ author_username }}: {{ tweet_text }}",
    "{% if tweet_data.lang %}[{{ tweet_data.lang | upper }}] {% endif %}{{ tweet_text | truncate(80) }}",
    "{% for m in tweet_data.entities.mentions %}{{ m }} {% endfor %}{{ tweet_data.author.followers_count | default(0) }}",
    "{{ tweet_text | reverse }} {{ tweet_data | tojson }}",
    "{{ tweet_text | safe }}", "{{ x | uppper }}", "{% for x in latency_ms %}{{ x }}{% endfor %}",
    "tweet_text | reverse", "tweet_data | tojson", "tweet_text[0:10] ~ '@everyone'",
    "tweet_text | truncate(5, end='<!here>')", "tweet_data.entities.mentions | join(' ')",
    "missing.a.b | default('\"}, \"x\": 1')",
]
for tpl in JINJA_TEMPLATES:
    write("chat", tpl + "\n" + dumps(DATA_EVENT))
    write("chat", tpl + "\n" + dumps(CONTRACT_EVENT))

# --- config -----------------------------------------------------------------------------
ENV = ("SCRAPEBADGER_API_KEY=sk_live_APIKEY_7f3a\n"
       "SLACK_WEBHOOK_URL=https://hooks.slack.com/services/T0AAA/B0BBB/SLACKTOKEN_9c1d\n"
       "DISCORD_WEBHOOK_URL=https://discord.com/api/webhooks/123456/DISCORDTOKEN_4e2b\n"
       "WORKFLOW_TOKEN=WORKFLOWTOKEN_8d5e\nWORKFLOW_SIGNING_SECRET=SIGNINGSECRET_2a6f\n"
       "SCRAPEBADGER_WEBHOOK_SECRET=INGESTSECRET_5b7c\nEMPTY=\n")
write("config", ENV + "\0" + (ROOT / "config.example.toml").read_text())
contract = (pathlib.Path("/work/shared/CONTRACT.md"))
if contract.exists():
    for block in re.findall(r"```toml\n(.*?)```", contract.read_text(), re.S):
        write("config", ENV + "\0" + block)


def rust_strings(text):
    """The string literals of Rust source: "..." with escapes, and r#"..."#."""
    out = []
    for m in re.finditer(r'r#"(.*?)"#|"((?:[^"\\]|\\.)*)"', text, re.S):
        if m.group(1) is not None:
            out.append(m.group(1))
            continue
        s = m.group(2)
        s = re.sub(r"\\\n\s*", "", s)
        s = s.replace('\\"', '"').replace("\\n", "\n").replace("\\t", "\t").replace("\\\\", "\\")
        out.append(s)
    return out


SLACK_HEAD = '[targets.t]\ntype = "slack"\nurl = "https://hooks.slack.com/services/x"\n'
for s in rust_strings((ROOT / "src/config/tests.rs").read_text()):
    if "=" in s and ("\n" in s or s.startswith("[")):
        write("config", ENV + "\0" + s)
        if not s.lstrip().startswith("["):
            write("config", ENV + "\0" + SLACK_HEAD + s)
write("config", "")
write("config", "A=${B}\0[source]\napi_key = \"${A:-x}$$\"\nurl = \"ws://127.0.0.1:1/${EMPTY:-s}\"\n")

# --- Retry-After and Discord bodies -----------------------------------------------------
for v in ["2", " 1.5 ", "0", "120", "-1", "1e30", "soon", "NaN", "inf", "-0", "0.000000001",
          "86401", "4294967296", "Wed, 21 Oct 2015 07:28:00 GMT", "Tue, 14 Nov 2023 22:13:50 GMT",
          "Sunday, 06-Nov-94 08:49:37 GMT", "Sun Nov  6 08:49:37 1994", "Fri, 31 Dec 9999 23:59:59 GMT",
          '{"retry_after": 3}', '{"message":"You are being rate limited.","retry_after":64.57,"global":false}',
          '{"retry_after": 1e30}', '{"retry_after": -1}', '{"retry_after": "5"}', '{"retry_after": null}',
          '{"retry_after": 0.001}', "[]"]:
    write("retry_after", v)

# --- outbox records (src/outbox/record.rs, version 1) -----------------------------------
def record(attempts, enqueued, nxt, reason, body):
    r = reason.encode()
    return bytes([1]) + struct.pack(">IQQI", attempts, enqueued, nxt, len(r)) + r + body

for args in [(0, 1_700_000_000_000, 0, "", dumps(CONTRACT_EVENT).encode()),
             (3, 1_700_000_000_000, 1_700_000_005_000, "HTTP 503: \u201cbusy\u201d", b'{"tweet_id":"1"}'),
             (7, 5, 2**64 - 1, "dead: HTTP 404 (the webhook was deleted)", b"{}"),
             (2**32 - 1, 0, 0, "timed out after 10s", b"")]:
    write("record", record(*args))
# Format 2 (typed failures), what the relay writes now: failure tag + fields, cause tag + fields.
def text(s):
    b = s.encode()
    return struct.pack(">I", len(b)) + b

def record2(attempts, failure, cause, body):
    return bytes([2]) + struct.pack(">IQQ", attempts, 1_700_000_000_000, 1_700_000_005_000) + failure + cause + body

for args in [(0, b"\x00", b"\x00", dumps(CONTRACT_EVENT).encode()),
             (3, b"\x01" + struct.pack(">H", 503) + text("busy"), b"\x02" + struct.pack(">IQ", 3, 90_000), b"{}"),
             (1, b"\x02" + struct.pack(">Q", 10_000), b"\x03" + struct.pack(">Q", 86_400_000), b"{}"),
             (1, b"\x05" + text("the webhook was deleted"), b"\x01", b"{}"),
             (1, b"\x06", b"\x01", b""),
             (2, b"\x07" + text("HTTP 500"), b"\x00", b"{}")]:
    write("record", record2(*args))
write("record", b"")
write("record", bytes([2]) * 40)
