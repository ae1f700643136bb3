//! A node's settings: a TOML file (`--config`), environment variables over it
//! (`XINLIAN_…`) and command-line flags over those, resolved and checked once at start.
//! Every refusal names the setting, as the file spells it (docs/operations.md §
//! Configuration). `xinlian-node init` writes a commented file for a member.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use xinlian_genesis::Genesis;

use crate::api::ApiLimits;
use crate::net::PeerAddress;

/// How the node writes its log to standard error.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines (coloured on a terminal).
    #[default]
    Text,
    /// One JSON object per event: `timestamp`, `level`, `target`, `fields` (the
    /// event's `message` and its named fields: `height`, `round`, `peer`, …).
    Json,
}

/// The log filter when none is set (tracing's `EnvFilter` syntax).
pub const LOG_FILTER_DEFAULT: &str = "info,fjall=warn,lsm_tree=warn";
/// The store engine's block cache when none is set, in MiB.
pub const CACHE_MB_DEFAULT: u64 = 64;
/// The API runtime's worker threads when none is set.
pub const API_THREADS_DEFAULT: usize = 2;
/// The API threads' default nice level above the consensus thread's.
pub const API_NICE_DEFAULT: i32 = 10;
pub const LISTEN_DEFAULT: &str = "127.0.0.1:8700";
pub const P2P_LISTEN_DEFAULT: &str = "/ip4/127.0.0.1/tcp/0";

