//! The TLS side of a node's keys: quinn endpoint and client configurations over rustls
//! with mutual TLS, where each side pins the
//! other's exact certificate (no CA, no name games: an unknown peer fails the handshake).
//! While a peer rotates its keys, the pin is a short list: its current certificate and its
//! next one (`Credentials`); nothing else is accepted.
//!
//! A certificate that is not pinned fails the handshake with [`NotPinned`]: the expected
//! and presented fingerprints, in the error text on both ends.
//!
//! One UDP socket per node serves both as the server its peer connects to (for channels
//! this node receives) and as the client that connects to its peer (for channels it sends).

use super::suite::Suite;
use quinn::crypto::rustls::{NoInitialCipherSuite, QuicClientConfig, QuicServerConfig};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;

/// ALPN protocol name (RFC 7301) of the isogate link under the default suite.
pub const ALPN: &[u8] = b"isogate/1";
/// ALPN protocol name of the isogate link under the national suite: a node of one suite
/// and a peer of the other share no protocol, so their handshake fails with TLS alert 120
/// (`no_application_protocol`) before anything crosses.
pub const ALPN_GM: &[u8] = b"isogate/1+gm";

/// The ALPN protocol name of the link of a pair running `suite`.
pub fn alpn(suite: Suite) -> &'static [u8] {
    match suite {
        Suite::Default => ALPN,
        Suite::Gm => ALPN_GM,
    }
}
/// The TLS server name clients ask for (the certificate is pinned; the name is fixed).
pub const SERVER_NAME: &str = "isogate-peer";

/// Why the link endpoint could not be set up.
#[derive(Debug, Error)]
pub enum LinkError {
    /// TLS configuration failed.
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    /// The QUIC crypto configuration failed.
    #[error("QUIC crypto configuration: {0}")]
    Quic(String),
    /// The UDP socket could not be bound.
    #[error("cannot listen on {addr}: {error}{}", crate::problem::hint(error))]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        error: std::io::Error,
    },
}

impl From<NoInitialCipherSuite> for LinkError {
    fn from(e: NoInitialCipherSuite) -> LinkError {
        LinkError::Quic(e.to_string())
    }
}

/// Accepts exactly the pinned certificates (one, or two while the peer rotates).
#[derive(Debug)]
struct Pinned {
    certs: Vec<CertificateDer<'static>>,
    provider: Arc<CryptoProvider>,
}

impl Pinned {
    /// A verifier over the ring provider that accepts only these credentials' peer
    /// certificates, and that provider, for the rustls builder.
    fn for_peers(id: &Credentials) -> (Arc<CryptoProvider>, Arc<Pinned>) {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = Arc::new(Pinned {
            certs: id.peer_certs.clone(),
            provider: provider.clone(),
        });
        (provider, verifier)
    }

    fn check(&self, presented: &CertificateDer<'_>, side: Side) -> Result<(), rustls::Error> {
        if is_pinned(&self.certs, presented) {
            Ok(())
        } else {
            let refusal = NotPinned {
                side,
                expected: self
                    .certs
                    .iter()
                    .map(crate::keys::cert_fingerprint)
                    .collect(),
                presented: crate::keys::cert_fingerprint(presented),
            };
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::Other(rustls::OtherError(Arc::new(refusal))),
            ))
        }
    }
}

/// Which end of the handshake refused the peer's certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// This node connected, and the server it reached presented the certificate.
    Client,
    /// The peer connected to this node and presented the certificate as its client's.
    Server,
}

/// A certificate the peer presented that is not pinned: both fingerprints (`sha256:` and 32
/// hex digits, as `keygen` prints and `check` shows). Carried inside the rustls error, so
/// that the handshake's error text, logged on this side and sent to the peer in the QUIC
/// close reason (fingerprints of certificates, no secret), names them on both nodes.
#[derive(Clone, PartialEq, Eq)]
pub struct NotPinned {
    /// The end that refused.
    pub side: Side,
    /// The fingerprints of the certificates pinned for the peer (two while it rotates).
    pub expected: Vec<String>,
    /// The fingerprint of the certificate the peer presented.
    pub presented: String,
}

impl std::fmt::Display for NotPinned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let whose = match self.side {
            Side::Client => "server",
            Side::Server => "client",
        };
        write!(
            f,
            "{whose} certificate not pinned: expected {}, presented {}",
            self.expected.join(" or "),
            self.presented
        )
    }
}

// rustls prints an `Other` certificate error with `{:?}`: the sentence, not the fields.
impl std::fmt::Debug for NotPinned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

impl std::error::Error for NotPinned {}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.check(end_entity, Side::Client)?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

