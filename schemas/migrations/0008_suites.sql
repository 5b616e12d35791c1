-- Retrace schema v8: suites, named sets of recorded traces kept as regression tests.
-- One row per (project, suite, trace). Adding a trace that is already in the suite inserts
-- nothing (the engine looks first), and two concurrent adds of the same trace collapse into one
-- row (ReplacingMergeTree, read with FINAL). Removing a trace is a lightweight DELETE; a suite
-- exists while it has traces; its traces are in the order they were added (Version). Deleting a trace (DELETE /api/v1/traces/{id}) removes it from its
-- suites too.

CREATE TABLE IF NOT EXISTS retrace_suites
(
    ProjectId LowCardinality(String),
    Suite String,
    TraceId String,
    AddedAt DateTime64(3),
    Source LowCardinality(String),
    Note String CODEC(ZSTD(3)),
    Version UInt64
)
ENGINE = ReplacingMergeTree(Version)
ORDER BY (ProjectId, Suite, TraceId);
