-- Retrace schema v4: a payload lookup reads the granules of the hashes it asks for, not more.
-- retrace_payloads had the default 8192-row granules. A trace's payload hashes are random, so
-- each one found decompressed a whole granule of contents (megabytes): the 18 payloads of one
-- stored agent run took 105 ms to fetch from 180 000 payloads, 12 ms with 256-row granules
-- (bench/bench_store.py store). index_granularity cannot be altered, so the table is rebuilt
-- with the same columns and swapped in atomically. A rerun after an interruption starts over:
-- the leftover is dropped first, and after the swap it only holds the old copy.
-- Nothing reads the payload table from a view, so no view needs recreating.

DROP TABLE IF EXISTS retrace_payloads_v4;

CREATE TABLE retrace_payloads_v4
(
    ProjectId LowCardinality(String) CODEC(ZSTD(1)),
    Hash FixedString(64),
    Size UInt64,
    Content String CODEC(ZSTD(3)),
    FirstSeen DateTime64(3) DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(FirstSeen)
ORDER BY (ProjectId, Hash)
SETTINGS index_granularity = 256;

INSERT INTO retrace_payloads_v4 (ProjectId, Hash, Size, Content, FirstSeen)
SELECT ProjectId, Hash, Size, Content, FirstSeen FROM retrace_payloads;

EXCHANGE TABLES retrace_payloads AND retrace_payloads_v4;

DROP TABLE retrace_payloads_v4;
