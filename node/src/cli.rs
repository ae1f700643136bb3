//! The `xinlian-node` command line: `run`, `devnet` and `check`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use xinlian_genesis::Genesis;

use crate::api::ApiLimits;
use crate::config::{
    ApiSection, FileConfig, LOG_FILTER_DEFAULT, LogFormat, LogSection, Overrides, Settings,
};
use crate::host::{NodeConfig, run};

#[derive(Parser)]
#[command(
    name = "xinlian-node",
    version,
    about = "xinlian consortium ledger node"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// The API's admission control (docs/api.md, "Limits and overload"): past each bound
/// a request is refused at once with 429 or 503 and `Retry-After`. Unset, each comes
/// from the config file, else its default (docs/operations.md § Configuration).
#[derive(clap::Args)]
struct ApiArgs {
    /// Open API connections; one more is answered 503 and closed.
    #[arg(long, env = "XINLIAN_API_CONNECTIONS")]
    api_connections: Option<usize>,
    /// API requests answered at once (waits for finality included); more get 503.
    #[arg(long, env = "XINLIAN_API_REQUESTS")]
    api_requests: Option<usize>,
    /// API requests per second per client address (IPv6 per /64); more get 429.
    #[arg(long, env = "XINLIAN_API_RATE")]
    api_rate: Option<u32>,
    /// Requests a client may send at once above its rate.
    #[arg(long, env = "XINLIAN_API_BURST")]
    api_burst: Option<u32>,
    /// Heavy reads (records/check, provenance, EPCIS export, rosters) running at
    /// once; default half the cores, at least 1.
    #[arg(long, env = "XINLIAN_API_HEAVY")]
    api_heavy: Option<usize>,
    /// Heavy reads waiting for one of those; more get 503.
    #[arg(long, env = "XINLIAN_API_HEAVY_QUEUE")]
    api_heavy_queue: Option<usize>,
    /// Largest records/check body, in MiB.
    #[arg(long, env = "XINLIAN_API_CHECK_BODY_MB")]
    api_check_body_mb: Option<usize>,
    /// How much lower the API's threads run than the consensus thread (Linux nice
    /// levels, 0 to 19): under a flood the CPU goes to votes first.
    #[arg(long, env = "XINLIAN_API_NICE")]
    api_nice: Option<i32>,
    /// Longest an API request may take, in seconds; then 503.
    #[arg(long, env = "XINLIAN_API_TIMEOUT_S")]
    api_timeout_s: Option<u64>,
    /// Worker threads of the API's runtime (consensus has a thread of its own).
    #[arg(long, env = "XINLIAN_API_THREADS")]
    api_threads: Option<usize>,
    /// Event streams (GET /v1/events) open at once; one more gets 503.
    #[arg(long, env = "XINLIAN_API_STREAMS")]
    api_streams: Option<usize>,
    /// Serve the API over TLS with this certificate chain (PEM, the leaf first);
    /// needs --tls-key.
    #[arg(long, env = "XINLIAN_TLS_CERT", value_name = "FILE")]
    tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, env = "XINLIAN_TLS_KEY", value_name = "FILE")]
    tls_key: Option<PathBuf>,
    /// The address the public reaches the web pages at: what batch labels' QR codes
    /// open (default: the address the label was asked for at).
    #[arg(long, env = "XINLIAN_PUBLIC_URL", value_name = "URL")]
    public_url: Option<String>,
}

impl ApiArgs {
    fn section(&self) -> ApiSection {
        ApiSection {
            connections: self.api_connections,
            requests: self.api_requests,
            rate: self.api_rate,
            burst: self.api_burst,
            heavy: self.api_heavy,
            heavy_queue: self.api_heavy_queue,
            check_body_mb: self.api_check_body_mb,
            nice: self.api_nice,
            timeout_s: self.api_timeout_s,
            threads: self.api_threads,
            streams: self.api_streams,
            tls_cert: self.tls_cert.clone(),
            tls_key: self.tls_key.clone(),
            public_url: self.public_url.clone(),
        }
    }
}

