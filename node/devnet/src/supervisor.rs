//! The devnet's supervisor: one slot per node process. A node that exits on its own
//! (crash, `kill -9`) is reported on stdout and restarted after a short delay on the
//! same ports, dialling every other node, from its own data folder (so it catches
//! up by syncing); the others keep running. A node that keeps dying — five exits
//! within a minute — is left stopped. Commands on stdin: `status`, `stop NAME` (and
//! no restart), `start NAME`, `help`, `quit`.

use std::collections::VecDeque;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::process::{log_path, multiaddr_port, spawn_node, stop_all, url_port};

/// Exits within this window count towards giving up on a node.
const DEATH_WINDOW: Duration = Duration::from_secs(60);
/// This many exits within the window and the node is left stopped.
const DEATHS_MAX: usize = 5;
/// How often exits and due restarts are looked at.
const TICK: Duration = Duration::from_millis(250);

pub(crate) const COMMANDS: &str = "status, stop NAME, start NAME, help, quit";

/// What the supervisor hears about while it runs.
pub(crate) enum Event {
    /// Ctrl-C or SIGTERM: stop everything.
    Interrupt,
    /// A line typed (or piped) on stdin.
    Line(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Running,
    /// Exited on its own; starts again at this instant.
    RestartAt(Instant),
    /// Stopped by `stop NAME`.
    Stopped,
    /// Exited too often; stays stopped until `start NAME`.
    GaveUp,
}

/// One member's node: its fixed addresses and, while it runs, its process.
pub(crate) struct Slot {
    pub id: String,
    pub validator: bool,
    /// The API URL and p2p address (with peer id) announced at its first start; a
    /// restart binds the same ports, so both stay valid.
    pub api: String,
    pub p2p: String,
    api_port: u16,
    p2p_port: u16,
    child: Option<Child>,
    state: State,
    exits: VecDeque<Instant>,
}

impl Slot {
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }
}

pub(crate) struct Supervisor {
    exe: PathBuf,
    dir: PathBuf,
    pub slots: Vec<Slot>,
    restart_delay: Duration,
    /// Nodes serve their API over TLS with the devnet's certificates.
    tls: bool,
}

/// Prints a line to stdout, ignoring a closed pipe (the devnet carries on without a
/// reader).
pub(crate) fn say(line: impl std::fmt::Display) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

impl Supervisor {
    /// Starts every runner `(member id, is validator)` in order, each dialling those
    /// before it. Node `i`'s API is on `port + i` and its p2p on `port + 100 + i`
    /// (`port` 0: ports the OS picks).
    pub fn start(
        exe: PathBuf,
        dir: &Path,
        runners: &[(String, bool)],
        port: u16,
        restart_delay: Duration,
        tls: bool,
    ) -> Result<Supervisor> {
        let mut sup = Supervisor {
            exe,
            dir: dir.to_path_buf(),
            slots: Vec::new(),
            restart_delay,
            tls,
        };
        for (i, (id, validator)) in runners.iter().enumerate() {
            let offset = |base: u16| if port == 0 { 0 } else { base + i as u16 };
            let peers: Vec<String> = sup.slots.iter().map(|s| s.p2p.clone()).collect();
            let tls = sup.node_tls(id)?;
            let (child, api, p2p) = spawn_node(
                &sup.exe,
                dir,
                id,
                offset(port),
                offset(port.saturating_add(100)),
                &peers,
                tls.as_ref(),
            )
            .with_context(|| format!("(is a devnet already running on port {port}? try --port)"))?;
            let (api_port, p2p_port) = match (url_port(&api), multiaddr_port(&p2p)) {
                (Some(a), Some(p)) => (a, p),
                _ => anyhow::bail!("node {id} announced unreadable addresses: {api}, {p2p}"),
            };
            sup.slots.push(Slot {
                id: id.clone(),
                validator: *validator,
                api,
                p2p,
                api_port,
                p2p_port,
                child: Some(child),
                state: State::Running,
                exits: VecDeque::new(),
            });
        }
        Ok(sup)
    }

