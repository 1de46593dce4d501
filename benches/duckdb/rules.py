#!/usr/bin/env python3
"""The trailhound rule pack run by DuckDB over CloudTrail JSON lines.

    python benches/duckdb/rules.py --input FILE.jsonl --rules rules/pack --threads N [--json]

The DuckDB side of the end-to-end benchmark. It loads FILE.jsonl (one
CloudTrail record per line) with `read_json(format='newline_delimited')`,
builds trailhound's event model (`core/src/event.rs`, derived as
`ingest/src/cloudtrail/record.rs` and `identity.rs` do) as an in-memory
table `events`, and runs every enabled rule of the folder as SQL:

- single-event rules: `count(*)` of the rows matching `where`, and the
  alerts after dedup (distinct dedup key and period of event time);
- `window:` rules: the rows grouped by `group_by` and event-time window
  (tumbling, or sliding by `slide`), `having` on each window, dedup on the
  window's first row;
- `sequence:` rules: per `by` key in event-time order, each step joined to
  the latest earlier row that completed the step before it (a later first
  step replaces a waiting one), within `within` of the first step; absence
  steps as an anti-join;
- `correlate:` rules: `then` rows with a `first` row of the same link at
  most `within` earlier;
- `baseline:` rules: window functions over each key's history in event
  time (first-seen values, hour-of-day counts, decayed per-part-of-day
  maxima of bins, holders per value), with `learning` and `min_history`.

The `where` expressions are translated from trailhound's DataFusion SQL to
DuckDB (`json_get_*` to JSON-path extraction, `regexp_like` to
`regexp_matches`, `array_has` to `list_contains`); the rest of the SQL is
the same in both. The wall time reported includes loading the JSON file.
"""

import argparse
import glob
import json
import os
import re
import sys
import time

import duckdb
import yaml

# ---------------------------------------------------------------------------
# The event model.

MODEL_COLUMNS = [
    "event_time", "ingest_time", "source", "event_id", "event_source", "event_name",
    "event_category", "read_only", "error_code", "error_message", "account_id",
    "principal", "principal_type", "principal_arn", "user_name", "session_name",
    "access_key_id", "source_identity", "mfa", "console_session", "region", "source_ip", "user_agent",
    "resources", "bucket", "object_key", "bytes_in", "bytes_out", "session_id",
    "target", "command", "input", "keystrokes", "keystroke_interval_ms_mean",
    "keystroke_interval_ms_stddev", "request", "response", "extra",
]

# Top-level CloudTrail fields read as text (the lifted scalar columns) ...
TEXT_FIELDS = [
    "eventTime", "@timestamp", "eventID", "eventSource", "eventName", "eventCategory",
    "readOnly", "errorCode", "errorMessage", "recipientAccountId", "awsRegion",
    "sourceIPAddress", "userAgent", "sessionCredentialFromConsole",
]
# ... the ones kept as JSON and lifted from (also copied into `extra`) ...
LIFTED_JSON = ["requestParameters", "responseElements"]
KEPT_IN_EXTRA = [
    "eventType", "userIdentity", "additionalEventData", "resources", "managementEvent",
    "insightDetails",
]
# ... and the other fields of the CloudTrail record schema, which only go to `extra`.
EXTRA_ONLY = [
    "eventVersion", "requestID", "apiVersion", "serviceEventDetails", "sharedEventID",
    "vpcEndpointId", "vpcEndpointAccountId", "addendum",
    "edgeDeviceDetails", "tlsDetails",
]


def sql_str(s):
    return "'" + s.replace("'", "''") + "'"


def qi(name):
    return '"' + name.replace('"', '""') + '"'


