//! `isogate bench`, the short table printed last: each lab's gateway figures beside
//! DESIGN.md §6's targets and the cores each node used meanwhile, one line per figure, so
//! that the runs of two machines (a 2-core one and a 16-core one) compare at a glance.

/// One figure of one lab.
#[derive(Debug, Clone, PartialEq)]
struct Row {
    lab: String,
    figure: String,
    measured: String,
    target: &'static str,
    cores: String,
}

/// The figures gathered as the bench runs, laid out by [`Summary::table`].
#[derive(Debug, Default)]
pub struct Summary {
    lab: String,
    rows: Vec<Row>,
}

impl Summary {
    /// The lab the next figures are of (`quic default`, `diode gm`).
    pub fn lab(&mut self, name: String) {
        self.lab = name;
    }

    /// A figure: what it is (`1024 MiB file`), what was measured with its unit
    /// (`92 MiB/s`), its target (`≥ 400 MiB/s`, `—` for none) and the cores each node used
    /// (`court 0.64, internet 0.55`).
    pub fn add(
        &mut self,
        figure: impl Into<String>,
        measured: impl Into<String>,
        target: &'static str,
        cores: impl Into<String>,
    ) {
        self.rows.push(Row {
            lab: self.lab.clone(),
            figure: figure.into(),
            measured: measured.into(),
            target,
            cores: cores.into(),
        });
    }

    /// The table, or nothing when no figure ran; `cores`: this machine's, `file_system`:
    /// the file system under the labs (`super::filesystem::describe`), named in its heading
    /// since the small-file figures follow it.
    pub fn table(&self, cores: usize, file_system: &str) -> Option<String> {
        if self.rows.is_empty() {
            return None;
        }
        let head = Row {
            lab: "lab".into(),
            figure: "figure".into(),
            measured: "measured".into(),
            target: "target",
            cores: "cores used".into(),
        };
        let width = |f: fn(&Row) -> usize| {
            self.rows
                .iter()
                .chain(std::iter::once(&head))
                .map(f)
                .max()
                .unwrap_or(0)
        };
        let (lab, figure, measured, target) = (
            width(|r| r.lab.chars().count()),
            width(|r| r.figure.chars().count()),
            width(|r| r.measured.chars().count()),
            width(|r| r.target.chars().count()),
        );
        let mut out =
            format!("\nsummary ({cores} cores; {file_system}; both nodes on this machine)\n");
        for r in std::iter::once(&head).chain(&self.rows) {
            let line = format!(
                "  {:<lab$}  {:<figure$}  {:>measured$}  {:<target$}  {}",
                r.lab, r.figure, r.measured, r.target, r.cores
            );
            out.push_str(line.trim_end());
            out.push('\n');
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_lines_up_each_lab_s_figures_with_their_targets_and_cores() {
        let mut s = Summary::default();
        assert_eq!(s.table(2, "xfs, on vda"), None);
        s.lab("quic default".into());
        s.add(
            "1024 MiB file",
            "92 MiB/s",
            "≥ 400 MiB/s",
            "court 0.64, internet 0.55",
        );
        s.add(
            "4 KiB files",
            "550 files/s",
            "≥ 3000 files/s",
            "court 0.7, internet 0.5",
        );
        s.lab("diode default".into());
        s.add(
            "1024 MiB file",
            "100 MiB/s",
            "≥ 350 MiB/s",
            "court 0.8, internet 0.5",
        );
        let t = s
            .table(2, "ext4 with a journal (data=ordered), on vda")
            .unwrap();
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(
            lines[1],
            "summary (2 cores; ext4 with a journal (data=ordered), on vda; both nodes on this machine)"
        );
        assert!(lines[2].starts_with("  lab            figure"), "{t}");
        assert!(
            lines[3].starts_with("  quic default   1024 MiB file"),
            "{t}"
        );
        assert!(
            lines[5].starts_with("  diode default  1024 MiB file"),
            "{t}"
        );
        // columns line up whatever the width of a cell (the targets' ≥ is one character)
        let at = |l: &str, what: &str| l.find(what).map(|b| l[..b].chars().count());
        assert_eq!(at(lines[3], "≥ 400"), at(lines[4], "≥ 3000"));
        assert_eq!(at(lines[3], "court"), at(lines[5], "court"));
        assert_eq!(
            at(lines[3], "92 MiB/s").map(|c| c + "92 MiB/s".len()),
            at(lines[4], "550 files/s").map(|c| c + "550 files/s".len())
        );
    }
}
