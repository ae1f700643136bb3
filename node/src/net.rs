//! The node's libp2p swarm: TCP, Noise, Yamux; gossipsub for consensus messages,
//! status and pending records; request-response for block sync. A node's libp2p
//! identity is its node key, and only the node keys of the roster in force may
//! connect: any other peer is refused at connection time (allow-list gating), and
//! logged. When governance changes the roster, [`Network::set_members`] follows it and
//! closes the connections of nodes no longer in it.
//!
//! Everything received is bounded and decoded here (canonical postcard), and every
//! libp2p event is handled here: the host sees only [`NetEvent`]s — well-formed
//! messages with an authenticated sender, named by node key — and speaks to peers by
//! node key through [`Network`]'s methods. Open sync requests, and the strikes that
//! disconnect a misbehaving member's node (only members are counted, and a message is
//! blamed on the member that relayed it, never on its claimed author), are kept here
//! too.

use std::collections::HashMap;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};
use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use libp2p::gossipsub::{self, IdentTopic, MessageAcceptance, MessageAuthenticity, ValidationMode};
use libp2p::multiaddr::Protocol;
use libp2p::request_response::{self, ProtocolSupport, ResponseChannel};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{
    Multiaddr, PeerId, StreamProtocol, Swarm, allow_block_list, identity, noise, ping, tcp, yamux,
};
use tokio::time::Instant;
use xinlian_core::consensus::wire::NetMsg;
use xinlian_genesis::keys::SigningKey;
use xinlian_genesis::{Genesis, Hash32, PublicKey, Roster};

use crate::metrics::Metrics;
use crate::private::{PrivateAnswer, PrivateRequest};
use xinlian_client::private::PrivateData;
use xinlian_client::record::RecordId;

/// A private-data push: one record's data, bounded as the API bounds it.
const PRIVATE_REQUEST_BYTES_MAX: usize = xinlian_client::private::DATA_BYTES_MAX + 256;
const PRIVATE_ANSWER_BYTES_MAX: usize = 1024;
/// Pushes from peers open at once (one more is answered busy), and ours unanswered.
const PRIVATE_OPEN_MAX: usize = 64;
const PRIVATE_SENT_MAX: usize = 256;
const PRIVATE_OPEN_PER_PEER_MAX: usize = 8;

/// A libp2p address (a multiaddr such as `/ip4/127.0.0.1/tcp/0`): where the swarm
/// listens, or another member's node to dial (`/ip4/…/tcp/…/p2p/PEER_ID`).
pub type PeerAddress = Multiaddr;

/// Room for a message's envelope around the largest block.
const ENVELOPE_BYTES: usize = 64 << 10;
/// Largest request: a sync request is small; a parts request names up to
/// `PARTS_ASKED_MAX` leaves. Only answers carry blocks and records.
const REQUEST_BYTES_MAX: usize = xinlian_core::consensus::wire::PARTS_ASKED_MAX * 33 + 256;
/// A peer that sends this many malformed or invalid messages within `STRIKE_WINDOW`
/// is disconnected (it may reconnect, and its strikes start again).
const STRIKES_MAX: u32 = 20;
const STRIKE_WINDOW: Duration = Duration::from_secs(60);
/// Sync requests a connection may have open at once (libp2p's default is 100): a
/// node asks one peer at a time, so two leave room for a retry.
const SYNC_STREAMS_MAX: usize = 2;
/// Sync requests waiting for the host's answer, from all peers together; more are
/// answered empty at once.
const SYNC_OPEN_MAX: usize = 64;

fn peer_id(key: &PublicKey) -> Result<PeerId> {
    let pk = identity::ed25519::PublicKey::try_from_bytes(&key.0)
        .context("a genesis node key is not an ed25519 point")?;
    Ok(identity::PublicKey::from(pk).to_peer_id())
}

fn keypair(key: &SigningKey) -> Result<identity::Keypair> {
    identity::Keypair::ed25519_from_bytes(key.to_bytes()).context("node key")
}

