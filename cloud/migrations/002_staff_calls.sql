-- Staff calls (the kiosk's call-staff button): alerts for ops, a view of the event log like check-ins.
CREATE VIEW staff_calls AS
SELECT entry_id::uuid AS id, site_id, device_id, seq,
       body ->> 'source' AS source,
       at, received_at
FROM inbox
WHERE kind = 'staff-call' AND outcome = 'applied';
