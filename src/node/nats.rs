//! The node's NATS connections: one client per JetStream end of a messages channel (the
//! sending node's source consumer, the receiving node's delivery subject), made the same
//! way everywhere, and the back-off both ends wait with while NATS is away.
//!
//! ```text
//!  connect(server, node) ─► async_nats client named "isogate <node>", connecting in the
//!     background (the node starts while NATS is down), reconnecting for ever
//!  jetstream(client) ─► JetStream context (NATS JetStream API, request timeout below)
//!  Backoff ─► 100 ms, 200 ms, … at most 5 s between tries; reset by a success
//! ```

use std::time::Duration;
use thiserror::Error;

/// How long one TCP connect and handshake to the NATS server may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a JetStream API request (consumer info, publish acknowledgement) may wait.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest wait between two tries while NATS is unreachable.
pub const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// The first wait after a failure.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);

/// Why a NATS client could not be made.
#[derive(Debug, Error)]
pub enum NatsError {
    /// The server address or the options were refused before any connection was tried
    /// (with `retry_on_initial_connect`, an unreachable server is not an error: the
    /// client keeps trying in the background).
    #[error("NATS server {server}: {source}")]
    Connect {
        /// The server, `host:port`.
        server: String,
        /// What the client said.
        #[source]
        source: async_nats::ConnectError,
    },
}

/// A NATS client for `server` (`host:port`, or a `nats://` URL), named `isogate <node>`
/// in the server's connection list. Returns at once: the connection is made in the
/// background and remade after every loss, with no limit on attempts (each at most
/// [`CONNECT_TIMEOUT`], waiting up to [`MAX_BACKOFF`] in between); requests made while it
/// is down fail after their timeout and the caller tries again.
///
/// Must be called inside a tokio runtime (the client's connection task runs on it).
///
/// # Errors
/// [`NatsError::Connect`] when the address cannot be used at all.
pub async fn connect(server: &str, node: &str) -> Result<async_nats::Client, NatsError> {
    async_nats::ConnectOptions::new()
        .name(format!("isogate {node}"))
        .connection_timeout(CONNECT_TIMEOUT)
        .request_timeout(Some(REQUEST_TIMEOUT))
        .retry_on_initial_connect()
        .max_reconnects(None)
        .reconnect_delay_callback(|attempts| backoff_after(attempts as u32))
        .connect(server)
        .await
        .map_err(|source| NatsError::Connect {
            server: server.to_string(),
            source,
        })
}

/// The JetStream context (NATS JetStream API) on `client`, with [`REQUEST_TIMEOUT`] for
/// its requests and publish acknowledgements.
pub fn jetstream(client: async_nats::Client) -> async_nats::jetstream::Context {
    async_nats::jetstream::ContextBuilder::new()
        .timeout(REQUEST_TIMEOUT)
        .build(client)
}

/// The wait before try number `failures + 1` after `failures` failures in a row:
/// 0 for none, then 100 ms doubling up to [`MAX_BACKOFF`].
pub fn backoff_after(failures: u32) -> Duration {
    if failures == 0 {
        return Duration::ZERO;
    }
    let doubled = FIRST_BACKOFF.saturating_mul(1u32 << (failures - 1).min(16));
    doubled.min(MAX_BACKOFF)
}

/// Consecutive failures of one NATS end, and whether it is down now: the wait before the
/// next try, and one log line when it goes down and one when it is back (not one a try).
#[derive(Debug, Default)]
pub struct Backoff {
    failures: u32,
}

impl Backoff {
    /// Notes a failure; returns the wait before the next try and whether this is the
    /// first failure after a success (the one to log as a warning).
    pub fn failed(&mut self) -> (Duration, bool) {
        self.failures = self.failures.saturating_add(1);
        (backoff_after(self.failures), self.failures == 1)
    }

