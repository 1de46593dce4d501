//! Native Sigma rules: each modifier and condition form matches as the Sigma
//! specification says, refusals name the rule, field and feature, and the
//! SigmaHQ CloudTrail rules load and compile.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::Array;
use datafusion::common::DFSchema;
use datafusion::logical_expr::simplify::SimplifyContext;
use datafusion::optimizer::simplify_expressions::ExprSimplifier;
use datafusion::prelude::SessionContext;
use trailhound_core::{Event, event_schema, events_to_batch};
use trailhound_rules::sigma::{self, SigmaConfig};
use trailhound_rules::{Compiler, LoadOptions, RuleSet};

/// A Sigma rule with the given `detection` body (indented two spaces).
fn rule_text(detection: &str) -> String {
    format!(
        "title: Test rule\nid: 0b5c3c1e-1111-4222-8333-944444444444\nstatus: test\n\
         description: Finds things.\nauthor: Someone\nreferences:\n  - https://example.com/x\n\
         tags:\n  - attack.t1078\nlogsource:\n  product: aws\n  service: cloudtrail\n\
         detection:\n{detection}\nfalsepositives:\n  - Admins\n  - Scripts\nlevel: high\n"
    )
}

/// Writes `text` as `<dir>/<name>.yml` and loads it alone.
fn load(name: &str, text: &str) -> Result<RuleSet, String> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(format!("{name}.yml"));
    std::fs::write(&path, text).unwrap();
    RuleSet::load(&LoadOptions {
        paths: vec![path],
        no_builtin: true,
        ..LoadOptions::default()
    })
    .map_err(|e| e.to_string())
}

/// Which events the detection matches.
fn hits(detection: &str, events: &[Event]) -> Vec<bool> {
    let set = load("t", &rule_text(detection)).unwrap_or_else(|e| panic!("{e}"));
    let rule = &set.rules()[0];
    let batch = events_to_batch(events);
    let out = rule
        .evaluate(&batch)
        .unwrap_or_else(|e| panic!("{e}\nSQL: {}", rule.sql));
    (0..out.len()).map(|i| out.value(i)).collect()
}

/// The load error for a detection.
fn refusal(detection: &str) -> String {
    match load("bad_rule", &rule_text(detection)) {
        Ok(set) => panic!("accepted: {}", set.rules()[0].sql),
        Err(e) => e,
    }
}

fn named(name: &str) -> Event {
    Event {
        event_name: name.into(),
        event_source: "iam.amazonaws.com".into(),
        ..Default::default()
    }
}

fn agent(ua: &str) -> Event {
    Event {
        user_agent: Some(ua.into()),
        ..named("X")
    }
}

fn request(json: &str) -> Event {
    Event {
        request: Some(json.into()),
        ..named("X")
    }
}

#[test]
fn metadata_is_kept() {
    let set = load(
        "aws_thing",
        &rule_text("  selection:\n    eventName: X\n  condition: selection"),
    )
    .unwrap();
    let r = &set.rules()[0];
    assert_eq!(r.id, "sigma-aws_thing");
    assert_eq!(r.title, "Test rule");
    assert_eq!(r.severity, trailhound_core::Severity::High);
    assert_eq!(r.tags, ["attack.t1078"]);
    assert!(
        r.description.starts_with("Finds things."),
        "{}",
        r.description
    );
    assert!(r.description.contains("False positives: Admins; Scripts"));
    assert!(r.description.contains("Author: Someone"));
    assert!(
        r.description
            .contains("Sigma rule 0b5c3c1e-1111-4222-8333-944444444444")
    );
    assert_eq!(r.sql, "COALESCE(event_name ILIKE 'X', FALSE)");
}

#[test]
fn plain_values_are_whole_case_insensitive_with_wildcards() {
    let ev = [
        named("StopLogging"),
        named("stoplogging"),
        named("StopLoggingNow"),
        named("Stop"),
    ];
    let d = |v: &str| format!("  sel:\n    eventName: '{v}'\n  condition: sel");
    assert_eq!(hits(&d("StopLogging"), &ev), [true, true, false, false]);
    assert_eq!(hits(&d("stop*"), &ev), [true, true, true, true]);
    assert_eq!(hits(&d("Stop?ogging"), &ev), [true, true, false, false]);
    assert_eq!(hits(&d("*Now"), &ev), [false, false, true, false]);
}

