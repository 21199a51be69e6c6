//! The shipped alert rules, checked by Prometheus' own tool: `promtool check rules` (they
//! load) and `promtool test rules` (monitoring/alerts.test.yml: the first event after a
//! restart fires, as counters are exported at 0 from the start). promtool comes with
//! Debian's `prometheus` package (scripts/test.sh installs it); without it the test says
//! so on stderr and passes.

use std::path::Path;
use std::process::Command;

fn promtool(args: &[&str]) -> Option<std::process::Output> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("monitoring");
    match Command::new("promtool")
        .args(args)
        .current_dir(dir)
        .output()
    {
        Ok(out) => Some(out),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => panic!("cannot run promtool: {e}"),
    }
}

#[test]
fn alert_rules_load_and_fire_on_the_first_event() {
    let Some(check) = promtool(&["check", "rules", "alerts.yml"]) else {
        eprintln!(
            "SKIPPED: promtool is not installed (apt-get install prometheus); the alert rules were not checked"
        );
        return;
    };
    assert!(
        check.status.success(),
        "promtool check rules: {}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    let test = promtool(&["test", "rules", "alerts.test.yml"]).expect("promtool vanished");
    assert!(
        test.status.success(),
        "promtool test rules: {}{}",
        String::from_utf8_lossy(&test.stdout),
        String::from_utf8_lossy(&test.stderr)
    );
}
