//! The service as an operator installs it: every unit under `systemd/` passes
//! `systemd-analyze verify` without a single message, `isogate.service` keeps its
//! `systemd-analyze security` exposure at or below `MAX_EXPOSURE`, the units, the Debian
//! package's layout and the example configuration agree on every path, and the example
//! configuration passes `isogate check` once the keys exist.
//!
//! Needs `systemd-analyze` (Debian package `systemd`; `/bin/kill`, the units' ExecReload,
//! comes with `procps`). No running systemd is needed: verify and `security --offline=yes`
//! read the files only. A unit's `User=` is resolved when the service starts, not by verify,
//! so the `isogate` user need not exist here.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_isogate");

/// The installed binary's path, as the units and the package name it.
const INSTALLED_BIN: &str = "/usr/bin/isogate";

/// Ceiling of `systemd-analyze security --offline=yes` for the units (0 = nothing exposed,
/// 10 = no protection; systemd calls up to 1.9 "OK"), set at what they score on systemd 252.
/// What is left is what a network gateway is for, or what only the site can narrow: access
/// to the host's network (PrivateNetwork), Internet and Unix sockets (RestrictAddressFamilies:
/// QUIC, metrics, clamd), no IP allow list (IPAddressDeny: the peer's address is the site's,
/// see the unit), the host's root directory, the clock device ProtectClock leaves readable,
/// and group-accessible files (UMask: the exchange is shared with applications). Any looser
/// ceiling would let a lost protection through: without NoNewPrivileges, PrivateTmp,
/// ProtectSystem, ProtectHome, PrivateUsers or any ProtectKernel* line the score is 1.2,
/// without PrivateDevices 1.3, SystemCallFilter 1.5, RestrictNamespaces 1.8, an empty
/// CapabilityBoundingSet 2.8. The lines the score does not see (MemoryDenyWriteExecute,
/// LockPersonality …) are checked by name in `every_unit_has_the_required_hardening`.
const MAX_EXPOSURE: f64 = 1.1;

/// The hardening the units must keep (the issue that introduced them, and a few more).
const REQUIRED: &[&str] = &[
    "Type=notify",
    "WatchdogSec=30s",
    "ExecReload=/bin/kill -HUP $MAINPID",
    "User=isogate",
    "Group=isogate",
    "ProtectSystem=strict",
    "ProtectHome=yes",
    "NoNewPrivileges=yes",
    "PrivateTmp=yes",
    "PrivateDevices=yes",
    "PrivateUsers=yes",
    "CapabilityBoundingSet=",
    "AmbientCapabilities=",
    "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
    "SystemCallFilter=@system-service",
    "SystemCallFilter=~@privileged @resources",
    "SystemCallArchitectures=native",
    "MemoryDenyWriteExecute=yes",
    "LockPersonality=yes",
    "RestrictNamespaces=yes",
    "RestrictRealtime=yes",
    "RestrictSUIDSGID=yes",
    "ProtectKernelTunables=yes",
    "ProtectKernelModules=yes",
    "ProtectKernelLogs=yes",
    "ProtectControlGroups=yes",
    "ProtectClock=yes",
    "ProtectHostname=yes",
    "ProtectProc=invisible",
    "ProcSubset=pid",
    "RemoveIPC=yes",
    "PrivateMounts=yes",
];

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn run(cmd: &mut Command) -> Output {
    match cmd.output() {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "{:?} not found ({e}): these tests need systemd-analyze; install it with \
             `apt-get install systemd procps` (scripts/test.sh does)",
            cmd.get_program()
        ),
        Err(e) => panic!("cannot run {:?}: {e}", cmd.get_program()),
    }
}

fn text(out: &Output) -> String {
    format!(
        "status {}\n--- stdout\n{}--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Every `*.service` under `systemd/`, by file name.
fn units() -> Vec<(String, String)> {
    let dir = repo().join("systemd");
    let mut units: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "service"))
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read_to_string(&p).unwrap())
        })
        .collect();
    units.sort();
    let names: Vec<&str> = units.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["isogate.service", "isogate@.service"]);
    units
}

/// The unit with its binary replaced by the one under test (quoted and escaped for systemd),
/// written under the same name into `dir`.
fn install_for_test(dir: &Path, name: &str, unit: &str) -> PathBuf {
    let quoted = format!(
        "\"{}\"",
        BIN.replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('%', "%%")
    );
    let needle = format!("ExecStart={INSTALLED_BIN} ");
    assert!(
        unit.contains(&needle),
        "{name}: ExecStart does not run {INSTALLED_BIN}"
    );
    let path = dir.join(name);
    std::fs::write(&path, unit.replace(INSTALLED_BIN, &quoted)).unwrap();
    path
}

