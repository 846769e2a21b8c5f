//! The deployment files of `deploy/` checked against the code: the systemd
//! unit (and `systemd-analyze verify`), the Containerfile and the
//! Kubernetes manifests agree with the configuration's keys, defaults and
//! command line. The Prometheus rules and the Grafana dashboard are checked
//! by `deploy_metrics.rs` and, with promtool, by `scripts/test.sh`.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;
use mscribe_server::cli::{Cli, Command};
use mscribe_server::config::{Config, OTHER_ENV_VARS, env_keys, is_postgres_url};
use serde_norway::Value;

mod common;

fn deploy(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy").join(path)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(deploy(path)).unwrap_or_else(|e| panic!("deploy/{path}: {e}"))
}

/// The first line of a deploy file states its role.
fn assert_role_line(path: &str, text: &str) {
    let first = text.lines().next().unwrap_or_default();
    assert!(first.starts_with("# ") && first.len() > 20, "deploy/{path}: no role line: {first:?}");
}

/// Every `MSCRIBE_*` variable a file sets is a config key or a known variable.
fn assert_known_vars<'a>(what: &str, names: impl IntoIterator<Item = &'a str>) {
    let keys = env_keys();
    for name in names {
        assert!(
            OTHER_ENV_VARS.contains(&name) || keys.iter().any(|k| k.var == name),
            "{what} sets {name}, which is no config key's variable"
        );
    }
}

/// The configuration that `toml` plus the variables `env` make, as `serve` reads it.
fn config_of(what: &str, toml: &str, env: &HashMap<String, String>) -> Config {
    Config::from_toml_str(toml, what, |k: &str| env.get(k).cloned())
        .unwrap_or_else(|e| panic!("{what}: {e}"))
}

/// The arguments after the program name parse as `mscribe ... serve`.
fn assert_serve(what: &str, args: &[&str]) -> Cli {
    let cli = Cli::try_parse_from(std::iter::once("mscribe").chain(args.iter().copied()))
        .unwrap_or_else(|e| panic!("{what}: {args:?} is no mscribe command line: {e}"));
    assert!(matches!(cli.command, Command::Serve), "{what}: {args:?} does not run serve");
    cli
}

/// The engine's default `SchedulerBuilder::flush_timeout`: how long a stop
/// may still write records after the grace.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(30);

/// The longest a graceful stop of `cfg` takes: the grace for the jobs, the
/// kill grace of command jobs, the store flush.
fn longest_stop(cfg: &Config) -> Duration {
    assert_eq!(Config::default().shutdown_grace, Duration::from_secs(30), "the default changed");
    cfg.shutdown_grace + cfg.jobs.max_kill_grace() + FLUSH_TIMEOUT
}

// --- systemd ----------------------------------------------------------------

/// A unit file: section -> key -> values in order (a key may repeat).
type Unit = BTreeMap<String, BTreeMap<String, Vec<String>>>;

fn parse_unit(text: &str) -> Unit {
    let mut unit = Unit::new();
    let mut section = String::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_owned();
            continue;
        }
        let (k, v) = line.split_once('=').unwrap_or_else(|| panic!("line {}: {line:?}", n + 1));
        assert!(!section.is_empty(), "line {}: a key outside any section", n + 1);
        unit.entry(section.clone())
            .or_default()
            .entry(k.trim().to_owned())
            .or_default()
            .push(v.trim().to_owned());
    }
    unit
}

fn one<'a>(unit: &'a Unit, section: &str, key: &str) -> &'a str {
    let v = unit.get(section).and_then(|s| s.get(key)).unwrap_or_else(|| {
        panic!("mscribe.service: [{section}] {key}= is missing");
    });
    assert_eq!(v.len(), 1, "[{section}] {key}= is set {} times", v.len());
    &v[0]
}