#[test]
fn escapes_and_sql_wildcards_are_literal() {
    let ev = [
        agent("a*b"),
        agent("axb"),
        agent("a?b"),
        agent(r"a\b"),
        agent("50%_off"),
        agent("50xyoff"),
        agent("it's"),
    ];
    let d = |v: &str| format!("  sel:\n    userAgent: '{v}'\n  condition: sel");
    assert_eq!(
        hits(&d(r"a\*b"), &ev),
        [true, false, false, false, false, false, false]
    );
    assert_eq!(
        hits(&d(r"a\?b"), &ev),
        [false, false, true, false, false, false, false]
    );
    // `\\` is one backslash; a lone backslash before another character is literal.
    assert_eq!(
        hits(&d(r"a\\b"), &ev),
        [false, false, false, true, false, false, false]
    );
    assert_eq!(
        hits(&d(r"a\b"), &ev),
        [false, false, false, true, false, false, false]
    );
    assert_eq!(
        hits(&d("50%_off"), &ev),
        [false, false, false, false, true, false, false]
    );
    // A single quote (doubled in YAML) is quoted safely in SQL.
    assert_eq!(
        hits(&d("it''s"), &ev),
        [false, false, false, false, false, false, true]
    );
}

#[test]
fn contains_startswith_endswith_and_lists() {
    let ev = [
        agent("S3 Browser 9.1"),
        agent("aws-cli/2.0"),
        agent("Boto3"),
    ];
    let d = |m: &str, v: &str| format!("  sel:\n    userAgent|{m}: {v}\n  condition: sel");
    assert_eq!(hits(&d("contains", "'browser'"), &ev), [true, false, false]);
    assert_eq!(hits(&d("startswith", "'AWS-'"), &ev), [false, true, false]);
    assert_eq!(hits(&d("endswith", "'3'"), &ev), [false, false, true]);
    assert_eq!(hits(&d("endswith", "'9'"), &ev), [false, false, false]);
    // A value list is ORed; with `all` ANDed.
    assert_eq!(
        hits(&d("contains", "['cli', 'boto']"), &ev),
        [false, true, true]
    );
    assert_eq!(
        hits(&d("contains|all", "['s3', 'browser']"), &ev),
        [true, false, false]
    );
    assert_eq!(
        hits(&d("contains|all", "['s3', 'cli']"), &ev),
        [false, false, false]
    );
}

#[test]
fn maps_and_lists_of_maps() {
    let ev = [
        named("CreateUser"),
        named("DeleteUser"),
        agent("S3 Browser"),
    ];
    let map =
        "  sel:\n    eventSource: iam.amazonaws.com\n    eventName: CreateUser\n  condition: sel";
    assert_eq!(hits(map, &ev), [true, false, false]);
    let list =
        "  sel:\n    - eventName: DeleteUser\n    - userAgent|contains: browser\n  condition: sel";
    assert_eq!(hits(list, &ev), [false, true, true]);
}

#[test]
fn null_is_absence_and_not_matches_missing_fields() {
    let failed = Event {
        error_code: Some("AccessDenied".into()),
        ..named("X")
    };
    let ev = [named("X"), failed];
    assert_eq!(
        hits("  sel:\n    errorCode: null\n  condition: sel", &ev),
        [true, false]
    );
    assert_eq!(
        hits(
            "  sel:\n    errorCode: AccessDenied\n  condition: not sel",
            &ev
        ),
        [true, false]
    );
    // A JSON field that is absent does not match, so `not` of it does.
    assert_eq!(
        hits(
            "  sel:\n    eventType: AwsApiCall\n  condition: not sel",
            &ev
        ),
        [true, true]
    );
}