/// What `systemd-analyze verify` says about the unit file, if anything: a unit passes only
/// with exit status 0 and no output at all (a misspelt key or a bad value is only a warning
/// line, with status 0).
fn verify_problems(path: &Path) -> Option<String> {
    let out = run(Command::new("systemd-analyze").arg("verify").arg(path));
    let quiet = out.stdout.iter().all(u8::is_ascii_whitespace)
        && out.stderr.iter().all(u8::is_ascii_whitespace);
    (!out.status.success() || !quiet).then(|| text(&out))
}

#[test]
fn every_unit_passes_systemd_analyze_verify() {
    let dir = tempfile::tempdir().unwrap();
    for (name, unit) in units() {
        let path = install_for_test(dir.path(), &name, &unit);
        if let Some(problems) = verify_problems(&path) {
            panic!("systemd-analyze verify {name}:\n{problems}");
        }
    }
}

#[test]
fn every_unit_has_the_required_hardening() {
    for (name, unit) in units() {
        for line in REQUIRED {
            assert!(
                unit.lines().any(|l| l.trim() == *line),
                "{name} lacks {line}"
            );
        }
        // Writable: the state and exchange directories only.
        let writable = directive(&unit, "ReadWritePaths");
        assert_eq!(writable.len(), 2, "{name}: ReadWritePaths={writable:?}");
        assert!(writable[0].starts_with("/var/lib/isogate"), "{name}");
        assert!(writable[1].starts_with("/srv/isogate"), "{name}");
    }
}

#[test]
fn verify_check_catches_errors() {
    // The check above must be able to fail: a misspelt key, a bad value and a missing
    // binary are each caught.
    let dir = tempfile::tempdir().unwrap();
    let (name, unit) = units().remove(0);
    let good = install_for_test(dir.path(), &name, &unit);
    assert_eq!(verify_problems(&good), None);
    for (from, to) in [
        ("ProtectSystem=strict", "ProtectSystm=strict"),
        ("WatchdogSec=30s", "WatchdogSec=30q"),
        ("ExecReload=/bin/kill", "ExecReload=/nonexistent/kill"),
    ] {
        assert!(unit.contains(from), "{name} has no {from}");
        let bad = install_for_test(dir.path(), &name, &unit.replace(from, to));
        assert!(
            verify_problems(&bad).is_some(),
            "verify accepted {name} with {to}"
        );
    }
}

/// The overall exposure `systemd-analyze security --offline=yes` gives the unit file.
fn exposure(path: &Path) -> (f64, String) {
    let out = run(Command::new("systemd-analyze")
        .args(["security", "--offline=yes", "--no-pager"])
        .arg(path));
    let report = text(&out);
    assert!(out.status.success(), "systemd-analyze security:\n{report}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let score = stdout
        .lines()
        .find_map(|l| {
            l.split_once("Overall exposure level for ")?
                .1
                .split_once(": ")
        })
        .and_then(|(_, rest)| rest.split_whitespace().next()?.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no overall exposure level in:\n{report}"));
    (score, report)
}

#[test]
fn the_service_exposure_stays_low() {
    let dir = tempfile::tempdir().unwrap();
    for (name, unit) in units() {
        // A template is rated as one of its instances.
        let file = name.replace("@.", "@court.");
        let path = install_for_test(dir.path(), &file, &unit);
        let (score, report) = exposure(&path);
        println!("{file}: exposure {score}");
        assert!(
            score <= MAX_EXPOSURE,
            "{file}: exposure {score} > {MAX_EXPOSURE}\n{report}"
        );
    }
}

#[test]
fn the_exposure_check_catches_a_lost_protection() {
    let dir = tempfile::tempdir().unwrap();
    let (name, unit) = units().remove(0);
    for line in [
        "NoNewPrivileges=yes",
        "PrivateDevices=yes",
        "RestrictNamespaces=yes",
    ] {
        assert!(unit.contains(line), "{name} has no {line}");
        let weaker = unit.replace(&format!("{line}\n"), "");
        let path = install_for_test(dir.path(), &name, &weaker);
        let (score, _) = exposure(&path);
        assert!(
            score > MAX_EXPOSURE,
            "without {line} the exposure is {score}, still within {MAX_EXPOSURE}"
        );
    }
}

fn directive<'a>(unit: &'a str, key: &str) -> Vec<&'a str> {
    unit.lines()
        .filter_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .flat_map(str::split_whitespace)
        .collect()
}

fn manifest() -> toml::Value {
    toml::from_str(&std::fs::read_to_string(repo().join("Cargo.toml")).unwrap()).unwrap()
}

