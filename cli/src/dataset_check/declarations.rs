//! `checks.toml` and `exports.toml`, read with the services' own parsers, every broken entry
//! reported with its line.

use std::path::Path;

use super::locate::locate;
use super::{Report, SourceFile};

/// Reads a `checks.toml` or `exports.toml` with the service's own parser. When the file has
/// problems, each `[[…]]` entry is parsed on its own as well, so every broken entry is reported
/// with its line, not only the first.
pub(super) fn read_declarations<T>(
    path: &Path,
    header: &str,
    parse: impl Fn(&str) -> anyhow::Result<Vec<T>>,
    report: &mut Report,
) -> Option<(SourceFile, Vec<T>)> {
    if !path.is_file() {
        let what = if header == "[[checks]]" {
            ("checks", "no checks run")
        } else {
            ("exports", "no reports exported")
        };
        report.stage(
            what.0,
            format!("none ({} does not exist: {})", path.display(), what.1),
        );
        return None;
    }
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) => {
            report.problem(path, None, format!("cannot be read: {error}"));
            return None;
        }
    };
    match parse(&text) {
        Ok(items) => Some((
            SourceFile {
                path: path.to_path_buf(),
                text,
            },
            items,
        )),
        Err(whole) => {
            let before = report.problems.len();
            for (first_line, chunk) in entries(&text, header) {
                if let Err(error) = parse(&chunk) {
                    let (line, message) = locate(&chunk, &error);
                    let message = tidy_entry_message(&message);
                    report.problem(path, Some(first_line + line.unwrap_or(1) - 1), message);
                }
            }
            if report.problems.len() == before {
                let (line, message) = locate(&text, &whole);
                report.problem(path, line, message);
            }
            let what = if header == "[[checks]]" {
                ("checks", "the quality-checker")
            } else {
                ("exports", "the exporter")
            };
            report.stage(
                what.0,
                format!(
                    "{} problem(s) in {}: {} would not start",
                    report.problems.len() - before,
                    path.display(),
                    what.1
                ),
            );
            None
        }
    }
}

/// The `[[header]]` entries of a TOML file, each with the line it starts on.
pub(super) fn entries(text: &str, header: &str) -> Vec<(usize, String)> {
    let mut entries: Vec<(usize, String)> = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim() == header {
            entries.push((index + 1, String::new()));
        }
        if let Some((_, chunk)) = entries.last_mut() {
            chunk.push_str(line);
            chunk.push('\n');
        }
    }
    entries
}

/// An entry parsed alone is always "entry 1" at "line 1": drop what would mislead.
pub(super) fn tidy_entry_message(message: &str) -> String {
    for header in ["[[exports]]", "[[sources]]"] {
        if let Some(rest) = message
            .strip_prefix(header)
            .and_then(|rest| rest.strip_prefix(" entry 1 ("))
        {
            return rest.replacen(')', "", 1);
        }
    }
    match message.find(" (line ") {
        Some(start) => match message[start..].find("): ") {
            Some(end) => format!("{}{}", &message[..start], &message[start + end + 1..]),
            None => message.to_owned(),
        },
        None => message.to_owned(),
    }
}
