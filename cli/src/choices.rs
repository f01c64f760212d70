//! The fixed choices of the command line, as types: clap lists them in `--help`, refuses any
//! other value with the list, and suggests the closest one for a typo.

use clap::ValueEnum;

/// A pipeline stage's service (its queue is `<prefix>.<service>`, its dead letters
/// `<prefix>.<service>.dlq`): the runtime's own vocabulary type.
pub use runtime::Stage as Service;

/// A batch's state (`ops.batches.state`), in pipeline order.
pub use runtime::BatchState;

/// A file's state (`ops.files.state`).
pub use runtime::FileState;

/// What `landfall status --state` takes: a batch state (those batches and their files) or a
/// file state (`ops.files.state`: those files and the batches holding one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum StatusState {
    Staging,
    Ready,
    Transformed,
    QualityPassed,
    QualityFailed,
    Exported,
    Landed,
    Staged,
    Rejected,
    Superseded,
    Missing,
    Ignored,
}

impl StatusState {
    /// The batch state it names, if it names one.
    pub fn batch(self) -> Option<BatchState> {
        Some(match self {
            StatusState::Staging => BatchState::Staging,
            StatusState::Ready => BatchState::Ready,
            StatusState::Transformed => BatchState::Transformed,
            StatusState::QualityPassed => BatchState::QualityPassed,
            StatusState::QualityFailed => BatchState::QualityFailed,
            StatusState::Exported => BatchState::Exported,
            _ => return None,
        })
    }

    /// The file state it names, if it names one.
    pub fn file(self) -> Option<FileState> {
        Some(match self {
            StatusState::Landed => FileState::Landed,
            StatusState::Staged => FileState::Staged,
            StatusState::Rejected => FileState::Rejected,
            StatusState::Superseded => FileState::Superseded,
            StatusState::Missing => FileState::Missing,
            StatusState::Ignored => FileState::Ignored,
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The names clap shows and parses are the ones the database and the queues use.
    #[test]
    fn command_line_names_are_the_stored_names() {
        for service in Service::ALL {
            let value = service.to_possible_value().unwrap();
            assert_eq!(value.get_name(), service.name());
        }
        for state in StatusState::value_variants() {
            let name = state.to_possible_value().unwrap().get_name().to_owned();
            let stored = state
                .batch()
                .map(BatchState::as_str)
                .or(state.file().map(FileState::as_str));
            assert_eq!(Some(name.as_str()), stored);
            if let Some(batch) = state.batch() {
                assert_eq!(batch.to_possible_value().unwrap().get_name(), name);
            }
            if let Some(file) = state.file() {
                assert_eq!(file.to_possible_value().unwrap().get_name(), name);
            }
        }
    }
}