#[test]
fn json_fields_are_read_as_text() {
    let ev = [
        request(r#"{"userName":"bob","enable":false,"count":3,"nested":{"x":"Y"}}"#),
        request(r#"{"userName":"alice","enable":true,"count":3.0}"#),
        named("X"),
    ];
    let d = |f: &str, v: &str| format!("  sel:\n    requestParameters.{f}: {v}\n  condition: sel");
    assert_eq!(hits(&d("userName", "BOB"), &ev), [true, false, false]);
    assert_eq!(hits(&d("enable", "'false'"), &ev), [true, false, false]);
    assert_eq!(hits(&d("enable", "true"), &ev), [false, true, false]);
    // Numbers compare as numbers: 3 equals 3.0.
    assert_eq!(hits(&d("count", "3"), &ev), [true, true, false]);
    assert_eq!(hits(&d("nested.x", "y"), &ev), [true, false, false]);
    // The whole field is its JSON text.
    assert_eq!(
        hits(
            "  sel:\n    requestParameters|contains: '\"alice\"'\n  condition: sel",
            &ev
        ),
        [false, true, false]
    );
}

#[test]
fn keywords_search_the_text_columns() {
    let ev = [
        agent("evil-tool/1.0"),
        request(r#"{"policy":"EVIL"}"#),
        named("X"),
    ];
    assert_eq!(
        hits("  keywords:\n    - evil\n  condition: keywords", &ev),
        [true, true, false]
    );
    assert_eq!(
        hits("  keywords: 'tool/?.0'\n  condition: keywords", &ev),
        [true, false, false]
    );
}

#[test]
fn regular_expressions_are_case_sensitive_unless_flagged() {
    let ev = [agent("Boto3/1.2"), agent("boto3/1.2"), agent("x\nBoto3")];
    let d = |m: &str, v: &str| format!("  sel:\n    userAgent|{m}: '{v}'\n  condition: sel");
    assert_eq!(hits(&d("re", "^Boto3/"), &ev), [true, false, false]);
    assert_eq!(hits(&d("re|i", "^boto3/"), &ev), [true, true, false]);
    assert_eq!(hits(&d("re|m", "^Boto3$"), &ev), [false, false, true]);
    assert_eq!(hits(&d("re", "x.Boto3"), &ev), [false, false, false]);
    assert_eq!(hits(&d("re|s", "x.Boto3"), &ev), [false, false, true]);
    // Unanchored: a match anywhere.
    assert_eq!(hits(&d("re", "o3/1"), &ev), [true, true, false]);
}

#[test]
fn exists_checks_presence() {
    let ev = [
        request(r#"{"layers":null}"#),
        request(r#"{"other":1}"#),
        named("X"),
    ];
    let d = |f: &str, v: &str| format!("  sel:\n    {f}|exists: {v}\n  condition: sel");
    assert_eq!(
        hits(&d("requestParameters.layers", "true"), &ev),
        [true, false, false]
    );
    assert_eq!(
        hits(&d("requestParameters.layers", "false"), &ev),
        [false, true, true]
    );
    assert_eq!(
        hits(&d("requestParameters", "true"), &ev),
        [true, true, false]
    );
}

#[test]
fn fieldref_compares_two_fields() {
    let ev = [
        Event {
            principal_arn: Some("arn:aws:iam::1:user/Bob".into()),
            request: Some(r#"{"userName":"bob"}"#.into()),
            ..named("X")
        },
        Event {
            principal_arn: Some("bob".into()),
            request: Some(r#"{"userName":"BOB"}"#.into()),
            ..named("X")
        },
    ];
    let d = |m: &str| {
        format!("  sel:\n    userIdentity.arn|{m}: requestParameters.userName\n  condition: sel")
    };
    assert_eq!(hits(&d("fieldref"), &ev), [false, true]);
    assert_eq!(hits(&d("fieldref|cased"), &ev), [false, false]);
    assert_eq!(hits(&d("fieldref|endswith"), &ev), [true, true]);
    assert_eq!(hits(&d("fieldref|contains|cased"), &ev), [false, false]);
}

#[test]
fn base64_and_base64offset() {
    // "http://" base64-encoded inside longer texts at each of the three offsets.
    let ev = [
        request(r#"{"userData":"aHR0cDovL2V2aWw="}"#),
        request(r#"{"userData":"IGh0dHA6Ly9ldmls"}"#),
        request(r#"{"userData":"ICBodHRwOi8vZXZpbA=="}"#),
        request(r#"{"userData":"aGVsbG8="}"#),
    ];
    assert_eq!(
        hits(
            "  sel:\n    requestParameters.userData|base64offset|contains: 'http://'\n  condition: sel",
            &ev
        ),
        [true, true, true, false]
    );
    assert_eq!(
        hits(
            "  sel:\n    requestParameters.userData|base64: 'hello'\n  condition: sel",
            &ev
        ),
        [false, false, false, true]
    );
    // UTF-16LE before base64: "ab" is 61 00 62 00 -> "YQBiAA==".
    let wide = [request(r#"{"x":"YQBiAA=="}"#), request(r#"{"x":"YWI="}"#)];
    assert_eq!(
        hits(
            "  sel:\n    requestParameters.x|wide|base64: 'ab'\n  condition: sel",
            &wide
        ),
        [true, false]
    );
}

#[test]
fn windash_accepts_every_dash() {
    let ev = [
        agent("tool -flag"),
        agent("tool /flag"),
        agent("tool \u{2013}flag"),
        agent("tool \u{2014}flag"),
        agent("tool \u{2015}flag"),
        agent("tool +flag"),
        agent("TOOL -FLAG"),
    ];
    assert_eq!(
        hits(
            "  sel:\n    userAgent|windash|contains: ' -flag'\n  condition: sel",
            &ev
        ),
        [true, true, true, true, true, false, true]
    );
}

#[test]
fn numeric_comparisons() {
    let ev = [
        request(r#"{"n":5}"#),
        request(r#"{"n":"10"}"#),
        request(r#"{"n":"x"}"#),
        named("X"),
    ];
    let d =
        |m: &str, v: &str| format!("  sel:\n    requestParameters.n|{m}: {v}\n  condition: sel");
    assert_eq!(hits(&d("gt", "5"), &ev), [false, true, false, false]);
    assert_eq!(hits(&d("gte", "5"), &ev), [true, true, false, false]);
    assert_eq!(hits(&d("lt", "10"), &ev), [true, false, false, false]);
    assert_eq!(hits(&d("lte", "10.0"), &ev), [true, true, false, false]);
}

#[test]
fn cased_is_case_sensitive() {
    let ev = [agent("Boto3"), agent("boto3")];
    assert_eq!(
        hits("  sel:\n    userAgent|cased: Boto3\n  condition: sel", &ev),
        [true, false]
    );
    assert_eq!(
        hits(
            "  sel:\n    userAgent|contains|cased: oto\n  condition: sel",
            &ev
        ),
        [true, true]
    );
    assert_eq!(
        hits(
            "  sel:\n    userAgent|startswith|cased: B\n  condition: sel",
            &ev
        ),
        [true, false]
    );
}

#[test]
fn conditions() {
    let ev = [
        named("A"),
        named("B"),
        agent("bot"),
        Event {
            user_agent: Some("bot".into()),
            ..named("A")
        },
    ];
    let sels = "  sel_a:\n    eventName: A\n  sel_b:\n    eventName: B\n  \
                filter_bot:\n    userAgent: bot\n  _hidden:\n    eventName: nothing\n";
    let c = |cond: &str| hits(&format!("{sels}  condition: {cond}"), &ev);
    assert_eq!(c("sel_a"), [true, false, false, true]);
    assert_eq!(c("sel_a and not filter_bot"), [true, false, false, false]);
    assert_eq!(c("sel_a or sel_b"), [true, true, false, true]);
    assert_eq!(c("1 of sel_*"), [true, true, false, true]);
    assert_eq!(c("all of sel_*"), [false, false, false, false]);
    assert_eq!(
        c("(sel_a or sel_b) and filter_bot"),
        [false, false, false, true]
    );
    assert_eq!(
        c("sel_a or sel_b and filter_bot"),
        [true, false, false, true]
    );
    assert_eq!(c("not (sel_a or filter_bot)"), [false, true, false, false]);
    assert_eq!(c("1 of them"), [true, true, true, true]);
    // `them` leaves out identifiers starting with `_`.
    assert_eq!(c("all of them"), [false, false, false, false]);
    assert_eq!(c("2 of them"), [false, false, false, true]);
    assert_eq!(c("all of filter_*"), [false, false, true, true]);
    assert_eq!(c("not 1 of filter*"), [true, true, false, false]);
    // A list of conditions is ORed.
    assert_eq!(
        c("\n    - sel_b\n    - filter_bot"),
        [false, true, true, true]
    );
}

#[test]
fn cidr_is_planned_as_a_function_call() {
    let set = load(
        "c",
        &rule_text("  sel:\n    sourceIPAddress|cidr: 10.0.0.0/8\n  condition: sel"),
    );
    // `sigma_cidr_match` exists once `Compiler::new` calls `sigma::register`;
    // until then the rule is refused by the compiler, naming the function.
    match set {
        Ok(set) => assert_eq!(
            set.rules()[0].sql,
            "COALESCE(sigma_cidr_match(source_ip, '10.0.0.0/8'), FALSE)"
        ),
        Err(e) => assert!(e.contains("sigma_cidr_match"), "{e}"),
    }
}

/// Evaluates `sql` in a session with the JSON functions and the Sigma
/// functions registered, the way the rule compiler does.
fn eval_with_sigma_functions(sql: &str, events: &[Event]) -> Vec<bool> {
    let mut ctx = SessionContext::new();
    datafusion_functions_json::register_all(&mut ctx).unwrap();
    sigma::register(&mut ctx);
    let schema = DFSchema::try_from(event_schema().as_ref().clone()).unwrap();
    let expr = ctx.parse_sql_expr(sql, &schema).unwrap();
    let simplifier = ExprSimplifier::new(
        SimplifyContext::builder()
            .with_schema(Arc::new(schema.clone()))
            .build(),
    );
    let expr = simplifier
        .coerce(expr, &schema)
        .and_then(|e| simplifier.simplify(e))
        .unwrap();
    let phys = ctx.create_physical_expr(expr, &schema).unwrap();
    let batch = events_to_batch(events);
    let out = phys
        .evaluate(&batch)
        .unwrap()
        .into_array(batch.num_rows())
        .unwrap();
    let b = out
        .as_any()
        .downcast_ref::<arrow::array::BooleanArray>()
        .unwrap();
    (0..b.len()).map(|i| b.value(i)).collect()
}

fn spec_sql(detection: &str, config: &SigmaConfig) -> Result<String, String> {
    sigma::convert(&rule_text(detection), Path::new("r.yml"), config)
        .map(|s| s.predicate)
        .map_err(|e| e.to_string())
}

#[test]
fn cidr_matches_ipv4_and_ipv6() {
    let ip = |s: &str| Event {
        source_ip: Some(s.into()),
        ..named("X")
    };
    let ev = [
        ip("10.1.2.3"),
        ip("11.0.0.1"),
        ip("2001:db8::5"),
        ip("ec2.amazonaws.com"),
        named("X"),
    ];
    let sql = spec_sql(
        "  sel:\n    sourceIPAddress|cidr:\n      - 10.0.0.0/8\n      - 2001:db8::/32\n  condition: sel",
        &SigmaConfig::default(),
    )
    .unwrap();
    assert_eq!(
        eval_with_sigma_functions(&sql, &ev),
        [true, false, true, false, false]
    );
    let sql = spec_sql(
        "  sel:\n    sourceIPAddress|cidr: 10.0.0.0/8\n  condition: not sel",
        &SigmaConfig::default(),
    )
    .unwrap();
    assert_eq!(
        eval_with_sigma_functions(&sql, &ev),
        [false, true, true, true, true]
    );
    let e = spec_sql(
        "  sel:\n    sourceIPAddress|cidr: 10.0.0.0/40\n  condition: sel",
        &SigmaConfig::default(),
    )
    .unwrap_err();
    assert!(e.contains("cidr") && e.contains("sourceIPAddress"), "{e}");
}

#[test]
fn expand_uses_configured_placeholders_and_is_refused_without() {
    let detection = "  sel:\n    sourceIPAddress|expand: '%admin_ips%'\n  condition: sel";
    let mut config = SigmaConfig::default();
    config.placeholders.insert(
        "admin_ips".into(),
        vec!["192.0.2.1".into(), "198.51.100.*".into()],
    );
    let spec = sigma::convert(&rule_text(detection), Path::new("r.yml"), &config).unwrap();
    let rule = Compiler::new()
        .unwrap()
        .compile(spec, None)
        .unwrap_or_else(|e| panic!("{e}"));
    let ip = |s: &str| Event {
        source_ip: Some(s.into()),
        ..named("X")
    };
    let batch = events_to_batch(&[ip("192.0.2.1"), ip("198.51.100.7"), ip("192.0.2.2")]);
    let out = rule.evaluate(&batch).unwrap();
    assert_eq!(
        (0..3).map(|i| out.value(i)).collect::<Vec<_>>(),
        [true, true, false]
    );
    let e = refusal(detection);
    assert!(
        e.contains("sigma-bad_rule")
            && e.contains("sourceIPAddress")
            && e.contains("expand")
            && e.contains("admin_ips"),
        "{e}"
    );
}

#[test]
fn unsupported_features_are_refused_with_rule_field_and_feature() {
    let e = refusal("  sel:\n    eventName: X\n  condition: sel | count() > 5");
    assert!(
        e.contains("sigma-bad_rule") && e.contains("bad_rule.yml"),
        "{e}"
    );
    assert!(e.contains("pipe"), "{e}");
    let e = refusal("  sel:\n    eventName|fancy: X\n  condition: sel");
    assert!(
        e.contains("eventName|fancy") && e.contains("`fancy`"),
        "{e}"
    );
    let e = refusal("  sel:\n    eventTime: X\n  condition: sel");
    assert!(e.contains("eventTime"), "{e}");
    let e = refusal("  sel:\n    eventName: X\n  condition: nosuch");
    assert!(e.contains("nosuch") && e.contains("not defined"), "{e}");
    let e = refusal("  sel:\n    eventName: X\n  condition: 1 of filter_*");
    assert!(e.contains("filter_*"), "{e}");
    let e = refusal("  sel:\n    eventName: X\n  timeframe: 5m\n  condition: sel");
    assert!(e.contains("timeframe"), "{e}");
    let e = refusal("  sel:\n    eventName|re|x: X\n  condition: sel");
    assert!(e.contains("`x`"), "{e}");
    let e = refusal("  sel:\n    userAgent|wide|contains: X\n  condition: sel");
    assert!(e.contains("wide"), "{e}");
    let e = refusal("  sel:\n    requestParameters.n|gt: many\n  condition: sel");
    assert!(
        e.contains("requestParameters.n|gt") && e.contains("not a number"),
        "{e}"
    );
    let other = rule_text("  sel:\n    eventName: X\n  condition: sel").replace(
        "product: aws\n  service: cloudtrail",
        "product: windows\n  service: security",
    );
    let e = match load("win", &other) {
        Ok(_) => panic!("a windows rule was accepted"),
        Err(e) => e,
    };
    assert!(
        e.contains("sigma-win")
            && e.contains("product: windows")
            && e.contains("service: security"),
        "{e}"
    );
}

#[test]
fn generated_sql_never_splices_a_literal() {
    let sql = spec_sql(
        "  sel:\n    userAgent|contains: \"x') OR TRUE OR ('\"\n    requestParameters.a'b: 1\n  condition: sel",
        &SigmaConfig::default(),
    )
    .unwrap();
    assert!(sql.contains("'%x'') OR TRUE OR (''%'"), "{sql}");
    assert!(sql.contains("json_as_text(request, 'a''b')"), "{sql}");
    let ev = [agent("x') OR TRUE OR ('"), agent("y")];
    assert_eq!(
        hits(
            "  sel:\n    userAgent|contains: \"x') OR TRUE OR ('\"\n  condition: sel",
            &ev
        ),
        [true, false]
    );
}

fn sigmahq_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/sigma/cloudtrail")
}

#[test]
fn sigmahq_cloudtrail_rules_load_and_compile() {
    let dir = sigmahq_dir();
    if !dir.is_dir() {
        println!("skipped: {} is absent", dir.display());
        return;
    }
    let set = RuleSet::load(&LoadOptions {
        paths: vec![dir],
        no_builtin: true,
        ..LoadOptions::default()
    })
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(set.len(), 36);
    for r in set.rules() {
        assert!(r.id.starts_with("sigma-aws_"), "{}", r.id);
        println!("{}: {}", r.id, r.sql);
    }
}

#[test]
fn sigmahq_rules_match_what_they_describe() {
    let dir = sigmahq_dir();
    if !dir.is_dir() {
        println!("skipped: {} is absent", dir.display());
        return;
    }
    let set = RuleSet::load(&LoadOptions {
        paths: vec![dir],
        no_builtin: true,
        ..LoadOptions::default()
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let rule = |id: &str| {
        set.rules()
            .iter()
            .find(|r| r.id == id)
            .unwrap_or_else(|| panic!("no {id}"))
    };
    let check = |id: &str, events: &[Event]| -> Vec<bool> {
        let out = rule(id).evaluate(&events_to_batch(events)).unwrap();
        (0..out.len()).map(|i| out.value(i)).collect()
    };
    let root = |event_type: &str| Event {
        principal_type: "Root".into(),
        extra: Some(format!(
            r#"{{"eventType":"{event_type}","userIdentity":{{"type":"Root"}}}}"#
        )),
        ..named("ListUsers")
    };
    assert_eq!(
        check(
            "sigma-aws_root_account_usage",
            &[
                root("AwsApiCall"),
                root("AwsServiceEvent"),
                named("ListUsers")
            ]
        ),
        [true, false, false]
    );
    let gd = |name: &str, req: &str, err: Option<&str>| Event {
        event_source: "guardduty.amazonaws.com".into(),
        event_name: name.into(),
        request: Some(req.into()),
        error_code: err.map(str::to_string),
        ..Default::default()
    };
    assert_eq!(
        check(
            "sigma-aws_cloudtrail_guardduty_detector_deleted_or_updated",
            &[
                gd("DeleteDetector", "{}", None),
                gd("UpdateDetector", r#"{"enable":false}"#, None),
                gd("UpdateDetector", r#"{"enable":true}"#, None),
                gd("DeleteDetector", "{}", Some("AccessDenied")),
            ]
        ),
        [true, true, false, false]
    );
    let login = |mfa: &str, result: &str| Event {
        extra: Some(format!(
            r#"{{"additionalEventData":{{"MFAUsed":"{mfa}"}}}}"#
        )),
        response: Some(format!(r#"{{"ConsoleLogin":"{result}"}}"#)),
        ..named("ConsoleLogin")
    };
    assert_eq!(
        check(
            "sigma-aws_cloudtrail_console_login_success_without_mfa",
            &[
                login("No", "Success"),
                login("Yes", "Success"),
                login("No", "Failure")
            ]
        ),
        [true, false, false]
    );
    let profile = |arn: &str, user: &str| Event {
        principal_arn: Some(arn.into()),
        request: Some(format!(r#"{{"userName":"{user}"}}"#)),
        ..named("UpdateLoginProfile")
    };
    assert_eq!(
        check(
            "sigma-aws_update_login_profile",
            &[
                profile("arn:aws:iam::1:user/alice", "bob"),
                profile("bob", "bob")
            ]
        ),
        [true, false]
    );
}