fn member_peers(roster: &Roster) -> Result<HashMap<PeerId, PublicKey>> {
    roster.node_keys().map(|k| Ok((peer_id(k)?, *k))).collect()
}

/// Length-prefixed bytes: requests of at most `request_max`, answers of at most `max`.
#[derive(Clone)]
struct BytesCodec {
    request_max: usize,
    max: usize,
}

async fn read_framed<T: futures::AsyncRead + Unpin + Send>(
    io: &mut T,
    max: usize,
) -> io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    io.read_exact(&mut len).await?;
    let len = u32::from_be_bytes(len) as usize;
    if len > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("message of {len} bytes is over the bound of {max}"),
        ));
    }
    let mut buf = vec![0u8; len];
    io.read_exact(&mut buf).await?;
    Ok(buf)
}

async fn write_framed<T: futures::AsyncWrite + Unpin + Send>(
    io: &mut T,
    bytes: &[u8],
) -> io::Result<()> {
    io.write_all(&(bytes.len() as u32).to_be_bytes()).await?;
    io.write_all(bytes).await?;
    io.close().await
}

impl request_response::Codec for BytesCodec {
    type Protocol = StreamProtocol;
    type Request = Vec<u8>;
    type Response = Vec<u8>;

    async fn read_request<T: futures::AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<Vec<u8>> {
        read_framed(io, self.request_max).await
    }

    async fn read_response<T: futures::AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<Vec<u8>> {
        read_framed(io, self.max).await
    }

    async fn write_request<T: futures::AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        req: Vec<u8>,
    ) -> io::Result<()> {
        write_framed(io, &req).await
    }

    async fn write_response<T: futures::AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        res: Vec<u8>,
    ) -> io::Result<()> {
        write_framed(io, &res).await
    }
}

#[derive(NetworkBehaviour)]
struct Behaviour {
    members: allow_block_list::Behaviour<allow_block_list::AllowedPeers>,
    gossip: gossipsub::Behaviour,
    sync: request_response::Behaviour<BytesCodec>,
    /// Private data, pushed only to the nodes of members entitled to it
    /// (`crate::private`); never gossiped.
    private: request_response::Behaviour<BytesCodec>,
    /// Liveness of each connection: a link that went dead (a pulled cable, a one-way
    /// loss) stays open and silent while TCP backs off, for as long as the outage
    /// lasted. A ping unanswered within `PING_TIMEOUT` closes the connection, and the
    /// redial (every 2 s) brings it back when the link is.
    ping: ping::Behaviour,
}

const PING_INTERVAL: Duration = Duration::from_secs(1);
const PING_TIMEOUT: Duration = Duration::from_secs(3);

/// What the network has for the host.
#[derive(Debug)]
pub enum NetEvent {
    /// The swarm listens here: an address with this node's `/p2p/PEER_ID`, to dial.
    Listening(String),
    /// A message for the replica from a member's node: gossip (anything but sync,
    /// from its signing author), or the blocks answering our sync request.
    Message { from: PublicKey, msg: NetMsg },
    /// Member's node `from` asks for the blocks from height `first` on (at most
    /// `max`). The request stays open here until [`Network::answer_sync`] answers
    /// `ticket`.
    SyncRequest {
        from: PublicKey,
        first: u64,
        max: u64,
        ticket: SyncTicket,
    },
    /// Member's node `from` asks for records of proposed block `block` by leaf; the
    /// request stays open until [`Network::answer_sync`] answers `ticket`, which the
    /// host does at once, from the replica (so these never wait behind sync reads).
    PartsRequest {
        from: PublicKey,
        block: Hash32,
        leaves: Vec<Hash32>,
        ticket: SyncTicket,
    },
    /// The last connection to a member's node closed.
    PeerGone(PublicKey),
    /// Member's node `from` pushes a record's private data; the request stays open until
    /// [`Network::answer_private`] answers `ticket`.
    PrivatePush {
        from: PublicKey,
        data: PrivateData,
        ticket: SyncTicket,
    },
    /// What member's node `from` answered our push of `record`'s private data; `None`
    /// when the push failed (unreachable, timed out, an answer that does not decode).
    PrivateAnswered {
        from: PublicKey,
        record: RecordId,
        answer: Option<PrivateAnswer>,
    },
}