impl ClientCertVerifier for Pinned {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.check(end_entity, Side::Server)?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        ServerCertVerifier::verify_tls12_signature(self, message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        ServerCertVerifier::verify_tls13_signature(self, message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        ServerCertVerifier::supported_verify_schemes(self)
    }
}

/// Our certificate and key, and the peer's pinned certificate.
pub struct Identity {
    /// Our certificate.
    pub cert: CertificateDer<'static>,
    /// Our private key.
    pub key: PrivateKeyDer<'static>,
    /// The peer's certificate, the only one accepted.
    pub peer_cert: CertificateDer<'static>,
}

/// Our certificate and key, and every certificate of the peer accepted: its current one
/// and, while it rotates, its next one.
#[derive(Debug)]
pub struct Credentials {
    /// Our certificate.
    pub cert: CertificateDer<'static>,
    /// Our private key.
    pub key: PrivateKeyDer<'static>,
    /// The peer's certificates, the only ones accepted.
    pub peer_certs: Vec<CertificateDer<'static>>,
    /// The pair's suite: the link's ALPN protocol ([`alpn`]).
    pub suite: Suite,
}

impl Credentials {
    /// Whether a certificate the peer presented is one of the pinned ones.
    pub fn accepts(&self, presented: &CertificateDer<'_>) -> bool {
        is_pinned(&self.peer_certs, presented)
    }
}

/// Whether `presented` is, byte for byte, one of the pinned certificates.
fn is_pinned(pinned: &[CertificateDer<'static>], presented: &CertificateDer<'_>) -> bool {
    pinned.iter().any(|c| c.as_ref() == presented.as_ref())
}

impl From<&Identity> for Credentials {
    fn from(id: &Identity) -> Credentials {
        Credentials {
            cert: id.cert.clone(),
            key: id.key.clone_key(),
            peer_certs: vec![id.peer_cert.clone()],
            suite: Suite::Default,
        }
    }
}

/// The QUIC transport settings both directions of the link share.
fn transport() -> Arc<quinn::TransportConfig> {
    let mut t = quinn::TransportConfig::default();
    t.max_concurrent_uni_streams(256u32.into());
    t.max_concurrent_bidi_streams(0u32.into());
    // What one object may have in flight unread by the receiver. Measured with 6,550-byte
    // packets, a 4 GiB file on loopback: 16 MiB kept the receiving node at 108-114 MiB
    // resident (quinn's received packets pin the buffers they were read into), 8 MiB at
    // 43-44 MiB (DESIGN.md §6: at most 100), at some 10 % of the file's rate.
    t.stream_receive_window((8u32 * 1024 * 1024).into());
    // What all objects in flight at once may have unread, and unacknowledged on the
    // sender. Measured, 8 files of 256 MiB at once: 64 MiB each held the nodes at 151
    // (sending) and 106 MiB (receiving) resident, 32 MiB at 122 and 87, at the same rate.
    t.receive_window((32u32 * 1024 * 1024).into());
    t.send_window(32 * 1024 * 1024);
    t.keep_alive_interval(Some(Duration::from_secs(1)));
    // stream channels cross as QUIC DATAGRAM frames (RFC 9221): room for a burst of
    // packets in each direction; beyond it the oldest are dropped, never waited for
    t.datagram_receive_buffer_size(Some(4 * 1024 * 1024));
    t.datagram_send_buffer_size(4 * 1024 * 1024);
    // Probe up to large packets (DPLPMTUD, RFC 8899): links that carry them (jumbo
    // frames, loopback) move far fewer packets per byte; links that do not simply stay at
    // what the probes confirm.
    let mut mtu = quinn::MtuDiscoveryConfig::default();
    mtu.upper_bound(MAX_UDP_PAYLOAD);
    t.mtu_discovery_config(Some(mtu));
    if let Ok(idle) = Duration::from_secs(5).try_into() {
        t.max_idle_timeout(Some(idle));
    }
    Arc::new(t)
}

/// The client configuration: present our certificate, accept only the pinned server.
pub fn client_config(id: &Identity) -> Result<quinn::ClientConfig, LinkError> {
    client_config_for(&Credentials::from(id))
}

/// The client configuration: present our certificate, accept only the pinned servers.
pub fn client_config_for(id: &Credentials) -> Result<quinn::ClientConfig, LinkError> {
    let (provider, verifier) = Pinned::for_peers(id);
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_auth_cert(vec![id.cert.clone()], id.key.clone_key())?;
    tls.alpn_protocols = vec![alpn(id.suite).to_vec()];
    let mut cfg = quinn::ClientConfig::new(Arc::new(QuicClientConfig::try_from(tls)?));
    cfg.transport_config(transport());
    Ok(cfg)
}

/// The server configuration: require a client certificate, accept only the pinned one.
pub fn server_config(id: &Identity) -> Result<quinn::ServerConfig, LinkError> {
    server_config_for(&Credentials::from(id))
}

/// The server configuration: require a client certificate, accept only the pinned ones.
pub fn server_config_for(id: &Credentials) -> Result<quinn::ServerConfig, LinkError> {
    let (provider, verifier) = Pinned::for_peers(id);
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![id.cert.clone()], id.key.clone_key())?;
    tls.alpn_protocols = vec![alpn(id.suite).to_vec()];
    tls.max_early_data_size = 0;
    let mut cfg = quinn::ServerConfig::with_crypto(Arc::new(QuicServerConfig::try_from(tls)?));
    cfg.transport_config(transport());
    Ok(cfg)
}

/// Binds the node's endpoint: a server for its peer, and a client toward it.
pub fn endpoint(id: &Identity, listen: SocketAddr) -> Result<quinn::Endpoint, LinkError> {
    endpoint_for(&Credentials::from(id), listen)
}

/// The largest UDP payload the link sends or accepts, in bytes: the upper bound of its
/// path MTU discovery and the `max_udp_payload_size` transport parameter (RFC 9000 §18.2)
/// it announces (quinn's own default, 1472, would stop the peer's probes at Ethernet's
/// size). Not jumbo frames' full 8952: quinn sends up to 10 packets in one UDP GSO send, and
/// Linux refuses a send of more than 65,507 bytes (`EMSGSIZE`), which quinn-udp drops
/// silently: 10 packets of more than 6,550 bytes would be lost on every full send. Memory:
/// quinn's endpoint allocates its receive buffer at this size × 64 (GRO) × 32 (batch),
/// 12.8 MiB of address space, of which a receive touches at most 64 KiB a slot (about
/// 2 MiB resident).
pub const MAX_UDP_PAYLOAD: u16 = 6550;

/// The most packets quinn 0.11 sends in one GSO send (its private `MAX_TRANSMIT_SEGMENTS`):
/// check it again when quinn is upgraded.
const QUINN_MAX_TRANSMIT_SEGMENTS: usize = 10;

// quinn's largest GSO send of the largest packets fits what Linux sends over IPv4
// (65,535 less the IPv4 and UDP headers; IPv6 allows 20 bytes more)
const _: () = assert!(QUINN_MAX_TRANSMIT_SEGMENTS * MAX_UDP_PAYLOAD as usize <= 65_507);

/// The kernel buffer asked for on the link's socket to receive, in bytes: room for about
/// 10 ms at 10 Gbit/s, so that a receiver busy a moment drops nothing (a drop costs a
/// retransmission, shrinks the congestion window, and counts toward quinn's MTU black-hole
/// detection, which would fall back to 1200-byte packets).
pub const LINK_RECV_BUFFER: usize = 16 << 20;

/// The kernel buffer asked for on the link's socket to send, in bytes.
pub const LINK_SEND_BUFFER: usize = 4 << 20;

/// Binds the node's endpoint with credentials that may pin several peer certificates: a
/// UDP socket on `listen` with [`LINK_RECV_BUFFER`] and [`LINK_SEND_BUFFER`] (past
/// `net.core.rmem_max` and `wmem_max` only with `CAP_NET_ADMIN`; a smaller grant is logged
/// at WARN), announcing [`MAX_UDP_PAYLOAD`].
///
/// # Errors
/// The socket cannot be bound ([`LinkError::Bind`]), or the TLS configuration cannot be
/// made.
pub fn endpoint_for(id: &Credentials, listen: SocketAddr) -> Result<quinn::Endpoint, LinkError> {
    let bind = |error| LinkError::Bind {
        addr: listen,
        error,
    };
    let socket = std::net::UdpSocket::bind(listen).map_err(bind)?;
    size_buffers(&socket, listen);
    let runtime = quinn::default_runtime()
        .ok_or_else(|| bind(std::io::Error::other("no async runtime to drive the link")))?;
    let mut config = quinn::EndpointConfig::default();
    config
        .max_udp_payload_size(MAX_UDP_PAYLOAD)
        .map_err(|e| bind(std::io::Error::other(e.to_string())))?;
    let mut ep = quinn::Endpoint::new(config, Some(server_config_for(id)?), socket, runtime)
        .map_err(bind)?;
    ep.set_default_client_config(client_config_for(id)?);
    Ok(ep)
}

/// Asks for the link socket's buffers ([`LINK_RECV_BUFFER`], [`LINK_SEND_BUFFER`]):
/// forced where the node may (`SO_RCVBUFFORCE`), else as much as `net.core.rmem_max`
/// (`wmem_max`) allows; a smaller grant is said at WARN, naming the sysctl to raise
/// ([`said_if_capped`]).
fn size_buffers(socket: &std::net::UdpSocket, listen: SocketAddr) {
    use rustix::net::sockopt;
    if sockopt::set_socket_recv_buffer_size_force(socket, LINK_RECV_BUFFER).is_err() {
        let _ = sockopt::set_socket_recv_buffer_size(socket, LINK_RECV_BUFFER);
    }
    if sockopt::set_socket_send_buffer_size_force(socket, LINK_SEND_BUFFER).is_err() {
        let _ = sockopt::set_socket_send_buffer_size(socket, LINK_SEND_BUFFER);
    }
    said_if_capped(
        listen,
        "receive",
        "rmem_max",
        LINK_RECV_BUFFER,
        sockopt::socket_recv_buffer_size(socket),
    );
    said_if_capped(
        listen,
        "send",
        "wmem_max",
        LINK_SEND_BUFFER,
        sockopt::socket_send_buffer_size(socket),
    );
}

/// Says at WARN when the link socket's `direction` buffer (`receive` or `send`) is smaller
/// than `asked` bytes (half what the kernel `reported`: its bookkeeping doubles it),
/// naming the sysctl `net.core.{sysctl}` to raise, or when it could not be read back.
fn said_if_capped(
    listen: SocketAddr,
    direction: &str,
    sysctl: &str,
    asked: usize,
    reported: rustix::io::Result<usize>,
) {
    match reported {
        Ok(reported) if reported / 2 < asked => tracing::warn!(
            listen = %listen,
            asked,
            granted = reported / 2,
            "the kernel capped the QUIC link's {direction} buffer (raise net.core.{sysctl}); a burst may be dropped and resent"
        ),
        Ok(_) => {}
        Err(e) => {
            tracing::warn!(listen = %listen, error = %e, "the QUIC link's {direction} buffer size cannot be read")
        }
    }
}

/// The certificate the peer presented on an established connection, if any.
pub fn peer_certificate(conn: &quinn::Connection) -> Option<CertificateDer<'static>> {
    let certs: Box<Vec<CertificateDer<'static>>> = conn
        .peer_identity()?
        .downcast::<Vec<CertificateDer<'static>>>()
        .ok()?;
    (*certs).into_iter().next()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{cert_fingerprint, keygen, load_cert};