/// `run`'s settings on the command line. Each flag can also be set by the environment
/// variable named in its help, and each of both overrides the config file.
#[derive(clap::Args)]
struct RunArgs {
    /// A TOML config file (`xinlian-node init` writes one); flags and environment
    /// variables override what it sets.
    #[arg(long, env = "XINLIAN_CONFIG")]
    config: Option<PathBuf>,
    #[arg(long, env = "XINLIAN_GENESIS")]
    genesis: Option<PathBuf>,
    /// The node's PKCS#8 PEM key (its node_key in genesis).
    #[arg(long, env = "XINLIAN_KEY")]
    key: Option<PathBuf>,
    #[arg(long, env = "XINLIAN_DATA")]
    data: Option<PathBuf>,
    /// Where the HTTP API listens [default: 127.0.0.1:8700].
    #[arg(long, env = "XINLIAN_LISTEN")]
    listen: Option<String>,
    /// Where the node's libp2p swarm listens [default: /ip4/127.0.0.1/tcp/0].
    #[arg(long, env = "XINLIAN_P2P_LISTEN")]
    p2p_listen: Option<String>,
    /// Another member's node, as /ip4/…/tcp/…/p2p/PEER_ID (repeatable; in the
    /// environment, comma-separated); dialled at start and whenever the connection is
    /// lost. Given here, replaces the config file's list.
    #[arg(long = "peer", env = "XINLIAN_PEERS", value_delimiter = ',')]
    peers: Vec<String>,
    /// Memory for the store engine's block cache, in MiB (the OS file cache comes on
    /// top) [default: 64].
    #[arg(long, env = "XINLIAN_CACHE_MB")]
    cache_mb: Option<u64>,
    #[command(flatten)]
    api: ApiArgs,
    /// How the log is written to standard error [default: text].
    #[arg(long, env = "XINLIAN_LOG_FORMAT")]
    log_format: Option<LogFormat>,
    /// The log filter (tracing's syntax) [default: RUST_LOG, else
    /// info,fjall=warn,lsm_tree=warn].
    #[arg(long, env = "XINLIAN_LOG_FILTER")]
    log_filter: Option<String>,
    /// Exit when standard input closes (how the devnet's parent takes its nodes
    /// down with it, however it ends).
    #[arg(long, hide = true)]
    exit_with_stdin: bool,
}

impl RunArgs {
    /// The settings these flags, the environment and the config file make.
    fn settings(&self) -> Result<Settings> {
        let file = match &self.config {
            Some(path) => FileConfig::load(path)?,
            None => FileConfig::default(),
        };
        let flags = Overrides {
            genesis: self.genesis.clone(),
            key: self.key.clone(),
            data: self.data.clone(),
            listen: self.listen.clone(),
            p2p_listen: self.p2p_listen.clone(),
            peers: self.peers.clone(),
            cache_mb: self.cache_mb,
            api: self.api.section(),
            log: LogSection {
                format: self.log_format,
                filter: self.log_filter.clone(),
            },
        };
        Settings::resolve(flags, file)
    }
}