/// An open sync request, to answer with [`Network::answer_sync`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SyncTicket(u64);

/// Misbehaviour by members' nodes: (count, start of the window) per peer id. Only
/// members are counted, so the map holds at most one entry per member's node; a
/// roster change drops the others.
#[derive(Default)]
struct Strikes {
    counts: HashMap<PeerId, (u32, Instant)>,
}

impl Strikes {
    /// Counts one strike against `peer` at `now`; true when it has reached
    /// `STRIKES_MAX` within `STRIKE_WINDOW` (its count starts again).
    fn strike(&mut self, peer: PeerId, now: Instant) -> (u32, bool) {
        let e = self.counts.entry(peer).or_insert((0, now));
        if now.duration_since(e.1) > STRIKE_WINDOW {
            *e = (0, now);
        }
        e.0 += 1;
        let count = e.0;
        if count >= STRIKES_MAX {
            self.counts.remove(&peer);
            return (count, true);
        }
        (count, false)
    }

    /// Forgets peers that are not members' nodes any more.
    fn retain_members(&mut self, members: &HashMap<PeerId, PublicKey>) {
        self.counts.retain(|p, _| members.contains_key(p));
    }
}

pub struct Network {
    swarm: Swarm<Behaviour>,
    topic: IdentTopic,
    /// Member node keys by peer id: who may speak, and as whom.
    members: HashMap<PeerId, PublicKey>,
    /// Largest gossip or sync message accepted.
    max_message: usize,
    /// Sync requests waiting for the host's answer, and the next ticket.
    sync_open: HashMap<SyncTicket, ResponseChannel<Vec<u8>>>,
    next_ticket: u64,
    /// Private-data pushes waiting for the host's answer, and ours waiting for theirs.
    private_open: HashMap<SyncTicket, (PeerId, ResponseChannel<Vec<u8>>)>,
    private_sent: HashMap<request_response::OutboundRequestId, RecordId>,
    strikes: Strikes,
    metrics: Arc<Metrics>,
}

