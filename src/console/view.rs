//! The console's HTML: the embedded templates (no external assets: inline CSS, and inline
//! JS only on the approvals page, to sign in the browser), rendered with minijinja. Every
//! value is HTML-escaped by the engine; names and details from the log or from publishers
//! show their control and bidirectional characters escaped (`\u{202e}`), as the text report
//! does.
//!
//! ```text
//!  page name + Lang + data (serde) ─► layout.html ◄─extends─ login | overview | search |
//!                                       object | quarantine | approvals | health ─► HTML
//! ```
//!
//! An undefined name in a template is an error (strict), so a label missing in one
//! language, or a misspelt field, fails the tests instead of printing nothing.

use super::lang::Lang;
use crate::audit::report_render::printable;
use serde::Serialize;
use std::sync::OnceLock;
use thiserror::Error;

/// The templates, by name.
const TEMPLATES: &[(&str, &str)] = &[
    ("layout.html", include_str!("templates/layout.html")),
    ("login.html", include_str!("templates/login.html")),
    ("overview.html", include_str!("templates/overview.html")),
    ("search.html", include_str!("templates/search.html")),
    ("object.html", include_str!("templates/object.html")),
    ("quarantine.html", include_str!("templates/quarantine.html")),
    ("approvals.html", include_str!("templates/approvals.html")),
    ("health.html", include_str!("templates/health.html")),
    ("missing.html", include_str!("templates/missing.html")),
];

/// A page could not be rendered.
#[derive(Debug, Error)]
#[error("rendering {page}: {source}")]
pub struct ViewError {
    /// The template.
    pub page: String,
    /// What the engine said.
    #[source]
    pub source: minijinja::Error,
}

/// What every page shows around its content.
#[derive(Debug, Clone, Serialize)]
pub struct Frame<'a> {
    /// This node's name.
    pub node: &'a str,
    /// The logged-in user; empty on the login page.
    pub user: &'a str,
    /// The session's CSRF token (the login form's own before login).
    pub csrf: &'a str,
    /// The nonce allowing this page's inline script (Content-Security-Policy).
    pub nonce: &'a str,
}

fn env() -> Result<&'static minijinja::Environment<'static>, ViewError> {
    static ENV: OnceLock<Result<minijinja::Environment<'static>, String>> = OnceLock::new();
    let built = ENV.get_or_init(|| {
        let mut env = minijinja::Environment::new();
        env.set_auto_escape_callback(|_| minijinja::AutoEscape::Html);
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
        env.set_formatter(|out, state, value| match value.as_str() {
            Some(s) => {
                minijinja::escape_formatter(out, state, &minijinja::Value::from(printable(s)))
            }
            None => minijinja::escape_formatter(out, state, value),
        });
        // multi-line text (metrics, checkpoint notes in details) shown line by line: each
        // line still goes through the formatter, so other control characters stay visible
        env.add_filter("lines", |s: String| -> Vec<String> {
            s.split('\n')
                .map(|l| l.strip_suffix('\r').unwrap_or(l).to_string())
                .collect()
        });
        for (name, text) in TEMPLATES {
            env.add_template(name, text)
                .map_err(|e| format!("{name}: {e}"))?;
        }
        Ok(env)
    });
    built.as_ref().map_err(|e| ViewError {
        page: "templates".into(),
        source: minijinja::Error::new(minijinja::ErrorKind::TemplateNotFound, e.clone()),
    })
}

