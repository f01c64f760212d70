//! Progress of long operator work (`backfill`, `replay`). On a terminal, one line redrawn in
//! place: `[######..............] 1/3 dates, 12 s: online_retail/2026-03-04 checked; waiting
//! for the export`. When stdout is not a terminal (CI logs, pipes, tests), plain lines instead,
//! at a rate a log can take: one for every unit done, one for a new phase at most every
//! [`MIN_GAP`], and one every [`HEARTBEAT`] while nothing changes.
//!
//! The rendering and the plain-line rate are pure functions of the state ([`bar_line`],
//! [`plain_line`], [`line_due`]); [`Progress`] only decides when to write them.

use std::future::Future;
use std::io::{IsTerminal as _, Write as _};
use std::time::{Duration, Instant};

use crate::table::truncate;

/// Cells of the bar between its brackets.
pub const BAR_WIDTH: usize = 20;
/// Plain lines: a new phase is printed once this long has passed since the last line.
pub const MIN_GAP: Duration = Duration::from_secs(2);
/// Plain lines: printed at least this often, so a log shows the command is still waiting.
pub const HEARTBEAT: Duration = Duration::from_secs(15);
/// How often [`Progress::during`] refreshes the display while it waits.
const TICK: Duration = Duration::from_millis(200);

/// What a progress display shows at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct State<'a> {
    /// Units finished, out of `total`.
    pub done: u64,
    pub total: u64,
    /// What is counted, plural: `dates`, `stages`.
    pub unit: &'a str,
    pub elapsed: Duration,
    /// What is happening now: `online_retail/2026-03-04 waiting for the export`.
    pub phase: &'a str,
}

/// `1 s`, `12 s`, `2 min 05 s`, `1 h 02 min`.
pub fn elapsed_text(elapsed: Duration) -> String {
    let seconds = elapsed.as_secs();
    match seconds {
        0..60 => format!("{seconds} s"),
        60..3600 => format!("{} min {:02} s", seconds / 60, seconds % 60),
        _ => format!("{} h {:02} min", seconds / 3600, seconds % 3600 / 60),
    }
}

/// `[######..............]`: `done` of `total` as filled cells (all filled when total is 0).
pub fn bar(done: u64, total: u64, width: usize) -> String {
    let filled = if total == 0 {
        width
    } else {
        (done.min(total) as usize * width) / total as usize
    };
    format!("[{}{}]", "#".repeat(filled), ".".repeat(width - filled))
}

/// `1/3 dates, 12 s: <phase>` (no phase: no colon).
pub fn plain_line(state: &State<'_>) -> String {
    let counts = format!(
        "{}/{} {}, {}",
        state.done,
        state.total,
        state.unit,
        elapsed_text(state.elapsed)
    );
    if state.phase.is_empty() {
        counts
    } else {
        format!("{counts}: {}", state.phase)
    }
}

/// The terminal line: the bar, then [`plain_line`], cut to fit `columns` characters (the last
/// column is left free so the cursor never wraps).
pub fn bar_line(state: &State<'_>, columns: usize) -> String {
    let line = format!(
        "{} {}",
        bar(state.done, state.total, BAR_WIDTH),
        plain_line(state)
    );
    truncate(&line, columns.saturating_sub(1).max(BAR_WIDTH + 2))
}

/// The last plain line printed: its count, its phase and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Printed {
    pub done: u64,
    pub phase: String,
    pub at: Duration,
}

/// Whether a plain line is due now: the first one, every change of the count, a new phase
/// [`MIN_GAP`] after the last line, and a [`HEARTBEAT`] while nothing changes.
pub fn line_due(last: Option<&Printed>, state: &State<'_>) -> bool {
    let Some(last) = last else {
        return true;
    };
    let since = state.elapsed.saturating_sub(last.at);
    last.done != state.done || (last.phase != state.phase && since >= MIN_GAP) || since >= HEARTBEAT
}

/// How progress is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// One line redrawn in place (stdout is a terminal).
    Bar,
    /// Plain lines at a log's rate.
    Lines,
}

impl Style {
    /// [`Style::Bar`] when stdout is a terminal.
    pub fn detect() -> Style {
        if std::io::stdout().is_terminal() {
            Style::Bar
        } else {
            Style::Lines
        }
    }
}

/// A progress display on stdout. Messages printed through [`Progress::message`] appear above
/// the bar; the bar is cleared when the display is finished or dropped (so an error printed
/// after it starts on a clean line).
pub struct Progress {
    unit: String,
    total: u64,
    done: u64,
    phase: String,
    started: Instant,
    style: Style,
    columns: usize,
    /// Bar: the line on screen now.
    drawn: Option<String>,
    /// Lines: the last one printed.
    printed: Option<Printed>,
}

impl Progress {
    /// `total` units of `unit` (plural), in the style stdout calls for.
    pub fn new(total: u64, unit: &str) -> Progress {
        Progress::with_style(total, unit, Style::detect())
    }

    pub fn with_style(total: u64, unit: &str, style: Style) -> Progress {
        let columns = std::env::var("COLUMNS")
            .ok()
            .and_then(|columns| columns.parse().ok())
            .or_else(|| (style == Style::Bar).then(terminal_columns).flatten())
            .unwrap_or(80);
        Progress {
            unit: unit.to_owned(),
            total,
            done: 0,
            phase: String::new(),
            started: Instant::now(),
            style,
            columns,
            drawn: None,
            printed: None,
        }
    }