impl Network {
    /// A swarm for `genesis`'s chain admitting the node keys of `roster`, the roster in
    /// force at the node's next height. Frames are sized by genesis: policy changes
    /// may not raise the block bound above it.
    pub fn new(
        genesis: &Genesis,
        roster: &Roster,
        key: &SigningKey,
        listen: PeerAddress,
        metrics: Arc<Metrics>,
    ) -> Result<Network> {
        let chain = genesis.hash();
        let max_message = genesis.policy.block_bytes_max as usize
            + xinlian_core::consensus::wire::SYNC_BYTES_MAX
            + ENVELOPE_BYTES;
        let members = member_peers(roster)?;
        let gossip_config = gossip_config(genesis)?;
        let kp = keypair(key)?;
        let builder = libp2p::SwarmBuilder::with_existing_identity(kp.clone())
            .with_tokio()
            .with_tcp(
                tcp::Config::default().nodelay(true),
                noise::Config::new,
                yamux::Config::default,
            )?;
        // Bytes in and out of every connection (`xinlian_libp2p_bandwidth_bytes_total`):
        // what the consortium costs the network per record (docs/performance.md).
        let swarm = metrics.register_with(|r| {
            builder
                .with_bandwidth_metrics(r)
                .with_behaviour(|k| {
                    let mut allow =
                        allow_block_list::Behaviour::<allow_block_list::AllowedPeers>::default();
                    for p in members.keys() {
                        allow.allow_peer(*p);
                    }
                    Ok(Behaviour {
                        members: allow,
                        gossip: gossipsub::Behaviour::new(
                            MessageAuthenticity::Signed(k.clone()),
                            gossip_config,
                        )
                        .expect("valid gossip configuration"),
                        sync: request_response::Behaviour::with_codec(
                            BytesCodec {
                                request_max: REQUEST_BYTES_MAX,
                                max: max_message,
                            },
                            [(
                                StreamProtocol::new("/xinlian/sync/2"),
                                ProtocolSupport::Full,
                            )],
                            request_response::Config::default()
                                .with_request_timeout(Duration::from_secs(20))
                                .with_max_concurrent_streams(SYNC_STREAMS_MAX),
                        ),
                        private: request_response::Behaviour::with_codec(
                            BytesCodec {
                                request_max: PRIVATE_REQUEST_BYTES_MAX,
                                max: PRIVATE_ANSWER_BYTES_MAX,
                            },
                            [(
                                StreamProtocol::new("/xinlian/private/1"),
                                ProtocolSupport::Full,
                            )],
                            request_response::Config::default()
                                .with_request_timeout(Duration::from_secs(10))
                                .with_max_concurrent_streams(PRIVATE_OPEN_MAX),
                        ),
                        ping: ping::Behaviour::new(
                            ping::Config::new()
                                .with_interval(PING_INTERVAL)
                                .with_timeout(PING_TIMEOUT),
                        ),
                    })
                })
                .map(|b| {
                    b.with_swarm_config(|c| {
                        c.with_idle_connection_timeout(Duration::from_secs(3600))
                    })
                    .build()
                })
        });
        let mut swarm = swarm?;
        let topic = IdentTopic::new(format!("xinlian/{chain}/v2"));
        swarm.behaviour_mut().gossip.subscribe(&topic)?;
        swarm.listen_on(listen)?;
        Ok(Network {
            swarm,
            topic,
            members,
            max_message,
            sync_open: HashMap::new(),
            next_ticket: 0,
            private_open: HashMap::new(),
            private_sent: HashMap::new(),
            strikes: Strikes::default(),
            metrics,
        })
    }

    /// Admits exactly the node keys of `roster`: newcomers may connect from now on, and
    /// removed members' connections are closed.
    pub fn set_members(&mut self, roster: &Roster) -> Result<()> {
        let next = member_peers(roster)?;
        let allow = &mut self.swarm.behaviour_mut().members;
        for (p, k) in &self.members {
            if !next.contains_key(p) {
                tracing::info!(peer_id = %p, node_key = %k, "no longer a member's node: disconnecting");
                // Closes its open connections too.
                allow.disallow_peer(*p);
            }
        }
        for p in next.keys() {
            allow.allow_peer(*p);
        }
        self.members = next;
        self.strikes.retain_members(&self.members);
        Ok(())
    }

    /// Handles the swarm's next event; what is for the host comes back, everything
    /// else libp2p reports is handled (and logged) here and gives `None`. One swarm
    /// event per call, so that a peer flooding events the host never sees (invalid
    /// gossip, dial noise) cannot keep the host's loop from its timers and commands.
    /// Cancel-safe: an event is taken from the swarm and handled at once.
    pub async fn next_event(&mut self) -> Option<NetEvent> {
        let event = self.swarm.select_next_some().await;
        self.on_swarm_event(event)
    }

    /// Gossips `msg` to every member's node.
    pub fn publish(&mut self, msg: &NetMsg) {
        let topic = self.topic.clone();
        if let Err(e) = self
            .swarm
            .behaviour_mut()
            .gossip
            .publish(topic, msg.encode())
        {
            // With no peer connected yet there is nobody to tell; consensus re-sends.
            tracing::debug!(error = %e, "gossip publish");
        }
    }

    /// Asks `to` for blocks or a proposal's records (`msg` is a `NetMsg::SyncRequest` or
    /// `NetMsg::PartsRequest`); its answer comes back as a [`NetEvent::Message`].
    /// Nothing is sent to a node not in the roster.
    pub fn send_request(&mut self, to: &PublicKey, msg: NetMsg) {
        if let Some(p) = self.peer_of(to) {
            self.swarm
                .behaviour_mut()
                .sync
                .send_request(&p, msg.encode());
        }
    }

