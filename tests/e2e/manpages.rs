//! The committed man pages (`packaging/man/`, generated from the command line definition:
//! see the test in `src/main.rs`) render with `man -l`, without a single groff warning,
//! and say what they document: `isogate(1)` lists the commands, `isogate-run(1)` and
//! `isogate-audit-query(1)` their own options.
//!
//! Needs `man` (Debian package `man-db`, which brings groff); scripts/test.sh installs it.

use std::path::PathBuf;
use std::process::Command;

fn pages() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("packaging/man");
    let mut pages: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "1"))
        .collect();
    pages.sort();
    assert!(pages.len() > 10, "{pages:?}");
    pages
}

/// `man -l PAGE` as plain text, 80 columns, and whatever it said on stderr.
fn render(page: &std::path::Path) -> (String, String) {
    let out = Command::new("man")
        .args(["--warnings", "-E", "UTF-8", "-l"])
        .arg(page)
        .env("MANWIDTH", "80")
        .env("MAN_KEEP_FORMATTING", "")
        .env("MANPAGER", "cat")
        .env("PAGER", "cat")
        .output()
        .unwrap_or_else(|e| {
            panic!("man not found ({e}): install it with `apt-get install man-db` (scripts/test.sh does)")
        });
    assert!(out.status.success(), "man -l {}: {out:?}", page.display());
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn every_page_renders_without_warnings() {
    for page in pages() {
        let (text, warnings) = render(&page);
        let name = page.file_stem().unwrap().to_string_lossy().into_owned();
        assert!(
            warnings.trim().is_empty(),
            "man -l {}: {warnings}",
            page.display()
        );
        assert!(text.contains("NAME"), "{name}:\n{text}");
        assert!(text.contains("SYNOPSIS"), "{name}:\n{text}");
        assert!(text.contains(&name), "{name}:\n{text}");
    }
}

#[test]
fn the_pages_document_their_commands() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("packaging/man");
    let (top, _) = render(&dir.join("isogate.1"));
    for cmd in ["isogate-run(1)", "isogate-audit(1)", "isogate-check(1)"] {
        assert!(top.contains(cmd), "isogate(1) does not name {cmd}:\n{top}");
    }
    let (run, _) = render(&dir.join("isogate-run.1"));
    assert!(run.contains("--config"), "{run}");
    let (query, _) = render(&dir.join("isogate-audit-query.1"));
    for opt in ["--since", "--format"] {
        assert!(
            query.contains(opt),
            "isogate-audit-query(1) lacks {opt}:\n{query}"
        );
    }
}
