-- Retrace schema v10: a payload lookup decompresses about the payloads it asks for.
-- 0004 gave retrace_payloads 256-row granules, but 256 contents are still ~200 KB (payloads
-- average ~0.8 KB, chat messages 2 KB and more) and a column's compressed blocks were at least
-- 64 KB: each hash looked up decompressed a granule of hashes in every part and a granule of
-- contents where found. Granules now close at 32 KB of data (index_granularity_bytes; still at
-- most 256 rows) and compressed blocks at 8 KB (min_compress_block_size). Looking up payloads
-- among bench/bench_store.py's 180,000 (one merged part each way, ms p50 / min): 18 found
-- 11.4 / 10.1 -> 6.2 / 5.4, 200 found 64 / 54 -> 29 / 22, 200 absent 13.8 / 12.2 -> 10.6 / 8.3.
-- The price: the table is ~6 % larger on disk (smaller blocks compress less) and has ~6x the
-- marks (its primary index of 64-byte hashes is ~0.1 % of the payload bytes).
-- These settings cannot be altered for stored parts, so the table is rebuilt and swapped in as
-- in 0004 (a rerun after an interruption starts over; nothing reads it from a view).

DROP TABLE IF EXISTS retrace_payloads_v10;

CREATE TABLE retrace_payloads_v10
(
    ProjectId LowCardinality(String) CODEC(ZSTD(1)),
    Hash FixedString(64),
    Size UInt64,
    Content String CODEC(ZSTD(3)),
    FirstSeen DateTime64(3) DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(FirstSeen)
ORDER BY (ProjectId, Hash)
SETTINGS index_granularity = 256, index_granularity_bytes = 32768, min_compress_block_size = 8192;

INSERT INTO retrace_payloads_v10 (ProjectId, Hash, Size, Content, FirstSeen)
SELECT ProjectId, Hash, Size, Content, FirstSeen FROM retrace_payloads;

EXCHANGE TABLES retrace_payloads AND retrace_payloads_v10;

DROP TABLE retrace_payloads_v10;