    /// Answers the open sync request `ticket` with `msg` (a `NetMsg::SyncResponse`);
    /// a ticket already answered, or whose peer is gone, is ignored.
    pub fn answer_sync(&mut self, ticket: SyncTicket, msg: &NetMsg) {
        if let Some(ch) = self.sync_open.remove(&ticket) {
            let _ = self
                .swarm
                .behaviour_mut()
                .sync
                .send_response(ch, msg.encode());
        }
    }

    /// Pushes `data` to member's node `to`; its answer comes back as
    /// [`NetEvent::PrivateAnswered`]. Nothing is sent to a node not in the roster, nor
    /// past `PRIVATE_SENT_MAX` pushes unanswered (the sender retries).
    pub fn send_private(&mut self, to: &PublicKey, data: &PrivateData) -> bool {
        let Some(p) = self.peer_of(to) else {
            return false;
        };
        if self.private_sent.len() >= PRIVATE_SENT_MAX {
            return false;
        }
        let bytes = xinlian_genesis::canonical::encode(&PrivateRequest::Push(data.clone()));
        let id = self.swarm.behaviour_mut().private.send_request(&p, bytes);
        self.private_sent.insert(id, data.record);
        true
    }

    /// Answers the open push `ticket`; one already answered, or whose peer is gone, is
    /// ignored.
    pub fn answer_private(&mut self, ticket: SyncTicket, answer: &PrivateAnswer) {
        if let Some((_, ch)) = self.private_open.remove(&ticket) {
            let bytes = xinlian_genesis::canonical::encode(answer);
            let _ = self.swarm.behaviour_mut().private.send_response(ch, bytes);
        }
    }

    /// Counts misbehaviour by a member's node: `STRIKES_MAX` strikes within
    /// `STRIKE_WINDOW` disconnect it.
    /// A strike against a member's node for a message of kind `about` it sent.
    pub fn penalise(&mut self, peer: &PublicKey, reason: &str, about: &'static str) {
        if let Some(p) = self.peer_of(peer) {
            self.strike(p, reason, about);
        }
    }

    /// Dials each of `peers` this node is not connected to.
    pub fn redial(&mut self, peers: &[PeerAddress]) {
        for addr in peers {
            let connected = addr.iter().any(|p| match p {
                Protocol::P2p(id) => self.swarm.is_connected(&id),
                _ => false,
            });
            if !connected && let Err(e) = self.swarm.dial(addr.clone()) {
                tracing::debug!(%addr, error = %e, "dial");
            }
        }
    }

    fn peer_of(&self, key: &PublicKey) -> Option<PeerId> {
        self.members
            .iter()
            .find(|(_, k)| *k == key)
            .map(|(p, _)| *p)
    }

    /// Counts a member's node's misbehaviour; disconnects it after too much. Peers
    /// that are not members' nodes are not counted (they cannot be connected).
    fn strike(&mut self, peer: PeerId, reason: &str, about: &'static str) {
        if !self.members.contains_key(&peer) {
            tracing::debug!(%peer, %reason, "misbehaviour by a peer that is not a member's node");
            return;
        }
        let (strikes, disconnect) = self.strikes.strike(peer, Instant::now());
        // Every strike, the replica's (invalid votes, proposals, blocks) and the
        // network's own (malformed or misrouted messages).
        self.metrics
            .peer_penalties
            .get_or_create(&crate::metrics::KindLabel { kind: about })
            .inc();
        tracing::warn!(%peer, strikes, %reason, "peer misbehaved");
        if disconnect {
            tracing::warn!(%peer, "disconnecting a peer after {STRIKES_MAX} invalid messages");
            let _ = self.swarm.disconnect_peer_id(peer);
        }
    }