def load_sql(path):
    cols = {f: "VARCHAR" for f in TEXT_FIELDS}
    for f in LIFTED_JSON + KEPT_IN_EXTRA + EXTRA_ONLY:
        cols[f] = "JSON"
    columns = "{" + ", ".join(f"{sql_str(k)}: {sql_str(v)}" for k, v in cols.items()) + "}"
    # `extra`: every present field no column lifts (plus the partly lifted
    # ones), as one JSON object, fields absent or null left out.
    extra_parts = ", ".join(
        f"CASE WHEN {qi(f)} IS NOT NULL THEN {sql_str(json.dumps(f) + ':')} || {qi(f)}::VARCHAR END"
        for f in KEPT_IN_EXTRA + EXTRA_ONLY
    )
    assumed = (r"'^arn:([^:]*):sts:[^:]*:([^:]*):assumed-role/([^/]+)(?:/(.*))?$'")
    return f"""
CREATE OR REPLACE TABLE events AS
WITH raw AS (
  SELECT * FROM read_json({sql_str(path)}, format = 'newline_delimited', columns = {columns},
                          ignore_errors = true, maximum_object_size = 67108864)
), p AS (
  SELECT *,
    json_extract_string("userIdentity", ['$.type', '$.principalId', '$.arn', '$.accountId',
      '$.accessKeyId', '$.userName', '$.invokedBy', '$.sessionContext.sessionIssuer.arn',
      '$.sessionContext.sessionIssuer.userName', '$.sessionContext.attributes.mfaAuthenticated',
      '$.sessionContext.sourceIdentity', '$.onBehalfOf.userId']) AS ui,
    CASE WHEN "additionalEventData" IS NOT NULL THEN json_extract_string("additionalEventData",
      ['$.bytesTransferredIn', '$.bytesTransferredOut', '$.MFAUsed']) END AS ad,
    CASE WHEN strpos("requestParameters", '"bucketName"') > 0
      THEN json_extract_string("requestParameters", ['$.bucketName', '$.key']) END AS s3,
    "eventType" ->> '$' AS event_type,
    coalesce(nullif("eventTime", ''), nullif("@timestamp", '')) AS time_text
  FROM raw
), q AS (
  SELECT *,
    nullif(ui[1], '') AS u_type, nullif(ui[2], '') AS u_pid, nullif(ui[3], '') AS u_arn,
    nullif(ui[4], '') AS u_account, nullif(ui[6], '') AS u_name,
    CASE WHEN ui[1] = 'AssumedRole'
      THEN regexp_extract(ui[3], {assumed}, ['part', 'account', 'role', 'session']) END AS ar,
    coalesce(
      try_cast(time_text AS TIMESTAMPTZ),
      CASE WHEN regexp_full_match(trim(time_text), '-?[0-9.]+') THEN
        CASE WHEN abs(try_cast(time_text AS DOUBLE)) < 1e11 THEN to_timestamp(try_cast(time_text AS DOUBLE))
             WHEN abs(try_cast(time_text AS DOUBLE)) < 1e14 THEN to_timestamp(try_cast(time_text AS DOUBLE) / 1e3)
             WHEN abs(try_cast(time_text AS DOUBLE)) < 1e17 THEN to_timestamp(try_cast(time_text AS DOUBLE) / 1e6)
             ELSE to_timestamp(try_cast(time_text AS DOUBLE) / 1e9) END
      END) AS ts,
    coalesce(nullif("eventName", ''),
      CASE WHEN event_type = 'AwsCloudTrailInsight' THEN nullif("insightDetails" ->> '$.eventName', '') END) AS ev_name
  FROM p
)
SELECT
  make_timestamp(epoch_us(ts)) AS event_time,
  now()::TIMESTAMP AS ingest_time,
  'cloudtrail' AS source,
  coalesce(nullif("eventID", ''), md5(concat_ws('|', time_text, "eventSource", ev_name,
    "requestID"::VARCHAR, "userIdentity"::VARCHAR, "requestParameters"::VARCHAR))) AS event_id,
  coalesce(nullif("eventSource", ''),
    CASE WHEN event_type = 'AwsCloudTrailInsight' THEN "insightDetails" ->> '$.eventSource' END, '') AS event_source,
  ev_name AS event_name,
  coalesce(nullif("eventCategory", ''),
    CASE WHEN event_type = 'AwsCloudTrailInsight' THEN 'Insight'
         WHEN lower(trim("managementEvent"::VARCHAR, '"')) = 'false' THEN 'Data'
         ELSE 'Management' END) AS event_category,
  CASE lower(trim("readOnly")) WHEN 'true' THEN true WHEN 'false' THEN false END AS read_only,
  nullif("errorCode", '') AS error_code,
  nullif("errorMessage", '') AS error_message,
  coalesce(nullif("recipientAccountId", ''), u_account) AS account_id,
  coalesce(
    CASE u_type
      WHEN 'IAMUser' THEN u_arn
      WHEN 'AssumedRole' THEN coalesce(nullif(ui[8], ''),
        'arn:' || ar.part || ':iam::' || ar.account || ':role/' || nullif(ar.role, ''))
      WHEN 'Root' THEN coalesce(u_arn, 'arn:aws:iam::' || u_account || ':root')
      WHEN 'FederatedUser' THEN u_arn
      WHEN 'AWSService' THEN nullif(ui[7], '')
      WHEN 'AWSAccount' THEN 'account:' || coalesce(u_account, u_pid)
      WHEN 'IdentityCenterUser' THEN 'identitycenter:' || coalesce(nullif(ui[12], ''), u_pid)
    END,
    u_arn, u_name, u_pid, 'unknown') AS principal,
  coalesce(u_type, 'Unknown') AS principal_type,
  u_arn AS principal_arn,
  CASE u_type
    WHEN 'AssumedRole' THEN coalesce(nullif(ui[9], ''), nullif(ar.role, ''))
    WHEN 'Root' THEN 'root'
    WHEN 'FederatedUser' THEN coalesce(
      CASE WHEN strpos(u_arn, ':federated-user/') > 0
        THEN nullif(substr(u_arn, strpos(u_arn, ':federated-user/') + 16), '') END, u_name)
    ELSE u_name
  END AS user_name,
  CASE WHEN u_type = 'AssumedRole' THEN nullif(ar.session, '') END AS session_name,
  nullif(ui[5], '') AS access_key_id,
  nullif(ui[11], '') AS source_identity,
  CASE
    WHEN ev_name = 'ConsoleLogin' AND lower(ad[3]) = 'yes' THEN true
    WHEN ev_name = 'ConsoleLogin' AND lower(ad[3]) = 'no' THEN false
    ELSE CASE lower(trim(ui[10])) WHEN 'true' THEN true WHEN 'false' THEN false END
  END AS mfa,
  CASE lower(trim("sessionCredentialFromConsole")) WHEN 'true' THEN true WHEN 'false' THEN false
  END AS console_session,
  nullif("awsRegion", '') AS region,
  nullif("sourceIPAddress", '') AS source_ip,
  nullif("userAgent", '') AS user_agent,
  CASE WHEN "resources" IS NULL THEN []::VARCHAR[] ELSE
    list_filter(list_transform(json_extract("resources", '$[*]'),
      lambda r: coalesce(nullif(r ->> 'ARN', ''), nullif(r ->> 'arn', ''))),
      lambda a: a IS NOT NULL) END AS resources,
  nullif(s3[1], '') AS bucket,
  nullif(s3[2], '') AS object_key,
  CAST(round(try_cast(ad[1] AS DOUBLE)) AS BIGINT) AS bytes_in,
  CAST(round(try_cast(ad[2] AS DOUBLE)) AS BIGINT) AS bytes_out,
  NULL::VARCHAR AS session_id,
  NULL::VARCHAR AS target,
  NULL::VARCHAR AS command,
  NULL::VARCHAR AS input,
  NULL::BIGINT AS keystrokes,
  NULL::DOUBLE AS keystroke_interval_ms_mean,
  NULL::DOUBLE AS keystroke_interval_ms_stddev,
  "requestParameters"::VARCHAR AS request,
  "responseElements"::VARCHAR AS response,
  nullif('{{' || concat_ws(',', {extra_parts}) || '}}', '{{}}') AS extra
FROM q
WHERE ts IS NOT NULL AND ev_name IS NOT NULL
"""


