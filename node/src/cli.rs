//! The `xinlian-node` command line: `run`, `devnet` and `check`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use xinlian_genesis::Genesis;

use crate::api::ApiLimits;
use crate::host::{NodeConfig, run};
use crate::net::PeerAddress;

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
/// a request is refused at once with 429 or 503 and `Retry-After`.
#[derive(clap::Args)]
struct ApiArgs {
    /// Open API connections; one more is answered 503 and closed.
    #[arg(long, default_value_t = ApiLimits::default().connections_max)]
    api_connections: usize,
    /// API requests answered at once (waits for finality included); more get 503.
    #[arg(long, default_value_t = ApiLimits::default().requests_max)]
    api_requests: usize,
    /// API requests per second per client address (IPv6 per /64); more get 429.
    #[arg(long, default_value_t = ApiLimits::default().rate_per_s)]
    api_rate: u32,
    /// Requests a client may send at once above its rate.
    #[arg(long, default_value_t = ApiLimits::default().burst)]
    api_burst: u32,
    /// Heavy reads (records/check, provenance, EPCIS export, rosters) running at
    /// once; default half the cores, at least 1.
    #[arg(long)]
    api_heavy: Option<usize>,
    /// Heavy reads waiting for one of those; more get 503.
    #[arg(long, default_value_t = ApiLimits::default().heavy_waiting_max)]
    api_heavy_queue: usize,
    /// Largest records/check body, in MiB.
    #[arg(long, default_value_t = ApiLimits::default().check_body_bytes_max >> 20)]
    api_check_body_mb: usize,
    /// How much lower the API's threads run than the consensus thread (Linux nice
    /// levels, 0 to 19): under a flood the CPU goes to votes first.
    #[arg(long, default_value_t = API_NICE, value_parser = clap::value_parser!(i32).range(0..=19))]
    api_nice: i32,
    /// Longest an API request may take, in seconds; then 503.
    #[arg(long, default_value_t = ApiLimits::default().request_timeout.as_secs())]
    api_timeout_s: u64,
}

impl ApiArgs {
    fn limits(&self) -> ApiLimits {
        let default = ApiLimits::default();
        ApiLimits {
            connections_max: self.api_connections.max(1),
            requests_max: self.api_requests.max(1),
            rate_per_s: self.api_rate.max(1),
            burst: self.api_burst.max(1),
            heavy_running_max: self.api_heavy.unwrap_or(default.heavy_running_max).max(1),
            heavy_waiting_max: self.api_heavy_queue,
            check_body_bytes_max: self.api_check_body_mb.max(1) << 20,
            request_timeout: std::time::Duration::from_secs(self.api_timeout_s.max(1)),
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Run a node of a consortium.
    Run {
        #[arg(long)]
        genesis: PathBuf,
        /// The node's PKCS#8 PEM key (its node_key in genesis).
        #[arg(long)]
        key: PathBuf,
        #[arg(long)]
        data: PathBuf,
        #[arg(long, default_value = "127.0.0.1:8700")]
        listen: SocketAddr,
        /// Where the node's libp2p swarm listens.
        #[arg(long, default_value = "/ip4/127.0.0.1/tcp/0")]
        p2p_listen: PeerAddress,
        /// Another member's node, as /ip4/…/tcp/…/p2p/PEER_ID (repeatable); dialled
        /// at start and whenever the connection is lost.
        #[arg(long = "peer")]
        peers: Vec<PeerAddress>,
        /// Memory for the store engine's block cache, in MiB (the OS file cache comes on top).
        #[arg(long, default_value_t = 64)]
        cache_mb: u64,
        #[command(flatten)]
        api: ApiArgs,
        /// Exit when standard input closes (how the devnet's parent takes its nodes
        /// down with it, however it ends).
        #[arg(long, hide = true)]
        exit_with_stdin: bool,
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
    },
    /// Re-verify a stopped node's whole store: every header link, certificate and
    /// record, re-executing every block and comparing the derived state.
    Check {
        #[arg(long)]
        genesis: PathBuf,
        #[arg(long)]
        data: PathBuf,
    },
}

pub fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,fjall=warn,lsm_tree=warn".into()),
        )
        .with_writer(std::io::stderr)
        // Colour only on a terminal: logs written to files stay plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match dispatch(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The API threads' default nice level above the consensus thread's.
const API_NICE: i32 = 10;

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
/// wait for standard input, and spare.
fn api_runtime(limits: &ApiLimits, nice: i32) -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("api")
        .on_thread_start(move || lower_this_thread(nice))
        .max_blocking_threads(limits.heavy_running_max + 2)
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
        Command::Run {
            genesis,
            key,
            data,
            listen,
            p2p_listen,
            peers,
            cache_mb,
            api,
            exit_with_stdin,
        } => {
            let genesis = Genesis::load(&genesis)?;
            let key = xinlian_genesis::keys::read_pem(&key)?;
            let mut config = NodeConfig::new(genesis, data, key);
            config.p2p_listen = p2p_listen;
            config.peers = peers;
            config.cache_bytes = cache_mb << 20;
            config.api = api.limits();
            // `block_on` runs `host::run` on this (main) thread, which starts the
            // consensus thread: a thread inherits its creator's nice level, so
            // consensus keeps the process's priority and only the API's are lowered.
            api_runtime(&config.api, api.api_nice)?.block_on(async move {
                let listener = tokio::net::TcpListener::bind(listen)
                    .await
                    .with_context(|| format!("binding {listen}"))?;
                let addr = listener.local_addr()?;
                // Tests and scripts wait for this line (or poll /v1/status).
                println!("xinlian-node: API listening on http://{addr}");
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
        Command::Devnet {
            dir,
            port,
            no_sample,
            scenario,
        } => xinlian_devnet::run(&xinlian_devnet::Options {
            port,
            sample: !no_sample,
            scenario,
            ..xinlian_devnet::Options::new(dir)
        }),
        Command::Check { genesis, data } => {
            let genesis = Genesis::load(&genesis)?;
            let report = crate::store_check::check_store(genesis, &data.join("ledger"))?;
            println!("{report}");
            Ok(())
        }
    }
}