    /// Member `id`'s certificate files, when nodes serve TLS.
    fn node_tls(&self, id: &str) -> Result<Option<crate::tls::NodeTls>> {
        self.tls
            .then(|| crate::tls::node_tls(&self.dir, id))
            .transpose()
    }

    /// Supervises until Ctrl-C (or `quit`), then stops every node.
    pub fn run(&mut self, events: &Receiver<Event>) {
        loop {
            match events.recv_timeout(TICK) {
                Ok(Event::Interrupt) | Err(RecvTimeoutError::Disconnected) => break,
                Ok(Event::Line(line)) => {
                    if self.command(line.trim()) {
                        break;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
            }
            self.reap();
            self.restart_due();
        }
        say("stopping every node …");
        self.stop_all();
    }

    /// Closes every node's stdin, waits for them to exit, kills stragglers.
    pub fn stop_all(&mut self) {
        stop_all(self.slots.iter_mut().filter_map(|s| s.child.as_mut()));
        for s in &mut self.slots {
            s.child = None;
            s.state = State::Stopped;
        }
    }

    /// Reports nodes that exited on their own and schedules their restart (or gives
    /// up on them).
    fn reap(&mut self) {
        let now = Instant::now();
        for s in &mut self.slots {
            let Some(status) = s.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) else {
                continue;
            };
            s.child = None;
            say(format_args!(
                "node {} exited ({status}); log: {}",
                s.id,
                log_path(&self.dir, &s.id).display()
            ));
            s.state = note_exit(s, now, self.restart_delay);
        }
    }

    fn restart_due(&mut self) {
        let now = Instant::now();
        for i in 0..self.slots.len() {
            if let State::RestartAt(at) = self.slots[i].state
                && at <= now
            {
                say(format_args!("restarting {} …", self.slots[i].id));
                if let Err(e) = self.spawn(i) {
                    say(format_args!("{e:#}"));
                    let s = &mut self.slots[i];
                    s.state = note_exit(s, Instant::now(), self.restart_delay);
                }
            }
        }
    }

    /// Starts slot `i`'s node on its ports, dialling every other node.
    fn spawn(&mut self, i: usize) -> Result<()> {
        let peers: Vec<String> = (self.slots.iter().enumerate())
            .filter(|(j, _)| *j != i)
            .map(|(_, s)| s.p2p.clone())
            .collect();
        let s = &self.slots[i];
        let tls = self.node_tls(&s.id)?;
        let (child, api, _) = spawn_node(
            &self.exe,
            &self.dir,
            &s.id,
            s.api_port,
            s.p2p_port,
            &peers,
            tls.as_ref(),
        )?;
        let s = &mut self.slots[i];
        say(format_args!(
            "node {} is running again: pid {}, API {api}; it catches up from its data folder",
            s.id,
            child.id()
        ));
        s.child = Some(child);
        s.state = State::Running;
        Ok(())
    }

    /// Runs one stdin command; true to stop the devnet.
    fn command(&mut self, line: &str) -> bool {
        let mut words = line.split_whitespace();
        let (verb, name) = (words.next().unwrap_or(""), words.next());
        match (verb, name) {
            ("", _) => {}
            ("status", None) => self.print_status(),
            ("help", None) => say(format_args!("commands: {COMMANDS}")),
            ("quit" | "exit", None) => return true,
            ("stop" | "start", Some(name)) => match self.slots.iter().position(|s| s.id == name) {
                Some(i) if verb == "stop" => self.stop_one(i),
                Some(i) => self.start_one(i),
                None => say(format_args!(
                    "no node named '{name}'; nodes: {}",
                    self.slots
                        .iter()
                        .map(|s| s.id.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
            },
            _ => say(format_args!(
                "unknown command '{line}'; commands: {COMMANDS}"
            )),
        }
        false
    }

    fn stop_one(&mut self, i: usize) {
        let s = &mut self.slots[i];
        match s.child.as_mut() {
            Some(c) => {
                say(format_args!("stopping {} …", s.id));
                stop_all([c]);
                s.child = None;
                say(format_args!(
                    "node {} stopped; it stays stopped until `start {}`",
                    s.id, s.id
                ));
            }
            None if matches!(s.state, State::RestartAt(_)) => say(format_args!(
                "node {} is down and will not be restarted until `start {}`",
                s.id, s.id
            )),
            None => say(format_args!("node {} is not running", s.id)),
        }
        s.state = State::Stopped;
    }

    fn start_one(&mut self, i: usize) {
        let s = &mut self.slots[i];
        if let Some(pid) = s.pid() {
            say(format_args!("node {} is already running (pid {pid})", s.id));
            return;
        }
        s.exits.clear();
        say(format_args!("starting {} …", s.id));
        if let Err(e) = self.spawn(i) {
            say(format_args!("{e:#}"));
            self.slots[i].state = State::Stopped;
        }
    }

    /// One line per node: role, state, pid, API and, when it answers, its height.
    fn print_status(&self) {
        say("status:");
        let now = Instant::now();
        for s in &self.slots {
            let state = match s.state {
                State::Running => "running".to_string(),
                State::RestartAt(at) => format!(
                    "stopped (restarting in {:.1} s)",
                    at.saturating_duration_since(now).as_secs_f64()
                ),
                State::Stopped => "stopped".to_string(),
                State::GaveUp => "stopped (exited too often)".to_string(),
            };
            let pid = s.pid().map_or("-".to_string(), |p| p.to_string());
            let height = match s.child {
                Some(_) => (crate::tls::client(&self.dir, &s.api).ok())
                    .and_then(|c| c.status().ok())
                    .map_or("?".to_string(), |st| st.height.to_string()),
                None => "-".to_string(),
            };
            say(format_args!(
                "  {:<18} {:<9} pid {pid:<8} API {:<24} height {height:<6} {state}",
                s.id,
                role(s.validator),
                s.api
            ));
        }
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        self.stop_all();
    }
}

pub(crate) fn role(validator: bool) -> &'static str {
    if validator { "validator" } else { "observer" }
}

/// Counts an exit at `now`: the next state is a restart after `delay`, or giving up
/// when the node has exited too often lately.
fn note_exit(s: &mut Slot, now: Instant, delay: Duration) -> State {
    s.exits.push_back(now);
    while s
        .exits
        .front()
        .is_some_and(|t| now.duration_since(*t) > DEATH_WINDOW)
    {
        s.exits.pop_front();
    }
    if s.exits.len() >= DEATHS_MAX {
        say(format_args!(
            "node {} exited {} times within {} s; leaving it stopped (type `start {}` to try again)",
            s.id,
            s.exits.len(),
            DEATH_WINDOW.as_secs(),
            s.id
        ));
        State::GaveUp
    } else {
        say(format_args!(
            "node {} will be restarted in {:.1} s (`stop {}` to keep it down)",
            s.id,
            delay.as_secs_f64(),
            s.id
        ));
        State::RestartAt(now + delay)
    }
}

/// Whether stdin can carry commands: a terminal or a pipe (not `/dev/null` or a
/// file).
pub(crate) fn stdin_takes_commands() -> bool {
    use std::io::IsTerminal;
    if std::io::stdin().is_terminal() {
        return true;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        std::fs::metadata("/dev/stdin")
            .is_ok_and(|m| m.file_type().is_fifo() || m.file_type().is_socket())
    }
    #[cfg(not(unix))]
    false
}

/// Forwards stdin's lines as events until it ends (which stops nothing).
pub(crate) fn read_commands(tx: std::sync::mpsc::Sender<Event>) {
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::stdin().lock().lines().map_while(Result::ok) {
            if tx.send(Event::Line(line)).is_err() {
                break;
            }
        }
    });
}