# ---------------------------------------------------------------------------
# DataFusion SQL -> DuckDB SQL.

TOKEN = re.compile(
    r"""(?P<str>'(?:[^']|'')*')
      |(?P<qid>"(?:[^"]|"")*")
      |(?P<num>\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)
      |(?P<id>[A-Za-z_][A-Za-z0-9_$]*)
      |(?P<ws>\s+)
      |(?P<op>.)""",
    re.S | re.X,
)

JSON_FUNCS = {
    "json_get_str": "th_str",
    "json_get_bool": "th_bool",
    "json_get_int": "th_int",
    "json_get_float": "th_float",
    "json_get_json": "th_json",
    "json_as_text": "th_text",
    "json_get": "th_get",
    "json_contains": "th_contains",
    "json_length": "th_length",
}
RENAMED = {
    "regexp_like": "regexp_matches",
    "array_has": "list_contains",
    "array_contains": "list_contains",
    "list_has": "list_contains",
}

# What the JSON functions of datafusion-functions-json return, in DuckDB:
# json_get_str only for a string value, json_get_bool for a boolean, ...
MACROS = r"""
CREATE OR REPLACE MACRO th_str(j, p) AS
  CASE WHEN json_type(j, p) = 'VARCHAR' THEN json_extract_string(j, p) END;
CREATE OR REPLACE MACRO th_bool(j, p) AS
  CASE WHEN json_type(j, p) = 'BOOLEAN' THEN CAST(json_extract(j, p) AS BOOLEAN) END;
CREATE OR REPLACE MACRO th_int(j, p) AS
  CASE WHEN json_type(j, p) IN ('BIGINT', 'UBIGINT') THEN TRY_CAST(json_extract(j, p) AS BIGINT) END;
CREATE OR REPLACE MACRO th_float(j, p) AS
  CASE WHEN json_type(j, p) IN ('BIGINT', 'UBIGINT', 'DOUBLE') THEN TRY_CAST(json_extract(j, p) AS DOUBLE) END;
CREATE OR REPLACE MACRO th_json(j, p) AS json_extract(j, p)::VARCHAR;
CREATE OR REPLACE MACRO th_text(j, p) AS json_extract_string(j, p);
CREATE OR REPLACE MACRO th_get(j, p) AS json_extract(j, p);
CREATE OR REPLACE MACRO th_contains(j, p) AS json_exists(j, p);
CREATE OR REPLACE MACRO th_length(j, p) AS
  CASE json_type(j, p) WHEN 'ARRAY' THEN json_array_length(j, p)
                       WHEN 'OBJECT' THEN len(json_keys(j, p)) END;
"""


