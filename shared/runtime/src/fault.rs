//! Crash points for the fault harness (`tests/tests/chaos.rs`).
//!
//! A crash point is a named place where dying is the hardest case for the guarantees: after a
//! commit but before the broker hears of it (`consumer.after_commit`: the ack is lost, the event
//! comes again), after the broker confirmed outbox events but before they are marked sent
//! (`outbox.after_confirm`: they are published again), between two models of one transform
//! (`transformer.between_models`). Random `SIGKILL`s from outside rarely land in those windows;
//! these points put the process there on purpose.
//!
//! Off unless `LANDFALL_FAULT_KILL` is set, e.g. `consumer.after_commit=0.05,outbox.after_confirm=0.1`:
//! at each named point the process sends itself `SIGKILL` with that probability — no drain, no
//! destructors, exactly like the kernel's OOM killer or a node dying. Production deployments
//! never set it; a point costs one relaxed load when it is unset.

use std::sync::OnceLock;

/// The variable naming the crash points and their probabilities.
pub const VARIABLE: &str = "LANDFALL_FAULT_KILL";

fn points() -> &'static [(String, f64)] {
    static POINTS: OnceLock<Vec<(String, f64)>> = OnceLock::new();
    POINTS.get_or_init(|| match std::env::var(VARIABLE) {
        Ok(value) => parse(&value).unwrap_or_else(|error| {
            // A harness typo must not silently test nothing.
            eprintln!("{VARIABLE}: {error}");
            std::process::exit(2);
        }),
        Err(_) => Vec::new(),
    })
}

/// `name=probability,…` → pairs; probabilities between 0 and 1.
pub fn parse(value: &str) -> Result<Vec<(String, f64)>, String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .map(|part| {
            let (name, probability) = part
                .split_once('=')
                .ok_or_else(|| format!("'{part}' is not name=probability"))?;
            let probability: f64 = probability
                .trim()
                .parse()
                .map_err(|_| format!("'{probability}' in '{part}' is not a number"))?;
            if !(0.0..=1.0).contains(&probability) {
                return Err(format!(
                    "probability {probability} in '{part}' is not in 0..=1"
                ));
            }
            Ok((name.trim().to_owned(), probability))
        })
        .collect()
}

/// Dies here with the configured probability (see the module documentation).
pub fn point(name: &str) {
    let points = points();
    if points.is_empty() {
        return;
    }
    let Some((_, probability)) = points.iter().find(|(point, _)| point == name) else {
        return;
    };
    if rand::random::<f64>() < *probability {
        // The harness counts these lines to tell its own kills from the injected ones.
        eprintln!("landfall fault injection: SIGKILL at {name}");
        // SAFETY: kill(2) on our own pid has no memory-safety preconditions.
        unsafe {
            libc::kill(std::process::id() as libc::pid_t, libc::SIGKILL);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn points_parse_and_bad_ones_are_named() {
        assert_eq!(
            parse("consumer.after_commit=0.5, outbox.after_confirm=1").unwrap(),
            vec![
                ("consumer.after_commit".to_owned(), 0.5),
                ("outbox.after_confirm".to_owned(), 1.0)
            ]
        );
        assert!(parse("").unwrap().is_empty());
        assert!(
            parse("consumer.after_commit")
                .unwrap_err()
                .contains("name=probability")
        );
        assert!(parse("x=abc").unwrap_err().contains("not a number"));
        assert!(parse("x=2").unwrap_err().contains("not in 0..=1"));
    }
}
