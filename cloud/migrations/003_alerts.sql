-- Alerts for ops, a view of the event log: staff calls and journal recoveries, with their bodies as detail.
CREATE VIEW alerts AS
SELECT entry_id::uuid AS id, site_id, device_id, seq, kind, body AS detail, at, received_at
FROM inbox
WHERE kind IN ('staff-call', 'journal-recovered') AND outcome = 'applied';
