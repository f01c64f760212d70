//! The pipeline's vocabulary as types: its stages (a service each, with its queue, the events
//! that feed it and its database role) and the states of a file and of a batch, as the
//! database's check constraints spell them. Everything that names a stage or a state — the
//! broker topology, the configuration, `landfall dlq`, the demo, the tests — reads it here.

use contract::{FileLanded, Payload as _, QualityPassed, StagingLoaded, TransformCompleted};

/// One stage of the pipeline: a service of its own, with a queue `<prefix>.<name>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum Stage {
    Ingester,
    Stager,
    Transformer,
    QualityChecker,
    Exporter,
}

impl Stage {
    /// The five, in pipeline order.
    pub const ALL: [Stage; 5] = [
        Stage::Ingester,
        Stage::Stager,
        Stage::Transformer,
        Stage::QualityChecker,
        Stage::Exporter,
    ];

    /// The service's name: its binary, its queue's suffix, its default name in telemetry, and
    /// the key its handled events are recorded under (`ops.processed_events.consumer`).
    pub const fn name(self) -> &'static str {
        match self {
            Stage::Ingester => "ingester",
            Stage::Stager => "stager",
            Stage::Transformer => "transformer",
            Stage::QualityChecker => "quality-checker",
            Stage::Exporter => "exporter",
        }
    }

    /// The stage named `name`, if it is one.
    pub fn from_name(name: &str) -> Option<Stage> {
        Stage::ALL.into_iter().find(|stage| stage.name() == name)
    }

    /// The event types routed to the stage's queue from the events exchange. The ingester's
    /// queue is fed by the S3 notification exchange instead.
    pub fn consumes(self) -> &'static [&'static str] {
        const STAGER: &[&str] = &[FileLanded::EVENT_TYPE];
        const TRANSFORMER: &[&str] = &[StagingLoaded::EVENT_TYPE];
        const QUALITY_CHECKER: &[&str] = &[TransformCompleted::EVENT_TYPE];
        const EXPORTER: &[&str] = &[QualityPassed::EVENT_TYPE];
        match self {
            Stage::Ingester => &[],
            Stage::Stager => STAGER,
            Stage::Transformer => TRANSFORMER,
            Stage::QualityChecker => QUALITY_CHECKER,
            Stage::Exporter => EXPORTER,
        }
    }

    /// The database role the service's statements run under
    /// (`sql/migrations/0008_service_roles.sql`).
    pub const fn database_role(self) -> &'static str {
        match self {
            Stage::Ingester => "landfall_ingester",
            Stage::Stager => "landfall_stager",
            Stage::Transformer => "landfall_transformer",
            Stage::QualityChecker => "landfall_quality_checker",
            Stage::Exporter => "landfall_exporter",
        }
    }

    /// What the stage does to a batch, as the demo and progress messages say it.
    pub const fn step(self) -> &'static str {
        match self {
            Stage::Ingester => "ingest",
            Stage::Stager => "staging",
            Stage::Transformer => "transform",
            Stage::QualityChecker => "quality",
            Stage::Exporter => "export",
        }
    }
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A file's state in the ledger (`ops.files.state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "clap",
    derive(clap::ValueEnum),
    value(rename_all = "snake_case")
)]
pub enum FileState {
    Landed,
    Staged,
    Rejected,
    Superseded,
    Missing,
    Ignored,
}

impl FileState {
    pub const ALL: [FileState; 6] = [
        FileState::Landed,
        FileState::Staged,
        FileState::Rejected,
        FileState::Superseded,
        FileState::Missing,
        FileState::Ignored,
    ];

    /// As the database stores it.
    pub const fn as_str(self) -> &'static str {
        match self {
            FileState::Landed => "landed",
            FileState::Staged => "staged",
            FileState::Rejected => "rejected",
            FileState::Superseded => "superseded",
            FileState::Missing => "missing",
            FileState::Ignored => "ignored",
        }
    }
}

/// A batch's state (`ops.batches.state`), in pipeline order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(
    feature = "clap",
    derive(clap::ValueEnum),
    value(rename_all = "snake_case")
)]
pub enum BatchState {
    /// Waiting for required sources.
    Staging,
    /// Every required source is staged.
    Ready,
    Transformed,
    QualityPassed,
    QualityFailed,
    Exported,
}

impl BatchState {
    pub const ALL: [BatchState; 6] = [
        BatchState::Staging,
        BatchState::Ready,
        BatchState::Transformed,
        BatchState::QualityPassed,
        BatchState::QualityFailed,
        BatchState::Exported,
    ];

    /// As the database stores it.
    pub const fn as_str(self) -> &'static str {
        match self {
            BatchState::Staging => "staging",
            BatchState::Ready => "ready",
            BatchState::Transformed => "transformed",
            BatchState::QualityPassed => "quality_passed",
            BatchState::QualityFailed => "quality_failed",
            BatchState::Exported => "exported",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_stage_is_found_by_its_name_and_names_differ() {
        for stage in Stage::ALL {
            assert_eq!(Stage::from_name(stage.name()), Some(stage));
        }
        assert_eq!(Stage::from_name("landfall-transform"), None);
        let mut roles: Vec<&str> = Stage::ALL.iter().map(|s| s.database_role()).collect();
        roles.dedup();
        assert_eq!(roles.len(), 5);
    }

    #[test]
    fn each_event_feeds_one_stage() {
        let mut fed: Vec<&str> = Stage::ALL
            .iter()
            .flat_map(|s| s.consumes())
            .copied()
            .collect();
        let all = fed.len();
        fed.sort();
        fed.dedup();
        assert_eq!(fed.len(), all);
        assert_eq!(Stage::Ingester.consumes(), &[] as &[&str]);
    }
}
