//! The `isogate` command line: thin edges over the library (anyhow lives only here).

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand, ValueEnum};
use isogate::config::{Config, Role};
use isogate::init::{DEFAULT_PORT_BASE, LabLink};
use isogate::node::Node;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

/// isogate: a cross-network secure isolation-exchange gateway.
///
/// Two nodes on the two sides of a network boundary carry files across it through a
/// one-way, policy-checked ferry, with signed manifests and an audit log.
#[derive(Parser)]
#[command(name = "isogate", version, about, long_about = None)]
struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
enum Link {
    /// QUIC with mutual TLS.
    Quic,
}

#[derive(Clone, Copy, ValueEnum)]
enum CheckFormat {
    /// A readable report.
    Text,
    /// One JSON document.
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Write a ready two-node lab (court <-> internet) into DIR.
    Init {
        /// The lab directory (created; must be absent or empty).
        dir: PathBuf,
        /// Link type of the lab's channels.
        #[arg(long, value_enum, default_value_t = Link::Quic)]
        link: Link,
        /// Links listen on N and N+1.
        #[arg(long, default_value_t = DEFAULT_PORT_BASE)]
        port_base: u16,
    },
    /// Run a node until SIGTERM or SIGINT.
    Run {
        /// The node's configuration file.
        #[arg(long)]
        config: PathBuf,
    },
    /// Make a lab, run both nodes here, drop sample files, and show what crosses.
    Demo {
        /// Put the lab here instead of a new temporary directory.
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Links listen on N and N+1.
        #[arg(long, default_value_t = DEFAULT_PORT_BASE)]
        port_base: u16,
    },
    /// Validate a configuration and the policies it names; list every problem.
    Check {
        /// The node's configuration file.
        #[arg(long)]
        config: PathBuf,
        /// Report format.
        #[arg(long, value_enum, default_value_t = CheckFormat::Text)]
        format: CheckFormat,
    },
    /// Make a node's signing key pair and TLS certificate and key.
    Keygen {
        /// The node name (names the files).
        #[arg(long)]
        name: String,
        /// Directory for the key files (private keys are written mode 0600).
        #[arg(long)]
        out: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The demo prints its own story; keep its log to warnings unless RUST_LOG says otherwise.
    let default_level = match cli.command {
        Command::Demo { .. } => "warn",
        _ => "info,quinn=warn,rustls=warn",
    };
    init_logging(cli.log_format, default_level);
    match dispatch(cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("isogate: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(format: LogFormat, default_level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

async fn signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    match (term, int) {
        (Ok(mut t), Ok(mut i)) => {
            tokio::select! {
                _ = t.recv() => {}
                _ = i.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

fn dispatch(cmd: Command) -> Result<ExitCode> {
    match cmd {
        Command::Init {
            dir,
            link,
            port_base,
        } => {
            let Link::Quic = link;
            isogate::init::init(&dir, LabLink::Quic, port_base)?;
            println!("lab written to {}", dir.display());
            println!(
                "  start:  isogate run --config {}/court.toml",
                dir.display()
            );
            println!(
                "          isogate run --config {}/internet.toml",
                dir.display()
            );
            println!("  drop:   {}/court/outbox/to-internet/", dir.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Run { config } => {
            let cfg = Config::load(&config).map_err(|p| anyhow::anyhow!("{p}"))?;
            let node = Arc::new(Node::open(cfg)?);
            runtime()?.block_on(node.run(signal()))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo { dir, port_base } => {
            runtime()?.block_on(isogate::demo::run(dir, port_base, signal()))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Check { config, format } => check(&config, format),
        Command::Keygen { name, out } => {
            let files = isogate::keys::keygen(&name, &out)?;
            println!("signing key:     {}", files.signing_key.display());
            println!("signing public:  {}", files.signing_pub.display());
            println!("tls certificate: {}", files.tls_cert.display());
            println!("tls key:         {}", files.tls_key.display());
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn check(config: &std::path::Path, format: CheckFormat) -> Result<ExitCode> {
    let loaded = Config::load(config);
    match format {
        CheckFormat::Json => {
            let doc = match &loaded {
                Ok(cfg) => serde_json::json!({
                    "ok": true,
                    "config": config.display().to_string(),
                    "node": cfg.node.name,
                    "zone": cfg.node.zone,
                    "peer": cfg.peer.name,
                    "channels": cfg.channels.iter().map(|c| serde_json::json!({
                        "name": c.name,
                        "from": c.from,
                        "to": c.to,
                        "outbound": c.outbound,
                        "role": if c.role == Role::Send { "send" } else { "receive" },
                        "policy": c.policy_file.display().to_string(),
                        "max_bytes": c.policy.max_bytes,
                        "types": c.policy.allow,
                        "extensions": c.policy.extensions,
                    })).collect::<Vec<_>>(),
                    "problems": [],
                }),
                Err(p) => serde_json::json!({
                    "ok": false,
                    "config": config.display().to_string(),
                    "problems": p.0.iter().map(|x| serde_json::json!({
                        "file": x.file.display().to_string(),
                        "line": x.line,
                        "key": x.key,
                        "message": x.message,
                    })).collect::<Vec<_>>(),
                }),
            };
            println!("{}", serde_json::to_string_pretty(&doc)?);
        }
        CheckFormat::Text => match &loaded {
            Ok(cfg) => {
                println!(
                    "{}: ok — node {} (zone {}), peer {} at {}",
                    config.display(),
                    cfg.node.name,
                    cfg.node.zone,
                    cfg.peer.name,
                    cfg.peer.address
                );
                for c in &cfg.channels {
                    println!(
                        "  channel {}: {} -> {} ({}), this node {}s; policy {}: types [{}], max {} bytes",
                        c.name,
                        c.from,
                        c.to,
                        if c.outbound { "outbound" } else { "inbound" },
                        if c.role == Role::Send {
                            "send"
                        } else {
                            "receive"
                        },
                        c.policy_file.display(),
                        c.policy.allow.join(", "),
                        c.policy.max_bytes
                    );
                }
            }
            Err(p) => {
                for x in &p.0 {
                    eprintln!("{x}");
                }
            }
        },
    }
    match loaded {
        Ok(_) => Ok(ExitCode::SUCCESS),
        Err(p) => bail!("{} problem(s) in {}", p.0.len(), config.display()),
    }
}