class TranslateError(Exception):
    pass


def tokens(sql):
    out = []
    for m in TOKEN.finditer(sql):
        out.append((m.lastgroup, m.group()))
    return out


def json_path(args):
    """JSON path from the literal path arguments of a json_get_* call."""
    path = "$"
    for kind, text in args:
        if kind == "str":
            key = text[1:-1].replace("''", "'")
            if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
                path += "." + key
            else:
                path += '."' + key.replace("\\", "\\\\").replace('"', '\\"') + '"'
        elif kind == "num" and re.fullmatch(r"\d+", text):
            path += f"[{text}]"
        else:
            raise TranslateError(f"JSON path element {text!r} is not a string or integer literal")
    return sql_str(path)


def split_args(toks):
    """Splits a token list at top-level commas."""
    args, cur, depth = [], [], 0
    for t in toks:
        if t[0] == "op" and t[1] in "([":
            depth += 1
        elif t[0] == "op" and t[1] in ")]":
            depth -= 1
        if depth == 0 and t == ("op", ","):
            args.append(cur)
            cur = []
        else:
            cur.append(t)
    args.append(cur)
    return args


def strip_ws(toks):
    return [t for t in toks if t[0] != "ws"]


def translate_tokens(toks):
    out = []
    i = 0
    n = len(toks)
    while i < n:
        kind, text = toks[i]
        if kind == "id":
            low = text.lower()
            j = i + 1
            while j < n and toks[j][0] == "ws":
                j += 1
            is_call = j < n and toks[j] == ("op", "(")
            if is_call and (low in JSON_FUNCS or low in RENAMED):
                # find the matching parenthesis
                depth, k = 0, j
                while k < n:
                    if toks[k] == ("op", "("):
                        depth += 1
                    elif toks[k] == ("op", ")"):
                        depth -= 1
                        if depth == 0:
                            break
                    k += 1
                if k >= n:
                    raise TranslateError(f"unbalanced parentheses after {text}")
                args = split_args(toks[j + 1:k])
                if low in JSON_FUNCS:
                    if not strip_ws(args[0]):
                        raise TranslateError(f"{text} needs a JSON argument")
                    target = translate_tokens(args[0])
                    path_args = []
                    for a in args[1:]:
                        a = strip_ws(a)
                        if len(a) != 1:
                            raise TranslateError(f"{text}: path element {''.join(t[1] for t in a)!r} "
                                                 "is not a literal")
                        path_args.append(a[0])
                    out.append(f"{JSON_FUNCS[low]}({target}, {json_path(path_args)})")
                else:
                    inner = ", ".join(translate_tokens(a) for a in args)
                    out.append(f"{RENAMED[low]}({inner})")
                i = k + 1
                continue
        out.append(text)
        i += 1
    return "".join(out)


def translate(sql):
    """A trailhound (DataFusion) SQL expression as DuckDB SQL."""
    return "(" + translate_tokens(tokens(sql.strip())) + ")"


# ---------------------------------------------------------------------------
# Rule pieces.

UNITS = {"s": 1_000_000, "m": 60_000_000, "h": 3_600_000_000, "d": 86_400_000_000}
HOUR = 3_600_000_000


def period_us(text, what):
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd])\s*", str(text))
    if not m:
        raise TranslateError(f"{what} {text!r} is not a number followed by s, m, h or d")
    return int(float(m.group(1)) * UNITS[m.group(2)])


def utc_offset_us(text):
    if text is None:
        return 0
    s = str(text).strip()
    if s.upper() in ("UTC", "Z", ""):
        return 0
    m = re.fullmatch(r"([+-])(\d{1,2})(?::?(\d{2}))?", s)
    if not m:
        raise TranslateError(f"utc_offset {text!r} is not like +02:00")
    sign = -1 if m.group(1) == "-" else 1
    return sign * (int(m.group(2)) * 60 + int(m.group(3) or 0)) * 60_000_000


T = "epoch_us(event_time)"


def dedup_of(rule):
    d = rule.get("dedup") or {}
    keys = d.get("key") or ["principal"]
    for k in keys:
        if k not in MODEL_COLUMNS:
            raise TranslateError(f"dedup.key {k!r} is not a column")
    return keys, period_us(d.get("period", "1h"), "dedup.period")


def row_of(cols):
    return "row(" + ", ".join(cols) + ")" if len(cols) != 1 else f"row({cols[0]}, NULL)"


