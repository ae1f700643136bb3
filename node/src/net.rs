//! The node's libp2p swarm: TCP, Noise, Yamux; gossipsub for consensus messages,
//! status and pending records; request-response for block sync. A node's libp2p
//! identity is its node key, and only the node keys of the roster in force may
//! connect: any other peer is refused at connection time (allow-list gating), and
//! logged. When governance changes the roster, [`Network::set_members`] follows it and
//! closes the connections of nodes no longer in it.
//!
//! Everything received is bounded and decoded here (canonical postcard); the replica
//! sees only well-formed messages with an authenticated sender.

use std::collections::HashMap;
use std::io;
use std::time::Duration;

use anyhow::{Context as _, Result};
use futures::{AsyncReadExt, AsyncWriteExt};
use libp2p::gossipsub::{self, IdentTopic, MessageAcceptance, MessageAuthenticity, ValidationMode};
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::NetworkBehaviour;
use libp2p::{
    Multiaddr, PeerId, StreamProtocol, Swarm, allow_block_list, identity, noise, tcp, yamux,
};
use xinlian_genesis::keys::SigningKey;
use xinlian_genesis::{Genesis, PublicKey, Roster};

/// Room for a message's envelope around the largest block.
const ENVELOPE_BYTES: usize = 64 << 10;

pub fn peer_id(key: &PublicKey) -> Result<PeerId> {
    let pk = identity::ed25519::PublicKey::try_from_bytes(&key.0)
        .context("a genesis node key is not an ed25519 point")?;
    Ok(identity::PublicKey::from(pk).to_peer_id())
}

pub fn keypair(key: &SigningKey) -> Result<identity::Keypair> {
    identity::Keypair::ed25519_from_bytes(key.to_bytes()).context("node key")
}

fn member_peers(roster: &Roster) -> Result<HashMap<PeerId, PublicKey>> {
    roster.node_keys().map(|k| Ok((peer_id(k)?, *k))).collect()
}

/// Length-prefixed bytes, at most `max` of them.
#[derive(Clone)]
pub struct BytesCodec {
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
        // Requests are small; only answers carry blocks.
        read_framed(io, 4096).await
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
pub struct Behaviour {
    pub members: allow_block_list::Behaviour<allow_block_list::AllowedPeers>,
    pub gossip: gossipsub::Behaviour,
    pub sync: request_response::Behaviour<BytesCodec>,
}

pub struct Network {
    pub swarm: Swarm<Behaviour>,
    pub topic: IdentTopic,
    /// Member node keys by peer id: who may speak, and as whom.
    pub members: HashMap<PeerId, PublicKey>,
    /// Largest gossip or sync message accepted.
    pub max_message: usize,
}

impl Network {
    /// A swarm for `genesis`'s chain admitting the node keys of `roster`, the roster in
    /// force at the node's next height. Frames are sized by genesis: policy changes
    /// may not raise the block bound above it.
    pub fn new(
        genesis: &Genesis,
        roster: &Roster,
        key: &SigningKey,
        listen: Multiaddr,
    ) -> Result<Network> {
        let chain = genesis.hash();
        let max_message = genesis.policy.block_bytes_max as usize
            + xinlian_core::consensus::wire::SYNC_BYTES_MAX
            + ENVELOPE_BYTES;
        let members = member_peers(roster)?;
        // A consortium is small (at most MEMBERS_MAX nodes) and every node must hear
        // every vote: the mesh is everyone, whatever governance adds later. Gossip to
        // peers outside the mesh (IHAVE lists) would otherwise start with the first
        // node beyond the mesh size, and under load those lists outgrew gossipsub's
        // 16 KiB control limit, which killed the streams between the four validators
        // left after a removal (tests/tests/governance.rs found it).
        let everyone = xinlian_genesis::model::MEMBERS_MAX;
        let gossip_config = gossipsub::ConfigBuilder::default()
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
            .map_err(|e| anyhow::anyhow!("gossip configuration: {e}"))?;
        let kp = keypair(key)?;
        let mut swarm = libp2p::SwarmBuilder::with_existing_identity(kp.clone())
            .with_tokio()
            .with_tcp(
                tcp::Config::default().nodelay(true),
                noise::Config::new,
                yamux::Config::default,
            )?
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
                        BytesCodec { max: max_message },
                        [(
                            StreamProtocol::new("/xinlian/sync/1"),
                            ProtocolSupport::Full,
                        )],
                        request_response::Config::default()
                            .with_request_timeout(Duration::from_secs(20)),
                    ),
                })
            })?
            .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(3600)))
            .build();
        let topic = IdentTopic::new(format!("xinlian/{chain}/v1"));
        swarm.behaviour_mut().gossip.subscribe(&topic)?;
        swarm.listen_on(listen)?;
        Ok(Network {
            swarm,
            topic,
            members,
            max_message,
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
        Ok(())
    }

    pub fn publish(&mut self, bytes: Vec<u8>) {
        let topic = self.topic.clone();
        if let Err(e) = self.swarm.behaviour_mut().gossip.publish(topic, bytes) {
            // With no peer connected yet there is nobody to tell; consensus re-sends.
            tracing::debug!(error = %e, "gossip publish");
        }
    }

    pub fn report(&mut self, id: &gossipsub::MessageId, from: &PeerId, ok: bool) {
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