    fn state(&self) -> State<'_> {
        State {
            done: self.done,
            total: self.total,
            unit: &self.unit,
            elapsed: self.started.elapsed(),
            phase: &self.phase,
        }
    }

    /// Says what is happening now.
    pub fn phase(&mut self, phase: impl Into<String>) {
        self.phase = phase.into();
        self.show();
    }

    /// One more unit done; `phase` says what that was or what comes next.
    pub fn advance(&mut self, phase: impl Into<String>) {
        self.done += 1;
        self.phase = phase.into();
        self.show();
    }

    /// Refreshes the display (the elapsed time, a heartbeat line).
    pub fn tick(&mut self) {
        self.show();
    }

    /// A line of its own, above the bar.
    pub fn message(&mut self, line: impl AsRef<str>) {
        self.clear();
        println!("{}", line.as_ref());
        self.show();
    }

    /// Removes the bar (plain lines stay as printed).
    pub fn finish(&mut self) {
        self.clear();
    }

    /// Awaits `work`, refreshing the display meanwhile.
    pub async fn during<F: Future>(&mut self, work: F) -> F::Output {
        let mut work = std::pin::pin!(work);
        loop {
            tokio::select! {
                output = &mut work => return output,
                () = tokio::time::sleep(TICK) => self.tick(),
            }
        }
    }

    fn show(&mut self) {
        match self.style {
            Style::Bar => {
                let line = bar_line(&self.state(), self.columns);
                if self.drawn.as_deref() != Some(line.as_str()) {
                    let mut out = std::io::stdout().lock();
                    let _ = write!(out, "\r{line}\x1b[K");
                    let _ = out.flush();
                    self.drawn = Some(line);
                }
            }
            Style::Lines => {
                let state = self.state();
                if line_due(self.printed.as_ref(), &state) {
                    println!("{}", plain_line(&state));
                    self.printed = Some(Printed {
                        done: state.done,
                        phase: state.phase.to_owned(),
                        at: state.elapsed,
                    });
                }
            }
        }
    }

    fn clear(&mut self) {
        if self.drawn.take().is_some() {
            let mut out = std::io::stdout().lock();
            let _ = write!(out, "\r\x1b[K");
            let _ = out.flush();
        }
    }
}

/// The terminal's width as `stty size` reports it (std has no call for it; a dependency for
/// one number is not worth it). `None` without a terminal or `stty`.
fn terminal_columns() -> Option<usize> {
    let tty = std::fs::File::open("/dev/tty").ok()?;
    let output = std::process::Command::new("stty")
        .arg("size")
        .stdin(tty)
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8(output.stdout).ok()?;
    let columns: usize = text.split_whitespace().nth(1)?.parse().ok()?;
    (columns > 0).then_some(columns)
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state<'a>(done: u64, total: u64, seconds: u64, phase: &'a str) -> State<'a> {
        State {
            done,
            total,
            unit: "dates",
            elapsed: Duration::from_secs(seconds),
            phase,
        }
    }

    #[test]
    fn the_bar_fills_with_the_share_done() {
        assert_eq!(bar(0, 8, 10), "[..........]");
        assert_eq!(bar(3, 8, 10), "[###.......]");
        assert_eq!(bar(4, 8, 10), "[#####.....]");
        assert_eq!(bar(8, 8, 10), "[##########]");
        assert_eq!(bar(9, 8, 10), "[##########]", "never past full");
        assert_eq!(bar(0, 0, 4), "[####]", "nothing to do is done");
    }

    #[test]
    fn elapsed_time_reads_like_a_person_writes_it() {
        assert_eq!(elapsed_text(Duration::from_millis(900)), "0 s");
        assert_eq!(elapsed_text(Duration::from_secs(12)), "12 s");
        assert_eq!(elapsed_text(Duration::from_secs(125)), "2 min 05 s");
        assert_eq!(elapsed_text(Duration::from_secs(3720)), "1 h 02 min");
    }

    #[test]
    fn lines_show_counts_time_and_phase() {
        let waiting = state(3, 8, 12, "online_retail/2026-03-04 waiting for the export");
        assert_eq!(
            plain_line(&waiting),
            "3/8 dates, 12 s: online_retail/2026-03-04 waiting for the export"
        );
        assert_eq!(
            bar_line(&waiting, 120),
            "[#######.............] 3/8 dates, 12 s: online_retail/2026-03-04 waiting for the export"
        );
        assert_eq!(plain_line(&state(0, 3, 0, "")), "0/3 dates, 0 s");
        // Cut to the terminal's width, the last column left free.
        let narrow = bar_line(&waiting, 50);
        assert_eq!(narrow.chars().count(), 49);
        assert!(narrow.starts_with("[#######.............] 3/8 dates, 12 s: online_"));
        assert!(narrow.ends_with('…'));
    }

    #[test]
    fn plain_lines_come_at_a_log_s_rate() {
        let first = state(0, 3, 0, "listing");
        assert!(line_due(None, &first), "the first line at once");
        let last = Printed {
            done: 0,
            phase: "listing".into(),
            at: Duration::from_secs(10),
        };
        // Nothing new: quiet until the heartbeat.
        assert!(!line_due(Some(&last), &state(0, 3, 11, "listing")));
        assert!(line_due(Some(&last), &state(0, 3, 25, "listing")));
        // A new phase: not within MIN_GAP of the last line, then yes.
        assert!(!line_due(Some(&last), &state(0, 3, 11, "waiting")));
        assert!(line_due(Some(&last), &state(0, 3, 12, "waiting")));
        // A unit done: at once.
        assert!(line_due(Some(&last), &state(1, 3, 10, "listing")));
    }
}
