//! Operations: a real Prometheus server (Debian's `prometheus`, installed by `.ci/run`)
//! scrapes every node of a four-validator consortium on loopback, and PromQL queries
//! show heights advancing on all of them and the refused-connection counter moving
//! when a node that is not a member dials one; `/health` and `/ready` answer as a
//! load balancer expects.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use xinlian_client::ids::Uscc;
use xinlian_genesis::keys;
use xinlian_tests::{Consortium, Node, wait_until};

const BIN: &str = env!("CARGO_BIN_EXE_xinlian-node-under-test");

/// A Prometheus server of this test's, on a port of loopback; killed when dropped.
struct Prometheus {
    child: Child,
    url: String,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn prometheus_binary() -> Option<PathBuf> {
    ["/usr/bin/prometheus", "/usr/local/bin/prometheus"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

impl Prometheus {
    /// Starts Prometheus scraping `targets` (host:port) every second, and waits until
    /// it says it is ready.
    fn start(bin: &Path, dir: &Path, targets: &[String]) -> Result<Prometheus> {
        let list = targets
            .iter()
            .map(|t| format!("'{t}'"))
            .collect::<Vec<_>>()
            .join(", ");
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\n\
                 scrape_configs:\n  - job_name: xinlian\n    static_configs:\n      \
                 - targets: [{list}]\n"
            ),
        )?;
        // A free port of loopback: bound, read, released (Prometheus binds it at once).
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let log = std::fs::File::create(dir.join("prometheus.log"))?;
        let child = Command::new(bin)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("starting prometheus")?;
        let mut p = Prometheus {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let ready = format!("{}/-/ready", p.url);
        let waited = wait_until(Duration::from_secs(30), "prometheus ready", || {
            ureq::get(&ready).call().is_ok()
        });
        if let Err(e) = waited {
            let exited = p.child.try_wait()?;
            let log = std::fs::read_to_string(dir.join("prometheus.log")).unwrap_or_default();
            bail!("{e} (exited: {exited:?}); its log:\n{log}");
        }
        Ok(p)
    }

    /// An instant PromQL query's samples: (labels, value).
    fn query(&self, promql: &str) -> Result<Vec<(serde_json::Value, f64)>> {
        let answer: serde_json::Value = ureq::get(format!("{}/api/v1/query", self.url))
            .query("query", promql)
            .call()?
            .body_mut()
            .read_json()?;
        anyhow::ensure!(answer["status"] == "success", "{promql}: {answer}");
        let samples = answer["data"]["result"]
            .as_array()
            .context("a vector")?
            .iter()
            .map(|s| {
                let value = s["value"][1]
                    .as_str()
                    .and_then(|v| v.parse::<f64>().ok())
                    .unwrap_or(f64::NAN);
                (s["metric"].clone(), value)
            })
            .collect();
        Ok(samples)
    }

    /// The single value of `promql`, if it has exactly one sample.
    fn scalar(&self, promql: &str) -> Option<f64> {
        match self.query(promql).ok()?.as_slice() {
            [(_, v)] => Some(*v),
            _ => None,
        }
    }
}

fn host_port(node: &Node) -> String {
    node.client
        .base_url()
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string()
}

#[test]
fn prometheus_sees_every_node_advance_and_counts_a_refused_non_member() -> Result<()> {
    let Some(bin) = prometheus_binary() else {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            bail!("prometheus is not installed (.ci/run installs Debian's prometheus)");
        }
        eprintln!("SKIPPED: prometheus is not installed (Debian's prometheus package)");
        return Ok(());
    };
    let c = Consortium::with_nodes(BIN, 4, 0)?;
    let mut nodes: Vec<Node> = Vec::new();
    for id in ["v0", "v1", "v2", "v3"] {
        let peers: Vec<&Node> = nodes.iter().collect();
        nodes.push(c.start_member(id, &peers)?);
    }
    let targets: Vec<String> = nodes.iter().map(host_port).collect();
    // Alive at once; ready once a block is recent.
    for n in &nodes {
        let health = ureq::get(format!("{}/health", n.client.base_url())).call()?;
        assert_eq!(health.status(), 200);
    }
    let dir = tempfile::tempdir()?;
    let prometheus = Prometheus::start(&bin, dir.path(), &targets)?;
    wait_until(
        Duration::from_secs(30),
        "prometheus scraping all four nodes",
        || prometheus.scalar("count(up{job=\"xinlian\"} == 1)") == Some(4.0),
    )?;
    wait_until(
        Duration::from_secs(30),
        "the chain's first block (the height metric above 0 on all four)",
        || prometheus.scalar("count(xinlian_height > 0)") == Some(4.0),
    )?;
    let first = prometheus
        .scalar("min(xinlian_height)")
        .context("min height")?;
    // Records make blocks sooner than the heartbeat.
    let uscc = Uscc::with_check("91310117MA1G0A1B2").map_err(|e| anyhow::anyhow!("{e}"))?;
    let farm =
        xinlian_tests::register_enterprise(&c, &nodes[0].client, uscc.clone(), keys::generate()?)?
            .0;
    for n in 0..3 {
        nodes[0].client.submit_and_wait(
            &farm.sign(xinlian_tests::commission(&format!("m{n}"))),
            20_000,
        )?;
    }
    wait_until(
        Duration::from_secs(30),
        "every node's height two above the lowest first seen",
        || {
            prometheus
                .scalar("min(xinlian_height)")
                .is_some_and(|h| h >= first + 2.0)
        },
    )?;
    // Node 0 reported them final; the others store them a little later, and the
    // server's samples are up to a scrape old.
    wait_until(
        Duration::from_secs(30),
        "every node counted the 4 records",
        || {
            prometheus
                .scalar("min(xinlian_records_finalized_total)")
                .is_some_and(|n| n >= 4.0)
        },
    )?;
    // Each stored block's commit was timed.
    let commits = prometheus
        .scalar("min(xinlian_commit_seconds_count)")
        .context("commit times")?;
    assert!(commits >= 1.0, "{commits} commits timed");
    // Values, not only names: each of the four sees the three others, times finality,
    // and measures its history on disk.
    wait_until(Duration::from_secs(30), "every node with 3 peers", || {
        prometheus
            .query("xinlian_peers_connected")
            .is_ok_and(|s| s.len() == 4 && s.iter().all(|(_, v)| *v == 3.0))
    })?;
    let finality = prometheus
        .scalar("min(xinlian_finality_seconds_count)")
        .context("finality times")?;
    assert!(finality >= 1.0, "{finality} finality times");
    let history = prometheus
        .scalar("min(sum by (instance) (xinlian_store_history_bytes))")
        .context("history bytes")?;
    assert!(history > 0.0, "{history} bytes of history");
    for n in &nodes {
        let ready = ureq::get(format!("{}/ready", n.client.base_url())).call()?;
        assert_eq!(ready.status(), 200);
    }

    // A node that is not a member dials v0.
    let v0 = &targets[0];
    let refused = format!("xinlian_connections_refused_total{{instance=\"{v0}\"}}");
    let before = prometheus
        .scalar(&refused)
        .context("v0's refused connections")?;
    let outsider = tempfile::tempdir()?;
    let _outsider = xinlian_tests::start_outsider(&c, BIN, outsider.path(), &nodes[0])?;
    wait_until(
        Duration::from_secs(30),
        "v0's refused-connection counter to move",
        || prometheus.scalar(&refused).is_some_and(|v| v > before),
    )?;
    // The API's own counters carry the route's template, never the path asked.
    nodes[0].client.enterprise(uscc.as_str())?;
    wait_until(
        Duration::from_secs(30),
        "the enterprise read counted",
        || {
            prometheus
                .scalar("sum(xinlian_api_requests_total{route=\"/v1/enterprises/{uscc}\"})")
                .is_some_and(|v| v >= 1.0)
        },
    )?;
    let by_route = prometheus.query("xinlian_api_requests_total")?;
    assert!(
        by_route
            .iter()
            .any(|(labels, _)| labels["route"] == "/v1/status" && labels["status"] == "200"),
        "{by_route:?}"
    );
    assert!(
        by_route
            .iter()
            .all(|(labels, _)| !labels["route"].as_str().unwrap_or("").contains("MA1G")),
        "{by_route:?}"
    );
    dashboard_queries_only_exported_metrics(&nodes[0])?;
    Ok(())
}

/// Every `xinlian_…` name in `text`: identifier characters after the prefix.
fn metric_names(text: &str) -> std::collections::BTreeSet<String> {
    let mut names = std::collections::BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("xinlian_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        names.insert(tail[..end].to_string());
        rest = &tail[end..];
    }
    names
}

/// docs/grafana-dashboard.json queries only what the node exports: each name in its
/// expressions is a metric family of `/metrics` (from its `# TYPE` line), or one of the
/// series a counter or histogram family is exposed as.
fn dashboard_queries_only_exported_metrics(node: &Node) -> Result<()> {
    let exposition = ureq::get(format!("{}/metrics", node.client.base_url()))
        .call()?
        .body_mut()
        .read_to_string()?;
    let families: Vec<&str> = exposition
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(families.contains(&"xinlian_height"), "{exposition}");
    let exported = |name: &str| {
        families.iter().any(|f| {
            ["", "_total", "_bucket", "_sum", "_count"]
                .iter()
                .any(|suffix| name == format!("{f}{suffix}"))
        })
    };
    let dashboard = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/grafana-dashboard.json"),
    )?;
    let doc: serde_json::Value = serde_json::from_str(&dashboard)?;
    let mut queried = 0;
    for panel in doc["panels"].as_array().context("panels")? {
        for target in panel["targets"].as_array().context("targets")? {
            let expr = target["expr"].as_str().context("expr")?;
            for name in metric_names(expr) {
                assert!(
                    exported(&name),
                    "the dashboard queries {name}, not exported"
                );
                queried += 1;
            }
        }
    }
    assert!(queried >= 10, "{queried} queries");
    Ok(())
}