#[derive(Subcommand)]
enum Command {
    /// Run a node of a consortium.
    Run(Box<RunArgs>),
    /// Write a commented config file for a member's node, from its genesis and key.
    Init {
        #[arg(long)]
        genesis: PathBuf,
        /// The node's PKCS#8 PEM key.
        #[arg(long)]
        key: PathBuf,
        #[arg(long)]
        data: PathBuf,
        #[arg(long, default_value = crate::config::LISTEN_DEFAULT)]
        listen: String,
        /// Another member's node to dial (repeatable).
        #[arg(long = "peer")]
        peers: Vec<String>,
        /// Where to write it; an existing file is never overwritten.
        #[arg(long)]
        out: PathBuf,
    },
    /// Create (first time) and start a local consortium with sample data.
    Devnet {
        #[arg(long, default_value = "devnet")]
        dir: PathBuf,
        /// Port of node 0's API.
        #[arg(long, default_value_t = 8700)]
        port: u16,
        /// Do not load the sample enterprises, commitments and supply chains.
        #[arg(long)]
        no_sample: bool,
        /// Load this scenario instead of the built-in sample (same format as
        /// node/devnet/sample.toml: members, enterprises, ordered steps).
        #[arg(long)]
        scenario: Option<PathBuf>,
        /// Serve the nodes' APIs over plain HTTP instead of TLS with the devnet's own
        /// certificates.
        #[arg(long)]
        plain_http: bool,
    },
    /// Back up a running node's finalized history into FILE (appending to a backup
    /// already there), each block verified against genesis as it is written; ends at
    /// the node's tip at start, or at --until.
    Backup {
        /// The node's API.
        #[arg(long, default_value = "http://127.0.0.1:8700")]
        node: String,
        /// Authenticate an `https://` node by the CA certificates in this PEM file.
        #[arg(long, env = "XINLIAN_CA", value_name = "FILE")]
        ca: Option<PathBuf>,
        #[arg(long)]
        genesis: PathBuf,
        #[arg(long)]
        out: PathBuf,
        #[arg(long)]
        until: Option<u64>,
        /// Read as this member (`member:ID`), signing requests with --reader-key: what
        /// a member may read is the whole history. Unsigned, the node answers as to
        /// the public, and a chain with anything hidden from it cannot be restored
        /// from what it gives (docs/privacy.md).
        #[arg(
            long = "as",
            env = "XINLIAN_AS",
            value_name = "KEYID",
            requires = "reader_key"
        )]
        reader: Option<String>,
        /// The key that signs requests for --as (PKCS#8 PEM): the member's signing key.
        #[arg(
            long,
            env = "XINLIAN_READER_KEY",
            value_name = "FILE",
            requires = "reader"
        )]
        reader_key: Option<PathBuf>,
    },
    /// Restore a backup into an empty data folder, re-executing every block; then
    /// `check` it and start the node on it: it catches up from its peers.
    Restore {
        #[arg(long)]
        genesis: PathBuf,
        #[arg(long)]
        backup: PathBuf,
        #[arg(long)]
        data: PathBuf,
    },
    /// Re-verify a stopped node's whole store: every header link, certificate and
    /// record, re-executing every block and comparing the derived state.
    Check {
        #[arg(long)]
        genesis: PathBuf,
        #[arg(long)]
        data: PathBuf,
    },
    /// Export the node's access log (every answer to a reader other than the public,
    /// docs/privacy.md) to standard output as JSON lines, each line's hash chain checked;
    /// a changed, dropped or inserted line stops the export and is named.
    AccessLog {
        #[arg(long)]
        data: PathBuf,
    },
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // `run`'s settings say how to log; refused, they go to standard error.
    let (format, filter) = match &cli.command {
        Command::Run(args) => match args.settings() {
            Ok(s) => (s.log_format, s.log_filter),
            Err(e) => {
                eprintln!("error: {e:#}");
                return ExitCode::FAILURE;
            }
        },
        _ => (
            LogFormat::Text,
            std::env::var("RUST_LOG").unwrap_or_else(|_| LOG_FILTER_DEFAULT.into()),
        ),
    };
    init_logging(format, &filter);
    match dispatch(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The log on standard error, as lines (coloured only on a terminal, so files stay
/// plain) or as one JSON object per event.
fn init_logging(format: LogFormat, filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| LOG_FILTER_DEFAULT.into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        LogFormat::Json => builder.json().with_ansi(false).init(),
    }
}

/// Lowers the calling thread's scheduling priority by `nice` levels (Linux: a
/// thread's own nice value; elsewhere nothing).
fn lower_this_thread(nice: i32) {
    #[cfg(target_os = "linux")]
    if nice > 0 {
        // SAFETY: plain system calls on the calling thread's own id; no memory is
        // shared with them.
        unsafe {
            let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
            let now = libc::getpriority(libc::PRIO_PROCESS, tid);
            libc::setpriority(libc::PRIO_PROCESS, tid, (now + nice).min(19));
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = nice;
}

/// The API's runtime (consensus runs on a thread of its own: `host::run`), its
/// threads `nice` levels below it. Its blocking threads are the heavy-read pool, the
/// bulk submissions' checks (`api::BULK_AT_ONCE_MAX`, so ingestion never waits behind
/// heavy reads), the wait for standard input, and spare.
fn api_runtime(limits: &ApiLimits, threads: usize, nice: i32) -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .thread_name("api")
        .on_thread_start(move || lower_this_thread(nice))
        .max_blocking_threads(limits.heavy_running_max + crate::api::BULK_AT_ONCE_MAX + 2)
        .enable_all()
        .build()
        .context("starting tokio")
}

pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}

/// Resolves when standard input reaches its end (the parent process is gone).
async fn stdin_closed() {
    let _ = tokio::task::spawn_blocking(|| {
        let mut sink = Vec::new();
        let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink);
    })
    .await;
}

