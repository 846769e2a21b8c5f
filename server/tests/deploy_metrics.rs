//! Every metric that `deploy/prometheus/rules.yml` and
//! `deploy/grafana/mscribe.json` query exists in the `/metrics` of a real
//! `mscribe serve`, so that renaming a metric fails here, not on a
//! dashboard in production.

use std::collections::BTreeSet;
use std::path::Path;

mod common;

fn deploy(path: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy").join(path);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The metric names a PromQL expression reads: its identifiers outside
/// quoted strings, less functions, keywords and label names.
fn metric_names(expr: &str) -> Vec<String> {
    const NOT_METRICS: &[&str] = &[
        "sum",
        "max",
        "min",
        "avg",
        "count",
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "rate",
        "increase",
        "irate",
        "histogram_quantile",
        "absent",
        "and",
        "or",
        "unless",
        "bool",
        "offset",
        "label_values",
        "time",
    ];
    let mut names = Vec::new();
    let mut chars = expr.char_indices().peekable();
    let mut depth_braces = 0;
    let mut depth_by = false;
    while let Some((i, c)) = chars.next() {
        match c {
            '"' | '\'' | '`' => {
                // Skip the string (escapes included).
                while let Some((_, d)) = chars.next() {
                    if d == '\\' {
                        chars.next();
                    } else if d == c {
                        break;
                    }
                }
            }
            '{' => depth_braces += 1,
            '}' => depth_braces -= 1,
            '[' => {
                // A range such as [5m] or [$__rate_interval].
                for (_, d) in chars.by_ref() {
                    if d == ']' {
                        break;
                    }
                }
            }
            ')' => depth_by = false,
            c if c.is_ascii_digit() => {
                // A number or a duration such as 5m: not a name.
                while chars.peek().is_some_and(|&(_, d)| d.is_ascii_alphanumeric() || d == '.') {
                    chars.next();
                }
            }
            c if c.is_ascii_alphabetic() || c == '_' || c == '$' => {
                let mut end = i + c.len_utf8();
                while let Some(&(j, d)) = chars.peek() {
                    if d.is_ascii_alphanumeric() || d == '_' || d == ':' {
                        end = j + d.len_utf8();
                        chars.next();
                    } else {
                        break;
                    }
                }
                let word = &expr[i..end];
                if ["by", "without", "on", "ignoring", "group_left", "group_right"].contains(&word)
                {
                    depth_by = true;
                }
                // Label names: inside {...} or a by/without (...) list.
                if depth_braces > 0 || (depth_by && !NOT_METRICS.contains(&word)) {
                    continue;
                }
                if !NOT_METRICS.contains(&word) && !word.starts_with('$') {
                    names.push(word.to_owned());
                }
            }
            _ => {}
        }
    }
    names
}

/// The names a scrape stores for each metric family of an OpenMetrics text:
/// `x_total` for a counter `x`, `x_bucket`, `x_sum` and `x_count` for a
/// histogram, `x` for a gauge.
fn scraped_names(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else { continue };
        let (name, kind) = rest.split_once(' ').unwrap();
        match kind {
            "counter" => {
                out.insert(format!("{name}_total"));
            }
            "histogram" => {
                for s in ["bucket", "sum", "count"] {
                    out.insert(format!("{name}_{s}"));
                }
            }
            _ => {
                out.insert(name.to_owned());
            }
        }
    }
    out
}

/// The expressions of the rules file and of the dashboard's targets and variables.
fn queried_exprs() -> Vec<(String, String)> {
    let mut out = Vec::new();
    let rules: serde_norway::Value =
        serde_norway::from_str(&deploy("prometheus/rules.yml")).unwrap();
    for group in rules["groups"].as_sequence().unwrap() {
        for rule in group["rules"].as_sequence().unwrap() {
            let name = rule["alert"].as_str().unwrap();
            out.push((format!("rules.yml {name}"), rule["expr"].as_str().unwrap().to_owned()));
        }
    }
    let dash: serde_json::Value = serde_json::from_str(&deploy("grafana/mscribe.json")).unwrap();
    for panel in dash["panels"].as_array().unwrap() {
        let title = panel["title"].as_str().unwrap();
        for t in panel["targets"].as_array().unwrap() {
            out.push((format!("mscribe.json {title:?}"), t["expr"].as_str().unwrap().to_owned()));
        }
    }
    for var in dash["templating"]["list"].as_array().unwrap() {
        if let Some(q) = var["query"]["query"].as_str() {
            // label_values(METRIC, LABEL): the metric is the query.
            let q = q.strip_prefix("label_values(").and_then(|r| r.split(',').next()).unwrap_or(q);
            out.push((format!("mscribe.json variable {}", var["name"]), q.to_owned()));
        }
    }
    out
}

#[test]
fn promql_names_are_read_from_expressions() {
    let e = r#"histogram_quantile(0.99, sum by (job, le) (rate(mscribe_job_lateness_seconds_bucket{instance=~"$i", status="x"}[$__rate_interval]))) > 30"#;
    assert_eq!(metric_names(e), ["mscribe_job_lateness_seconds_bucket"]);
    assert_eq!(metric_names(r#"up{job="mscribe"} == 0"#), ["up"]);
    assert_eq!(metric_names("max by (instance) (a_b) / on (job) c offset 5m"), ["a_b", "c"],);
}

#[tokio::test]
async fn every_metric_the_dashboard_and_rules_query_is_served() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("m.db").display());
    let srv = common::Server::start(dir.path(), &common::base_env(dir.path(), &db));
    let r = srv.req("GET", "/metrics", None).await;
    assert_eq!(r.status, 200);
    let text = String::from_utf8_lossy(&r.body);
    // Every job's series exist at zero before it runs: a first failure is an increase.
    assert!(
        text.contains("mscribe_job_outcomes_total{job=\"database-backup\",status=\"failed\"} 0"),
        "{text}"
    );
    let served = scraped_names(&text);
    assert!(served.len() > 10, "too few metrics served: {served:?}");

    let exprs = queried_exprs();
    assert!(exprs.len() >= 15, "the rules and dashboard have {} queries", exprs.len());
    let mut missing = Vec::new();
    let mut checked = BTreeSet::new();
    for (origin, expr) in &exprs {
        let names = metric_names(expr);
        assert!(!names.is_empty(), "{origin}: no metric in {expr}");
        for name in names {
            // `up` is Prometheus's own, per scrape target.
            if name == "up" {
                continue;
            }
            if served.contains(&name) {
                checked.insert(name);
            } else {
                missing.push(format!("{origin}: {name}"));
            }
        }
    }
    assert!(missing.is_empty(), "queried but not in /metrics:\n{}", missing.join("\n"));
    assert!(checked.len() >= 8, "only {checked:?} checked");
    srv.terminate();
}