    fn count_peers(&self) {
        let connected = self.swarm.connected_peers().count();
        self.metrics
            .peers_connected
            .set(i64::try_from(connected).unwrap_or(i64::MAX));
    }

    fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) -> Option<NetEvent> {
        match event {
            SwarmEvent::NewListenAddr { address, .. } => {
                let me = *self.swarm.local_peer_id();
                return Some(NetEvent::Listening(format!("{address}/p2p/{me}")));
            }
            SwarmEvent::ConnectionEstablished { peer_id, .. } => {
                tracing::info!(%peer_id, "member connected");
                self.count_peers();
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established,
                ..
            } => {
                tracing::info!(%peer_id, "member disconnected");
                self.count_peers();
                if num_established == 0
                    && let Some(key) = self.members.get(&peer_id)
                {
                    return Some(NetEvent::PeerGone(*key));
                }
            }
            SwarmEvent::IncomingConnectionError {
                send_back_addr,
                error,
                peer_id,
                ..
            } => {
                self.metrics.connections_refused.inc();
                tracing::warn!(?peer_id, %send_back_addr, %error, "refused an incoming connection (not a consortium member's node key)");
            }
            SwarmEvent::OutgoingConnectionError { peer_id, error, .. } => {
                tracing::debug!(?peer_id, %error, "outgoing connection failed");
            }
            SwarmEvent::Behaviour(BehaviourEvent::Gossip(gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            })) => return self.on_gossip(propagation_source, &message_id, message),
            SwarmEvent::Behaviour(BehaviourEvent::Sync(request_response::Event::Message {
                peer,
                message,
                ..
            })) => return self.on_sync(peer, message),
            SwarmEvent::Behaviour(BehaviourEvent::Sync(
                request_response::Event::OutboundFailure { peer, error, .. },
            )) => {
                tracing::debug!(%peer, %error, "sync request failed");
            }
            SwarmEvent::Behaviour(BehaviourEvent::Private(request_response::Event::Message {
                peer,
                message,
                ..
            })) => return self.on_private(peer, message),
            SwarmEvent::Behaviour(BehaviourEvent::Private(
                request_response::Event::OutboundFailure {
                    peer,
                    request_id,
                    error,
                    ..
                },
            )) => {
                tracing::debug!(%peer, %error, "private-data push failed");
                let record = self.private_sent.remove(&request_id)?;
                let from = self.members.get(&peer).copied()?;
                return Some(NetEvent::PrivateAnswered {
                    from,
                    record,
                    answer: None,
                });
            }
            SwarmEvent::Behaviour(BehaviourEvent::Ping(ping::Event {
                peer,
                connection,
                result: Err(ping::Failure::Timeout),
            })) => {
                // A peer without the ping protocol (`Unsupported`) is left alone.
                tracing::info!(%peer, "a member's connection went silent: closing it to redial");
                self.swarm.close_connection(connection);
            }
            _ => {}
        }
        None
    }

    /// A gossip message: accepted and passed on if a member authored a well-formed
    /// non-sync message; otherwise rejected (gossipsub drops it) and its sender struck.
    fn on_gossip(
        &mut self,
        propagation_source: PeerId,
        message_id: &gossipsub::MessageId,
        message: gossipsub::Message,
    ) -> Option<NetEvent> {
        // Strict validation: `source` is the author, who signed the message.
        let author = message.source.and_then(|p| self.members.get(&p).copied());
        let decoded = NetMsg::decode(&message.data, self.max_message);
        match (author, decoded) {
            (Some(from), Ok(msg))
                if !matches!(
                    msg,
                    NetMsg::SyncRequest { .. }
                        | NetMsg::SyncResponse { .. }
                        | NetMsg::SyncBusy
                        | NetMsg::PartsRequest { .. }
                        | NetMsg::Parts { .. }
                ) =>
            {
                self.report(message_id, &propagation_source, true);
                Some(NetEvent::Message { from, msg })
            }
            (author, decoded) => {
                self.report(message_id, &propagation_source, false);
                let why = match (author, decoded) {
                    (None, _) => format!(
                        "relayed gossip authored by {}, not a member's node",
                        message.source.map_or("nobody".into(), |p| p.to_string())
                    ),
                    (_, Err(e)) => format!("malformed gossip message: {e}"),
                    (_, Ok(m)) => format!("{} sent over gossip", m.kind()),
                };
                // The relaying peer is the one the transport authenticated (and the
                // allow-list admitted): members validate before they forward, so it
                // is the one that injected the message. An author id costs nothing to
                // make, so it is never what is blamed.
                self.strike(propagation_source, &why, "gossip");
                None
            }
        }
    }

    /// A sync request (kept open here) or an answer to ours, from a member's node.
    fn on_sync(
        &mut self,
        peer: PeerId,
        message: request_response::Message<Vec<u8>, Vec<u8>>,
    ) -> Option<NetEvent> {
        let from = self.members.get(&peer).copied()?;
        match message {
            request_response::Message::Request {
                request, channel, ..
            } => match NetMsg::decode(&request, REQUEST_BYTES_MAX) {
                Ok(NetMsg::PartsRequest { block, leaves }) => {
                    let ticket = SyncTicket(self.next_ticket);
                    self.next_ticket += 1;
                    self.sync_open.insert(ticket, channel);
                    Some(NetEvent::PartsRequest {
                        from,
                        block,
                        leaves,
                        ticket,
                    })
                }
                Ok(NetMsg::SyncRequest { from: first, max }) => {
                    if self.sync_open.len() >= SYNC_OPEN_MAX {
                        let busy = NetMsg::SyncBusy.encode();
                        let _ = self.swarm.behaviour_mut().sync.send_response(channel, busy);
                        return None;
                    }
                    let ticket = SyncTicket(self.next_ticket);
                    self.next_ticket += 1;
                    self.sync_open.insert(ticket, channel);
                    Some(NetEvent::SyncRequest {
                        from,
                        first,
                        max,
                        ticket,
                    })
                }
                other => {
                    tracing::warn!(%peer, node_key = %from, error = ?other.err(), "malformed sync request");
                    None
                }
            },
            request_response::Message::Response { response, .. } => {
                match NetMsg::decode(&response, self.max_message) {
                    Ok(
                        msg @ (NetMsg::SyncResponse { .. }
                        | NetMsg::SyncBusy
                        | NetMsg::Parts { .. }),
                    ) => Some(NetEvent::Message { from, msg }),
                    other => {
                        tracing::warn!(%peer, error = ?other.err(), "malformed sync response");
                        None
                    }
                }
            }
        }
    }

    /// A push of private data (kept open here for the host) or an answer to ours.
    fn on_private(
        &mut self,
        peer: PeerId,
        message: request_response::Message<Vec<u8>, Vec<u8>>,
    ) -> Option<NetEvent> {
        // Settled first, whoever sent it: an entry left behind would count against
        // `PRIVATE_SENT_MAX` for ever.
        let answered = match &message {
            request_response::Message::Response { request_id, .. } => {
                Some(self.private_sent.remove(request_id))
            }
            request_response::Message::Request { .. } => None,
        };
        let from = self.members.get(&peer).copied()?;
        match message {
            request_response::Message::Request {
                request, channel, ..
            } => {
                let decoded = xinlian_genesis::canonical::decode::<PrivateRequest>(
                    &request,
                    PRIVATE_REQUEST_BYTES_MAX,
                );
                let Ok(PrivateRequest::Push(data)) = decoded else {
                    self.strike(peer, "malformed private-data push", "private");
                    return None;
                };
                // Pushes whose asker went away are forgotten; each peer has a share,
                // so that one member flooding pushes cannot crowd out the others.
                self.private_open.retain(|_, (_, ch)| ch.is_open());
                let from_peer = self
                    .private_open
                    .values()
                    .filter(|(p, _)| *p == peer)
                    .count();
                if self.private_open.len() >= PRIVATE_OPEN_MAX
                    || from_peer >= PRIVATE_OPEN_PER_PEER_MAX
                {
                    let busy = xinlian_genesis::canonical::encode(&PrivateAnswer::busy());
                    let _ = self
                        .swarm
                        .behaviour_mut()
                        .private
                        .send_response(channel, busy);
                    return None;
                }
                let ticket = SyncTicket(self.next_ticket);
                self.next_ticket += 1;
                self.private_open.insert(ticket, (peer, channel));
                Some(NetEvent::PrivatePush { from, data, ticket })
            }
            request_response::Message::Response { response, .. } => {
                let record = answered.flatten()?;
                let answer = xinlian_genesis::canonical::decode::<PrivateAnswer>(
                    &response,
                    PRIVATE_ANSWER_BYTES_MAX,
                )
                .ok();
                Some(NetEvent::PrivateAnswered {
                    from,
                    record,
                    answer,
                })
            }
        }
    }

    fn report(&mut self, id: &gossipsub::MessageId, from: &PeerId, ok: bool) {
        let verdict = if ok {
            MessageAcceptance::Accept
        } else {
            MessageAcceptance::Reject
        };
        self.swarm
            .behaviour_mut()
            .gossip
            .report_message_validation_result(id, from, verdict);
    }
}