def text_part(name):
    """A baseline key or value part as text (NULL when empty or not derivable)."""
    n = name.strip()
    if n == "network":
        ip = "trim(source_ip)"
        return (f"CASE WHEN regexp_full_match({ip}, '(\\d{{1,3}})\\.(\\d{{1,3}})\\.(\\d{{1,3}})\\.(\\d{{1,3}})') "
                f"THEN regexp_extract({ip}, '^(\\d+\\.\\d+\\.\\d+)\\.', 1) || '.0/24' "
                f"WHEN strpos({ip}, ':') > 0 AND regexp_full_match({ip}, '[0-9A-Fa-f:.]+') "
                f"THEN lower(split_part({ip}, ':', 1) || ':' || split_part({ip}, ':', 2) || ':' "
                f"|| split_part({ip}, ':', 3)) || '::/48' END")
    if n == "user_agent_family":
        return ("nullif(left(lower(trim(ltrim(trim(split_part(user_agent, '/', 1)), '[('))), 64), '')")
    if n in MODEL_COLUMNS:
        return f"nullif(CAST({n} AS VARCHAR), '')"
    return f"nullif(CAST({translate(n)} AS VARCHAR), '')"


def key_expr(parts):
    """All parts non-empty: the key as one text; else NULL (the row is not learnt)."""
    texts = [text_part(p) for p in parts]
    if len(texts) == 1:
        return texts[0]
    return " || chr(31) || ".join(texts)  # || is NULL when any part is


def value_expr(parts):
    if [p.strip() for p in parts] == ["event_source", "event_name"]:
        src = text_part("event_source")
        return (f"(CASE WHEN ends_with({src}, '.amazonaws.com') THEN left({src}, length({src}) - 14) "
                f"ELSE {src} END) || ':' || {text_part('event_name')}")
    return " || ' / ' || ".join(text_part(p) for p in parts)


def as_list(v):
    if v is None:
        return []
    return [v] if isinstance(v, str) else list(v)


# ---------------------------------------------------------------------------
# One query per rule; each returns (rows, hits, alerts):
# rows matching `where`, candidates (matches, windows, sequences, findings),
# alerts after dedup.

def single_sql(rule, where):
    keys, period = dedup_of(rule)
    dk = row_of(keys + [f"{T} // {period}"]) if keys else f"{T} // {period}"
    return f"SELECT count(*), count(*), count(DISTINCT {dk}) FROM events WHERE {where}"


def window_sql(rule, where):
    w = rule["window"]
    group = w.get("group_by") or []
    if not group:
        raise TranslateError("window.group_by is empty")
    for g in group:
        if g not in MODEL_COLUMNS:
            raise TranslateError(f"window.group_by {g!r} is not a column")
    size = period_us(w["size"], "window.size")
    slide = period_us(w["slide"], "window.slide") if w.get("slide") else size
    if size % slide:
        raise TranslateError("window.size is not a multiple of slide")
    panes = size // slide
    having = translate(w["having"])
    show = [translate(s) for s in (w.get("show") or [])]
    keys, period = dedup_of(rule)
    notnull = " AND ".join(f"{g} IS NOT NULL" for g in group)
    gcols = ", ".join(group)
    if panes == 1:
        expand = f"SELECT *, {T} // {size} AS win FROM m"
    else:
        expand = (f"SELECT *, {T} // {slide} - k AS win "
                  f"FROM m, (SELECT unnest(range({panes})) AS k) panes")
    show_sel = "".join(f", {s} AS show{i}" for i, s in enumerate(show))
    return f"""
WITH m AS MATERIALIZED (SELECT * FROM events WHERE {where} AND {notnull}),
x AS ({expand}),
w AS (
  SELECT {gcols}, win, min({T}) AS first_t, arg_min({row_of(keys)}, {T}) AS dk{show_sel}
  FROM x GROUP BY {gcols}, win HAVING {having}
)
SELECT (SELECT count(*) FROM m), count(*), count(DISTINCT row(dk, first_t // {period})) FROM w
"""