    /// Notes a success; returns whether the end was down until now (the one to log).
    pub fn succeeded(&mut self) -> bool {
        std::mem::take(&mut self.failures) > 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_then_caps_and_resets() {
        assert_eq!(backoff_after(0), Duration::ZERO);
        assert_eq!(backoff_after(1), Duration::from_millis(100));
        assert_eq!(backoff_after(2), Duration::from_millis(200));
        assert_eq!(backoff_after(6), Duration::from_millis(3200));
        assert_eq!(backoff_after(7), MAX_BACKOFF);
        assert_eq!(backoff_after(u32::MAX), MAX_BACKOFF);
        let mut b = Backoff::default();
        assert!(!b.succeeded());
        assert_eq!(b.failed(), (Duration::from_millis(100), true));
        assert_eq!(b.failed(), (Duration::from_millis(200), false));
        assert!(b.succeeded());
        assert_eq!(b.failed(), (Duration::from_millis(100), true));
    }
}

/// A real `nats-server` with JetStream for the tests of both ends (Debian's package;
/// `scripts/test.sh` installs it).
#[cfg(test)]
pub(crate) mod testing {
    use std::net::TcpStream;
    use std::process::{Child, Command, Stdio};
    use std::time::{Duration, Instant};

    /// `nats-server -js` on 127.0.0.1:`port`, its store in a temporary directory kept
    /// across [`NatsServer::restart`]; killed when dropped.
    pub(crate) struct NatsServer {
        child: Option<Child>,
        pub(crate) port: u16,
        dir: tempfile::TempDir,
    }

    impl NatsServer {
        pub(crate) fn start(port: u16) -> NatsServer {
            let dir = tempfile::tempdir().unwrap();
            let mut s = NatsServer {
                child: None,
                port,
                dir,
            };
            s.restart();
            s
        }

        /// `host:port` for [`super::connect`].
        pub(crate) fn addr(&self) -> String {
            format!("127.0.0.1:{}", self.port)
        }

        /// Kills the server (SIGKILL), keeping its store.
        pub(crate) fn kill(&mut self) {
            if let Some(mut c) = self.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }

        /// Starts the server again on the same port and store, and waits for its port.
        pub(crate) fn restart(&mut self) {
            self.kill();
            let child = Command::new("nats-server")
                .args([
                    "-js",
                    "-a",
                    "127.0.0.1",
                    "-p",
                    &self.port.to_string(),
                    "-sd",
                ])
                .arg(self.dir.path())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("nats-server must be installed (scripts/test.sh installs it)");
            self.child = Some(child);
            let deadline = Instant::now() + Duration::from_secs(30);
            while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
                assert!(Instant::now() < deadline, "nats-server did not listen");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    impl Drop for NatsServer {
        fn drop(&mut self) {
            self.kill();
        }
    }

    /// Polls `cond` every 20 ms until it holds; fails the test after 60 s.
    pub(crate) async fn until(what: &str, mut cond: impl AsyncFnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !cond().await {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[cfg(test)]
mod connect_tests {
    use super::testing::NatsServer;
    use super::*;

    #[tokio::test]
    async fn connects_in_the_background_and_again_after_a_restart() {
        // nothing listens yet: the client is made all the same
        let port = 28500;
        let client = connect(&format!("127.0.0.1:{port}"), "court")
            .await
            .unwrap();
        assert_ne!(
            client.connection_state(),
            async_nats::connection::State::Connected
        );
        let mut server = NatsServer::start(port);
        super::testing::until("the first connection", async || {
            client.connection_state() == async_nats::connection::State::Connected
        })
        .await;
        server.kill();
        super::testing::until("the loss noticed", async || {
            client.connection_state() != async_nats::connection::State::Connected
        })
        .await;
        server.restart();
        super::testing::until("the connection made again", async || {
            client.connection_state() == async_nats::connection::State::Connected
        })
        .await;
        // and it works: a JetStream request is answered
        let js = jetstream(client);
        js.create_stream(async_nats::jetstream::stream::Config {
            name: "T".into(),
            subjects: vec!["t".into()],
            ..Default::default()
        })
        .await
        .unwrap();
    }

    #[tokio::test]
    async fn a_bad_address_is_an_error() {
        assert!(connect("nats://[not an address", "court").await.is_err());
    }
}
