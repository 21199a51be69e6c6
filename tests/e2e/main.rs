//! The integration and end-to-end tests, one module per area, built as one test binary:
//! the shared helpers (`common`) are compiled and the binary linked once, not once per
//! area. nextest still runs every test in a process of its own, so the tests share
//! nothing at run time; filter by area with `cargo nextest run --test e2e -E
//! 'test(/^crash::/)'`.

mod common;

mod antivirus;
mod approval;
mod approval_more;
mod architecture;
mod audit;
mod audit_query;
mod cases;
mod cdp_smoke;
mod clamd_client;
mod clock;
mod console;
mod crash;
mod diode;
mod diode_lost;
mod diode_mtu;
mod diode_scenarios;
mod diode_small;
mod ferry;
mod intake;
mod keys;
mod manpages;
mod messages;
mod messages_nats;
mod monitoring;
mod operations;
mod policy;
mod quarantine;
mod quiet;
mod refusals;
mod report;
mod roles;
mod rotation;
mod space;
mod stream;
mod stream_diode;
mod stream_quic;
mod suite_gm;
mod systemd;
mod watch;
mod xdev;
