DROP TABLE settlement_runs;