/// Renders `page` (`overview`, `search`, …) in `lang` with the frame and the page's own
/// `data` (a serde map; its fields are the template's names).
///
/// # Errors
/// [`ViewError`] when the template names something `data` lacks, or fails otherwise.
pub fn render(
    page: &str,
    title: &str,
    lang: Lang,
    frame: &Frame<'_>,
    data: minijinja::Value,
) -> Result<String, ViewError> {
    let err = |source| ViewError {
        page: page.to_string(),
        source,
    };
    let env = env()?;
    let t = env.get_template(&format!("{page}.html")).map_err(err)?;
    let ctx = minijinja::context! {
        t => lang.labels(),
        lang => lang.as_str(),
        html_lang => lang.html(),
        page => page,
        title => title,
        node => frame.node,
        user => frame.user,
        csrf => frame.csrf,
        nonce => frame.nonce,
        ..data
    };
    t.render(ctx).map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use minijinja::context;

    fn frame() -> Frame<'static> {
        Frame {
            node: "court",
            user: "officer",
            csrf: "c5",
            nonce: "n1",
        }
    }

    #[test]
    fn names_are_escaped_in_both_languages() {
        let evil = "<script>alert(1)</script>\u{202e}fdp.exe";
        for lang in [Lang::Zh, Lang::En] {
            let html = render(
                "quarantine",
                "q",
                lang,
                &frame(),
                context! { error => "", entries => vec![context! {
                    object_id => "0".repeat(32), time => "t", channel => "to-internet",
                    name => evil, size => 3, reason => "type_mismatch", detail => "d", side => "sender",
                }] },
            )
            .unwrap();
            assert!(!html.contains("<script>alert"), "{html}");
            assert!(
                html.contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt;\\u{202e}fdp.exe"),
                "{html}"
            );
            assert!(!html.contains('\u{202e}'));
            let label = if lang == Lang::Zh {
                "隔离区"
            } else {
                "Quarantine"
            };
            assert!(html.contains(label));
            assert!(html.contains(&format!("lang=\"{}\"", lang.html())));
            assert!(html.contains("id=\"lang-zh\"") && html.contains("id=\"lang-en\""));
        }
    }

    #[test]
    fn every_page_renders_and_a_missing_field_fails() {
        let f = frame();
        let log = context! { ok => true, error => "", records => 3, checkpoints => 1, unsigned_tail => 0, checked_at => "now" };
        let pages = [
            ("login", context! { message => "" }),
            (
                "overview",
                context! { zone => "court", peer => "internet", tz => "UTC", problems => Vec::<String>::new(), log => log, counters => vec![("isogate_x_total", 1)] },
            ),
            (
                "search",
                context! { f => context! { q => "判决", sha256 => "", since => "", until => "", channel => "", event => "", reason => "" }, tz => "UTC", channels => vec!["to-internet"], events => vec!["landed"], reasons => vec!["x"], error => context! { label => "bad_since", value => "x" }, searched => true, truncated => false, rows => vec![context! { time => "t", event => "landed", channel => "c", object_id => "ab", name => "判决书.pdf", size => 1, reason => "", detail => "" }] },
            ),
            (
                "object",
                context! { id => "ab", trail => Vec::<String>::new(), proof => (), proof_error => "not covered", entry => () },
            ),
            (
                "object",
                context! { id => "ab", trail => Vec::<String>::new(), proof => context! { verified => true, error => "", checkpoint => vec!["isogate/court", "12"], entries => vec![context! { index => 9, path => vec!["aa"] }] }, proof_error => "", entry => () },
            ),
            (
                "approvals",
                context! { error => "", gm => false, config => "court.toml", pending => vec![context! { id => "ab", digest => "dd", channel => "c", name => "n", sha256 => "s", size => 1, since => "t", expires => "t", required => 2, approvals => Vec::<String>::new(), levels_missing => Vec::<u8>::new(), approve_message => "61", reject_message => "72" }] },
            ),
            ("missing", context! { id => "ab" }),
            ("missing", context! { id => "" }),
            (
                "health",
                context! { problems => vec!["link: quic down"], metrics => vec!["# HELP isogate_x_total x", "isogate_x_total 1"] },
            ),
        ];
        for (page, data) in pages {
            for lang in [Lang::Zh, Lang::En] {
                let html = render(page, page, lang, &f, data.clone())
                    .unwrap_or_else(|e| panic!("{page} {lang:?}: {e:#}"));
                assert!(html.contains("</html>"), "{page}");
            }
        }
        let object = render(
            "object",
            "o",
            Lang::En,
            &f,
            context! { id => "ab", trail => Vec::<String>::new(), proof => context! { verified => true, error => "", checkpoint => vec!["isogate/court", "12"], entries => Vec::<String>::new() }, proof_error => "", entry => () },
        )
        .unwrap();
        assert!(
            object.contains("court\n12\n</pre>"),
            "the note line by line: {object}"
        );
        let approvals = render("approvals", "a", Lang::En, &f, pages_approvals()).unwrap();
        assert!(approvals.contains("<script nonce=\"n1\">"));
        assert!(approvals.contains("data-message=\"61\""));
        assert!(approvals.contains("isogate approve ab --key APPROVER.key --config court.toml"));
        // a gm pair: no key picker and no buttons (the browser has no SM2), the command
        let gm = pages_approvals();
        let gm = context! { gm => true, ..gm };
        let gm = render("approvals", "a", Lang::En, &f, gm).unwrap();
        assert!(gm.contains("id=\"gm-cli-only\""), "{gm}");
        assert!(
            !gm.contains("class=\"approve\"") && !gm.contains("id=\"key\""),
            "{gm}"
        );
        assert!(gm.contains("isogate approve ab --key APPROVER.key"));
        assert!(approvals.contains("id=\"key\"") && !approvals.contains("gm-cli-only"));
        assert!(
            render(
                "health",
                "h",
                Lang::En,
                &f,
                context! { problems => Vec::<String>::new() }
            )
            .is_err(),
            "strict"
        );
    }

    #[test]
    fn multi_line_text_keeps_its_lines_and_shows_other_controls() {
        let f = frame();
        let health = render(
            "health",
            "h",
            Lang::Zh,
            &f,
            context! { problems => Vec::<String>::new(), metrics => vec!["# HELP a x", "a 1\u{7}"] },
        )
        .unwrap();
        assert!(health.contains("# HELP a x\na 1\\u{7}\n</pre>"), "{health}");
        assert!(!health.contains("\\u{a}"), "{health}");
        let row = context! { seq => 1, time => "t", event => "witnessed", channel => "", object_id => "", name => "", size => "", sha256 => "", reason => "", detail => "isogate/court\n12\r\nab\u{1b}" };
        let search = render(
            "search",
            "s",
            Lang::En,
            &f,
            context! { f => context! { q => "", sha256 => "", since => "", until => "", channel => "", event => "", reason => "" }, tz => "UTC", channels => Vec::<String>::new(), events => Vec::<String>::new(), reasons => Vec::<String>::new(), error => context! { label => "", value => "" }, searched => true, truncated => false, rows => vec![row] },
        )
        .unwrap();
        assert!(
            search.contains("isogate&#x2f;court<br>12<br>ab\\u{1b}</td>"),
            "{search}"
        );
        let zh = render(
            "search",
            "s",
            Lang::Zh,
            &f,
            context! { f => context! { q => "", sha256 => "", since => "x", until => "", channel => "", event => "", reason => "" }, tz => "UTC", channels => Vec::<String>::new(), events => Vec::<String>::new(), reasons => Vec::<String>::new(), error => context! { label => "bad_since", value => "x" }, searched => true, truncated => false, rows => Vec::<String>::new() },
        )
        .unwrap();
        assert!(zh.contains("无法识别起始时间"), "{zh}");
        assert!(!zh.contains("--since"), "{zh}");
    }

    fn pages_approvals() -> minijinja::Value {
        context! { error => "", gm => false, config => "court.toml", pending => vec![context! { id => "ab", digest => "dd", channel => "c", name => "n", sha256 => "s", size => 1, since => "t", expires => "t", required => 2, approvals => Vec::<String>::new(), levels_missing => Vec::<u8>::new(), approve_message => "61", reject_message => "72" }] }
    }
}