/// `(source, destination)` of every asset of the Debian package.
fn deb_assets() -> Vec<(String, String)> {
    let m = manifest();
    let assets = m["package"]["metadata"]["deb"]["assets"]
        .as_array()
        .unwrap();
    assets
        .iter()
        .map(|a| {
            let a = a.as_array().unwrap();
            (
                a[0].as_str().unwrap().to_string(),
                format!("/{}", a[1].as_str().unwrap()),
            )
        })
        .collect()
}

fn example_config() -> toml::Value {
    toml::from_str(&std::fs::read_to_string(repo().join("packaging/node.toml")).unwrap()).unwrap()
}

#[test]
fn the_unit_the_package_and_the_example_config_agree() {
    let units = units();
    let unit = &units[0].1;
    let assets = deb_assets();
    for (source, _) in &assets {
        if !source.starts_with("target/") && !source.contains('*') {
            assert!(repo().join(source).is_file(), "asset {source} is missing");
        }
    }
    let installed = |dest: &str| assets.iter().any(|(_, d)| d == dest);

    // The unit runs the installed binary on the installed example config.
    let exec = directive(unit, "ExecStart");
    assert_eq!(exec[..3], [INSTALLED_BIN, "run", "--config"]);
    assert!(installed(INSTALLED_BIN) || installed("/usr/bin/"));
    assert!(
        installed(exec[3]),
        "the package does not install {}",
        exec[3]
    );

    // The example config writes only where the unit lets it.
    let writable = directive(unit, "ReadWritePaths");
    let cfg = example_config();
    for key in ["state_dir", "audit_dir", "exchange_dir"] {
        let dir = cfg["node"][key].as_str().unwrap();
        assert!(
            writable
                .iter()
                .any(|w| Path::new(dir).starts_with(w.trim_start_matches('-'))),
            "node.{key} = {dir} is outside ReadWritePaths {writable:?}"
        );
    }
    // Its state directory is the unit's StateDirectory.
    let state = format!("/var/lib/{}", directive(unit, "StateDirectory")[0]);
    assert!(Path::new(cfg["node"]["state_dir"].as_str().unwrap()).starts_with(&state));
    // The exchange directory is the one tmpfiles.d creates.
    let tmpfiles = std::fs::read_to_string(repo().join("systemd/isogate.tmpfile")).unwrap();
    let exchange = cfg["node"]["exchange_dir"].as_str().unwrap();
    assert!(
        tmpfiles
            .lines()
            .any(|l| l.split_whitespace().nth(1) == Some(exchange)),
        "isogate.tmpfile does not create {exchange}"
    );
    // The unit's user is the one sysusers.d creates.
    let sysusers = std::fs::read_to_string(repo().join("systemd/isogate.sysusers")).unwrap();
    let user = directive(unit, "User")[0];
    assert!(
        sysusers
            .lines()
            .any(|l| l.split_whitespace().take(2).eq(["u", user])),
        "isogate.sysusers does not create {user}"
    );
    // Every policy it names is one the package installs from policy/.
    for ch in cfg["channel"].as_array().unwrap() {
        let policy = Path::new(ch["policy"].as_str().unwrap());
        let file = policy.file_name().unwrap();
        assert!(
            repo().join("policy").join(file).is_file(),
            "no policy/{file:?}"
        );
        assert!(assets.iter().any(|(s, d)| s == "policy/*.toml"
            && policy.parent() == Some(Path::new(d.trim_end_matches('/')))));
    }
}

/// The example config, with its absolute paths moved under `root`, and the shipped
/// policies where the package puts them.
fn example_under(root: &Path) -> PathBuf {
    let text = std::fs::read_to_string(repo().join("packaging/node.toml")).unwrap();
    let r = root.display().to_string();
    let moved = text
        .replace("\"/etc/isogate/", &format!("\"{r}/etc/isogate/"))
        .replace("\"/var/lib/isogate/", &format!("\"{r}/var/lib/isogate/"))
        .replace("\"/srv/isogate\"", &format!("\"{r}/srv/isogate\""));
    let policy = root.join("etc/isogate/policy");
    std::fs::create_dir_all(&policy).unwrap();
    for e in std::fs::read_dir(repo().join("policy")).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, policy.join(p.file_name().unwrap())).unwrap();
    }
    let cfg = root.join("etc/isogate/node.toml");
    std::fs::write(&cfg, &moved).unwrap();
    assert!(
        !moved
            .lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .any(|l| l.contains("\"/etc/") || l.contains("\"/var/") || l.contains("\"/srv/")),
        "a path of the example config was not moved:\n{moved}"
    );
    cfg
}