/// The file, as written: every setting optional, nothing else allowed.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub genesis: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub data: Option<PathBuf>,
    pub listen: Option<String>,
    pub p2p_listen: Option<String>,
    pub peers: Option<Vec<String>>,
    pub cache_mb: Option<u64>,
    #[serde(default)]
    pub api: ApiSection,
    #[serde(default)]
    pub log: LogSection,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiSection {
    pub connections: Option<usize>,
    pub requests: Option<usize>,
    pub rate: Option<u32>,
    pub burst: Option<u32>,
    pub heavy: Option<usize>,
    pub heavy_queue: Option<usize>,
    pub check_body_mb: Option<usize>,
    pub nice: Option<i32>,
    pub timeout_s: Option<u64>,
    pub threads: Option<usize>,
    pub streams: Option<usize>,
    /// Serve the API over TLS: the certificate chain (PEM, leaf first) and its key.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// The address the public reaches the web pages at (`https://credit.example.gov.cn`):
    /// what a batch label's QR code opens.
    pub public_url: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSection {
    pub format: Option<LogFormat>,
    pub filter: Option<String>,
}

impl FileConfig {
    /// Reads `path`; relative paths in it are taken from the file's folder.
    pub fn load(path: &Path) -> Result<FileConfig> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the config file {}", path.display()))?;
        let mut file: FileConfig =
            toml::from_str(&text).with_context(|| format!("the config file {}", path.display()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        for p in [
            &mut file.genesis,
            &mut file.key,
            &mut file.data,
            &mut file.api.tls_cert,
            &mut file.api.tls_key,
        ]
        .into_iter()
        .flatten()
        {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        Ok(file)
    }
}

/// What the command line (flags, and environment variables behind them) set.
#[derive(Debug, Default)]
pub struct Overrides {
    pub genesis: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub data: Option<PathBuf>,
    pub listen: Option<String>,
    pub p2p_listen: Option<String>,
    pub peers: Vec<String>,
    pub cache_mb: Option<u64>,
    pub api: ApiSection,
    pub log: LogSection,
}

/// Where the API's TLS certificate chain and private key are (PEM).
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TlsFiles {
    /// Both files or neither.
    fn pair(cert: Option<PathBuf>, key: Option<PathBuf>) -> Result<Option<TlsFiles>> {
        match (cert, key) {
            (None, None) => Ok(None),
            (Some(cert), Some(key)) => Ok(Some(TlsFiles { cert, key })),
            (Some(_), None) => bail!("api.tls_cert is set without api.tls_key"),
            (None, Some(_)) => bail!("api.tls_key is set without api.tls_cert"),
        }
    }
}

/// Everything `run` needs, resolved and checked.
#[derive(Debug)]
pub struct Settings {
    pub genesis: PathBuf,
    pub key: PathBuf,
    pub data: PathBuf,
    pub listen: SocketAddr,
    pub p2p_listen: PeerAddress,
    pub peers: Vec<PeerAddress>,
    pub cache_bytes: u64,
    pub api: ApiLimits,
    pub api_nice: i32,
    pub api_threads: usize,
    /// The API's TLS certificate chain and key, when it serves HTTPS.
    pub tls: Option<TlsFiles>,
    /// `api.public_url`, checked, without a trailing `/`.
    pub public_url: Option<String>,
    pub log_format: LogFormat,
    pub log_filter: String,
}

/// `value` if from `min` to `max`, else a refusal naming `key`.
fn within<T: PartialOrd + std::fmt::Display>(key: &str, value: T, min: T, max: T) -> Result<T> {
    if value < min {
        bail!("{key}: {value} is below the least allowed, {min}");
    }
    if value > max {
        bail!("{key}: {value} is above the most allowed, {max}");
    }
    Ok(value)
}

/// The longest `?wait_ms=` a request may ask (the API's cap), in seconds: the request
/// time-out must be longer.
const WAIT_S_MAX: u64 = 30;

fn required(key: &str, value: Option<PathBuf>) -> Result<PathBuf> {
    value.with_context(|| {
        format!(
            "{key}: not set (in the config file, XINLIAN_{} or --{key})",
            key.to_uppercase()
        )
    })
}

impl Settings {
    /// The flags over the file over the defaults, each checked.
    pub fn resolve(flags: Overrides, file: FileConfig) -> Result<Settings> {
        let default = ApiLimits::default();
        let api = |flag: Option<usize>, file: Option<usize>, default: usize| {
            flag.or(file).unwrap_or(default)
        };
        let (fa, ca) = (flags.api, file.api);
        let listen = flags
            .listen
            .or(file.listen)
            .unwrap_or_else(|| LISTEN_DEFAULT.into());
        let listen: SocketAddr = listen
            .parse()
            .map_err(|e| anyhow::anyhow!("listen: {listen:?} is not an address and port: {e}"))?;
        let p2p = flags
            .p2p_listen
            .or(file.p2p_listen)
            .unwrap_or_else(|| P2P_LISTEN_DEFAULT.into());
        let p2p_listen: PeerAddress = p2p
            .parse()
            .map_err(|e| anyhow::anyhow!("p2p_listen: {p2p:?} is not a multiaddr: {e}"))?;
        let peers = if flags.peers.is_empty() {
            file.peers.unwrap_or_default()
        } else {
            flags.peers
        };
        let peers = peers
            .iter()
            .map(|p| {
                p.parse::<PeerAddress>()
                    .map_err(|e| anyhow::anyhow!("peers: {p:?} is not a multiaddr: {e}"))
            })
            .collect::<Result<Vec<_>>>()?;
        let cache_mb = within(
            "cache_mb",
            flags.cache_mb.or(file.cache_mb).unwrap_or(CACHE_MB_DEFAULT),
            1,
            1 << 20,
        )?;
        let nice = fa.nice.or(ca.nice).unwrap_or(API_NICE_DEFAULT);
        if !(0..=19).contains(&nice) {
            bail!("api.nice: {nice} is not a nice level from 0 to 19");
        }
        let mut limits = ApiLimits {
            connections_max: within(
                "api.connections",
                api(fa.connections, ca.connections, default.connections_max),
                1,
                65_536,
            )?,
            requests_max: within(
                "api.requests",
                api(fa.requests, ca.requests, default.requests_max),
                1,
                65_536,
            )?,
            rate_per_s: within(
                "api.rate",
                fa.rate.or(ca.rate).unwrap_or(default.rate_per_s),
                1,
                1_000_000,
            )?,
            burst: within(
                "api.burst",
                fa.burst.or(ca.burst).unwrap_or(default.burst),
                1,
                10_000_000,
            )?,
            heavy_running_max: within(
                "api.heavy",
                api(fa.heavy, ca.heavy, default.heavy_running_max),
                1,
                256,
            )?,
            heavy_waiting_max: within(
                "api.heavy_queue",
                api(fa.heavy_queue, ca.heavy_queue, default.heavy_waiting_max),
                0,
                4096,
            )?,
            check_body_bytes_max: within(
                "api.check_body_mb",
                api(
                    fa.check_body_mb,
                    ca.check_body_mb,
                    default.check_body_bytes_max >> 20,
                ),
                1,
                1024,
            )?
            .checked_mul(1 << 20)
            .context("api.check_body_mb: too large")?,
            request_timeout: std::time::Duration::from_secs(within(
                "api.timeout_s",
                fa.timeout_s
                    .or(ca.timeout_s)
                    .unwrap_or(default.request_timeout.as_secs()),
                WAIT_S_MAX + 1,
                3600,
            )?),
            streams_max: default.streams_max,
        };
        // Streams hold connections: half of them stay for requests, probes and scrapes.
        // Unset, the bound follows a smaller api.connections down; set, it must fit.
        limits.streams_max = match fa.streams.or(ca.streams) {
            None => default.streams_max.min(limits.connections_max / 2).max(1),
            Some(n) => {
                let n = within("api.streams", n, 1, 4096)?;
                if n > limits.connections_max / 2 {
                    bail!(
                        "api.streams: {n} is more than half of api.connections ({})",
                        limits.connections_max
                    );
                }
                n
            }
        };
        let tls = TlsFiles::pair(fa.tls_cert.or(ca.tls_cert), fa.tls_key.or(ca.tls_key))?;
        let api_threads = within(
            "api.threads",
            api(fa.threads, ca.threads, API_THREADS_DEFAULT),
            1,
            256,
        )?;
        let log_filter = log_filter(flags.log.filter.or(file.log.filter))?;
        Ok(Settings {
            genesis: required("genesis", flags.genesis.or(file.genesis))?,
            key: required("key", flags.key.or(file.key))?,
            data: required("data", flags.data.or(file.data))?,
            listen,
            p2p_listen,
            peers,
            cache_bytes: cache_mb
                .checked_mul(1 << 20)
                .context("cache_mb: too large")?,
            api: limits,
            api_nice: nice,
            api_threads,
            tls,
            public_url: fa
                .public_url
                .or(ca.public_url)
                .map(|u| public_url(&u))
                .transpose()?,
            log_format: flags.log.format.or(file.log.format).unwrap_or_default(),
            log_filter,
        })
    }
}

/// `log.filter` as set, else `RUST_LOG`, else the default; checked.
fn log_filter(set: Option<String>) -> Result<String> {
    let f = set
        .or_else(|| std::env::var("RUST_LOG").ok())
        .unwrap_or_else(|| LOG_FILTER_DEFAULT.into());
    tracing_subscriber::EnvFilter::try_new(&f)
        .map_err(|e| anyhow::anyhow!("log.filter: {f:?}: {e}"))?;
    Ok(f)
}

/// `api.public_url`: an absolute http(s) address with no query or fragment, which a
/// page's address is appended to.
fn public_url(u: &str) -> Result<String> {
    let rest = u
        .strip_prefix("https://")
        .or_else(|| u.strip_prefix("http://"))
        .with_context(|| format!("api.public_url: {u:?} is not an http:// or https:// address"))?;
    let host = rest.split('/').next().unwrap_or_default();
    let loopback = ["127.0.0.1", "localhost", "[::1]"]
        .iter()
        .any(|h| host == *h || host.starts_with(&format!("{h}:")));
    if u.starts_with("http://") && !loopback {
        bail!(
            "api.public_url: {u:?} is plain http: a label must open its page over https, or anyone on the way could serve a page of their own (http is for loopback only)"
        );
    }
    if host.is_empty()
        || u.len() > 512
        || u.chars().any(|c| {
            c.is_whitespace()
                || c.is_control()
                || matches!(c, '#' | '?' | '"' | '<' | '>' | '@' | '\\')
        })
    {
        bail!(
            "api.public_url: {u:?} must be a plain address (no spaces, query or fragment), at most 512 bytes"
        );
    }
    Ok(u.trim_end_matches('/').to_string())
}

/// A commented config file for the member whose node key is in `key_file`, from its
/// genesis: every setting, the required ones set, the others at their defaults and
/// commented out.
pub fn init_file(
    genesis_file: &Path,
    key_file: &Path,
    data: &Path,
    listen: &str,
    peers: &[String],
) -> Result<String> {
    let genesis = Genesis::load(genesis_file)?;
    // `run` takes relative paths from the file's folder, not from where `init` ran:
    // written absolute, they name what was given here wherever the file goes.
    let absolute = |p: &Path| {
        std::path::absolute(p).with_context(|| format!("making {} absolute", p.display()))
    };
    let (genesis_file, key_file, data) = (
        absolute(genesis_file)?,
        absolute(key_file)?,
        absolute(data)?,
    );
    let key = xinlian_genesis::keys::read_pem(&key_file)?;
    let node_key = xinlian_genesis::keys::public_key(&key);
    let member = genesis
        .members
        .iter()
        .find(|m| m.node_key == Some(node_key))
        .map(|m| format!("{} ({})", m.id, m.name))
        // Written into a comment: a line break in a name would start a setting.
        .map(|who| who.replace(|c: char| c.is_control(), " "));
    let who = member.unwrap_or_else(|| {
        format!("no member of genesis yet (node key {node_key}): members refuse it until a governance vote admits it")
    });
    let limits = ApiLimits::default();
    let quote = |p: &Path| toml::Value::String(p.display().to_string()).to_string();
    let peers = peers
        .iter()
        .map(|p| toml::Value::String(p.clone()).to_string())
        .collect::<Vec<_>>()
        .join(", ");
    Ok(format!(
        r#"# xinlian-node configuration for {who},
# chain {chain}. Written by `xinlian-node init`; start with
#   xinlian-node run --config THIS_FILE
# Environment variables (XINLIAN_GENESIS, XINLIAN_API_RATE, …) override this file,
# and flags (--genesis, --api-rate, …) override both. Relative paths are taken from
# this file's folder. docs/operations.md lists every setting.

# The consortium's genesis file, this node's PKCS#8 PEM key, and its data folder.
genesis = {genesis}
key = {key}
data = {data}

# Where the HTTP API listens, and where the libp2p swarm listens.
listen = {listen}
# p2p_listen = "{p2p}"

# Other members' nodes, as /ip4/…/tcp/…/p2p/PEER_ID: dialled at start and whenever
# the connection is lost.
peers = [{peers}]

# Memory for the store engine's block cache, in MiB.
# cache_mb = {cache}

[api]
# Open connections; one more is answered 503 and closed.
# connections = {connections}
# Requests answered at once; more get 503.
# requests = {requests}
# Requests per second per client address (IPv6 per /64), and the burst above it; more get 429.
# rate = {rate}
# burst = {burst}
# Heavy reads (records/check, provenance, EPCIS export, rosters) at once, and waiting.
# heavy = {heavy}
# heavy_queue = {heavy_queue}
# Largest records/check body, in MiB.
# check_body_mb = {check_body}
# How much lower the API's threads run than the consensus thread (nice levels, 0 to 19).
# nice = {nice}
# Longest a request may take, in seconds; then 503.
# timeout_s = {timeout}
# Worker threads of the API's runtime (consensus has a thread of its own).
# threads = {threads}
# Event streams (GET /v1/events) open at once; one more gets 503.
# streams = {streams}
# Serve the API over TLS: the certificate chain (PEM, the leaf first) and its key
# (PEM); both or neither. Unset, plain HTTP.
# tls_cert = "tls/node.pem"
# tls_key = "tls/node.key"
# The address the public reaches the web pages at: what batch labels' QR codes open
# (unset: the address a label was asked for at).
# public_url = "https://credit.example.gov.cn"

[log]
# "text" (lines) or "json" (one object per event).
# format = "text"
# tracing's filter syntax; RUST_LOG is read only when neither this file, XINLIAN_LOG_FILTER
# nor --log-filter sets it.
# filter = "{filter}"
"#,
        chain = genesis.chain_id,
        genesis = quote(&genesis_file),
        key = quote(&key_file),
        data = quote(&data),
        listen = toml::Value::String(listen.into()),
        p2p = P2P_LISTEN_DEFAULT,
        cache = CACHE_MB_DEFAULT,
        connections = limits.connections_max,
        requests = limits.requests_max,
        rate = limits.rate_per_s,
        burst = limits.burst,
        heavy = limits.heavy_running_max,
        heavy_queue = limits.heavy_waiting_max,
        check_body = limits.check_body_bytes_max >> 20,
        nice = API_NICE_DEFAULT,
        timeout = limits.request_timeout.as_secs(),
        threads = API_THREADS_DEFAULT,
        streams = limits.streams_max,
        filter = LOG_FILTER_DEFAULT,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(text: &str) -> Result<Settings> {
        let file: FileConfig = toml::from_str(text)?;
        Settings::resolve(Overrides::default(), file)
    }

    const BASE: &str = "genesis = \"g.toml\"\nkey = \"k.pem\"\ndata = \"d\"\n";

    /// Unset, the stream bound follows a small `api.connections` down to half of it,
    /// rather than refusing a setting nobody made; set, it must fit.
    #[test]
    fn the_stream_bound_follows_the_connections_unless_set() {
        let few = resolve(&format!("{BASE}[api]\nconnections = 6\n")).expect("valid");
        assert_eq!((few.api.connections_max, few.api.streams_max), (6, 3));
        let many = resolve(BASE).expect("valid");
        assert_eq!(many.api.streams_max, ApiLimits::default().streams_max);
        let set = resolve(&format!("{BASE}[api]\nconnections = 6\nstreams = 2\n"));
        assert_eq!(set.expect("valid").api.streams_max, 2);
        let e = resolve(&format!("{BASE}[api]\nconnections = 6\nstreams = 4\n"));
        assert!(format!("{:#}", e.expect_err("over half")).contains("api.streams"));
    }

    #[test]
    fn each_invalid_setting_is_refused_naming_its_key() {
        let cases = [
            ("cache_mbb = 1\n", "cache_mbb"),
            ("cache_mb = \"big\"\n", "cache_mb"),
            ("cache_mb = 0\n", "cache_mb"),
            ("listen = \"nowhere\"\n", "listen"),
            ("p2p_listen = \"tcp:9\"\n", "p2p_listen"),
            ("peers = [\"x\"]\n", "peers"),
            ("[api]\nnice = 25\n", "api.nice"),
            ("[api]\nthreads = 0\n", "api.threads"),
            ("[api]\nthreads = 257\n", "api.threads"),
            (
                "[api]\nconnections = 4611686018427387904\n",
                "api.connections",
            ),
            ("[api]\nrequests = 65537\n", "api.requests"),
            ("[api]\nheavy = 9223372036854775807\n", "api.heavy"),
            ("[api]\nheavy_queue = 5000\n", "api.heavy_queue"),
            ("[api]\ncheck_body_mb = 1025\n", "api.check_body_mb"),
            ("[api]\ntimeout_s = 30\n", "api.timeout_s"),
            ("[api]\nstreams = 0\n", "api.streams"),
            ("[api]\ntls_cert = \"node.pem\"\n", "api.tls_key"),
            ("[api]\ntls_key = \"node.key\"\n", "api.tls_cert"),
            ("[api]\nconnections = 100\nstreams = 51\n", "api.streams"),
            (
                "[api]\npublic_url = \"ftp://x.example\"\n",
                "api.public_url",
            ),
            ("[api]\npublic_url = \"https://\"\n", "api.public_url"),
            (
                "[api]\npublic_url = \"https://x.example/#/\"\n",
                "api.public_url",
            ),
            (
                "[api]\npublic_url = \"https://x.example/a b\"\n",
                "api.public_url",
            ),
            ("[api]\npublic_url = \"https:///x\"\n", "api.public_url"),
            (
                "[api]\npublic_url = \"http://x.example\"\n",
                "api.public_url",
            ),
            (
                "[api]\npublic_url = \"http://localhost:@evil.example\"\n",
                "api.public_url",
            ),
            ("cache_mb = 1048577\n", "cache_mb"),
            ("[api]\nrate = 0\n", "api.rate"),
            ("[api]\nrat = 5\n", "rat"),
            ("[api]\ntimeout_s = -1\n", "timeout_s"),
            ("[log]\nformat = \"xml\"\n", "format"),
            ("[log]\nfilter = \"info,[\"\n", "log.filter"),
        ];
        for (extra, key) in cases {
            let e = resolve(&format!("{BASE}{extra}")).expect_err(extra);
            let text = format!("{e:#}");
            assert!(text.contains(key), "{extra:?}: {text}");
        }
        let e = resolve("key = \"k.pem\"\ndata = \"d\"\n").expect_err("no genesis");
        assert!(e.to_string().starts_with("genesis: not set"), "{e}");
    }

    #[test]
    fn flags_win_over_the_file_and_the_file_over_the_defaults() {
        let file: FileConfig = toml::from_str(&format!(
            "{BASE}cache_mb = 8\n[api]\nrate = 7\nthreads = 3\n"
        ))
        .unwrap();
        let flags = Overrides {
            cache_mb: Some(16),
            ..Overrides::default()
        };
        let s = Settings::resolve(flags, file).unwrap();
        assert_eq!(s.cache_bytes, 16 << 20);
        assert_eq!(s.api.rate_per_s, 7);
        assert_eq!(s.api_threads, 3);
        assert_eq!(s.api.burst, ApiLimits::default().burst);
        assert_eq!(s.listen.to_string(), LISTEN_DEFAULT);
        assert_eq!(s.log_format, LogFormat::Text);
        assert_eq!(s.public_url, None);
        let file: FileConfig = toml::from_str(&format!(
            "{BASE}[api]\npublic_url = \"https://credit.example.gov.cn/\"\n"
        ))
        .unwrap();
        let s = Settings::resolve(Overrides::default(), file).unwrap();
        assert_eq!(
            s.public_url.as_deref(),
            Some("https://credit.example.gov.cn")
        );
    }
}
