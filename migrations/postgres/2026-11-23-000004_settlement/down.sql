DROP TABLE reconciliation_uploads;
DROP TABLE settlement_runs;