#[test]
fn the_example_config_passes_check_once_keys_and_folders_exist() {
    let root = tempfile::tempdir().unwrap();
    let cfg = example_under(root.path());
    let check = || run(Command::new(BIN).args(["check", "--config"]).arg(&cfg));

    // Without keys it names what is missing and how to make it.
    let out = check();
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("isogate keygen"),
        "{}",
        text(&out)
    );

    // With this node's keys and the peer's (here made on the same host), it passes.
    let certs = root.path().join("etc/isogate/certs");
    for name in ["court", "internet"] {
        let out = run(Command::new(BIN)
            .args(["keygen", "--name", name, "--out"])
            .arg(&certs));
        assert!(out.status.success(), "{}", text(&out));
    }
    // With keys, it names the folder `run` would not start without (the package's
    // tmpfiles make them, or the operator mounts the exchange share), with line and key.
    let out = check();
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&format!(
            "node.toml:31: node.exchange_dir: {}/srv/isogate: this folder does not exist",
            root.path().display()
        )),
        "{}",
        text(&out)
    );
    for dir in ["srv/isogate", "var/lib/isogate"] {
        std::fs::create_dir_all(root.path().join(dir)).unwrap();
    }
    let out = check();
    let report = text(&out);
    assert!(out.status.success(), "{report}");
    assert!(
        report.contains("channel to-internet: court -> internet (outbound), this node sends"),
        "{report}"
    );
    assert!(
        report.contains("channel to-court: internet -> court (inbound), this node receives"),
        "{report}"
    );
}

/// The roles' groups and directories (README, "Roles"), made as the package makes them but
/// under a scratch root: `systemd-sysusers --root` creates the user and groups in its
/// /etc, `systemd-tmpfiles --create --root` the directories, with the modes and groups the
/// units and the README name. No running systemd is needed.
#[test]
fn sysusers_and_tmpfiles_make_the_roles_directories() {
    use std::os::unix::fs::MetadataExt;
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("etc")).unwrap();
    let sysusers = repo().join("systemd/isogate.sysusers");
    let out = run(Command::new("systemd-sysusers")
        .arg(format!("--root={}", root.path().display()))
        .arg(&sysusers));
    assert!(out.status.success(), "systemd-sysusers:\n{}", text(&out));
    let group = std::fs::read_to_string(root.path().join("etc/group")).unwrap();
    let gid = |name: &str| -> u32 {
        group
            .lines()
            .find_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                (f[0] == name).then(|| f[2].parse().unwrap())
            })
            .unwrap_or_else(|| panic!("isogate.sysusers makes no group {name}:\n{group}"))
    };
    let (service, audit, secadm) = (gid("isogate"), gid("isogate-audit"), gid("isogate-secadm"));
    assert!(service != audit && audit != secadm && service != secadm);

    let tmpfiles = repo().join("systemd/isogate.tmpfile");
    let out = run(Command::new("systemd-tmpfiles")
        .args(["--create", &format!("--root={}", root.path().display())])
        .arg(&tmpfiles));
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "systemd-tmpfiles:\n{}",
        text(&out)
    );
    for (dir, mode, gid) in [
        ("srv/isogate", 0o2771, service),
        ("srv/isogate/quarantine", 0o2750, audit),
        ("var/lib/isogate", 0o711, service),
        ("var/lib/isogate/state", 0o700, service),
        ("var/lib/isogate/audit", 0o2750, audit),
    ] {
        let m = std::fs::metadata(root.path().join(dir)).unwrap();
        assert_eq!(
            (m.mode() & 0o7777, m.gid()),
            (mode, gid),
            "/{dir}: mode {:o} gid {}",
            m.mode() & 0o7777,
            m.gid()
        );
    }

    // The units agree: the state directory's mode, and the example config's directories
    // are the ones made for the auditors.
    for (name, unit) in units() {
        assert_eq!(
            directive(&unit, "StateDirectoryMode"),
            ["0711"],
            "{name}: the auditors pass through the state directory to the audit log"
        );
    }
    let cfg = example_config();
    assert_eq!(
        cfg["node"]["audit_dir"].as_str(),
        Some("/var/lib/isogate/audit")
    );
    assert_eq!(
        cfg["node"]["state_dir"].as_str(),
        Some("/var/lib/isogate/state")
    );
    assert_eq!(cfg["node"]["exchange_dir"].as_str(), Some("/srv/isogate"));
}

/// The man pages are installed by the package, one per command and subcommand.
#[test]
fn the_package_installs_the_man_pages() {
    let assets = deb_assets();
    assert!(
        assets
            .iter()
            .any(|(s, d)| s == "packaging/man/*.1" && d == "/usr/share/man/man1/"),
        "{assets:?}"
    );
    for page in ["isogate.1", "isogate-run.1", "isogate-audit-query.1"] {
        assert!(repo().join("packaging/man").join(page).is_file(), "{page}");
    }
}