def sequence_sql(rule, where):
    s = rule["sequence"]
    by = s.get("by") or []
    if not by:
        raise TranslateError("sequence.by is empty")
    within = period_us(s["within"], "sequence.within")
    steps, absent = [], None
    for i, st in enumerate(s.get("steps") or []):
        if "absent" in st:
            if i + 1 != len(s["steps"]):
                raise TranslateError("an absence step must be last")
            absent = translate(st["absent"])
        else:
            steps.append(translate(st["where"]))
    if len(steps) < 2:
        raise TranslateError("a sequence needs at least 2 steps")
    keys, period = dedup_of(rule)
    key = key_expr(by)
    flags = ", ".join(f"({c}) IS TRUE AS s{i + 1}" for i, c in enumerate(steps))
    any_flag = " OR ".join(f"s{i + 1}" for i in range(len(steps)))
    if absent:
        flags += f", ({absent}) IS TRUE AS sa"
        any_flag += " OR sa"
    ctes = [
        f"m0 AS MATERIALIZED (SELECT {key} AS k, {T} AS t, {row_of(keys)} AS dk, {flags} "
        f"FROM events WHERE {where})",
        f"m AS (SELECT * FROM m0 WHERE k IS NOT NULL AND ({any_flag}))",
        "l1 AS (SELECT *, CASE WHEN s1 THEN t END AS st1 FROM m)",
    ]
    for lvl in range(2, len(steps) + 1):
        ctes.append(
            f"p{lvl} AS (SELECT *, CASE WHEN s{lvl} THEN last_value(st{lvl - 1} IGNORE NULLS) OVER ("
            f"PARTITION BY k ORDER BY t, s{lvl} ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) END "
            f"AS prev{lvl} FROM l{lvl - 1})")
        ctes.append(
            f"l{lvl} AS (SELECT *, CASE WHEN prev{lvl} IS NOT NULL AND t - prev{lvl} <= {within} "
            f"THEN prev{lvl} END AS st{lvl} FROM p{lvl})")
    last = len(steps)
    ctes.append(
        f"done AS (SELECT k, st{last} AS st, arg_min(dk, t) AS dk FROM l{last} "
        f"WHERE st{last} IS NOT NULL GROUP BY k, st{last})")
    final = "done"
    if absent:
        ctes.append(
            "kept AS (SELECT * FROM done d WHERE NOT EXISTS (SELECT 1 FROM m a WHERE a.sa "
            f"AND a.k = d.k AND a.t >= d.st AND a.t <= d.st + {within}))")
        final = "kept"
    return ("WITH " + ",\n".join(ctes) +
            f"\nSELECT (SELECT count(*) FROM m0 WHERE k IS NOT NULL), count(*), "
            f"count(DISTINCT row(dk, st // {period})) FROM {final}")


def correlate_sql(rule, where):
    c = rule["correlate"]
    link = translate(c["link"])
    first = translate(c["first"])
    then = translate(c["then"])
    within = period_us(c["within"], "correlate.within")
    _, period = dedup_of(rule)
    return f"""
WITH m AS MATERIALIZED (
  SELECT {link} AS link, {T} AS t, ({first}) IS TRUE AS f, ({then}) IS TRUE AS th
  FROM events WHERE {where}
),
hit AS (
  SELECT * FROM m h WHERE h.th AND h.link IS NOT NULL AND EXISTS (
    SELECT 1 FROM m f WHERE f.f AND f.link = h.link AND f.t <= h.t AND f.t >= h.t - {within})
)
SELECT (SELECT count(*) FROM m), count(*), count(DISTINCT row(link, t // {period})) FROM hit
"""


def keyed_values(key, of, dk, where):
    """The CTEs `m` (every matching row: key, value, time, dedup key) and `l`
    (those with both a key and a value) that new_value and rare start from."""
    return f"""WITH m AS MATERIALIZED (
  SELECT {key} AS k, {value_expr(of)} AS v, {T} AS t, {dk} AS dk FROM events WHERE {where}
),
l AS (SELECT * FROM m WHERE k IS NOT NULL AND v IS NOT NULL),"""