/// Gossip for a consortium: small (at most `MEMBERS_MAX` nodes), where every node must
/// hear every vote, and a proposal carries a whole block.
fn gossip_config(genesis: &Genesis) -> Result<gossipsub::Config> {
    // The mesh is everyone, whatever governance adds later. Gossip to peers outside
    // the mesh (IHAVE lists) would otherwise start with the first node beyond the mesh
    // size, and under load those lists outgrew gossipsub's 16 KiB control limit, which
    // killed the streams between the four validators left after a removal
    // (tests/tests/governance.rs found it).
    let everyone = xinlian_genesis::model::MEMBERS_MAX;
    gossipsub::ConfigBuilder::default()
        // Every message is signed by its author's node key and checked.
        .validation_mode(ValidationMode::Strict)
        .validate_messages()
        // A proposal carries a whole block (rust-libp2p#2603: larger is dropped).
        .max_transmit_size(genesis.policy.block_bytes_max as usize + ENVELOPE_BYTES)
        .max_control_message_size(genesis.policy.block_bytes_max as usize + ENVELOPE_BYTES)
        .mesh_n_low(1)
        .mesh_n(everyone)
        .mesh_n_high(everyone)
        .mesh_outbound_min(0)
        .flood_publish(true)
        .heartbeat_interval(Duration::from_millis(200))
        .build()
        .map_err(|e| anyhow::anyhow!("gossip configuration: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(n: u8) -> (PeerId, PublicKey) {
        let key = xinlian_genesis::keys::public_key(&SigningKey::from_bytes(&[n; 32]));
        (peer_id(&key).unwrap(), key)
    }

    #[test]
    fn strikes_disconnect_at_the_bound_within_the_window() {
        let (p, _) = member(1);
        let mut s = Strikes::default();
        let t = Instant::now();
        for n in 1..STRIKES_MAX {
            assert_eq!(s.strike(p, t), (n, false));
        }
        assert_eq!(s.strike(p, t), (STRIKES_MAX, true));
        assert!(s.counts.is_empty(), "a disconnected peer starts again");
        s.strike(p, t);
        let later = t + STRIKE_WINDOW + Duration::from_secs(1);
        assert_eq!(s.strike(p, later), (1, false), "an old window is forgotten");
    }

    #[test]
    fn strikes_hold_only_members_and_forget_those_removed() {
        let (a, ka) = member(1);
        let (b, kb) = member(2);
        let mut s = Strikes::default();
        s.strike(a, Instant::now());
        s.strike(b, Instant::now());
        s.retain_members(&HashMap::from([(a, ka)]));
        assert_eq!(s.counts.keys().collect::<Vec<_>>(), vec![&a]);
        let _ = kb;
    }
}