/// `45`, `45s`, `1min 30s` and the like, as systemd reads a time span.
fn systemd_span(s: &str) -> Duration {
    let mut total = Duration::ZERO;
    for part in s.split_whitespace() {
        let digits: String = part.chars().take_while(char::is_ascii_digit).collect();
        let n: u64 = digits.parse().unwrap_or_else(|_| panic!("time span {s:?}"));
        total += match &part[digits.len()..] {
            "" | "s" | "sec" => Duration::from_secs(n),
            "min" | "m" => Duration::from_secs(n * 60),
            other => panic!("time span {s:?}: unit {other:?} not handled here"),
        };
    }
    total
}

#[test]
fn systemd_unit_is_hardened_and_agrees_with_the_config() {
    let text = read("systemd/mscribe.service");
    assert_role_line("systemd/mscribe.service", &text);
    let unit = parse_unit(&text);

    let user = one(&unit, "Service", "User");
    assert!(!user.is_empty() && user != "root" && user != "0", "User={user}");
    assert_eq!(one(&unit, "Service", "NoNewPrivileges"), "yes");
    assert_eq!(one(&unit, "Service", "ProtectSystem"), "strict");
    assert_eq!(one(&unit, "Service", "Restart"), "on-failure");
    assert_eq!(one(&unit, "Install", "WantedBy"), "multi-user.target");

    // The environment the unit gives the server.
    let env: HashMap<String, String> = unit["Service"]["Environment"]
        .iter()
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or_else(|| panic!("Environment={kv}"));
            (k.to_owned(), v.to_owned())
        })
        .collect();
    assert_known_vars("mscribe.service", env.keys().map(String::as_str));
    let cfg = config_of("mscribe.service", "", &env);

    // A reload is SIGHUP, which `serve` takes as "reload the jobs and alerts".
    assert_eq!(one(&unit, "Service", "ExecReload"), "/bin/kill -HUP $MAINPID");
    // ExecStart is `mscribe --config FILE serve`.
    let exec: Vec<&str> = one(&unit, "Service", "ExecStart").split_whitespace().collect();
    assert!(exec[0].ends_with("/mscribe"), "ExecStart={exec:?}");
    let cli = assert_serve("ExecStart", &exec[1..]);
    assert!(cli.config.is_some(), "ExecStart names no config file");

    // Writable: exactly what the server writes.
    let rw: Vec<&str> = one(&unit, "Service", "ReadWritePaths").split_whitespace().collect();
    for (key, dir) in
        [("data_dir", &cfg.data_dir), ("log_dir", &cfg.log_dir), ("backup_dir", &cfg.backup_dir)]
    {
        assert!(dir.is_absolute(), "{key} = {} is relative under ProtectSystem", dir.display());
        assert!(
            rw.iter().any(|p| dir.starts_with(p)),
            "{key} {} is not in ReadWritePaths {rw:?}",
            dir.display()
        );
    }
    let db = cfg.sqlite_path().expect("the unit's database is a SQLite file");
    assert!(rw.iter().any(|p| db.starts_with(p)), "the database {} is read-only", db.display());

    // systemd waits longer than the server's own stop before SIGKILL.
    let stop = systemd_span(one(&unit, "Service", "TimeoutStopSec"));
    let longest = longest_stop(&cfg);
    assert!(stop > longest, "TimeoutStopSec {stop:?} vs a stop of up to {longest:?}");
}

#[test]
fn systemd_analyze_verify_accepts_the_unit() {
    let tool = Path::new("/usr/bin/systemd-analyze");
    if !tool.exists() {
        // Said, not silent: the parse test above still checks the keys.
        eprintln!("NOTE: systemd-analyze is not installed; only the parse test checks the unit");
        return;
    }
    // verify wants ExecStart's binary to exist: point it at the one built here.
    let dir = tempfile::tempdir().unwrap();
    let unit = read("systemd/mscribe.service").replace("/usr/local/bin/mscribe", common::BIN);
    let path = dir.path().join("mscribe.service");
    std::fs::write(&path, unit).unwrap();
    let out = std::process::Command::new(tool).arg("verify").arg(&path).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    // verify exits 0 on some bad values, only printing them: both must be clean.
    assert!(out.status.success() && stderr.trim().is_empty(), "systemd-analyze verify:\n{stderr}");
}

// --- Containerfile --------------------------------------------------------