def baseline_sql(rule, where):
    b = rule["baseline"]
    kind = b["kind"]
    by = b.get("by") or ["principal"]
    learning = period_us(b.get("learning", "7d"), "baseline.learning")
    keys, period = dedup_of(rule)
    key = key_expr(by)
    dk = row_of(keys)
    if kind == "new_value":
        of = as_list(b.get("of"))
        if not of:
            raise TranslateError("new_value needs `of`")
        min_history = int(b.get("min_history", 50))
        return f"""
{keyed_values(key, of, dk, where)}
r AS (
  SELECT *, min(t) OVER (PARTITION BY k) AS first_t,
         row_number() OVER (PARTITION BY k ORDER BY t) - 1 AS events_before,
         row_number() OVER (PARTITION BY k, v ORDER BY t) AS nth
  FROM l
),
new AS (
  SELECT *, row_number() OVER (PARTITION BY k ORDER BY t) AS value_index FROM r WHERE nth = 1
),
hit AS (
  SELECT * FROM new WHERE value_index <= 257 AND t - first_t >= {learning}
    AND events_before >= {min_history}
)
SELECT (SELECT count(*) FROM m), count(*), count(DISTINCT row(dk, t // {period})) FROM hit
"""
    if kind == "unusual_hour":
        min_history = int(b.get("min_history", 50))
        ratio = float(b.get("rare_percent", 1)) / 100.0
        off = utc_offset_us(b.get("utc_offset"))
        return f"""
WITH m AS MATERIALIZED (
  SELECT {key} AS k, {T} AS t, {dk} AS dk FROM events WHERE {where}
),
l AS (SELECT *, (((t + {off}) // {HOUR}) % 24 + 24) % 24 AS hour FROM m WHERE k IS NOT NULL),
r AS (
  SELECT *, min(t) OVER (PARTITION BY k) AS first_t,
         row_number() OVER (PARTITION BY k ORDER BY t) - 1 AS events_before,
         row_number() OVER (PARTITION BY k, hour ORDER BY t) - 1 AS seen
  FROM l
),
hit AS (
  SELECT * FROM r WHERE (seen = 0 OR seen < {ratio} * events_before)
    AND t - first_t >= {learning} AND events_before >= {min_history}
)
SELECT (SELECT count(*) FROM m), count(*), count(DISTINCT row(dk, t // {period})) FROM hit
"""
    if kind == "rate":
        min_history = int(b.get("min_history", 24))
        factor = float(b.get("factor", 10))
        min_value = float(b.get("min_value", 100))
        off = utc_offset_us(b.get("utc_offset"))
        binlen = period_us(b.get("window", "1h"), "baseline.window")
        measure = str(b.get("measure", "count")).strip()
        low = measure.lower()
        if low in ("count", "count(*)"):
            val, agg, need = "NULL", "count(*)", "TRUE"
        else:
            head, _, rest = measure.partition("(")
            inner = rest[:-1].strip() if rest.endswith(")") else ""
            if not inner:
                raise TranslateError(f"measure {measure!r} is not count, count_distinct(x) or sum(x)")
            head = head.strip().lower()
            if head == "count_distinct":
                val, agg, need = text_part(inner), "count(DISTINCT v)", "v IS NOT NULL"
            elif head == "sum":
                expr = inner if inner in MODEL_COLUMNS else translate(inner)
                val, agg, need = f"CAST({expr} AS DOUBLE)", "sum(v)", "v IS NOT NULL AND isfinite(v)"
            else:
                raise TranslateError(f"measure {measure!r} is not count, count_distinct(x) or sum(x)")
        banded = binlen < 6 * HOUR
        band = (f"((((bin * {binlen} + {off}) // {HOUR}) % 24 + 24) % 24) // 6" if banded else "0")
        decay = "ln(0.98)"
        return f"""
WITH m AS MATERIALIZED (
  SELECT {key} AS k, {val} AS v, {T} AS t, {dk} AS dk FROM events WHERE {where}
),
l AS (SELECT *, t // {binlen} AS bin FROM m WHERE k IS NOT NULL AND {need}),
bins AS (
  SELECT k, bin, {agg} AS value, min(t) AS bin_first, max(t) AS bin_last,
         arg_min(dk, t) AS dk
  FROM l GROUP BY k, bin
),
b2 AS (
  SELECT *, {band} AS band,
         min(bin_first) OVER (PARTITION BY k) AS key_first,
         row_number() OVER (PARTITION BY k ORDER BY bin) - 1 AS history
  FROM bins
),
b3 AS (
  SELECT *, row_number() OVER (PARTITION BY k, band ORDER BY bin) - 1 AS j FROM b2
),
b4 AS (
  SELECT *, max(CASE WHEN value > 0 THEN ln(value) - j * {decay} END) OVER (
           PARTITION BY k, band ORDER BY bin ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS lm
  FROM b3
),
hit AS (
  SELECT * FROM b4
  WHERE value > {factor} * coalesce(exp(lm + (j - 1) * {decay}), 0)
    AND value >= {min_value} AND history >= {min_history} AND bin_last - key_first >= {learning}
)
SELECT (SELECT count(*) FROM m), count(*), count(DISTINCT row(dk, bin_first // {period})) FROM hit
"""
    if kind == "rare":
        of = as_list(b.get("of"))
        if not of:
            raise TranslateError("rare needs `of`")
        below = int(b.get("below", 3))
        return f"""
{keyed_values(key, of, dk, where)}
holders AS (SELECT v, k, min(t) AS t, arg_min(dk, t) AS dk FROM l GROUP BY v, k),
r AS (SELECT *, row_number() OVER (PARTITION BY v ORDER BY t) AS nth FROM holders),
hit AS (
  SELECT * FROM r WHERE nth < {below} AND t - (SELECT min(t) FROM l) >= {learning}
)
SELECT (SELECT count(*) FROM m), count(*), count(DISTINCT row(dk, t // {period})) FROM hit
"""
    raise TranslateError(f"unknown baseline kind {kind!r}")


def rule_kind(rule):
    for k in ("window", "sequence", "baseline", "correlate"):
        if rule.get(k):
            return k
    return "single"


def rule_sql(rule):
    where = translate(rule["where"])
    kind = rule_kind(rule)
    return kind, {
        "single": single_sql,
        "window": window_sql,
        "sequence": sequence_sql,
        "baseline": baseline_sql,
        "correlate": correlate_sql,
    }[kind](rule, where)