fn dispatch(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Run(args) => run_node(args.settings()?, args.exit_with_stdin),
        Command::Init {
            genesis,
            key,
            data,
            listen,
            peers,
            out,
        } => {
            let text = crate::config::init_file(&genesis, &key, &data, &listen, &peers)?;
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&out)
                .with_context(|| format!("creating {} (never overwritten)", out.display()))?;
            std::io::Write::write_all(&mut file, text.as_bytes())
                .with_context(|| format!("writing {}", out.display()))?;
            println!("wrote {}", out.display());
            Ok(())
        }
        Command::Devnet {
            dir,
            port,
            no_sample,
            scenario,
            plain_http,
        } => xinlian_devnet::run(&xinlian_devnet::Options {
            port,
            sample: !no_sample,
            scenario,
            tls: !plain_http,
            ..xinlian_devnet::Options::new(dir)
        }),
        Command::Backup {
            node,
            ca,
            genesis,
            out,
            until,
            reader,
            reader_key,
        } => {
            let genesis = Genesis::load(&genesis)?;
            let mut node = xinlian_client::http::NodeClient::new(&node);
            if let Some(ca) = &ca {
                node = node.trusting_file(ca)?;
            }
            if let (Some(keyid), Some(file)) = (reader, reader_key) {
                let key = xinlian_genesis::keys::read_pem(&file)
                    .with_context(|| format!("reading --reader-key {}", file.display()))?;
                node = node.signed_by(xinlian_client::http::RequestSigner::named(&keyid, key));
            }
            let height = crate::backup::backup(&node, genesis, &out, until)?;
            println!("backup of blocks 1 to {height} in {}", out.display());
            Ok(())
        }
        Command::Restore {
            genesis,
            backup,
            data,
        } => {
            let genesis = Genesis::load(&genesis)?;
            println!("{}", crate::backup::restore(genesis, &backup, &data)?);
            Ok(())
        }
        Command::Check { genesis, data } => {
            let genesis = Genesis::load(&genesis)?;
            let report = crate::store_check::check_store(genesis, &data.join("ledger"))?;
            println!("{report}");
            Ok(())
        }
        Command::AccessLog { data } => {
            let n = crate::api::access::export(&data, &mut std::io::stdout().lock())?;
            eprintln!("{n} entries, chain intact");
            Ok(())
        }
    }
}

/// Runs a node with `settings` until a signal (or, with `exit_with_stdin`, the end of
/// standard input).
fn run_node(settings: Settings, exit_with_stdin: bool) -> Result<()> {
    let genesis = Genesis::load(&settings.genesis)?;
    let key = xinlian_genesis::keys::read_pem(&settings.key)?;
    let mut config = NodeConfig::new(genesis, settings.data, key);
    config.p2p_listen = settings.p2p_listen;
    config.peers = settings.peers;
    config.cache_bytes = settings.cache_bytes;
    config.api = settings.api;
    config.public_url = settings.public_url;
    if let Some(files) = &settings.tls {
        config.tls = Some(crate::api::tls::server_config(&files.cert, &files.key)?);
    }
    let scheme = if config.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let listen = settings.listen;
    // `block_on` runs `host::run` on this (main) thread, which starts the consensus
    // thread: a thread inherits its creator's nice level, so consensus keeps the
    // process's priority and only the API's are lowered.
    api_runtime(&config.api, settings.api_threads, settings.api_nice)?.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("binding {listen}"))?;
        let addr = listener.local_addr()?;
        // Tests and scripts wait for this line (or poll /v1/status).
        println!("xinlian-node: API listening on {scheme}://{addr}");
        let stop = async move {
            if exit_with_stdin {
                tokio::select! {
                    _ = shutdown_signal() => {}
                    _ = stdin_closed() => {}
                }
            } else {
                shutdown_signal().await
            }
        };
        run(config, listener, stop).await
    })
}