/// The instructions, continuation lines joined: (INSTRUCTION, rest).
fn instructions(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for line in text.lines() {
        let t = line.trim();
        if cur.is_empty() && (t.is_empty() || t.starts_with('#')) {
            continue;
        }
        if let Some(head) = t.strip_suffix('\\') {
            cur.push_str(head);
            cur.push(' ');
            continue;
        }
        cur.push_str(t);
        let (ins, rest) = cur.split_once(' ').unwrap_or((&cur, ""));
        out.push((ins.to_ascii_uppercase(), rest.trim().to_owned()));
        cur.clear();
    }
    out
}

fn json_list(what: &str, s: &str) -> Vec<String> {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("{what} {s}: not a JSON list: {e}"))
}

#[test]
fn containerfile_is_multi_stage_non_root_and_agrees_with_the_config() {
    let text = read("Containerfile");
    assert_role_line("Containerfile", &text);
    let ins = instructions(&text);
    let all = |name: &str| -> Vec<&str> {
        ins.iter().filter(|(i, _)| i == name).map(|(_, r)| r.as_str()).collect()
    };

    // Two stages: a build one, then slim Debian with the binary copied over.
    let froms = all("FROM");
    assert_eq!(froms.len(), 2, "FROM: {froms:?}");
    let build_stage =
        froms[0].rsplit_once(" AS ").map(|(_, n)| n.trim()).expect("FROM ... AS name");
    assert!(froms[1].contains("debian") && froms[1].contains("slim"), "runtime FROM {}", froms[1]);
    let last_from = ins.iter().rposition(|(i, _)| i == "FROM").unwrap();
    let (build, run) = ins.split_at(last_from);
    assert!(
        build.iter().any(|(i, r)| i == "RUN" && r.contains("cargo build --release")),
        "the build stage does not build the release binary"
    );
    assert!(
        run.iter().any(|(i, r)| i == "COPY" && r.starts_with(&format!("--from={build_stage} "))),
        "the runtime stage copies nothing from {build_stage}"
    );
    assert!(!run.iter().any(|(i, r)| i == "RUN" && r.contains("cargo")), "cargo in the runtime");
    // The build context (the workspace) leaves out the build output.
    let ignore = std::fs::read_to_string(deploy("../.dockerignore")).expect(".dockerignore");
    for entry in ["target", ".git"] {
        assert!(ignore.lines().any(|l| l.trim() == entry), ".dockerignore lacks {entry}");
    }

    // A non-root user, set after the last RUN.
    let user = all("USER");
    let user = user.last().expect("no USER");
    assert!(!user.starts_with("root") && !user.starts_with("0"), "USER {user}");
    let user_at = ins.iter().rposition(|(i, _)| i == "USER").unwrap();
    assert!(ins[user_at..].iter().all(|(i, _)| i != "RUN"), "a RUN after USER runs as the user");

    // The environment parses as the server's config.
    let mut env = HashMap::new();
    for rest in all("ENV") {
        for kv in rest.split_whitespace() {
            let (k, v) = kv.split_once('=').unwrap_or_else(|| panic!("ENV {kv}: use K=V"));
            env.insert(k.to_owned(), v.to_owned());
        }
    }
    assert_known_vars("Containerfile", env.keys().map(String::as_str));
    let cfg = config_of("Containerfile", "", &env);
    let port = cfg.listen.port();
    assert!(cfg.listen.ip().is_unspecified(), "a container must listen on all addresses");
    assert_eq!(all("EXPOSE"), [port.to_string().as_str()]);

    // Volumes: the data (with the SQLite file) and the backups.
    let volumes = json_list("VOLUME", all("VOLUME").last().expect("no VOLUME"));
    let covered = |p: &Path| volumes.iter().any(|v| p.starts_with(v));
    assert!(covered(&cfg.data_dir), "data_dir {} is no volume", cfg.data_dir.display());
    assert!(covered(&cfg.backup_dir), "backup_dir {} is no volume", cfg.backup_dir.display());
    assert!(covered(&cfg.sqlite_path().expect("a SQLite file")), "the database is no volume");

    // The health check asks /livez on the listen port.
    let hc = all("HEALTHCHECK");
    let hc = hc.last().expect("no HEALTHCHECK");
    assert!(hc.contains(&format!("127.0.0.1:{port}/livez")), "HEALTHCHECK {hc}");
    let tool = hc.split(" CMD ").nth(1).and_then(|c| c.split_whitespace().next()).unwrap();
    assert!(
        run.iter().any(|(i, r)| i == "RUN" && r.contains(&format!(" {tool} "))
            || r.ends_with(&format!(" {tool}"))),
        "the health check's {tool} is not installed in the runtime stage"
    );

    // ENTRYPOINT + CMD is `mscribe serve`.
    let mut argv = json_list("ENTRYPOINT", all("ENTRYPOINT").last().expect("no ENTRYPOINT"));
    argv.extend(json_list("CMD", all("CMD").last().expect("no CMD")));
    assert!(argv[0].ends_with("/mscribe"), "{argv:?}");
    let args: Vec<&str> = argv[1..].iter().map(String::as_str).collect();
    assert_serve("ENTRYPOINT + CMD", &args);
}