def load_rules(folder):
    files = sorted(glob.glob(os.path.join(folder, "**", "*.yaml"), recursive=True) +
                   glob.glob(os.path.join(folder, "**", "*.yml"), recursive=True))
    rules, skipped = [], []
    for f in files:
        base = os.path.basename(f)
        if base.endswith((".tests.yaml", ".tests.yml")):
            continue
        with open(f, encoding="utf-8") as fh:
            doc = yaml.safe_load(fh)
        if not isinstance(doc, dict):
            continue
        if "detection" in doc:
            skipped.append((base, "Sigma rule (not translated)"))
            continue
        if doc.get("enabled") is False:
            skipped.append((doc.get("id", base), "enabled: false"))
            continue
        if "grant" in (doc.get("tags") or []):
            # Their columns come from the detector's grant table, built
            # from grant events as they stream; SQL over one file has no
            # equivalent. trailhound still runs them, so the comparison
            # only costs trailhound.
            skipped.append((doc.get("id", base), "grant rule (needs the grant table)"))
            continue
        doc.setdefault("id", os.path.splitext(base)[0])
        rules.append(doc)
    return rules, skipped


# ---------------------------------------------------------------------------


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--input", required=True, help="CloudTrail JSON lines")
    ap.add_argument("--rules", required=True, help="rule folder (rules/pack)")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--json", action="store_true", help="end with one JSON summary line")
    ap.add_argument("--per-rule", action="store_true", help="print every rule's counts and time")
    ap.add_argument("--show-sql", metavar="RULE_ID", help="print the SQL of one rule and exit")
    args = ap.parse_args(argv)

    rules, skipped = load_rules(args.rules)
    if args.show_sql:
        for r in rules:
            if r["id"] == args.show_sql:
                print(rule_sql(r)[1])
                return 0
        print(f"no rule {args.show_sql}", file=sys.stderr)
        return 2

    start = time.perf_counter()
    con = duckdb.connect(":memory:")
    con.execute(f"SET threads = {int(args.threads)}")
    con.execute("SET preserve_insertion_order = false")
    con.execute("SET TimeZone = 'UTC'")
    for stmt in MACROS.split(";"):
        if stmt.strip():
            con.execute(stmt)
    con.execute(load_sql(os.path.abspath(args.input)))
    records = con.execute("SELECT count(*) FROM events").fetchone()[0]
    load_s = time.perf_counter() - start

    results, failed = [], []
    kinds = {}
    for r in rules:
        t0 = time.perf_counter()
        try:
            kind, sql = rule_sql(r)
            rows, hits, alerts = con.execute(sql).fetchone()
        except (TranslateError, duckdb.Error, KeyError, ValueError) as e:
            failed.append({"rule": r["id"], "error": f"{type(e).__name__}: {e}".splitlines()[0][:300]})
            continue
        dt = time.perf_counter() - t0
        kinds[kind] = kinds.get(kind, 0) + 1
        results.append({"rule": r["id"], "kind": kind, "rows": rows, "hits": hits,
                        "alerts": alerts, "seconds": round(dt, 4)})
    total_s = time.perf_counter() - start
    rules_s = total_s - load_s
    con.close()

    if args.per_rule:
        print(f"{'RULE':58} {'KIND':9} {'ROWS':>9} {'HITS':>7} {'ALERTS':>6} {'SECONDS':>8}")
        for x in results:
            print(f"{x['rule']:58} {x['kind']:9} {x['rows']:9} {x['hits']:7} {x['alerts']:6} "
                  f"{x['seconds']:8.3f}")
    print(f"input: {args.input}")
    print(f"records: {records}")
    print(f"threads: {args.threads}")
    print(f"rules run: {len(results)} ({', '.join(f'{k} {v}' for k, v in sorted(kinds.items()))})")
    print(f"rules skipped: {len(skipped)}" + "".join(f"\n  {a}: {b}" for a, b in skipped))
    print(f"rules failed: {len(failed)}" + "".join(f"\n  {x['rule']}: {x['error']}" for x in failed))
    print(f"rules with alerts: {sum(1 for x in results if x['alerts'])}, "
          f"alerts: {sum(x['alerts'] for x in results)}")
    print(f"load seconds: {load_s:.3f}")
    print(f"rules seconds: {rules_s:.3f}")
    print(f"total seconds: {total_s:.3f}")
    print(f"records/s: {records / total_s:,.0f}")
    if args.json:
        print(json.dumps({
            "engine": "duckdb",
            "duckdb_version": duckdb.__version__,
            "input": args.input,
            "records": records,
            "threads": args.threads,
            "rules_run": len(results),
            "rules_failed": failed,
            "rules_skipped": [{"rule": a, "reason": b} for a, b in skipped],
            "alerts": sum(x["alerts"] for x in results),
            "load_seconds": round(load_s, 3),
            "rules_seconds": round(rules_s, 3),
            "total_seconds": round(total_s, 3),
            "records_per_second": round(records / total_s, 1) if total_s else None,
            "per_rule": results,
        }))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