    #[test]
    fn the_link_socket_gets_the_buffers_the_kernel_allows() {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let listen = socket.local_addr().unwrap();
        size_buffers(&socket, listen);
        // without CAP_NET_ADMIN the kernel caps a request at rmem_max (wmem_max); where
        // the sysctl cannot be read (a container's network namespace), the cap is unknown
        // and nothing can be said
        let max = |name: &str| {
            std::fs::read_to_string(format!("/proc/sys/net/core/{name}"))
                .ok()
                .and_then(|v| v.trim().parse::<usize>().ok())
        };
        let (Some(rmem_max), Some(wmem_max)) = (max("rmem_max"), max("wmem_max")) else {
            eprintln!("skipped: net.core.rmem_max or wmem_max cannot be read here");
            return;
        };
        let recv = rustix::net::sockopt::socket_recv_buffer_size(&socket).unwrap() / 2;
        let send = rustix::net::sockopt::socket_send_buffer_size(&socket).unwrap() / 2;
        assert!(
            recv >= LINK_RECV_BUFFER.min(rmem_max),
            "receive buffer {recv}"
        );
        assert!(send >= LINK_SEND_BUFFER.min(wmem_max), "send buffer {send}");
    }

    #[test]
    fn an_unpinned_certificate_is_refused_naming_both_fingerprints() {
        let dir = tempfile::tempdir().unwrap();
        let cert = |name: &str| load_cert(&keygen(name, dir.path()).unwrap().tls_cert).unwrap();
        let (pinned, next, stranger) = (cert("court"), cert("court-next"), cert("mallory"));
        let (_, verifier) = Pinned::for_peers(&Credentials {
            cert: stranger.clone(),
            key: PrivateKeyDer::Pkcs8(vec![0u8; 1].into()),
            peer_certs: vec![pinned.clone(), next.clone()],
            suite: Suite::Default,
        });
        assert!(verifier.check(&pinned, Side::Client).is_ok());
        assert!(verifier.check(&next, Side::Server).is_ok());
        for (side, whose) in [(Side::Client, "server"), (Side::Server, "client")] {
            let e = verifier.check(&stranger, side).unwrap_err().to_string();
            let want = format!(
                "invalid peer certificate: Other(OtherError({whose} certificate not pinned: expected {} or {}, presented {}))",
                cert_fingerprint(&pinned),
                cert_fingerprint(&next),
                cert_fingerprint(&stranger)
            );
            assert_eq!(e, want);
        }
    }
}