// --- Kubernetes -------------------------------------------------------------

fn yaml(path: &str) -> Value {
    let text = read(path);
    assert_role_line(path, &text);
    serde_norway::from_str(&text).unwrap_or_else(|e| panic!("deploy/{path}: {e}"))
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    at(v, path).as_str().unwrap_or_else(|| panic!("{path:?} is not a string"))
}

fn at<'a>(v: &'a Value, path: &[&str]) -> &'a Value {
    path.iter().fold(v, |v, k| match k.parse::<usize>() {
        Ok(i) => &v[i],
        Err(_) => &v[*k],
    })
}

#[test]
fn kubernetes_manifests_agree_with_each_other_and_the_config() {
    let deployment = yaml("kubernetes/deployment.yaml");
    let service = yaml("kubernetes/service.yaml");
    let configmap = yaml("kubernetes/configmap.yaml");
    let secret = yaml("kubernetes/secret.yaml");
    assert_eq!(str_at(&deployment, &["kind"]), "Deployment");
    assert_eq!(str_at(&service, &["kind"]), "Service");
    // Dashboard sessions are per pod: a browser stays with its pod for as
    // long as a login lasts by default.
    assert_eq!(str_at(&service, &["spec", "sessionAffinity"]), "ClientIP");
    let affinity = service["spec"]["sessionAffinityConfig"]["clientIP"]["timeoutSeconds"].as_u64();
    let ttl = mscribe_server::config::Config::default().ui.session_ttl.as_secs();
    assert!(affinity.is_some_and(|t| t >= ttl), "affinity {affinity:?} s, sessions {ttl} s");
    assert_eq!(str_at(&configmap, &["kind"]), "ConfigMap");
    assert_eq!(str_at(&secret, &["kind"]), "Secret");

    let spec = &deployment["spec"];
    assert_eq!(spec["replicas"].as_u64(), Some(3));
    let pod = &spec["template"]["spec"];
    let containers = pod["containers"].as_sequence().unwrap();
    assert_eq!(containers.len(), 1);
    let c = &containers[0];
    assert_eq!(at(pod, &["securityContext", "runAsNonRoot"]).as_bool(), Some(true));
    assert_eq!(at(c, &["securityContext", "allowPrivilegeEscalation"]).as_bool(), Some(false));
    // The pod's user is the image's (deploy/Containerfile).
    let uid = at(pod, &["securityContext", "runAsUser"]).as_u64().unwrap();
    assert!(read("Containerfile").contains(&format!("--uid {uid} ")), "uid {uid}");

    // The environment: literal values and the Secret's keys.
    let mut env = HashMap::new();
    let mut names = Vec::new();
    for e in c["env"].as_sequence().unwrap() {
        let name = str_at(e, &["name"]);
        names.push(name);
        if let Some(v) = e["value"].as_str() {
            env.insert(name.to_owned(), v.to_owned());
        } else {
            let r = at(e, &["valueFrom", "secretKeyRef"]);
            assert_eq!(str_at(r, &["name"]), str_at(&secret, &["metadata", "name"]), "{name}");
            let v = str_at(&secret, &["stringData", str_at(r, &["key"])]);
            env.insert(name.to_owned(), v.to_owned());
        }
    }
    assert_known_vars("deployment.yaml", names.iter().copied());
    assert!(env.contains_key("MSCRIBE_ADMIN_TOKEN"), "no admin token from the Secret");

    // The config file: the ConfigMap, mounted where --config points.
    let args: Vec<&str> =
        c["args"].as_sequence().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
    let cli = assert_serve("deployment args", &args);
    let config_path = cli.config.expect("the deployment passes no --config");
    let mounts = c["volumeMounts"].as_sequence().unwrap();
    let volumes = pod["volumes"].as_sequence().unwrap();
    let volume_of = |name: &str| volumes.iter().find(|v| v["name"].as_str() == Some(name));
    let config_mount = mounts
        .iter()
        .find(|m| config_path.parent() == Some(Path::new(str_at(m, &["mountPath"]))))
        .unwrap_or_else(|| panic!("nothing is mounted at {}", config_path.display()));
    let config_volume = volume_of(str_at(config_mount, &["name"])).unwrap();
    assert_eq!(
        str_at(config_volume, &["configMap", "name"]),
        str_at(&configmap, &["metadata", "name"])
    );
    let file_name = config_path.file_name().unwrap().to_str().unwrap();
    let toml = str_at(&configmap, &["data", file_name]);
    let cfg = config_of("configmap.yaml mscribe.toml", toml, &env);

    // Several replicas: fires claimed in one shared Postgres database.
    assert!(cfg.claim_fires, "3 replicas without claim_fires run every fire 3 times");
    assert!(is_postgres_url(&cfg.database_url), "replicas need a shared Postgres database");
    assert!(cfg.listen.ip().is_unspecified(), "the pod must listen on all addresses");

    // Writable directories are volumes (the root file system is read-only).
    assert_eq!(at(c, &["securityContext", "readOnlyRootFilesystem"]).as_bool(), Some(true));
    for (key, dir) in
        [("data_dir", &cfg.data_dir), ("log_dir", &cfg.log_dir), ("backup_dir", &cfg.backup_dir)]
    {
        assert!(
            mounts.iter().any(|m| dir.starts_with(str_at(m, &["mountPath"]))
                && m["readOnly"].as_bool() != Some(true)),
            "{key} {} is not on a writable volume",
            dir.display()
        );
    }

    // Port, probes and stop grace.
    let port = &c["ports"][0];
    assert_eq!(port["containerPort"].as_u64(), Some(u64::from(cfg.listen.port())));
    let port_name = str_at(port, &["name"]);
    for (probe, path) in [("livenessProbe", "/livez"), ("readinessProbe", "/readyz")] {
        assert_eq!(str_at(c, &[probe, "httpGet", "path"]), path, "{probe}");
        assert_eq!(str_at(c, &[probe, "httpGet", "port"]), port_name, "{probe}");
    }
    let term = Duration::from_secs(pod["terminationGracePeriodSeconds"].as_u64().unwrap());
    let longest = longest_stop(&cfg);
    assert!(
        term > longest,
        "terminationGracePeriodSeconds {term:?} vs a stop of up to {longest:?}"
    );
    assert_eq!(str_at(c, &["startupProbe", "httpGet", "path"]), "/livez");

    // The Service reaches those pods on that port.
    let labels = at(&deployment, &["spec", "template", "metadata", "labels"]);
    assert_eq!(at(&deployment, &["spec", "selector", "matchLabels"]), labels);
    for (k, v) in service["spec"]["selector"].as_mapping().unwrap() {
        assert_eq!(&labels[k.as_str().unwrap()], v, "the Service selects other pods");
    }
    let sport = &service["spec"]["ports"][0];
    assert_eq!(str_at(sport, &["targetPort"]), port_name);
    assert_eq!(sport["port"].as_u64(), Some(u64::from(cfg.listen.port())));
}
