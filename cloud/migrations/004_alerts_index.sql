-- 003's alerts view covers staff calls (and journal recoveries); the staff_calls view of 002 has no reader.
DROP VIEW IF EXISTS staff_calls;
-- /api/v1/alerts reads the newest alerts of a site: without this, every request scans the event log.
CREATE INDEX inbox_alerts_at ON inbox (site_id, at DESC) WHERE kind IN ('staff-call', 'journal-recovered') AND outcome = 'applied';
